"""compactor's charts: inline SVG, no scripts or fonts, one engine for the run report
(histograms of the run's distributions, counts per codec, and for small runs the
compression ratio and quality per scene) and the notebook's comparison (size against
SSIM)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..display import esc, human_bytes, short_name

if TYPE_CHECKING:  # the models render themselves with these functions
    from ..records import Distribution, QualityComparison, SceneResult


def num(value: float | None, fmt: str) -> str:
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
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{esc(name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}">'
            f"<title>{esc(s.source)}: {s.ratio:.2f}x</title></rect>"
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


def histogram_chart(
    dist: Distribution,
    label: str,
    fmt: Callable[[float], str],
    *,
    start: float | None = None,
    stop: float | None = None,
    bars: int = 30,
    marker: float | None = None,
    marker_label: str = "",
    width: int = 720,
) -> str:
    """A histogram of ``dist`` as vertical bars, each one or more of its fixed bins merged
    (at most ``bars``), from ``start`` (default: its first non-empty bin) to ``stop``
    (default: its last non-empty bin); each bar titled ``lo–hi: n scenes``. ``marker``
    draws a dashed line at that value (the SSIM bar). Values outside the fixed bins are
    noted below the chart."""
    binning = dist.binning
    counts: dict[int, int] = {}
    for b in dist.histogram:
        counts[binning.index((b.lo + b.hi) / 2)] = b.count
    notes = []
    if dist.under:
        notes.append(f"{dist.under} below {fmt(dist.lo)}")
    if dist.over:
        notes.append(f"{dist.over} at or above {fmt(dist.hi)}")
    note = (
        f'<p class="muted">Not drawn: {", ".join(notes)} (outside the fixed bins).</p>'
        if notes
        else ""
    )
    if not counts:
        return '<p class="muted">No values.</p>' + note
    first = min(counts) if start is None else min(min(counts), max(0, binning.index(start)))
    last = max(counts) + 1
    if stop is not None:
        last = max(last, min(binning.count, binning.index(stop) + 1))
    group = max(1, math.ceil((last - first) / bars))
    n = math.ceil((last - first) / group)
    merged = [
        sum(counts.get(i, 0) for i in range(first + k * group, min(last, first + (k + 1) * group)))
        for k in range(n)
    ]
    height, pad_l, pad_b = 180, 40, 28
    plot_w, plot_h = width - pad_l - 10, height - pad_b - 10
    peak = max(merged)
    parts = [
        f'<svg role="img" aria-label="{esc(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    bw = plot_w / n
    for k, c in enumerate(merged):
        h = plot_h * c / peak if peak else 0
        x = pad_l + k * bw
        lo = binning.edge(first + k * group)
        hi = binning.edge(min(last, first + (k + 1) * group))
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{10 + plot_h - h:.1f}" width="{max(0.5, bw - 2):.1f}" '
            f'height="{h:.1f}" fill="#2e90fa"><title>{esc(fmt(lo))}–{esc(fmt(hi))}: {c} '
            "scenes</title></rect>"
        )
    every = max(1, math.ceil(n / 5))
    for k in range(0, n + 1, every):
        x = pad_l + k * bw
        anchor = "end" if k == n else "start" if k == 0 else "middle"  # labels stay inside
        value = binning.edge(min(last, first + k * group))
        parts.append(
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="{anchor}">{esc(fmt(value))}</text>'
        )
    parts.append(f'<text x="4" y="20">{peak}</text><text x="4" y="{10 + plot_h}">0</text>')
    if marker is not None and binning.lo <= marker <= binning.hi:
        x = pad_l + (binning.position(marker) - first) / group * bw
        if pad_l <= x <= width - 10:
            # Left of the line (scenes sit right of the bar), unless it would not fit there.
            left = x - 4 - 7 * len(marker_label) > 0
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="6" y2="{10 + plot_h}" stroke="#f04438" '
                f'stroke-dasharray="4 3"/><text x="{x - 4 if left else x + 4:.1f}" y="16" '
                f'text-anchor="{"end" if left else "start"}" fill="#b42318">'
                f"{esc(marker_label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts) + note


def ssim_chart(dist: Distribution, min_ssim: float | None, width: int = 720) -> str:
    """Histogram of SSIM over lossy compacted scenes, with the bar marked: 20 bars from a
    whole hundredth at or below the lowest SSIM, the bar and 0.9, up to 1."""
    if not dist.count or dist.min is None:
        return '<p class="muted">No lossy scenes: every output is pixel-identical.</p>'
    lo = math.floor(min(dist.min, min_ssim or 1.0, 0.9) * 100) / 100
    return histogram_chart(
        dist, "SSIM distribution", lambda v: f"{v:.4f}".rstrip("0").rstrip(".") or "0",
        start=max(0.0, lo), stop=1.0, bars=20, marker=min_ssim or None,
        marker_label=f"min SSIM {min_ssim}", width=width,
    )  # fmt: skip


def counts_chart(counts: Mapping[str, int], label: str, width: int = 720, top: int = 30) -> str:
    """Horizontal bars of ``counts`` (largest first, the ``top`` ones), each titled."""
    shown = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    if not shown:
        return '<p class="muted">None.</p>'
    bar_h, gap, label_w = 16, 4, 160
    height = len(shown) * (bar_h + gap) + 4
    peak = max(c for _, c in shown)
    scale = (width - label_w - 80) / peak if peak else 0
    parts = [
        f'<svg role="img" aria-label="{esc(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (name, c) in enumerate(shown):
        y = i * (bar_h + gap)
        w = max(1.0, c * scale)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{esc(name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#2e90fa">'
            f"<title>{esc(name)}: {c} scenes</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + 12}">{c}</text>'
        )
    parts.append("</svg>")
    more = (
        f'<p class="muted">The {top} most frequent of {len(counts)}.</p>'
        if len(counts) > top
        else ""
    )
    return "".join(parts) + more


CODEC_COLOURS = {"jpeg": "#2e90fa", "webp": "#7a5af8"}


def quality_chart(
    scenes: Sequence[SceneResult], comparison: QualityComparison | None, width: int = 720
) -> str:
    """Horizontal bars of the quality ``--quality auto`` chose per scene, coloured by codec,
    with the fixed quality it is compared with marked."""
    chosen = [
        s
        for s in scenes
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
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{esc(name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{max(1.0, q * scale):.1f}" height="{bar_h}" '
            f'fill="{colour}"><title>{esc(s.source)}: {esc(s.codec)} q{q}, SSIM '
            f"{num(s.ssim, '.4f')}</title></rect>"
            f'<text x="{label_w + q * scale + 4:.1f}" y="{y + 12}">{esc(s.codec)} q{q} · '
            f"SSIM {num(s.ssim, '.3f')}</text>"
        )
    bottom = len(shown) * (bar_h + gap)
    if comparison is not None:
        x = label_w + comparison.fixed_quality * scale
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{bottom}" stroke="#f04438" '
            f'stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="{bottom + 14}" fill="#b42318">'
            f"fixed {comparison.fixed_codec.upper()} q{comparison.fixed_quality}</text>"
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


#: One colour and one marker per profile, in the order given.
PALETTE = ("#2e90fa", "#f04438", "#12b76a", "#f79009", "#7a5af8", "#ee46bc", "#0e9384",
           "#667085", "#b54708", "#1d2939")  # fmt: skip

MARKERS = ("circle", "square", "triangle", "diamond", "triangle-down", "plus")


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and pandas.NA
    except TypeError:
        return True


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(1, ticks)
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw:
            return float(m * power)
    return 10 * power


def _linear_ticks(lo: float, hi: float, ticks: int = 5) -> list[float]:
    step = _nice_step(hi - lo, ticks)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


_UNITS = (("B", 1), ("KiB", 1024), ("MiB", 1024**2), ("GiB", 1024**3), ("TiB", 1024**4))


def _byte_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Ticks of a log-scaled byte axis: 1, 2, 5, 10, 20, 50 ... of each binary unit."""
    found: list[tuple[float, str]] = [
        (float(m * size), f"{m} {unit}")
        for unit, size in _UNITS
        for m in (1, 2, 5, 10, 20, 50, 100, 200, 500)
        if lo <= m * size <= hi
    ]
    while len(found) > 7:
        found = found[::2]
    return found


