"""Run reports: ``report.json`` for machines, ``report.html`` for people (the summary the
CLI prints is :mod:`compactor.report._summary`).

The HTML page is self-contained and works offline: inline CSS, charts drawn as inline SVG
(:mod:`compactor.report._charts`), no scripts, fonts or images fetched from anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..display import esc, gb, human_bytes, months, usd, usd_price
from ..storage import Location, S3Options, store_for
from ._charts import counts_chart, histogram_chart, num, quality_chart, ratio_chart, ssim_chart
from ._summary import _parts, _quantiles

if TYPE_CHECKING:  # the models render themselves with these functions
    from ..records import CostEstimate, Distribution, Report, SceneResult

#: Rows a table of report.html shows: the per-scene table of a run of at most this many
#: scenes (the recorder keeps them that long), the first this many failed or skipped scenes
#: (report.json lists them all).
TABLE_LIMIT = 500


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


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2430}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
h3{font-size:14px;margin:18px 0 6px}
.muted{color:#667085} .cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #d0d5dd;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #eaecf0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f9fafb;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.compacted{color:#067647} .skipped{color:#667085} .failed{color:#b42318;font-weight:600}
.held{color:#b54708;font-weight:600}
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
        + quality_chart(report.table, q)
        + f'<p class="muted">Chosen: {mix}. The fixed-quality size is estimated per scene from '
        "its output and the JPEG sizes of its sample at each quality.</p>"
    )


def _num(value: float, decimals: int = 0) -> str:
    return f"{value:,.{decimals}f}"


def _cost_summary(c: CostEstimate) -> str:
    return (
        "<table><tr><th>one-time cost</th><th>per month before</th><th>per month after</th>"
        "<th>saving per month</th><th>pays back in</th></tr>"
        f"<tr><td class=num><b>{usd(c.one_time_usd)}</b></td>"
        f"<td class=num>{usd(c.before_usd_month)}</td>"
        f"<td class=num>{usd(c.after_usd_month)}</td>"
        f"<td class=num><b>{usd(c.saving_usd_month)}</b></td>"
        f"<td class=num><b>{esc(months(c.payback_months))}</b></td></tr></table>"
    )


def _one_time_table(c: CostEstimate) -> str:
    if not c.one_time:
        return '<h3>Once</h3><p class="muted">Nothing counted.</p>'
    rows = "".join(
        f"<tr><td>{esc(line.label)}</td>"
        f"<td class=num>{_num(line.quantity, 0 if line.kind == 'requests' else 3)} "
        f"{esc(line.unit)}</td>"
        f"<td class=num>{usd_price(line.price)} {esc(line.price_unit)}</td>"
        f"<td class=num>{usd(line.usd)}</td></tr>"
        for line in c.one_time
    )
    return (
        "<h3>Once</h3><table><tr><th>item</th><th>quantity</th><th>price</th><th>USD</th></tr>"
        f"{rows}<tr><td><b>total</b></td><td></td><td></td>"
        f"<td class=num><b>{usd(c.one_time_usd)}</b></td></tr></table>"
    )


def _monthly_table(c: CostEstimate) -> str:
    rows = []
    for side, total in (("before", c.before_usd_month), ("after", c.after_usd_month)):
        for line in (x for x in c.lines if x.side == side):
            rate = usd_price(line.usd_per_gb_month) if line.gb or line.usd_per_gb_month else ""
            size = gb(line.gb) if line.gb or line.usd_per_gb_month else ""
            rows.append(
                f"<tr><td>{side}</td><td>{esc(line.label)}</td>"
                f"<td class=num>{'' if line.objects is None else _num(line.objects)}</td>"
                f"<td class=num>{size}</td><td class=num>{rate}</td>"
                f"<td class=num>{usd(line.usd_month)}</td></tr>"
            )
        rows.append(
            f"<tr><td><b>{side}</b></td><td><b>total</b></td><td></td><td></td><td></td>"
            f"<td class=num><b>{usd(total)}</b></td></tr>"
        )
    return (
        "<h3>Per month</h3><table><tr><th></th><th>item</th><th>objects</th><th>GB</th>"
        "<th>USD/GB-month</th><th>USD/month</th></tr>" + "".join(rows) + "</table>"
    )


def _size_class_table(c: CostEstimate) -> str:
    if not c.size_classes:
        return ""
    rows = "".join(
        f"<tr><td>{esc(r.size_class)}</td><td class=num>{_num(r.objects)}</td>"
        f"<td class=num>{_num(r.compacted)}</td><td class=num>{_num(r.archived)}</td>"
        f"<td class=num>{_num(r.left_in_place)}</td>"
        f"<td class=num>{human_bytes(r.bytes_before)}</td>"
        f"<td class=num>{human_bytes(r.bytes_after)}</td>"
        f"<td class=num>{usd(r.saving_usd_month)}</td><td class=num>{usd(r.one_time_usd)}</td>"
        f"<td class=num>{esc(months(r.payback_months))}</td></tr>"
        for r in c.size_classes
    )
    return (
        "<h3>By size of the originals</h3><table><tr><th>size</th><th>scenes</th>"
        "<th>compacted</th><th>archived</th><th>left in place</th><th>before</th>"
        "<th>after</th><th>saving per month</th><th>once</th><th>pays back in</th></tr>"
        f"{rows}</table>"
    )


def _cost_table(report: Report) -> str:
    c = report.cost
    if c is None:
        return ""
    notes = "".join(f"<li>{esc(n)}</li>" for n in c.notes)
    commitment = (
        f'<p class="muted">The archive copies commit to {usd(c.minimum_commitment_usd)} of '
        f"storage ({c.minimum_days} days minimum).</p>"
        if c.minimum_days
        else ""
    )
    region = f"{c.region} ({c.region_name})" if c.region_name else c.region
    return (
        "<h2>Cost</h2>"
        + _cost_summary(c)
        + commitment
        + _one_time_table(c)
        + _monthly_table(c)
        + _size_class_table(c)
        + f'<p class="muted">Prices: {esc(region)}, {esc(c.price_source)}, table of '
        f"{esc(c.price_table_date)} (<code>compactor/pricing/prices.json</code>). GB = "
        f"2<sup>30</sup> bytes.</p><ul class=muted>{notes}</ul>"
    )


def _scene_rows(scenes: Sequence[SceneResult]) -> str:
    rows = []
    for s in scenes:
        stac = f"<br><span class=muted>item {esc(s.item)} · asset {esc(s.asset)}</span>"
        rows.append(
            f'<tr><td class="wrap">{esc(s.source)}{stac if s.item else ""}</td>'
            f'<td class="{s.status}">{s.status}</td>'
            f"<td>{esc(s.encoding)}</td>"
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


def _table(scenes: Sequence[SceneResult], limit: int | None = None) -> str:
    shown = scenes if limit is None else scenes[:limit]
    return (
        "<table><tr><th>source</th><th>status</th><th>codec</th>"
        "<th>before</th><th>after</th><th>ratio</th><th>SSIM</th><th>PSNR dB</th>"
        "<th>seconds</th><th>reason</th></tr>" + _scene_rows(shown) + "</table>"
    )


def _listed(title: str, scenes: Sequence[SceneResult], what: str, intro: str = "") -> str:
    """A table of the run's failed, skipped or held scenes (the first :data:`TABLE_LIMIT`)."""
    if not scenes:
        return ""
    more = (
        f'<p class="muted">The first {TABLE_LIMIT} of {len(scenes)} {what} scenes; report.json '
        "lists them all.</p>"
        if len(scenes) > TABLE_LIMIT
        else ""
    )
    lead = f'<p class="muted">{esc(intro)}</p>' if intro else ""
    return f"<h2>{esc(title)}</h2>" + lead + _table(scenes, TABLE_LIMIT) + more


