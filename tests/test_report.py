"""Report contents, the cost model, and an HTML page that needs nothing from the network."""

from __future__ import annotations

import re

import pytest

from compactor.report.costs import GB, estimate
from compactor.report.html import render_html, summary_lines
from compactor.report.models import Report, SceneResult, Totals


def scene(
    name: str, status: str, bytes_in: int | None, bytes_out: int | None, **kw: object
) -> SceneResult:
    return SceneResult(
        source=f"s3://b/{name}", status=status, bytes_in=bytes_in, bytes_out=bytes_out, **kw
    )  # type: ignore[arg-type]


def test_glacier_cost_model() -> None:
    scenes = [
        scene("a", "compacted", 10 * GB, 1 * GB),
        scene("b", "compacted", 30 * GB, 3 * GB),
        scene("c", "failed", None, None),
    ]
    c = estimate(scenes, "GLACIER")
    assert c.before_usd_month == pytest.approx(40 * 0.023)
    overhead = 2 * (8 * 1024 / GB * 0.023 + 32 * 1024 / GB * 0.0036)
    assert c.after_usd_month == pytest.approx(4 * 0.023 + 40 * 0.0036 + overhead)
    assert c.saving_usd_month == pytest.approx(c.before_usd_month - c.after_usd_month)
    assert c.minimum_days == 90
    assert c.minimum_commitment_usd == pytest.approx(40 * 0.0036 * 3)


def test_costs_without_archive_and_with_size_floors() -> None:
    kept = estimate([scene("a", "compacted", GB, GB // 10)], None)
    assert kept.saving_usd_month < 0
    assert any("not archived" in n for n in kept.notes)
    tiny = estimate([scene("a", "compacted", 1000, 100)], "GLACIER_IR")
    ir = next(line for line in tiny.lines if "GLACIER_IR" in line.label)
    assert ir.gb == pytest.approx(128 * 1024 / GB)  # billed at 128 KB minimum


def test_html_is_self_contained_and_escaped() -> None:
    scenes = [
        scene(
            "<script>alert(1)</script>.tif",
            "compacted",
            1000,
            100,
            ssim=0.96,
            lossless=False,
            codec="jpeg",
            quality=90,
        ),
        scene("b.tif", "compacted", 5000, 2000, ssim=1.0, lossless=True, codec="zstd"),
        scene("c.tif", "failed", None, None, reason="not a raster"),
    ]
    report = Report(run_id="r1", started="s", finished="f", settings={"min_ssim": 0.95, "source": "s3://b/"},
                    totals=Totals.of(scenes), scenes=scenes, cost=estimate(scenes, "GLACIER"))  # fmt: skip
    html = render_html(report)
    assert "<script" not in html  # escaped, and no scripts of our own
    assert "&lt;script&gt;" in html
    assert not re.search(r'(?:src|href)\s*=\s*"(?:https?:)?//', html)  # nothing fetched
    assert "@import" not in html
    assert "url(" not in html
    assert html.count("<svg") == 2  # ratio chart and SSIM histogram
    assert "not a raster" in html
    lines = summary_lines(report)
    assert lines[0].startswith("run r1: 3 scenes - 2 compacted, 0 skipped, 1 failed")
    assert any(line.startswith("FAILED s3://b/c.tif: not a raster") for line in lines)
