"""``compactor demo``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ._common import EXIT_FAILED_SCENES, SceneProgress, clean_errors, imported, stderr, stdout


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the generated originals and the report are written.",
)
@click.option("--size", type=click.IntRange(256, 8192), default=1536, show_default=True,
              help="Width and height of each generated scene in pixels.")  # fmt: skip
@click.option(
    "--workers", type=click.IntRange(1), help="Local Dask workers.  [default: one per core]"
)
@click.pass_context
def demo(ctx: click.Context, workdir: Path, size: int, workers: int | None) -> None:
    """Run the whole flow on a generated archive, with nothing to set up.

    Generates four realistic scenes (hillshade, an RGB landscape with a nodata collar, a
    uint16 multiband, a float32 DEM), starts an embedded S3 server on a free loopback
    port (unless AWS_ENDPOINT_URL is set), uploads them to s3://compactor-demo/scenes/,
    compacts them into s3://compactor-demo/cogs/ with the originals archived to GLACIER
    under s3://compactor-demo/archive/, prints the summary and the path of report.html,
    and stops the server.
    """
    with clean_errors():
        from ..demo import DEMO_BUCKET, run_demo
        from ..report import summary_lines

        imported(ctx)
        show = ctx.obj["verbosity"] >= 0

        def server(url: str) -> None:
            if show:
                stderr.print(
                    f"embedded S3 server (moto) at {url}; bucket s3://{DEMO_BUCKET}/", markup=False
                )

        with SceneProgress("compacting", enabled=show) as bar:
            report = run_demo(
                workdir.absolute(),
                size=size,
                workers=workers,
                on_server=server,
                progress=bar.advance,
                on_start=bar.start,
                on_dashboard=bar.dashboard,
            )
        for line in summary_lines(report):
            stdout.print(line)
        stdout.print(f"originals (generated): {workdir.absolute() / 'originals'}")
        stdout.print(f"report: {workdir.absolute() / 'report' / 'report.html'}")
        if not report.ok:
            sys.exit(EXIT_FAILED_SCENES)
