"""The run report opened in a real browser: headless Chromium (Debian's ``chromium``,
driven by playwright; no browser is ever downloaded) renders ``report.html`` of a real run
and its Jupyter fragment (``Report._repr_html_``) with every chart drawn (and nothing in a
chart cut off), no console errors or warnings, no page errors and no request other than the
page itself.

The helpers that observe the page are proven able to fail: the same checks run on copies of
the report with an external image and stylesheet, a throwing script, and empty, zero-sized
and overflowing charts injected, and must report each of them.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pytest
from PIL import Image
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Route,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

import compactor
from compactor.records._results import Report, SceneResult

from .. import rasters

#: A real run (a few seconds on the session's cluster) and about 5 s of browser pages.
pytestmark = pytest.mark.slow

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

RATIO_CHART = "Compression ratio per scene"
SSIM_CHART = "SSIM distribution"
#: The run's distributions, drawn for runs of any size.
RATIO_HISTOGRAM = "Compression ratio distribution"
CODEC_CHART = "Scenes per codec and quality"
SECONDS_CHART = "Seconds per scene"
SIZE_CHART = "Size of the originals"
#: Elements that draw something in an SVG chart.
MARKS = "rect, circle, ellipse, path, line, polyline, polygon"

#: Fill colours of report.py's ratio bars.
LOSSY_BLUE = (0x2E, 0x90, 0xFA)
LOSSLESS_GREEN = (0x12, 0xB7, 0x6A)


# --- the browser -----------------------------------------------------------------------


def chromium_path() -> str | None:
    explicit = os.environ.get("COMPACTOR_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        why = (
            "Debian's chromium is not installed (looked at $COMPACTOR_CHROMIUM, `chromium` on "
            "PATH and /usr/bin/chromium); `make browser` installs it"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} - CI must run the report's browser test")
        pytest.skip(why)
    b = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
    yield b
    b.close()


@dataclass
class PageLog:
    """Everything a page did that a self-contained, offline report must not do."""

    own_url: str
    #: Every request the page made (``data:`` URLs never show up as requests).
    requests: list[str] = field(default_factory=list)
    #: Requests to anything but the page itself or a ``data:`` URL...
    foreign: list[str] = field(default_factory=list)
    #: ...and the ones the route caught and aborted (so none reaches the network).
    blocked: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def allowed(self, url: str) -> bool:
        return url.split("#", 1)[0] == self.own_url or url.startswith("data:")

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)
        if not self.allowed(request.url):
            self.foreign.append(request.url)

    def on_route(self, route: Route) -> None:
        if self.allowed(route.request.url):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"{message.type}: {message.text} ({message.location})")

    def on_page_error(self, error: PlaywrightError) -> None:
        self.page_errors.append(str(error))

    @property
    def problems(self) -> list[str]:
        return (
            [f"external request: {u}" for u in self.foreign]
            + [f"blocked request: {u}" for u in self.blocked]
            + [f"console {c}" for c in self.console]
            + [f"page error: {e}" for e in self.page_errors]
        )


@contextmanager
def open_page(browser: Browser, html_file: Path) -> Iterator[tuple[Page, PageLog]]:
    """``html_file`` opened by its file:// URL, every request, console message and page
    error recorded, and anything but the page itself (or ``data:``) aborted."""
    url = html_file.resolve().as_uri()
    log = PageLog(own_url=url)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.on("request", log.on_request)
        page.on("console", log.on_console)
        page.on("pageerror", log.on_page_error)
        page.route("**/*", log.on_route)
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        yield page, log
    finally:
        context.close()


def chart_problems(page: Page) -> list[str]:
    """Every chart (``svg[role=img]``) must be named, visible, of non-zero size, and draw
    at least one mark of non-zero extent. Covers charts added later without naming them."""
    problems = []
    charts = page.locator("svg[role=img]")
    if charts.count() == 0:
        problems.append("no svg[role=img] chart on the page")
    for i in range(charts.count()):
        chart = charts.nth(i)
        name = chart.get_attribute("aria-label") or f"chart #{i} (no aria-label)"
        if not chart.get_attribute("aria-label"):
            problems.append(f"{name}: no aria-label")
        box = chart.bounding_box()
        if box is None or box["width"] <= 0 or box["height"] <= 0 or not chart.is_visible():
            problems.append(f"{name}: not visible or zero-sized ({box})")
        drawn = 0
        marks = chart.locator(MARKS)
        for j in range(marks.count()):
            mark_box = marks.nth(j).bounding_box()
            if mark_box and (mark_box["width"] > 0 or mark_box["height"] > 0):
                drawn += 1
        if drawn == 0:
            problems.append(f"{name}: draws no mark ({marks.count()} elements, none visible)")
    return problems


#: Texts and marks of each chart that reach past its SVG's box (and are cut off there).
CLIPPED_JS = """() => [...document.querySelectorAll('svg[role=img]')].flatMap(svg => {
    const s = svg.getBoundingClientRect();
    return [...svg.querySelectorAll('text, rect, circle, ellipse, path, line, polyline, polygon')]
        .map(e => [e, e.getBoundingClientRect()])
        .filter(([, r]) => r.width > 0 || r.height > 0)
        .filter(([, r]) => r.left < s.left - 0.5 || r.right > s.right + 0.5
                        || r.top < s.top - 0.5 || r.bottom > s.bottom + 0.5)
        .map(([e, r]) => `${svg.getAttribute('aria-label')}: <${e.tagName}> `
            + `${JSON.stringify(e.textContent.slice(0, 40))} reaches past the chart by `
            + [s.left - r.left, r.right - s.right, s.top - r.top, r.bottom - s.bottom]
                .map(d => Math.max(0, d).toFixed(1)).join('/') + ' px (left/right/top/bottom)');
})"""


def clipped_in_charts(page: Page) -> list[str]:
    return list(page.evaluate(CLIPPED_JS))


# --- a real run ------------------------------------------------------------------------


@dataclass
class Run:
    report: Report
    html: Path
    #: Every scene of the run, read back from its scene log.
    scenes: list[SceneResult] = field(default_factory=list)

    def by_name(self, name: str) -> SceneResult:
        return next(s for s in self.scenes if s.source.endswith("/" + name))

    @property
    def compacted(self) -> list[SceneResult]:
        return [s for s in self.scenes if s.status == "compacted"]

    @property
    def lossy(self) -> list[SceneResult]:
        return [s for s in self.compacted if s.lossless is False and s.ssim is not None]


@pytest.fixture(scope="module")
def run(dask_scheduler: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A real run on the session's Dask cluster: two lossy scenes (an RGB landscape and a
    grey hillshade), two lossless ones (uint16 multispectral, int16 DEM), one truncated."""
    base = tmp_path_factory.mktemp("browser-run")
    src = base / "src"
    rasters.rgb(src / "landscape.tif")
    rasters.gray(src / "hillshade.tif")
    rasters.uint16(src / "multispectral.tif")
    rasters.int16(src / "dem.tif")
    rasters.truncated(src / "broken.tif", rasters.rgb(base / "spare" / "whole.tif"), keep=0.4)
    report = compactor.run(
        source=str(src),
        dest=str(base / "cogs"),
        archive=str(base / "archive"),
        report=str(base / "report"),
        scheduler=dask_scheduler,
    )
    html = base / "report" / "report.html"
    assert html.is_file()
    r = Run(report, html, list(report.scene_results()))
    assert len(r.scenes) == 5
    # The run the assertions below rely on: several kinds of outcome.
    assert r.by_name("broken.tif").status == "failed"
    assert r.by_name("broken.tif").reason
    assert r.by_name("landscape.tif").lossless is False
    assert r.by_name("multispectral.tif").lossless is True
    assert len(r.compacted) == 4
    assert len(r.lossy) >= 1
    return r


