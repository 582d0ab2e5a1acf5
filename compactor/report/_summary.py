"""The summary the CLI prints: a run in a few plain-text lines, the same length for ten
scenes or ten million, and its cost in a few more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..display import human_bytes, months, usd

if TYPE_CHECKING:  # the models render themselves with these functions
    from ..records import CostEstimate, Distribution, Report, SceneResult, StacSummary


#: Failures the summary prints (the report lists them all).
SUMMARY_FAILURES = 8
#: Skip reasons the summary prints, most frequent first.
SUMMARY_REASONS = 5


def skip_reasons(skipped: Sequence[SceneResult], default: str = "skipped") -> list[tuple[str, int]]:
    """Skipped (or held) scenes counted by the first words of their reason, most frequent
    first."""
    counts: dict[str, int] = {}
    for s in skipped:
        why = (s.reason or default).split(" (")[0].split(":")[0]
        counts[why] = counts.get(why, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _parts(n: int) -> str:
    return f"{n} part" if n == 1 else f"{n} parts"


def _quantiles(d: Distribution, fmt: str, unit: str = "") -> str:
    return ", ".join(
        f"{name} {format(v, fmt)}{unit}"
        for name, v in (("median", d.p50), ("p90", d.p90), ("p99", d.p99))
        if v is not None
    )


def summary_lines(report: Report) -> list[str]:
    """A one-screen plain-text summary of a run: the same length for ten scenes or ten
    million (no line per scene but the first failures)."""
    t = report.totals
    held = f"{t.held} held, " if t.held else ""
    lines = [
        f"run {report.run_id}: {t.scenes} scenes - {t.compacted} compacted in this run, "
        f"{held}{t.finished_earlier} finished earlier, {t.skipped} skipped, {t.failed} failed",
    ]
    if report.interrupted:
        lines.append(
            f"STOPPED EARLY ({report.interrupted}): only the scenes above were finished; "
            "rerun the same command to finish the rest"
        )
    if t.compacted or t.held:
        lines += _size_lines(report)
    if report.quality is not None and report.quality.scenes > 1:  # one scene: nothing to compare
        q = report.quality
        lines.append(
            f"automatic quality: {q.scenes} lossy scenes, {human_bytes(q.bytes_auto)}; "
            f"fixed {q.fixed_codec.upper()} q{q.fixed_quality} (the lowest that keeps them all "
            f"at SSIM {q.min_ssim}) would take ~{human_bytes(q.bytes_fixed)}: {q.saving:.1%} saved"
        )
    if report.cost and (t.compacted or t.held or report.cost.one_time_usd):
        lines += cost_lines(report.cost)
    lines += _reason_lines(report)
    if report.stac is not None:
        lines += _stac_lines(report.stac)
    for s in report.failed[:SUMMARY_FAILURES]:
        lines.append(f"FAILED {s.source}: {s.reason}")
    if len(report.failed) > SUMMARY_FAILURES:
        lines.append(
            f"... and {len(report.failed) - SUMMARY_FAILURES} more failures (see the report)"
        )
    if report.scene_log is not None and report.scene_log.scenes:
        log = report.scene_log
        lines.append(f"scene log: {log.scenes} scenes in {_parts(log.parts)} at {log.location}")
    return lines


def _size_lines(report: Report) -> list[str]:
    """Bytes before and after, the ratios, the SSIM of lossy scenes and the codecs kept."""
    t = report.totals
    d = report.distributions
    ratio = t.bytes_in / t.bytes_out if t.bytes_out else math.inf
    saved = 1 - t.bytes_out / t.bytes_in if t.bytes_in else 0.0
    change = f"{saved:.0%} smaller" if saved >= 0 else f"{-saved:.0%} larger"
    lines = [f"{human_bytes(t.bytes_in)} -> {human_bytes(t.bytes_out)} ({ratio:.1f}x, {change})"]
    if d.ratio.count > 1:
        lines.append(f"compression ratio per scene: {_quantiles(d.ratio, '.2f', 'x')}")
    if d.lossy:
        ssim = d.ssim
        lines.append(
            f"lossy scenes: {d.lossy}, SSIM min {ssim.min:.4f}"
            + (f", {_quantiles(ssim, '.4f')}" if ssim.count > 1 else "")
            if ssim.min is not None
            else f"lossy scenes: {d.lossy}"
        )
    if d.codecs:
        shown = list(d.codecs.items())[:6]
        more = f" and {len(d.codecs) - 6} more" if len(d.codecs) > 6 else ""
        lines.append("codecs: " + ", ".join(f"{c} {n}" for c, n in shown) + more)
    return lines


def _reason_lines(report: Report) -> list[str]:
    """Why scenes were skipped and held, the most frequent reasons first."""
    lines: list[str] = []
    reasons = skip_reasons(report.skipped)
    for why, n in reasons[:SUMMARY_REASONS]:
        lines.append(f"skipped {n}: {why}")
    if len(reasons) > SUMMARY_REASONS:
        rest = sum(n for _, n in reasons[SUMMARY_REASONS:])
        lines.append(f"... and {rest} skipped for {len(reasons) - SUMMARY_REASONS} other reasons")
    held_reasons = skip_reasons(report.held, "original not deleted")
    for why, n in held_reasons[:SUMMARY_REASONS]:
        lines.append(f"held {n} (archived, original not deleted; a later run finishes it): {why}")
    if len(held_reasons) > SUMMARY_REASONS:
        rest = sum(n for _, n in held_reasons[SUMMARY_REASONS:])
        lines.append(f"... and {rest} held for other reasons")
    return lines


def _stac_lines(st: StacSummary) -> list[str]:
    """What the run did to the scenes' STAC items."""
    where = f" in {st.location}" if st.location else ""
    lines = [f"STAC: {st.items} updated items{where}"]
    if st.updated:
        lines.append(f"STAC: {st.updated} items written back to {st.api}")
    if st.update_error:
        lines.append(f"STAC: {st.update_error}")
    return lines