def _marker(kind: str, x: float, y: float, r: float, colour: str, cls: str, title: str) -> str:
    attrs = f'class="{cls}" fill="{colour}" fill-opacity="0.85" stroke="#ffffff" stroke-width="0.8"'
    tip = f"<title>{esc(title)}</title>" if title else ""
    if kind == "circle":
        return f'<circle {attrs} cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}">{tip}</circle>'
    if kind == "square":
        s = r * 1.7
        return (
            f'<rect {attrs} x="{x - s / 2:.1f}" y="{y - s / 2:.1f}" width="{s:.1f}" '
            f'height="{s:.1f}">{tip}</rect>'
        )
    shapes = {
        "triangle": [(0, -1.25), (1.1, 0.8), (-1.1, 0.8)],
        "triangle-down": [(0, 1.25), (1.1, -0.8), (-1.1, -0.8)],
        "diamond": [(0, -1.35), (1.1, 0), (0, 1.35), (-1.1, 0)],
        "plus": [(-0.4, -1.2), (0.4, -1.2), (0.4, -0.4), (1.2, -0.4), (1.2, 0.4), (0.4, 0.4),
                 (0.4, 1.2), (-0.4, 1.2), (-0.4, 0.4), (-1.2, 0.4), (-1.2, -0.4),
                 (-0.4, -0.4)],
    }  # fmt: skip
    points = " ".join(f"{x + dx * r:.1f},{y + dy * r:.1f}" for dx, dy in shapes[kind])
    return f'<polygon {attrs} points="{points}">{tip}</polygon>'


