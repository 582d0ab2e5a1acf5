"""Report contents, the cost model, the scene log, the bounded accumulators, and an HTML
page that needs nothing from the network."""

from __future__ import annotations

import gc
import gzip
import json
import random
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from compactor.encode._quality import compare_fixed
from compactor.pricing._costs import estimate
from compactor.pricing._prices import GB
from compactor.records._aggregate import FixedQualityComparison, Histogram, RunDistributions
from compactor.records._bins import SSIM_BINS, Bins
from compactor.records._results import QualityComparison, QualitySearch, Report, SceneResult
from compactor.records._scene_log import SceneLogWriter, read_scene_log
from compactor.report._html import render_html, report_json, write_report
from compactor.report._recorder import RunRecorder
from compactor.report._summary import summary_lines
from compactor.storage import S3Options

S3 = S3Options()


def scene(
    name: str, status: str, bytes_in: int | None, bytes_out: int | None, **kw: object
) -> SceneResult:
    return SceneResult(
        source=f"s3://b/{name}", status=status, bytes_in=bytes_in, bytes_out=bytes_out, **kw
    )  # type: ignore[arg-type]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def parts_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("part-*.ndjson.gz"))


def record(tmp_path: Path, results: list[SceneResult], **kw: Any) -> tuple[Report, RunRecorder]:
    """A report of ``results`` as a run builds it, written under ``tmp_path/report``."""
    recorder = RunRecorder(str(tmp_path / "report"), S3, storage_class="GLACIER", **kw)
    with recorder:
        for r in results:
            recorder.add(r)
    report = recorder.report(
        run_id="r1", started="s", finished="f",
        settings={"min_ssim": 0.95, "source": "s3://b/"}, finished_earlier=7,
    )  # fmt: skip
    return write_report(report, str(tmp_path / "report"), S3), recorder


# --- costs ---------------------------------------------------------------------------------


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


def test_the_recorder_costs_what_the_list_costs(tmp_path: Path) -> None:
    results = [
        scene("a", "compacted", 10 * GB, 1 * GB),
        scene("b", "compacted", 1000, 100),
        scene("c", "compacted", 5000, None),  # no output size: not counted, as before
        scene("d", "skipped", 7000, None, reason="left as it is"),
    ]
    report, _ = record(tmp_path, results)
    assert report.cost == estimate(results, "GLACIER")


# --- the scene log ---------------------------------------------------------------------------


def test_parts_are_written_every_n_results_and_on_close(tmp_path: Path) -> None:
    clock = Clock()
    log = SceneLogWriter(str(tmp_path / "scenes"), S3, flush_every=3, clock=clock)
    for i in range(7):
        log.append(scene(f"{i}.tif", "compacted", 10, 5))
    assert parts_in(tmp_path / "scenes") == ["part-00000.ndjson.gz", "part-00001.ndjson.gz"]
    assert (log.parts, log.scenes, log.pending) == (2, 6, 1)
    summary = log.close()
    assert parts_in(tmp_path / "scenes") == [f"part-0000{i}.ndjson.gz" for i in range(3)]
    assert (summary.parts, summary.scenes) == (3, 7)
    assert summary.location == str(tmp_path / "scenes") + "/"
    assert log.close() == summary  # idempotent: no empty part
    with gzip.open(tmp_path / "scenes" / "part-00001.ndjson.gz", "rt") as fh:
        assert [json.loads(line)["source"] for line in fh] == [f"s3://b/{i}.tif" for i in (3, 4, 5)]


def test_a_part_is_written_once_its_oldest_result_waited_long_enough(tmp_path: Path) -> None:
    clock = Clock()
    log = SceneLogWriter(str(tmp_path), S3, flush_every=1000, flush_seconds=10, clock=clock)
    log.append(scene("a.tif", "compacted", 10, 5))
    clock.now += 9
    log.append(scene("b.tif", "compacted", 10, 5))
    log.flush_if_due()
    assert parts_in(tmp_path) == []
    clock.now += 1  # the first result has now waited 10 s
    log.flush_if_due()  # what the writer's timer does while no result arrives
    assert parts_in(tmp_path) == ["part-00000.ndjson.gz"]
    clock.now += 5
    log.append(scene("c.tif", "compacted", 10, 5))
    clock.now += 10
    log.append(scene("d.tif", "compacted", 10, 5))  # an arrival writes a due part at once
    assert parts_in(tmp_path) == ["part-00000.ndjson.gz", "part-00001.ndjson.gz"]
    assert [s.source.rsplit("/", 1)[1] for s in read_scene_log(str(tmp_path), S3)] == [
        "a.tif", "b.tif", "c.tif", "d.tif",
    ]  # fmt: skip
    log.close()