@pytest.fixture(scope="module")
def report_page(browser: Browser, run: Run) -> Iterator[tuple[Page, PageLog]]:
    """The run's report.html, opened once for the read-only checks below."""
    with open_page(browser, run.html) as opened:
        yield opened


# --- the report of the run ---------------------------------------------------------------


def test_report_renders_offline_without_errors(browser: Browser, run: Run, tmp_path: Path) -> None:
    with open_page(browser, run.html) as (page, log):
        assert page.title() == f"compactor run {run.report.run_id}"
        assert chart_problems(page) == []
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        bars = page.locator(f'svg[aria-label="{RATIO_CHART}"] rect:has(title)')
        boxes = [bars.nth(i).bounding_box() for i in range(bars.count())]
        page.wait_for_load_state("networkidle")
    assert log.problems == []
    assert log.requests == [log.own_url]  # the document itself, and nothing else

    with Image.open(shot) as img:
        assert img.format == "PNG"
        rgb = img.convert("RGB")
    assert rgb.width == 1280
    assert rgb.height > 900  # the whole page, taller than the viewport
    colours = rgb.getcolors(maxcolors=rgb.width * rgb.height)
    assert colours is not None
    assert len(colours) > 50  # text, cards, bars: not a blank page
    # Each bar (largest ratio first) is painted where the layout put it, blue for a lossy
    # scene and green for a lossless one.
    by_ratio = sorted(run.compacted, key=lambda s: -(s.ratio or 0))
    for box, scene in zip(boxes, by_ratio, strict=True):
        assert box is not None
        centre = (int(box["x"] + box["width"] / 2), int(box["y"] + box["height"] / 2))
        expected = LOSSLESS_GREEN if scene.lossless else LOSSY_BLUE
        painted = rgb.getpixel(centre)
        assert isinstance(painted, tuple)
        assert all(abs(a - b) <= 3 for a, b in zip(painted, expected, strict=True)), (
            f"bar at {centre} is painted {painted}, not {expected}"
        )