def cost_lines(c: CostEstimate) -> list[str]:
    """The cost in a few plain-text lines (money in the short form: ``< $0.01``)."""
    prices = f"{c.region} prices of {c.price_table_date}"
    if c.storage_class is None:  # nothing moved: the outputs are an addition
        added = c.after_usd_month - c.before_usd_month
        lines = [
            f"storage: the originals stay where they are (no --archive, so nothing is "
            f"saved; they cost {usd(c.before_usd_month, short=True)}/month); the outputs add "
            f"{usd(max(added, 0.0), short=True)}/month ({prices})"
        ]
    else:
        lines = [
            f"storage: {usd(c.before_usd_month, short=True)}/month -> "
            f"{usd(c.after_usd_month, short=True)}/month (saving "
            f"{usd(c.saving_usd_month, short=True)}/month; {prices})"
        ]
    kinds: dict[str, float] = {}
    for line in c.one_time:
        kinds[line.kind] = kinds.get(line.kind, 0.0) + line.usd
    parts = ", ".join(f"{kind} {usd(v, short=True)}" for kind, v in kinds.items())
    if not c.requests and not c.one_time:  # nothing recorded: a payback of 0 would mislead
        lines.append("one-time: not counted (no requests were recorded)")
    else:
        lines.append(
            f"one-time: {usd(c.one_time_usd, short=True)}"
            + (f" ({parts})" if parts else "")
            + (f"; pays back in {months(c.payback_months)}" if c.storage_class else "")
        )
    if c.storage_class is not None and c.left_in_place:
        limit = (
            f" within --payback-months {c.payback_limit_months:g}" if c.payback_limit_months else ""
        )
        lines.append(
            f"originals left where they were: {c.left_in_place} (moving them would not pay "
            f"back{limit})"
        )
    return lines
