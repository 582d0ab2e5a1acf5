"""Run reports: ``report.json`` for machines, ``report.html`` for people, and the summary
the CLI prints.

The HTML page is self-contained and works offline: inline CSS, charts drawn as inline SVG
(:mod:`compactor.report.charts`), no scripts, fonts or images fetched from anywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..storage.location import Location
from ..storage.s3client import S3Options
from ..storage.stores import store_for
from .charts import num, quality_chart, ratio_chart, ssim_chart
from .format import esc, human_bytes, usd

if TYPE_CHECKING:  # the models render themselves with these functions
    from .models import Report, SceneResult


def report_json(report: Report) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def write_report(report: Report, location: str, s3: S3Options) -> Report:
    """Write ``report.json`` and ``report.html`` under ``location`` (atomically each)."""
    base = Location.parse(location).as_prefix()
    report = report.model_copy(update={"location": base.url})
    store = store_for(base, s3)
    store.put_bytes(
        base.join("report.json"), report_json(report).encode(), content_type="application/json"
    )
    store.put_bytes(
        base.join("report.html"),
        render_html(report).encode(),
        content_type="text/html; charset=utf-8",
    )
    return report


def summary_lines(report: Report) -> list[str]:
    """A one-screen plain-text summary of a run."""
    t = report.totals
    lines = [
        f"run {report.run_id}: {t.scenes} scenes - {t.compacted} compacted, "
        f"{t.skipped} skipped, {t.failed} failed",
    ]
    if t.compacted:
        ratio = t.bytes_in / t.bytes_out if t.bytes_out else math.inf
        saved = 1 - t.bytes_out / t.bytes_in if t.bytes_in else 0.0
        change = f"{saved:.0%} smaller" if saved >= 0 else f"{-saved:.0%} larger"
        lines.append(
            f"{human_bytes(t.bytes_in)} -> {human_bytes(t.bytes_out)} ({ratio:.1f}x, {change})"
        )
        ssims = [s.ssim for s in report.scenes if s.status == "compacted" and s.ssim is not None]
        lossy = [s for s in report.scenes if s.status == "compacted" and s.lossless is False]
        if lossy:
            lines.append(
                f"lossy scenes: {len(lossy)}, SSIM min {min(ssims):.4f}"
                if ssims
                else f"lossy scenes: {len(lossy)}"
            )
    if report.quality is not None and report.quality.scenes > 1:  # one scene: nothing to compare
        q = report.quality
        lines.append(
            f"automatic quality: {q.scenes} lossy scenes, {human_bytes(q.bytes_auto)}; "
            f"fixed {q.fixed_codec.upper()} q{q.fixed_quality} (the lowest that keeps them all "
            f"at SSIM {q.min_ssim}) would take ~{human_bytes(q.bytes_fixed)}: {q.saving:.1%} saved"
        )
    if report.cost and t.compacted:
        c = report.cost
        lines.append(
            f"storage: {usd(c.before_usd_month)}/month -> {usd(c.after_usd_month)}/month "
            f"(saving {usd(c.saving_usd_month)}/month; {c.region} prices of {c.price_table_date})"
        )
        if c.storage_class is None:
            lines.append("originals were not archived (no --archive): they still cost as before")
    skipped: dict[str, int] = {}
    for s in report.scenes:
        if s.status == "skipped":
            why = (s.reason or "skipped").split(" (")[0].split(":")[0]
            skipped[why] = skipped.get(why, 0) + 1
    for why, n in sorted(skipped.items(), key=lambda kv: -kv[1]):
        lines.append(f"skipped {n}: {why}")
    if report.stac is not None:
        st = report.stac
        where = f" in {st.location}" if st.location else ""
        lines.append(f"STAC: {st.items} updated items{where}")
        if st.updated:
            lines.append(f"STAC: {st.updated} items written back to {st.api}")
        if st.update_error:
            lines.append(f"STAC: {st.update_error}")
    failed = [s for s in report.scenes if s.status == "failed"]
    for s in failed[:8]:
        lines.append(f"FAILED {s.source}: {s.reason}")
    if len(failed) > 8:
        lines.append(f"... and {len(failed) - 8} more failures (see the report)")
    return lines


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2430}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.muted{color:#667085} .cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #d0d5dd;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #eaecf0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f9fafb;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.compacted{color:#067647} .skipped{color:#667085} .failed{color:#b42318;font-weight:600}
.wrap{overflow-wrap:anywhere} svg text{font:11px system-ui,sans-serif;fill:#344054}
"""


def _quality_section(report: Report) -> str:
    q = report.quality
    if q is None:
        return ""
    mix = ", ".join(f"{esc(k)} × {v}" for k, v in q.chosen.items())
    return (
        "<h2>Automatic quality</h2>"
        f"<p>{q.scenes} lossy scenes at the lowest quality that keeps SSIM ≥ {q.min_ssim}: "
        f"<b>{human_bytes(q.bytes_auto)}</b>. The lowest single fixed quality that keeps every "
        f"one of them at the bar, {q.fixed_codec.upper()} q{q.fixed_quality}, would take about "
        f"<b>{human_bytes(q.bytes_fixed)}</b>: automatic quality saves "
        f"<b>{q.saving:.1%}</b>.</p>"
        + quality_chart(report)
        + f'<p class="muted">Chosen: {mix}. The fixed-quality size is estimated per scene from '
        "its output and the JPEG sizes of its sample at each quality.</p>"
    )


