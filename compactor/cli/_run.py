"""``compactor run``."""

from __future__ import annotations

import sys

import click

from ._common import (
    EXIT_FAILED_SCENES,
    SceneProgress,
    clean_errors,
    imported,
    resolve,
    stdout,
    warm_local_workers,
)
from ._options import run_options, selection_options


@click.command()
@selection_options
@run_options
@click.pass_context
def run(ctx: click.Context, /, **flags: object) -> None:
    """Compact every scene under --source (or every asset a --stac search finds) into --dest.

    Each scene is read lazily (range requests on S3), encoded as a COG, and checked:
    a valid COG, metadata kept, lossless outputs pixel-identical, lossy outputs with an
    identical validity mask and SSIM >= --min-ssim. Only then, with --archive, is the
    original copied to the archive storage class, the copy verified, and the source
    deleted. Progress is recorded per scene under <dest>/_compactor/state/, so running
    the same command again redoes nothing and finishes anything interrupted.

    Exit status: 0 when no scene failed, 1 when any did (the report is still written),
    2 for usage errors.
    """
    with clean_errors():
        settings = resolve(ctx, **flags)
        warm_local_workers(settings)  # the workers' imports overlap the runner's below
        from ..report import summary_lines
        from ..runner import run as run_pipeline

        imported(ctx)
        show = ctx.obj["verbosity"] >= 0
        with SceneProgress("compacting", enabled=show) as bar:
            report = run_pipeline(
                settings, progress=bar.advance, on_start=bar.start, on_dashboard=bar.dashboard
            )
        for line in summary_lines(report):
            stdout.print(line)
        assert report.location is not None
        sep = "" if report.location.endswith("/") else "/"
        stdout.print(f"report: {report.location}{sep}report.html")
        if not report.ok:
            sys.exit(EXIT_FAILED_SCENES)