def _quantile_line(d: Distribution, fmt: str, unit: str = "") -> str:
    if not d.count:
        return ""
    text = _quantiles(d, fmt, unit)
    lo, hi = format(d.min or 0, fmt), format(d.max or 0, fmt)
    return f'<p class="muted">{d.count} scenes · min {lo}{unit} · {text} · max {hi}{unit}</p>'


def _distributions(report: Report) -> str:
    d = report.distributions
    min_ssim = report.settings.get("min_ssim")
    parts = ["<h2>Compression ratio</h2>"]
    if report.table:
        parts.append(ratio_chart(report.table))
    if d.ratio.count:
        parts.append(
            histogram_chart(d.ratio, "Compression ratio distribution", lambda v: f"{v:.2f}×")
            + _quantile_line(d.ratio, ".2f", "×")
        )
    elif not report.table:
        parts.append('<p class="muted">No compacted scenes.</p>')
    parts += [
        "<h2>SSIM of lossy outputs</h2>",
        ssim_chart(d.ssim, float(min_ssim) if min_ssim is not None else None),
        _quantile_line(d.ssim, ".4f"),
    ]
    if d.codec_quality:
        parts += [
            "<h2>Codecs</h2>",
            f'<p class="muted">{d.lossless} lossless, {d.lossy} lossy'
            + (f", {d.chunked} chunked" if d.chunked else "")
            + " · "
            + ", ".join(f"{esc(c)} {n}" for c, n in d.codecs.items())
            + "</p>",
            counts_chart(d.codec_quality, "Scenes per codec and quality"),
        ]
    if d.seconds.count:
        parts += [
            "<h2>Seconds per scene</h2>",
            histogram_chart(d.seconds, "Seconds per scene", lambda v: f"{v:.3g} s"),
            _quantile_line(d.seconds, ".3g", " s"),
        ]
    if d.bytes_in.count:
        parts += [
            "<h2>Size of the originals</h2>",
            histogram_chart(d.bytes_in, "Size of the originals", human_bytes),
            f'<p class="muted">{d.bytes_in.count} scenes · median '
            f"{human_bytes(d.bytes_in.p50)} · p90 {human_bytes(d.bytes_in.p90)} · max "
            f"{human_bytes(d.bytes_in.max)}</p>",
        ]
    return "".join(parts)