def _cost_table(report: Report) -> str:
    c = report.cost
    if c is None:
        return ""
    rows = "".join(
        f"<tr><td>{esc(line.label)}</td><td class=num>{line.gb:,.3f}</td>"
        f"<td class=num>${line.usd_per_gb_month:.5f}</td>"
        f"<td class=num>{usd(line.usd_month)}</td></tr>"
        for line in c.lines
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in c.notes)
    return (
        f"<h2>Estimated monthly storage cost</h2>"
        f"<p>Before <b>{usd(c.before_usd_month)}</b> · after <b>{usd(c.after_usd_month)}</b>"
        f" · saving <b>{usd(c.saving_usd_month)}</b> per month"
        + (
            f" · minimum commitment of the archive copies {usd(c.minimum_commitment_usd)}"
            f" ({c.minimum_days} days)"
            if c.minimum_days
            else ""
        )
        + "</p><table><tr><th>item</th><th>GB</th><th>USD/GB-month</th><th>USD/month</th></tr>"
        + f"{rows}</table>"
        f'<p class="muted">Prices: {esc(c.price_source)}, table of {esc(c.price_table_date)}.'
        f" GB = 2<sup>30</sup> bytes.</p><ul class=muted>{notes}</ul>"
    )


def _scene_rows(scenes: Sequence[SceneResult]) -> str:
    rows = []
    for s in scenes:
        stac = f"<br><span class=muted>item {esc(s.item)} · asset {esc(s.asset)}</span>"
        rows.append(
            f'<tr><td class="wrap">{esc(s.source)}{stac if s.item else ""}</td>'
            f'<td class="{s.status}">{s.status}</td>'
            f"<td>{esc(s.codec)}{'' if s.quality is None else ' q' + str(s.quality)}</td>"
            f"<td class=num>{human_bytes(s.bytes_in)}</td>"
            f"<td class=num>{human_bytes(s.bytes_out)}</td>"
            f"<td class=num>{num(s.ratio, '.2f')}</td><td class=num>{num(s.ssim, '.4f')}</td>"
            f"<td class=num>{num(s.psnr, '.1f')}</td><td class=num>{s.seconds:.1f}</td>"
            f'<td class="wrap">{esc(s.reason)}</td></tr>'
        )
    return "".join(rows)


def _stac_line(report: Report) -> str:
    if report.stac is None:
        return ""
    st = report.stac
    text = f"STAC API {esc(st.api)} · {st.items} updated items"
    if st.location:
        text += f" in {esc(st.location)}"
    if st.updated:
        text += f" · {st.updated} written back to the API"
    if st.update_error:
        text += f' · <span class="failed">{esc(st.update_error)}</span>'
    return f'<p class="muted">{text}</p>'


def render_html(report: Report, *, fragment: bool = False) -> str:
    t = report.totals
    ratio = (t.bytes_in / t.bytes_out) if t.bytes_out else None
    min_ssim = report.settings.get("min_ssim")
    cards = [
        ("scenes", str(t.scenes)),
        ("compacted", str(t.compacted)),
        ("skipped", str(t.skipped)),
        ("failed", str(t.failed)),
        ("before", human_bytes(t.bytes_in)),
        ("after", human_bytes(t.bytes_out)),
        ("ratio", f"{ratio:.1f}×" if ratio else "–"),
    ]
    if report.cost:
        cards.append(("saving / month", usd(report.cost.saving_usd_month)))
    body = (
        f"<h1>compactor run {esc(report.run_id)}</h1>"
        f'<p class="muted">{esc(report.started)} → {esc(report.finished)} · source '
        f"{esc(report.settings.get('source'))} · dest {esc(report.settings.get('dest'))}"
        f" · archive {esc(report.settings.get('archive') or 'none (originals kept)')}</p>"
        + _stac_line(report)
        + '<div class="cards">'
        + "".join(f'<div class="card">{esc(k)}<b>{esc(v)}</b></div>' for k, v in cards)
        + "</div><h2>Compression ratio</h2>"
        + ratio_chart(report.scenes)
        + "<h2>SSIM of lossy outputs</h2>"
        + ssim_chart(report.scenes, float(min_ssim) if min_ssim is not None else None)
        + _quality_section(report)
        + _cost_table(report)
        + "<h2>Scenes</h2><table><tr><th>source</th><th>status</th><th>codec</th>"
        "<th>before</th><th>after</th><th>ratio</th><th>SSIM</th><th>PSNR dB</th>"
        "<th>seconds</th><th>reason</th></tr>"
        + _scene_rows(report.scenes)
        + "</table>"
        + '<p class="muted">'
        + " · ".join(f"{esc(k)} {esc(v)}" for k, v in sorted(report.versions.items()))
        + "</p>"
    )
    if fragment:
        return f'<div class="compactor-report"><style>{CSS}</style>{body}</div>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>compactor run {esc(report.run_id)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