def test_the_named_charts_are_present(report_page: tuple[Page, PageLog]) -> None:
    page, log = report_page
    labels = page.locator("svg[role=img]").evaluate_all(
        "els => els.map(e => e.getAttribute('aria-label'))"
    )
    assert RATIO_CHART in labels
    assert SSIM_CHART in labels
    assert chart_problems(page) == []
    assert log.problems == []


def test_no_chart_text_or_mark_is_cut_off(report_page: tuple[Page, PageLog]) -> None:
    """An SVG clips what it draws outside its box (the SSIM axis's last label used to be)."""
    page, _ = report_page
    assert clipped_in_charts(page) == []


def test_ratio_chart_has_one_bar_per_compacted_scene(
    report_page: tuple[Page, PageLog], run: Run
) -> None:
    page, _ = report_page
    chart = page.locator(f'svg[aria-label="{RATIO_CHART}"]')
    bars = chart.locator("rect:has(title)")
    assert bars.count() == len(run.compacted)
    assert chart.locator("rect").count() == len(run.compacted) + 2  # + the legend's swatches
    expected = sorted(run.compacted, key=lambda s: -(s.ratio or 0))
    widths = []
    for i, scene in enumerate(expected):
        bar = bars.nth(i)
        assert bar.locator("title").text_content() == f"{scene.source}: {scene.ratio:.2f}x"
        assert bar.get_attribute("fill") == ("#12b76a" if scene.lossless else "#2e90fa")
        box = bar.bounding_box()
        assert box is not None
        assert box["height"] > 0
        widths.append(box["width"])
    # Bar lengths are proportional to the ratios (largest first).
    assert widths == sorted(widths, reverse=True)
    scale = widths[0] / (expected[0].ratio or 1)
    for width, scene in zip(widths, expected, strict=True):
        assert width == pytest.approx((scene.ratio or 0) * scale, rel=0.02, abs=1.0)
    # Each bar is labelled with its scene's file name, and the failed scene has no bar.
    names = chart.locator("text").all_text_contents()
    for scene in run.compacted:
        assert scene.source.rsplit("/", 1)[-1] in names
    assert "broken.tif" not in names