def test_the_timer_writes_a_part_when_no_result_arrives(tmp_path: Path) -> None:
    log = SceneLogWriter(str(tmp_path), S3, flush_every=1000, flush_seconds=0.2)
    log.append(scene("a.tif", "compacted", 10, 5))
    deadline = time.monotonic() + 10
    while not parts_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert parts_in(tmp_path) == ["part-00000.ndjson.gz"]
    assert [s.source for s in read_scene_log(str(tmp_path), S3)] == ["s3://b/a.tif"]
    log.close()


def test_a_killed_client_keeps_the_parts_written(tmp_path: Path) -> None:
    """A client killed outright (no close, no exit handler) loses only the results since
    the last part: abandon a recorder mid-run and read back what it wrote."""
    results = [scene(f"{i}.tif", "compacted", 100 + i, 10, seconds=1.5) for i in range(5)]
    recorder = RunRecorder(str(tmp_path), S3, storage_class=None, flush_every=2,
                           flush_seconds=3600)  # fmt: skip
    for r in results:
        recorder.add(r)
    assert recorder.log.pending == 1
    del recorder  # never closed; its timer holds it only weakly and stops
    gc.collect()
    assert list(read_scene_log(str(tmp_path), S3)) == results[:4]
    assert parts_in(tmp_path / "scenes") == ["part-00000.ndjson.gz", "part-00001.ndjson.gz"]


def test_ctrl_c_keeps_what_finished(tmp_path: Path) -> None:
    results = [scene(f"{i}.tif", "compacted", 100, 10) for i in range(3)]

    def run_until_ctrl_c() -> None:
        with RunRecorder(str(tmp_path), S3, storage_class=None) as recorder:
            for r in results:
                recorder.add(r)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_until_ctrl_c()
    assert list(read_scene_log(str(tmp_path), S3)) == results


def test_the_reader_round_trips_full_results(tmp_path: Path) -> None:
    search = QualitySearch(min_ssim=0.95, sample_whole=False, sample_pixels=4096, codec="jpeg",
                           quality=71, jpeg_quality=71, jpeg_bytes=[900, 950], chosen_bytes=900)  # fmt: skip
    results = [
        scene("ü é/a [1].tif", "compacted", 1000, 300, codec="jpeg", quality=71, lossless=False,
              ssim=0.9512, psnr=41.2, seconds=2.5, search=search, item="i", asset="image",
              attempts=[{"codec": "jpeg", "quality": 71, "bytes": 300, "ssim": 0.9512,
                         "accepted": True}]),
        scene("b.tif", "failed", None, None, reason="not a raster GDAL can open"),
        scene("c.tif", "skipped", 10, None, reason="left as it is: 12 bytes"),
    ]  # fmt: skip
    with SceneLogWriter(str(tmp_path / "scenes"), S3, flush_every=2) as log:
        for r in results:
            log.append(r)
    assert list(read_scene_log(str(tmp_path / "scenes"), S3)) == results
    assert list(read_scene_log(str(tmp_path), S3)) == results  # the report's folder too
    # pandas reads a part as it is
    df = pd.read_json(tmp_path / "scenes" / "part-00000.ndjson.gz", lines=True)
    assert list(df["status"]) == ["compacted", "failed"]


def test_a_new_log_replaces_an_earlier_one_at_the_same_place(tmp_path: Path) -> None:
    with SceneLogWriter(str(tmp_path), S3, flush_every=1) as first:
        for i in range(3):
            first.append(scene(f"old{i}.tif", "compacted", 10, 5))
    assert len(parts_in(tmp_path)) == 3
    with SceneLogWriter(str(tmp_path), S3) as second:
        second.append(scene("new.tif", "compacted", 10, 5))
    assert parts_in(tmp_path) == ["part-00000.ndjson.gz"]
    assert [s.source for s in read_scene_log(str(tmp_path), S3)] == ["s3://b/new.tif"]