def _scene_log(report: Report, *, fragment: bool) -> str:
    """Where every scene's result is: links to the parts (relative to report.html, which
    sits next to ``scenes/``), or their location in a notebook (no page to be relative to)."""
    log = report.scene_log
    if log is None:
        return ""
    if not log.parts:
        return '<h2>Scene log</h2><p class="muted">No scene finished: the scene log is empty.</p>'
    names = log.part_names
    if fragment:
        links = f"<code>{esc(log.location)}</code>"
    else:
        shown = names if len(names) <= 12 else [*names[:10], names[-1]]
        items = [f'<a href="scenes/{esc(n)}">{esc(n)}</a>' for n in shown]
        if len(names) > 12:
            items.insert(10, "…")
        links = '<a href="scenes/">scenes/</a>: ' + ", ".join(items)
    return (
        f"<h2>Scene log</h2><p>Every scene's full result ({log.scenes} scenes in "
        f"{_parts(log.parts)} of gzipped NDJSON, in the order they finished): {links}</p>"
        '<p class="muted">Read it with <code>compactor.read_scene_log(location)</code>, '
        "<code>report.scene_results()</code>, or pandas: <code>pd.read_json(part, "
        "lines=True)</code>.</p>"
    )


def render_html(report: Report, *, fragment: bool = False) -> str:
    t = report.totals
    ratio = (t.bytes_in / t.bytes_out) if t.bytes_out else None
    cards = [
        ("scenes", str(t.scenes)),
        ("compacted", str(t.compacted)),
        ("finished earlier", str(t.finished_earlier)),
        ("skipped", str(t.skipped)),
        ("failed", str(t.failed)),
        *((("held", str(t.held)),) if t.held else ()),
        ("before", human_bytes(t.bytes_in)),
        ("after", human_bytes(t.bytes_out)),
        ("ratio", f"{ratio:.1f}×" if ratio else "–"),
    ]
    if report.cost:
        cards.append(("saving / month", usd(report.cost.saving_usd_month)))
        cards.append(("one-time cost", usd(report.cost.one_time_usd)))
        cards.append(("pays back in", months(report.cost.payback_months)))
    if report.table:
        scenes = "<h2>Scenes</h2>" + _table(report.table)
    elif t.scenes > TABLE_LIMIT:
        scenes = (
            f'<h2>Scenes</h2><p class="muted">{t.scenes} scenes: too many for a table here '
            "(the failed, skipped and held ones are listed above); every scene is in the "
            "scene log.</p>"
        )
    else:  # a report read back from report.json: the scenes are in the log only
        scenes = ""
    body = (
        f"<h1>compactor run {esc(report.run_id)}</h1>"
        f'<p class="muted">{esc(report.started)} → {esc(report.finished)} · source '
        f"{esc(report.settings.get('source'))} · dest {esc(report.settings.get('dest'))}"
        f" · archive {esc(report.settings.get('archive') or 'none (originals kept)')}</p>"
        + (
            f'<p class="bad"><b>Stopped early</b> ({esc(report.interrupted)}): only the scenes '
            "below were finished; rerun the same command to finish the rest.</p>"
            if report.interrupted
            else ""
        )
        + _stac_line(report)
        + '<div class="cards">'
        + "".join(f'<div class="card">{esc(k)}<b>{esc(v)}</b></div>' for k, v in cards)
        + "</div>"
        + _distributions(report)
        + _quality_section(report)
        + _cost_table(report)
        + _listed("Failed scenes", report.failed, "failed")
        + _listed("Skipped scenes", report.skipped, "skipped")
        + _listed(
            "Held scenes",
            report.held,
            "held",
            "Compacted and archived, but the original could not be deleted (an Object Lock "
            "legal hold or retention, or a delete the bucket denied): it is safe at its "
            "source and in the archive. A later run deletes it.",
        )
        + scenes
        + _scene_log(report, fragment=fragment)
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