def test_ssim_histogram_counts_every_lossy_scene_above_the_bar(
    report_page: tuple[Page, PageLog], run: Run
) -> None:
    page, _ = report_page
    chart = page.locator(f'svg[aria-label="{SSIM_CHART}"]')
    rects = chart.locator("rect")
    bins = []
    for i in range(rects.count()):
        title = rects.nth(i).locator("title").text_content() or ""
        m = re.fullmatch(r"([\d.]+)–([\d.]+): (\d+) scenes", title)
        assert m, title
        box = rects.nth(i).bounding_box()
        assert box is not None
        bins.append((float(m[1]), float(m[2]), int(m[3]), box))
    assert len(bins) >= 10
    assert sum(count for _, _, count, _ in bins) == len(run.lossy)
    # A bin is drawn exactly when it holds scenes; the fullest one is the tallest.
    for lo, _, count, box in bins:
        assert (box["height"] > 0) == (count > 0), (lo, count, box)
    peak = max(bins, key=lambda b: b[2])
    assert peak[3]["height"] == max(b[3]["height"] for b in bins)
    for scene in run.lossy:
        assert scene.ssim is not None
        assert any(lo - 5e-4 <= scene.ssim <= hi + 5e-4 and n > 0 for lo, hi, n, _ in bins), (
            scene.source,
            scene.ssim,
        )
    # The min-SSIM bar is drawn, and every lossy scene sits at or to the right of it.
    min_ssim = run.report.settings["min_ssim"]
    line = chart.locator("line")
    assert line.count() == 1
    line_box = line.bounding_box()
    assert line_box is not None
    assert line_box["height"] > 0
    assert f"min SSIM {min_ssim}" in chart.locator("text").all_text_contents()
    for _, _, count, box in bins:
        if count:
            assert box["x"] >= line_box["x"] - 0.5


def test_scene_table_lists_every_scene_and_the_failure(
    report_page: tuple[Page, PageLog], run: Run
) -> None:
    page, _ = report_page
    table = page.locator("h2:text-is('Scenes') + table")
    rows = table.locator("tr:has(td)")
    assert rows.count() == len(run.scenes) == 5
    text = page.locator("body").inner_text()
    for i, scene in enumerate(sorted(run.scenes, key=lambda s: s.source)):
        assert scene.source in text
        row = rows.nth(i)
        cells = row.locator("td")
        assert cells.nth(0).inner_text() == scene.source
        assert cells.nth(1).inner_text() == scene.status
        assert row.is_visible()
    failed = run.by_name("broken.tif")
    row = rows.filter(has_text=failed.source)
    assert row.count() == 1
    status = row.locator("td.failed")
    assert status.inner_text() == "failed"
    assert status.is_visible()
    reason = row.locator("td").last
    assert reason.is_visible()
    assert failed.reason
    assert " ".join(reason.inner_text().split()) == " ".join(failed.reason.split())
    # The summary cards agree with the run.
    cards = dict(
        tuple(c.split("\n", 1))
        for c in page.locator(".card").evaluate_all("els => els.map(e => e.innerText)")
    )
    t = run.report.totals
    assert cards["scenes"] == str(t.scenes)
    assert cards["compacted"] == str(t.compacted)
    assert cards["failed"] == str(t.failed) == "1"


def bar_titles(page: Page, label: str, pattern: str) -> list[re.Match[str]]:
    """The titles of the bars of chart ``label``, each matched against ``pattern``."""
    found = []
    rects = page.locator(f'svg[aria-label="{label}"] rect')
    assert rects.count() > 0, label
    for i in range(rects.count()):
        title = rects.nth(i).locator("title").text_content() or ""
        m = re.fullmatch(pattern, title)
        assert m, (label, title)
        found.append(m)
    return found