def test_a_damaged_part_is_a_clear_error(tmp_path: Path) -> None:
    from compactor.errors import StorageError

    (tmp_path / "part-00000.ndjson.gz").write_bytes(b"not gzip")
    with pytest.raises(StorageError, match="is not a part of a scene log"):
        list(read_scene_log(str(tmp_path), S3))


# --- distributions ---------------------------------------------------------------------------


def test_histogram_counts_and_quantiles_on_known_values() -> None:
    h = Histogram(Bins(0.0, 10.0, 10, "linear"), "x")
    for v in [-1.0, 0.0, 0.5, 1.0, 2.5, 2.6, 9.99, 10.0, 12.0]:
        h.add(v)
    d = h.summary()
    assert (d.count, d.under, d.over) == (9, 1, 1)
    assert [(b.lo, b.hi, b.count) for b in d.histogram] == [
        (0.0, 1.0, 2), (1.0, 2.0, 1), (2.0, 3.0, 2), (9.0, 10.0, 2),
    ]  # fmt: skip
    assert (d.min, d.max) == (-1.0, 12.0)
    assert d.mean == pytest.approx(sum([-1.0, 0.0, 0.5, 1.0, 2.5, 2.6, 9.99, 10.0, 12.0]) / 9)
    # 1000 values evenly over [0, 10): quantiles within one bin of the exact ones
    even = Histogram(Bins(0.0, 10.0, 100, "linear"), "x")
    for i in range(1000):
        even.add(i / 100)
    assert even.quantile(0.5) == pytest.approx(5.0, abs=0.1)
    assert even.quantile(0.9) == pytest.approx(9.0, abs=0.1)
    assert even.quantile(0.99) == pytest.approx(9.9, abs=0.1)
    assert Histogram(Bins(0.0, 1.0, 4, "linear"), "x").quantile(0.5) is None


def test_log_bins_and_edges() -> None:
    b = Bins(1024.0, float(1024**5), 40, "log")  # powers of two
    assert b.index(1024) == 0
    assert b.index(2047) == 0
    assert b.index(2048) == 1
    assert b.index(1023) == -1
    assert b.index(0) == -1
    assert b.edge(5) == 32768.0
    ratio = Bins(0.1, 1000.0, 80, "log")
    assert ratio.edge(20) == 1.0
    assert ratio.index(1.0) == 20
    assert ratio.index(0.99) == 19
    assert SSIM_BINS.index(0.95) == 1900  # on the edge: the bin that starts there
    assert SSIM_BINS.index(1.0) == 1999  # 1.0 itself is binned
    assert SSIM_BINS.edge(1900) == 0.95


def test_run_distributions_on_known_results() -> None:
    acc = RunDistributions()
    for r in [
        scene("a", "compacted", 4000, 1000, codec="jpeg", quality=80, lossless=False,
              ssim=0.9612, seconds=2.0),
        scene("b", "compacted", 3000, 1000, codec="jpeg", quality=80, lossless=False,
              ssim=0.9531, seconds=4.0),
        scene("c", "compacted", 2048, 1024, codec="zstd", lossless=True, ssim=1.0,
              seconds=1.0, chunked=True),
        scene("d", "skipped", 5000, None, reason="left as it is", seconds=0.5),
        scene("e", "failed", None, None, reason="refused"),  # no work: no seconds
    ]:  # fmt: skip
        acc.add(r)
    d = acc.summary()
    assert d.codecs == {"jpeg": 2, "zstd": 1}
    assert d.codec_quality == {"jpeg q80": 2, "zstd": 1}
    assert (d.lossless, d.lossy, d.chunked) == (1, 2, 1)
    assert d.ratio.count == 3
    assert (d.ratio.min, d.ratio.max) == (2.0, 4.0)
    assert sum(b.count for b in d.ratio.histogram) == 3
    assert d.ssim.count == 2  # lossless outputs are not in the SSIM distribution
    assert [(b.lo, b.count) for b in d.ssim.histogram] == [(0.953, 1), (0.961, 1)]
    assert (d.ssim.min, d.ssim.max) == (0.9531, 0.9612)
    assert d.seconds.count == 4
    assert d.seconds.min == 0.5
    assert d.bytes_in.count == 4
    assert [(b.lo, b.hi, b.count) for b in d.bytes_in.histogram] == [
        (2048.0, 4096.0, 3), (4096.0, 8192.0, 1),
    ]  # fmt: skip


