"""Run reports: ``report.json`` for machines, ``report.html`` for people.

The HTML page is self-contained and works offline: inline CSS, charts drawn as inline
SVG, no scripts, fonts or images fetched from anywhere.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence

from .models import Report, SceneResult
from .storage import Location, S3Options, store_for


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


def usd(amount: float) -> str:
    """Dollars with cents, or four significant digits below a dollar."""
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    if amount == 0:
        return "$0.00"
    return f"${amount:.4g}" if abs(amount) >= 1e-4 else f"${amount:.2e}"


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


# --- HTML -----------------------------------------------------------------------------

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

STATUS_COLOURS = {"compacted": "#2e90fa", "skipped": "#98a2b3", "failed": "#f04438"}


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def ratio_chart(scenes: Sequence[SceneResult], width: int = 720) -> str:
    """Horizontal bars of the compression ratio per compacted scene (sorted)."""
    done = sorted(
        (s for s in scenes if s.status == "compacted" and s.ratio), key=lambda s: -(s.ratio or 0)
    )
    if not done:
        return '<p class="muted">No compacted scenes.</p>'
    shown = done[:40]
    bar_h, gap, label_w = 16, 4, 260
    top = max(s.ratio or 0 for s in shown)
    height = len(shown) * (bar_h + gap) + 24
    parts = [
        f'<svg role="img" aria-label="Compression ratio per scene" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    scale = (width - label_w - 70) / top
    for i, s in enumerate(shown):
        y = i * (bar_h + gap)
        name = s.source.rsplit("/", 1)[-1]
        if len(name) > 38:
            name = name[:17] + "…" + name[-18:]
        w = max(1.0, (s.ratio or 0) * scale)
        colour = "#12b76a" if s.lossless else "#2e90fa"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{_esc(name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}">'
            f"<title>{_esc(s.source)}: {s.ratio:.2f}x</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + 12}">{s.ratio:.1f}x</text>'
        )
    y = len(shown) * (bar_h + gap) + 14
    parts.append(
        f'<rect x="{label_w}" y="{y - 9}" width="10" height="10" fill="#2e90fa"/>'
        f'<text x="{label_w + 14}" y="{y}">lossy</text>'
        f'<rect x="{label_w + 60}" y="{y - 9}" width="10" height="10" fill="#12b76a"/>'
        f'<text x="{label_w + 74}" y="{y}">lossless</text>'
    )
    parts.append("</svg>")
    more = (
        f'<p class="muted">Showing the 40 best of {len(done)} compacted scenes.</p>'
        if len(done) > 40
        else ""
    )
    return "".join(parts) + more


def ssim_chart(scenes: Sequence[SceneResult], min_ssim: float | None, width: int = 720) -> str:
    """Histogram of SSIM over lossy compacted scenes, with the bar marked."""
    values = [
        s.ssim
        for s in scenes
        if s.status == "compacted" and s.lossless is False and s.ssim is not None
    ]
    if not values:
        return '<p class="muted">No lossy scenes: every output is pixel-identical.</p>'
    lo = min([*values, min_ssim or 1.0, 0.9])
    lo = math.floor(lo * 100) / 100
    bins = 20
    step = (1.0 - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / step))] += 1
    height, pad_l, pad_b = 180, 40, 28
    plot_w, plot_h = width - pad_l - 10, height - pad_b - 10
    peak = max(counts)
    parts = [
        f'<svg role="img" aria-label="SSIM distribution" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    bw = plot_w / bins
    for i, c in enumerate(counts):
        h = plot_h * c / peak if peak else 0
        x = pad_l + i * bw
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{10 + plot_h - h:.1f}" width="{bw - 2:.1f}" '
            f'height="{h:.1f}" fill="#2e90fa"><title>{lo + i * step:.3f}–'
            f"{lo + (i + 1) * step:.3f}: {c} scenes</title></rect>"
        )
    for i in range(0, bins + 1, 5):
        x = pad_l + i * bw
        anchor = "end" if i == bins else "middle"  # the last label stays inside the chart
        parts.append(
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="{anchor}">{lo + i * step:.3f}</text>'
        )
    parts.append(f'<text x="4" y="20">{peak}</text><text x="4" y="{10 + plot_h}">0</text>')
    if min_ssim:
        x = pad_l + (min_ssim - lo) / step * bw
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="6" y2="{10 + plot_h}" stroke="#f04438" '
            f'stroke-dasharray="4 3"/><text x="{x - 4:.1f}" y="16" text-anchor="end" '
            f'fill="#b42318">min SSIM {min_ssim}</text>'  # left of the line: scenes sit right
        )
    parts.append("</svg>")
    return "".join(parts)


CODEC_COLOURS = {"jpeg": "#2e90fa", "webp": "#7a5af8"}


def quality_chart(report: Report, width: int = 720) -> str:
    """Horizontal bars of the quality ``--quality auto`` chose per scene, coloured by codec,
    with the fixed quality it is compared with marked."""
    chosen = [
        s
        for s in report.scenes
        if s.status == "compacted" and s.search is not None and s.quality is not None
    ]
    if not chosen:
        return ""
    shown = sorted(chosen, key=lambda s: s.quality or 0)[:40]
    bar_h, gap, label_w = 16, 4, 260
    height = len(shown) * (bar_h + gap) + 24
    scale = (width - label_w - 130) / 100
    parts = [
        f'<svg role="img" aria-label="Quality chosen per scene" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, s in enumerate(shown):
        y = i * (bar_h + gap)
        name = s.source.rsplit("/", 1)[-1]
        if len(name) > 38:
            name = name[:17] + "…" + name[-18:]
        q = s.quality or 0
        colour = CODEC_COLOURS.get(s.codec or "", "#98a2b3")
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{_esc(name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{max(1.0, q * scale):.1f}" height="{bar_h}" '
            f'fill="{colour}"><title>{_esc(s.source)}: {_esc(s.codec)} q{q}, SSIM '
            f"{_num(s.ssim, '.4f')}</title></rect>"
            f'<text x="{label_w + q * scale + 4:.1f}" y="{y + 12}">{_esc(s.codec)} q{q} · '
            f"SSIM {_num(s.ssim, '.3f')}</text>"
        )
    bottom = len(shown) * (bar_h + gap)
    if report.quality is not None:
        x = label_w + report.quality.fixed_quality * scale
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{bottom}" stroke="#f04438" '
            f'stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="{bottom + 14}" fill="#b42318">'
            f"fixed {report.quality.fixed_codec.upper()} q{report.quality.fixed_quality}</text>"
        )
    used = [c for c in CODEC_COLOURS if any(s.codec == c for s in shown)]
    for k, codec in enumerate(used):
        colour = CODEC_COLOURS[codec]
        x = 4 + k * 70
        parts.append(
            f'<rect x="{x}" y="{bottom + 5}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{bottom + 14}">{codec.upper()}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _quality_section(report: Report) -> str:
    q = report.quality
    if q is None:
        return ""
    mix = ", ".join(f"{_esc(k)} × {v}" for k, v in q.chosen.items())
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
        f"<tr><td>{_esc(line.label)}</td><td class=num>{line.gb:,.3f}</td>"
        f"<td class=num>${line.usd_per_gb_month:.5f}</td>"
        f"<td class=num>{usd(line.usd_month)}</td></tr>"
        for line in c.lines
    )
    notes = "".join(f"<li>{_esc(n)}</li>" for n in c.notes)
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
        f'<p class="muted">Prices: {_esc(c.price_source)}, table of {_esc(c.price_table_date)}.'
        f" GB = 2<sup>30</sup> bytes.</p><ul class=muted>{notes}</ul>"
    )


def _scene_rows(scenes: Sequence[SceneResult]) -> str:
    rows = []
    for s in scenes:
        stac = f"<br><span class=muted>item {_esc(s.item)} · asset {_esc(s.asset)}</span>"
        rows.append(
            f'<tr><td class="wrap">{_esc(s.source)}{stac if s.item else ""}</td>'
            f'<td class="{s.status}">{s.status}</td>'
            f"<td>{_esc(s.codec)}{'' if s.quality is None else ' q' + str(s.quality)}</td>"
            f"<td class=num>{human_bytes(s.bytes_in)}</td>"
            f"<td class=num>{human_bytes(s.bytes_out)}</td>"
            f"<td class=num>{_num(s.ratio, '.2f')}</td><td class=num>{_num(s.ssim, '.4f')}</td>"
            f"<td class=num>{_num(s.psnr, '.1f')}</td><td class=num>{s.seconds:.1f}</td>"
            f'<td class="wrap">{_esc(s.reason)}</td></tr>'
        )
    return "".join(rows)


def _stac_line(report: Report) -> str:
    if report.stac is None:
        return ""
    st = report.stac
    text = f"STAC API {_esc(st.api)} · {st.items} updated items"
    if st.location:
        text += f" in {_esc(st.location)}"
    if st.updated:
        text += f" · {st.updated} written back to the API"
    if st.update_error:
        text += f' · <span class="failed">{_esc(st.update_error)}</span>'
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
        f"<h1>compactor run {_esc(report.run_id)}</h1>"
        f'<p class="muted">{_esc(report.started)} → {_esc(report.finished)} · source '
        f"{_esc(report.settings.get('source'))} · dest {_esc(report.settings.get('dest'))}"
        f" · archive {_esc(report.settings.get('archive') or 'none (originals kept)')}</p>"
        + _stac_line(report)
        + '<div class="cards">'
        + "".join(f'<div class="card">{_esc(k)}<b>{_esc(v)}</b></div>' for k, v in cards)
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
        + " · ".join(f"{_esc(k)} {_esc(v)}" for k, v in sorted(report.versions.items()))
        + "</p>"
    )
    if fragment:
        return f'<div class="compactor-report"><style>{CSS}</style>{body}</div>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>compactor run {_esc(report.run_id)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