def test_distributions_failures_and_the_scene_log_render(
    report_page: tuple[Page, PageLog], run: Run
) -> None:
    """The sections a run of any size gets: its distributions as charts, the failed scenes,
    and the link to the scene log (which a large run's page has instead of a scene table)."""
    page, log = report_page
    labels = page.locator("svg[role=img]").evaluate_all(
        "els => els.map(e => e.getAttribute('aria-label'))"
    )
    assert {RATIO_HISTOGRAM, CODEC_CHART, SECONDS_CHART, SIZE_CHART} <= set(labels)
    d = run.report.distributions

    # Compression ratio: every compacted scene in a bar whose range holds its ratio.
    ratio_bars = [(float(m[1]), float(m[2]), int(m[3]))
                  for m in bar_titles(page, RATIO_HISTOGRAM, r"([\d.]+)×–([\d.]+)×: (\d+) scenes")]  # fmt: skip
    assert sum(n for _, _, n in ratio_bars) == len(run.compacted) == d.ratio.count
    for scene in run.compacted:
        assert scene.ratio is not None
        assert any(lo - 0.005 <= scene.ratio <= hi + 0.005 and n for lo, hi, n in ratio_bars)
    # Codecs: one bar per codec and quality, counting the compacted scenes.
    codec_bars = {m[1]: int(m[2]) for m in bar_titles(page, CODEC_CHART, r"(.+): (\d+) scenes")}
    expected: dict[str, int] = {}
    for scene in run.compacted:
        key = scene.codec if scene.quality is None else f"{scene.codec} q{scene.quality}"
        assert key is not None
        expected[key] = expected.get(key, 0) + 1
    assert codec_bars == expected == d.codec_quality
    # Seconds and sizes: every scene that did work, every scene with a size.
    seconds = bar_titles(page, SECONDS_CHART, r"([\d.e+]+) s–([\d.e+]+) s: (\d+) scenes")
    assert sum(int(m[3]) for m in seconds) == sum(s.seconds > 0 for s in run.scenes)
    sizes = bar_titles(page, SIZE_CHART, r"(.+)–(.+): (\d+) scenes")
    assert sum(int(m[3]) for m in sizes) == sum(s.bytes_in is not None for s in run.scenes)

    # The failed scene, in its own table, with its reason.
    failed = run.by_name("broken.tif")
    table = page.locator("h2:text-is('Failed scenes') + table")
    rows = table.locator("tr:has(td)")
    assert rows.count() == 1
    assert rows.first.locator("td").first.inner_text() == failed.source
    assert rows.first.locator("td.failed").is_visible()
    assert failed.reason
    assert " ".join(rows.first.locator("td").last.inner_text().split()) == " ".join(
        failed.reason.split()
    )
    assert page.locator("h2:text-is('Skipped scenes')").count() == 0  # none skipped
    cards = dict(
        tuple(c.split("\n", 1))
        for c in page.locator(".card").evaluate_all("els => els.map(e => e.innerText)")
    )
    assert cards["finished earlier"] == "0"

    # The scene log: a visible link, relative to the page, to the part next to it.
    link = page.locator('h2:text-is("Scene log") + p a[href="scenes/part-00000.ndjson.gz"]')
    assert link.count() == 1
    assert link.is_visible()
    target = Path(url2pathname(urlsplit(link.evaluate("a => a.href")).path))
    assert target == run.html.parent / "scenes" / "part-00000.ndjson.gz"
    with gzip.open(target, "rt") as fh:
        assert sorted(json.loads(line)["source"] for line in fh) == sorted(
            s.source for s in run.scenes
        )
    assert log.problems == []
    assert log.requests == [log.own_url]  # a link is not a request