# --- the fixed-quality comparison, incrementally -----------------------------------------------


def list_based_compare_fixed(
    scenes: list[SceneResult], min_ssim: float
) -> QualityComparison | None:
    """The comparison as it was computed before it was accumulated (verbatim): the reference
    the incremental one must equal."""
    searched: list[tuple[SceneResult, int, list[int], int]] = []
    for s in scenes:
        found = s.search
        if (
            s.status == "compacted"
            and s.lossless is False
            and s.bytes_out
            and found is not None
            and found.jpeg_quality is not None
            and found.jpeg_bytes
            and found.chosen_bytes
        ):
            searched.append((s, found.jpeg_quality, found.jpeg_bytes, found.chosen_bytes))
    if not searched:
        return None
    fixed = max(q for _, q, _, _ in searched)
    auto_total = 0
    fixed_total = 0
    qualities: dict[str, int] = {}
    for s, q, curve, chosen in searched:
        auto_total += s.bytes_out or 0
        fixed_total += round((s.bytes_out or 0) * curve[fixed - q] / chosen)
        label = f"{s.codec} q{s.quality}"
        qualities[label] = qualities.get(label, 0) + 1
    return QualityComparison(
        min_ssim=min_ssim, scenes=len(searched), fixed_codec="jpeg", fixed_quality=fixed,
        bytes_auto=auto_total, bytes_fixed=fixed_total,
        saving=1 - auto_total / fixed_total if fixed_total else 0.0,
        chosen=dict(sorted(qualities.items())),
    )  # fmt: skip