#: x axes :meth:`Comparison.plot` can draw: column -> (label, log scale).
X_AXES = {
    "ratio": ("compression ratio (raw ÷ COG)", False),
    "bytes": ("COG size of the sample", True),
    "est_bytes": ("estimated COG size of the scene", True),
}


def scatter_chart(
    df: Any, x: str, min_ssim: float | None, profiles: Sequence[str], width: int, height: int
) -> str:
    """Size against SSIM as an SVG scatter chart: one marker per row of ``df`` (a
    comparison's rows) that has an SSIM, one colour and shape per profile, the SSIM bar
    dashed. ``x`` is a column of :data:`X_AXES`."""
    x_label, log_scale = X_AXES[x]
    style = {p: (PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)])
             for i, p in enumerate(profiles)}  # fmt: skip
    points = [
        (r.scene, r.profile, float(getattr(r, x)), float(r.ssim), r)
        for r in df.itertuples(index=False)
        if not is_missing(r.ssim) and not is_missing(getattr(r, x)) and float(getattr(r, x)) > 0
    ]
    left, right, top, bottom = 64, 180, 14, 46
    pw, ph = width - left - right, height - top - bottom
    parts = [
        f'<svg role="img" aria-label="COG size against SSIM per scene and profile" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg" font-family="system-ui,sans-serif" '
        'font-size="11">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#ffffff" stroke="#d0d5dd"/>',
    ]
    bar = min_ssim
    if not points:
        parts.append(
            f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" '
            'fill="#667085">no profile produced an SSIM (see the errors)</text></svg>'
        )
        return "".join(parts)
    xs = [p[2] for p in points]
    ys = [p[3] for p in points]
    y_lo = min([*ys, bar if bar else 1.0])
    y_lo = max(0.0, math.floor((y_lo - 0.005) * 100) / 100)
    y_hi = 1.0 + (1.0 - y_lo) * 0.04
    if log_scale:
        x_lo, x_hi = min(xs) / 1.25, max(xs) * 1.25

        def fx(v: float) -> float:
            return left + pw * (math.log(v) - math.log(x_lo)) / (math.log(x_hi) - math.log(x_lo))

        x_ticks = _byte_ticks(x_lo, x_hi)
    else:
        x_lo, x_hi = 0.0, max(xs) * 1.08

        def fx(v: float) -> float:
            return left + pw * (v - x_lo) / (x_hi - x_lo)

        x_ticks = [(v, f"{v:g}×") for v in _linear_ticks(x_lo, x_hi)]

    def fy(v: float) -> float:
        return top + ph * (y_hi - v) / (y_hi - y_lo)

    for v, label in x_ticks:
        px = fx(v)
        parts.append(
            f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{top + ph}" stroke="#eaecf0"/>'
            f'<text x="{px:.1f}" y="{top + ph + 14}" text-anchor="middle" fill="#475467">'
            f"{esc(label)}</text>"
        )
    for v in _linear_ticks(y_lo, min(1.0, y_hi), 5):
        py = fy(v)
        parts.append(
            f'<line x1="{left}" y1="{py:.1f}" x2="{left + pw}" y2="{py:.1f}" '
            f'stroke="#eaecf0"/><text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end" '
            f'fill="#475467">{v:.3g}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle" '
        f'fill="#344054">{esc(x_label)}</text>'
        f'<text x="14" y="{top + ph / 2}" text-anchor="middle" fill="#344054" '
        f'transform="rotate(-90 14 {top + ph / 2})">SSIM</text>'
    )
    if bar and y_lo <= bar <= y_hi:
        py = fy(bar)
        parts.append(
            f'<line class="ssim-bar" x1="{left}" y1="{py:.1f}" x2="{left + pw}" '
            f'y2="{py:.1f}" stroke="#d92d20" stroke-width="1.2" stroke-dasharray="6 4"/>'
            f'<text x="{left + pw - 4}" y="{py - 4:.1f}" text-anchor="end" '
            f'fill="#d92d20">SSIM bar {bar:g}</text>'
        )
    for scene, profile, xv, yv, r in points:
        colour, kind = style[profile]
        psnr = "identical" if is_missing(r.psnr) else f"PSNR {float(r.psnr):.1f} dB"
        title = (
            f"{short_name(scene, 40)} · {profile}: {human_bytes(r.bytes)}, "
            f"{float(r.ratio):.1f}×, SSIM {yv:.4f}, {psnr}"
        )
        parts.append(_marker(kind, fx(xv), fy(yv), 5.0, colour, "mark", title))
    counts = {p: sum(1 for q in points if q[1] == p) for p in profiles}
    lx = left + pw + 16
    for i, p in enumerate(profiles):
        colour, kind = style[p]
        ly = top + 10 + i * 18
        suffix = "" if counts[p] else " (no SSIM)"
        parts.append(
            _marker(kind, lx + 5, ly, 5.0, colour, "key", "")
            + f'<text x="{lx + 16}" y="{ly + 4}" fill="#344054">{esc(p + suffix)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
