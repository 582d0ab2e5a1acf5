"""``compactor plan``: the dry run."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from ..display import human_bytes
from ._common import SceneProgress, clean_errors, imported, resolve, stdout, warm_local_workers
from ._options import selection_options

if TYPE_CHECKING:
    import pandas as pd


def _plain(value: object) -> object:
    """A DataFrame cell as JSON-ready Python: NA/NaN -> None, numpy scalars -> Python."""
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _fmt_ratio(value: object) -> str:
    return f"{value:.1f}x" if isinstance(value, float) and not math.isnan(value) else "–"


@click.command()
@selection_options
@click.option(
    "--json", "as_json", is_flag=True, help="Print the plan as JSON lines instead of a table."
)
@click.option(
    "--sample",
    type=click.IntRange(1),
    metavar="N",
    help="List everything but plan only about N scenes, drawn at random within size "
    "strata, and extrapolate the archive's saving with a 95% interval. For archives too "
    "large to plan scene by scene (e.g. with --inventory).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the --sample draw (the same seed and listing give the same sample).",
)
@click.pass_context
def plan(
    ctx: click.Context, /, as_json: bool, sample: int | None, seed: int, **flags: object
) -> None:
    """Dry run: list the scenes a run would take, the codec each gets and its estimated
    output size and saving (from compressing a sample of each scene). Reads only:
    nothing is written, copied or deleted. --dest is needed to see what earlier runs did.
    """
    with clean_errors():
        settings = resolve(ctx, **flags)
        warm_local_workers(settings)  # the workers' imports overlap the runner's below
        from ..runner import plan as plan_scenes

        imported(ctx)
        show = ctx.obj["verbosity"] >= 0 and not as_json
        label = "planning a sample" if sample else "planning"
        with SceneProgress(label, enabled=show) as bar:
            df = plan_scenes(
                settings, progress=bar.advance, on_start=bar.start, sample=sample, seed=seed
            )
        if as_json:
            for row in df.to_dict(orient="records"):
                clean = {k: _plain(v) for k, v in row.items()}
                stdout.print(json.dumps(clean, ensure_ascii=False), markup=False)
            return
        _print_table(df, settings.source)


def _print_table(df: pd.DataFrame, source: str | None) -> None:
    """The plan as a table, its totals and what the run would cost."""
    import pandas as pd

    from ..report import cost_lines
    from ..runner import plan_cost

    table = Table(show_lines=False)
    for col in ("scene", "action", "codec", "size", "est. output", "ratio", "SSIM", "note"):
        table.add_column(col, overflow="fold")
    # Scenes under --source are shown by their key below it (the header says where).
    prefix = source.rstrip("/") + "/" if source else None
    if prefix:
        table.title = f"scenes under {prefix}"
    for r in df.itertuples():
        quality = "" if pd.isna(r.quality) else f" q{int(r.quality)}"
        bound = getattr(r, "max_error", None)
        if isinstance(bound, list) and bound:
            quality += " ±" + "/".join(f"{e:g}" for e in bound)
        noise = getattr(r, "noise", None)
        table.add_row(
            *map(
                Text,
                (
                    str(r.source).removeprefix(prefix) if prefix else str(r.source),
                    str(r.action),
                    f"{r.codec or '–'}{quality}" if isinstance(r.codec, str) else "–",
                    "–" if pd.isna(r.bytes_in) else human_bytes(r.bytes_in),
                    "–" if pd.isna(r.est_bytes_out) else human_bytes(r.est_bytes_out),
                    _fmt_ratio(r.est_ratio),
                    "–" if pd.isna(r.est_ssim) else f"{r.est_ssim:.3f}",
                    "; ".join(
                        str(t)
                        for t in (r.reason, r.archive_skipped, noise)
                        if isinstance(t, str) and t
                    ),
                ),
            )
        )
    stdout.print(table)
    a = df.attrs
    if "estimate_line" in a:
        stdout.print(
            f"{a['scenes']:,} scenes listed, {a['sampled']} planned: {a['estimate_line']}.",
            markup=False,
        )
    else:
        stdout.print(
            f"{a['scenes']} scenes: {a['compact']} to compact, {a['skip']} to skip, "
            f"{a['fail']} failing. Estimated {human_bytes(a['bytes_in'])} -> "
            f"{human_bytes(a['est_bytes_out'])}.",
            markup=False,
        )
    cost = plan_cost(df)
    if cost is not None:
        for line in cost_lines(cost):
            stdout.print(line, markup=False)