def synthetic_results(rnd: random.Random, n: int) -> list[SceneResult]:
    """Compacted lossy scenes with searches (JPEG and WEBP), and scenes the comparison must
    leave out: lossless, failed, skipped, without a search or a curve."""
    out = []
    for i in range(n):
        kind = rnd.choices(["searched", "lossless", "failed", "skipped", "fixed"],
                           [70, 10, 5, 5, 10])[0]  # fmt: skip
        if kind != "searched":
            status = {"failed": "failed", "skipped": "skipped"}.get(kind, "compacted")
            out.append(scene(f"{i}.tif", status, rnd.randint(1000, 10**7),
                             rnd.randint(100, 10**6) if status == "compacted" else None,
                             lossless=kind == "lossless" or None, codec="jpeg", quality=75))  # fmt: skip
            continue
        q = rnd.randint(10, 95)
        size = rnd.randint(2000, 50_000)
        curve = [size + (k * size) // rnd.randint(20, 60) for k in range(96 - q)]
        codec = rnd.choice(["jpeg", "jpeg", "webp"])
        chosen = curve[0] if codec == "jpeg" else rnd.randint(1000, size)
        kept = q if codec == "jpeg" else rnd.randint(10, 95)
        search = QualitySearch(min_ssim=0.95, sample_whole=rnd.random() < 0.5, sample_pixels=1,
                               codec=codec, quality=kept, jpeg_quality=q, jpeg_bytes=curve,
                               chosen_bytes=chosen)  # fmt: skip
        out.append(scene(f"{i}.tif", "compacted", rnd.randint(10**5, 10**8),
                         rnd.randint(10**4, 10**7), codec=codec, quality=kept, lossless=False,
                         ssim=0.96, search=search))  # fmt: skip
    return out


@pytest.mark.parametrize("seed", range(8))
def test_incremental_quality_comparison_equals_the_list_based_one(seed: int) -> None:
    rnd = random.Random(seed)
    results = synthetic_results(rnd, rnd.choice([1, 2, 17, 300]))
    expected = list_based_compare_fixed(results, 0.95)
    acc = FixedQualityComparison(0.95)
    for r in results:
        acc.add(r)
    assert acc.result() == expected
    assert compare_fixed(results, 0.95) == expected  # the list API is the accumulator


def test_quality_comparison_without_searched_scenes_is_none() -> None:
    assert FixedQualityComparison(0.95).result() is None
    assert compare_fixed([scene("a", "compacted", 10, 5, lossless=True)], 0.95) is None


def test_fixed_comparison_from_a_recorder_equals_the_list(tmp_path: Path) -> None:
    results = synthetic_results(random.Random(42), 60)
    report, _ = record(tmp_path, results, min_ssim=0.95, compare_quality=True)
    assert report.quality is not None
    assert report.quality == list_based_compare_fixed(results, 0.95)


# --- report.json, report.html, the summary -----------------------------------------------------


def mixed(n: int) -> list[SceneResult]:
    out = []
    for i in range(n):
        lossy = i % 3 != 0
        out.append(scene(f"s{i:05d}.tif", "compacted", 10_000 + i, 2_000 + i % 700,
                         codec="jpeg" if lossy else "zstd", quality=70 + i % 20 if lossy else None,
                         lossless=not lossy, ssim=0.95 + (i % 40) / 1000 if lossy else 1.0,
                         seconds=0.5 + i % 30))  # fmt: skip
    return out


def test_report_json_has_no_per_scene_list_for_compacted_scenes(tmp_path: Path) -> None:
    failures = [scene(f"bad{i}.tif", "failed", 10, None, reason=f"broken {i}") for i in range(12)]
    skipped = [scene("same.tif", "skipped", 10, None, reason="left as it is: 5 bytes")]
    results = mixed(600) + failures + skipped
    report, _ = record(tmp_path, results, flush_every=250)
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert "scenes" not in data
    assert "table" not in data
    assert not any(s.startswith("s3://b/s0") for s in json.dumps(data).split('"'))
    assert [s["source"] for s in data["failed"]] == [f.source for f in failures]
    assert [s["source"] for s in data["skipped"]] == ["s3://b/same.tif"]
    assert data["totals"] == {"scenes": 613, "compacted": 600, "skipped": 1, "failed": 12,
                              "held": 0, "bytes_in": sum(10_000 + i for i in range(600)),
                              "bytes_out": sum(2_000 + i % 700 for i in range(600)),
                              "finished_earlier": 7}  # fmt: skip
    assert data["scene_log"] == {"location": str(tmp_path / "report" / "scenes") + "/",
                                 "parts": 3, "scenes": 613}  # fmt: skip
    assert data["distributions"]["ratio"]["count"] == 600
    assert data["distributions"]["codecs"] == {"jpeg": 400, "zstd": 200}
    # The whole run is in the scene log, and a report read back from JSON finds it.
    loaded = Report.model_validate(data)
    assert list(loaded.scene_results()) == results
    df = loaded.scenes_dataframe()
    assert len(df) == 613
    assert {"source", "status", "codec", "quality", "ssim", "ratio"} <= set(df.columns)
    assert df["quality"].dtype == "Int64"
    assert report.table == []  # too many scenes for report.html's table

    page = (tmp_path / "report" / "report.html").read_text()
    assert "s00001.tif" not in page  # no per-scene row...
    assert "broken 11" in page  # ...but every failure
    assert 'href="scenes/part-00000.ndjson.gz"' in page
    assert 'href="scenes/part-00002.ndjson.gz"' in page


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    scenes = [
        scene("<script>alert(1)</script>.tif", "compacted", 1000, 100, ssim=0.96,
              lossless=False, codec="jpeg", quality=90, seconds=3.0),
        scene("b.tif", "compacted", 5000, 2000, ssim=1.0, lossless=True, codec="zstd",
              seconds=1.0),
        scene("c.tif", "failed", None, None, reason="not a raster"),
        scene("d.tif", "skipped", 3000, None, reason="left as it is: 3100 bytes"),
    ]  # fmt: skip
    report, _ = record(tmp_path, scenes)
    html = render_html(report)
    assert html == (tmp_path / "report" / "report.html").read_text()
    assert "<script" not in html  # escaped, and no scripts of our own
    assert "&lt;script&gt;" in html
    assert not re.search(r'(?:src|href)\s*=\s*"(?:https?:)?//', html)  # nothing fetched
    assert "@import" not in html
    assert "url(" not in html
    labels = re.findall(r'<svg role="img" aria-label="([^"]+)"', html)
    assert labels == [
        "Compression ratio per scene", "Compression ratio distribution", "SSIM distribution",
        "Scenes per codec and quality", "Seconds per scene", "Size of the originals",
    ]  # fmt: skip
    assert "not a raster" in html
    assert "<h2>Failed scenes</h2>" in html
    assert "<h2>Skipped scenes</h2>" in html
    assert "left as it is: 3100 bytes" in html
    # the small run's table lists every scene, sorted by source
    table = html.split("<h2>Scenes</h2>", 1)[1].split("</table>", 1)[0]
    assert table.count("<tr><td") == 4
    assert '<a href="scenes/part-00000.ndjson.gz">' in html
    fragment = report._repr_html_()
    assert "scenes/part-00000" not in fragment  # no page to be relative to in a notebook
    assert str(tmp_path / "report" / "scenes") in fragment

    lines = summary_lines(report)
    assert lines[0] == (
        "run r1: 4 scenes - 2 compacted in this run, 7 finished earlier, 1 skipped, 1 failed"
    )
    assert any(line.startswith("FAILED s3://b/c.tif: not a raster") for line in lines)
    assert "skipped 1: left as it is" in lines
    assert lines[-1] == f"scene log: 4 scenes in 1 part at {tmp_path / 'report' / 'scenes'}/"


def test_the_summary_stays_one_screen_at_scale(tmp_path: Path) -> None:
    failures = [scene(f"bad{i}.tif", "failed", 10, None, reason="x") for i in range(30)]
    skipped = [scene(f"s{i}.tif", "skipped", 10, None, reason=f"reason {i}: detail")
               for i in range(9)]  # fmt: skip
    report, _ = record(tmp_path, mixed(700) + failures + skipped, flush_every=10_000)
    lines = summary_lines(report)
    assert len(lines) < 25
    assert sum(line.startswith("FAILED ") for line in lines) == 8
    assert "... and 22 more failures (see the report)" in lines
    assert "... and 4 skipped for 4 other reasons" in lines
    assert any(line.startswith("compression ratio per scene: median ") for line in lines)
    assert any(line.startswith("lossy scenes: 466, SSIM min 0.9500, median ") for line in lines)
    assert "codecs: jpeg 466, zstd 234" in lines


def test_report_json_is_what_the_model_dumps(tmp_path: Path) -> None:
    report, _ = record(tmp_path, mixed(3))
    assert (tmp_path / "report" / "report.json").read_text() == report_json(report)
    again = Report.model_validate_json(report_json(report))
    assert again.distributions == report.distributions
    assert again.table == []  # not in report.json


def test_the_scene_log_on_s3(s3: Any) -> None:
    """Parts are S3 objects written in one PUT each; a log written again at the same place
    (a ``--report`` given twice) replaces the earlier run's parts (conditional deletes)."""
    options = S3Options(endpoint_url=s3.endpoint)
    where = "s3://dst-bucket/reports/r1/scenes/"
    first = [scene(f"old{i}.tif", "compacted", 10, 5) for i in range(3)]
    with SceneLogWriter(where, options, flush_every=2) as log:
        for r in first:
            log.append(r)
    assert s3.keys("dst-bucket") == [
        "reports/r1/scenes/part-00000.ndjson.gz", "reports/r1/scenes/part-00001.ndjson.gz",
    ]  # fmt: skip
    assert list(read_scene_log("s3://dst-bucket/reports/r1/", options)) == first
    with SceneLogWriter(where, options) as log:
        log.append(scene("new.tif", "compacted", 10, 5))
    assert s3.keys("dst-bucket") == ["reports/r1/scenes/part-00000.ndjson.gz"]
    assert [r.source for r in read_scene_log(where, options)] == ["s3://b/new.tif"]
    assert list(read_scene_log("s3://dst-bucket/nothing/", options)) == []
