"""``compactor verify``."""

from __future__ import annotations

import sys

import click

from ._common import EXIT_FAILED_SCENES, clean_errors, imported, resolve, stderr, stdout


@click.command()
@click.argument("dest", metavar="DEST")
@click.option("--threads", type=click.IntRange(1, 128), default=8, show_default=True,
              help="Objects checked at once.")  # fmt: skip
@click.option(
    "--sample",
    type=click.IntRange(1),
    metavar="N",
    help="Check only N scenes drawn at random from the state records: a spot check of a "
    "large archive (outputs without a record are then not looked for).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --sample draw.")
@click.pass_context
def verify(ctx: click.Context, dest: str, threads: int, sample: int | None, seed: int) -> None:
    """Re-check every output under DEST against compactor's state records.

    Each recorded output must exist with its recorded size and SHA-256 and be a valid COG;
    each archived original must exist in the archive with its recorded size and checksum.
    Outputs under DEST that no record accounts for are reported too. Prints each
    discrepancy with its key; exits 1 if there is any, 0 if everything holds.
    """
    with clean_errors():
        from ..runner import audit
        from ..scene import RunContext

        imported(ctx)
        settings = resolve(ctx, dest=dest)
        context = RunContext.from_settings(settings, "verify")
        show = ctx.obj["verbosity"] >= 0
        if show:
            stderr.print(f"checking {context.dest} ...", markup=False)
        result = audit(context.dest, context.s3, threads=threads, sample=sample, seed=seed)
        for d in result.discrepancies:
            stdout.print(f"{d.url}: {d.problem}", markup=False)
        drawn = (
            f" (a sample of {result.sampled} of {result.records} records)"
            if result.sampled is not None
            else ""
        )
        stdout.print(
            f"{result.checked} outputs and {result.archives_checked} archive copies checked"
            f"{drawn}: "
            + (
                "all as recorded"
                if result.ok
                else f"{len(result.discrepancies)} discrepanc"
                + ("y" if len(result.discrepancies) == 1 else "ies")
            )
        )
        if not result.ok:
            sys.exit(EXIT_FAILED_SCENES)
