"""``compactor restore``."""

from __future__ import annotations

import sys

import click

from ._common import EXIT_FAILED_SCENES, clean_errors, imported, resolve, stdout

#: Exit status while Glacier restores are still in progress.
EXIT_PENDING = 3


@click.command()
@click.option(
    "--archive",
    "archive",
    required=True,
    metavar="URL",
    help="Archive prefix the originals were moved to (s3://bucket/prefix/ or a directory).",
)
@click.option(
    "--to",
    "to",
    required=True,
    metavar="URL",
    help="Prefix to copy them back to, at the same relative keys (usually the old --source).",
)
@click.option(
    "--tier",
    type=click.Choice(["Bulk", "Standard", "Expedited"]),
    default="Bulk",
    show_default=True,
    help="Glacier retrieval tier (price and speed).",
)
@click.option(
    "--days",
    type=click.IntRange(1),
    default=7,
    show_default=True,
    help="How long the restored temporary copy stays readable in the archive.",
)
@click.option(
    "--report",
    metavar="URL",
    help="Only the originals of one run: its report.json (or the folder holding it).",
)
@click.option("--threads", type=click.IntRange(1, 128), default=8, show_default=True)
@click.pass_context
def restore(ctx: click.Context, archive: str, to: str, tier: str, days: int, report: str | None,
            threads: int) -> None:  # fmt: skip
    """Bring archived originals back to their original keys, in STANDARD, metadata kept.

    Requests Glacier restores for originals that need one and reports how many are
    pending; copies back (and checks byte for byte) those already available. Rerun it
    until nothing is pending. Exit status: 0 when everything is back, 3 while restores
    are pending, 1 if an original could not be restored, 2 for usage errors.
    """
    with clean_errors():
        from ..runner import restore as restore_originals
        from ..scene import RunContext

        imported(ctx)
        settings = resolve(ctx, dest=to)
        context = RunContext.from_settings(settings, "restore")
        result = restore_originals(
            archive, to, context.s3, tier=tier, days=days, report=report, threads=threads,
            multipart_threshold=settings.multipart_copy_threshold,
            part_size=settings.multipart_copy_part_size,
        )  # fmt: skip
        for url, why in result.failed:
            stdout.print(f"FAILED {url}: {why}", markup=False)
        stdout.print(
            f"restored {len(result.restored)}, already back {len(result.already)}, "
            f"restores requested {len(result.requested)}, still pending {len(result.pending)}, "
            f"failed {len(result.failed)}"
        )
        if result.failed:
            sys.exit(EXIT_FAILED_SCENES)
        if result.waiting:
            stdout.print("run the same command again later to copy back what has been restored")
            sys.exit(EXIT_PENDING)