def test_jupyter_fragment_renders_offline(browser: Browser, run: Run, tmp_path: Path) -> None:
    """``Report._repr_html_`` (what Jupyter shows) embedded in a minimal page."""
    fragment = run.report._repr_html_()
    page_file = tmp_path / "notebook.html"
    page_file.write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>notebook</title>'
        f"</head><body><div class='output'>{fragment}</div></body></html>",
        encoding="utf-8",
    )
    with open_page(browser, page_file) as (page, log):
        assert chart_problems(page) == []
        labels = page.locator(".compactor-report svg[role=img]").evaluate_all(
            "els => els.map(e => e.getAttribute('aria-label'))"
        )
        assert RATIO_CHART in labels
        assert SSIM_CHART in labels
        bars = page.locator(f'svg[aria-label="{RATIO_CHART}"] rect:has(title)')
        assert bars.count() == len(run.compacted)
        text = page.locator(".compactor-report").inner_text()
        for scene in run.scenes:
            assert scene.source in text
        assert run.by_name("broken.tif").reason in " ".join(text.split())  # type: ignore[operator]
        page.wait_for_load_state("networkidle")
    assert log.problems == []
    assert log.requests == [log.own_url]


# --- the checks above can fail -------------------------------------------------------------


def injected(run: Run, tmp_path: Path, head: str = "", body: str = "") -> Path:
    """A copy of the run's report.html with ``head`` and ``body`` markup added."""
    html = run.html.read_text(encoding="utf-8")
    assert "</head>" in html
    assert "</body>" in html
    html = html.replace("</head>", head + "</head>", 1).replace("</body>", body + "</body>", 1)
    copy = tmp_path / "report-copy.html"
    copy.write_text(html, encoding="utf-8")
    return copy


def test_external_requests_are_caught_and_blocked(
    browser: Browser, run: Run, tmp_path: Path
) -> None:
    img = "http://example.invalid/x.png"
    css = "https://example.invalid/style.css"
    sibling = (tmp_path / "sibling.png").resolve().as_uri()  # another file: also foreign
    copy = injected(
        run,
        tmp_path,
        head=f'<link rel="stylesheet" href="{css}">',
        body=f'<img src="{img}" alt=""><img src="{sibling}" alt="">',
    )
    with open_page(browser, copy) as (_, log):
        pass
    assert set(log.foreign) == {img, css, sibling}
    assert set(log.blocked) == {img, css, sibling}
    assert log.requests[0] == log.own_url
    assert log.problems


def test_script_errors_and_console_errors_are_caught(
    browser: Browser, run: Run, tmp_path: Path
) -> None:
    copy = injected(
        run,
        tmp_path,
        body="<script>console.warn('careful'); console.error('bad');"
        "throw new Error('boom in report')</script>",
    )
    with open_page(browser, copy) as (_, log):
        pass
    assert any("boom in report" in e for e in log.page_errors)
    assert any(c.startswith("warning: careful") for c in log.console)
    assert any(c.startswith("error: bad") for c in log.console)
    assert log.foreign == []


def test_empty_or_hidden_charts_are_caught(browser: Browser, run: Run, tmp_path: Path) -> None:
    copy = injected(
        run,
        tmp_path,
        body='<svg role="img" aria-label="Empty chart" width="300" height="100"></svg>'
        '<svg role="img" aria-label="Zero-sized chart" width="0" height="0">'
        '<rect width="10" height="10"/></svg>'
        '<svg role="img" aria-label="Blank marks" width="300" height="100">'
        '<rect width="0" height="0"/></svg>'
        '<svg role="img" aria-label="Overflowing" width="300" height="100">'
        '<rect width="10" height="10"/><text x="290" y="50">far right</text></svg>',
    )
    with open_page(browser, copy) as (page, log):
        problems = chart_problems(page)
        clipped = clipped_in_charts(page)
    assert log.problems == []
    assert any(p.startswith("Empty chart: draws no mark") for p in problems), problems
    assert any(p.startswith("Zero-sized chart: not visible") for p in problems), problems
    assert any(p.startswith("Blank marks: draws no mark") for p in problems), problems
    assert not any(RATIO_CHART in p or SSIM_CHART in p for p in problems), problems
    assert any(c.startswith('Overflowing: <text> "far right" reaches past') for c in clipped)
