"""The whole cost of a run: prices as data, requests priced by class, monthly before and
after, payback, size classes, whether one original is worth archiving, money printed as
money, and held scenes counted and shown. Every figure checked here is worked out by hand
from the list prices in the test."""

from __future__ import annotations

import json
import pickle
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from compactor.cli._common import SceneProgress
from compactor.display import months, usd, usd_price
from compactor.errors import ConfigError
from compactor.pricing import archive_skip_reason, worth_archiving
from compactor.pricing._costs import SIZE_CLASSES, CostAccumulator, estimate
from compactor.pricing._prices import GB, known_regions, load_prices, prices_for
from compactor.pricing._requests import (
    PLAN_REQUESTS,
    listing_requests,
    request_tier,
    split_requests,
)
from compactor.records import Report, SceneResult, Totals
from compactor.report import RunRecorder, cost_lines, render_html, summary_lines, write_report
from compactor.runner._planner import plan_cost, row_result
from compactor.scene import RunContext
from compactor.settings import resolve_settings
from compactor.storage import S3Options

from .. import rasters
from ..conftest import REPO, S3
from ..runner.test_scale import ARCHIVE, DEST, PLAIN_SCENE, SRC

KiB, MiB = 1024, 1024**2
US = load_prices("us-east-1")
#: us-east-1 list prices, written out: the figures the hand computations use.
STD, GLACIER, DEEP = 0.023, 0.0036, 0.00099
PUT, GET, GLACIER_PUT, DEEP_PUT = 0.005, 0.0004, 0.03, 0.05
#: What one scene archived to a prefix requests (docs/backfill.md: 9 requests).
ARCHIVED = {"PutObject": 3, "GetObject": 2, "HeadObject": 1, "CopyObject": 1, "DeleteObject": 2}


def scene(
    name: str, status: str, bytes_in: int | None, bytes_out: int | None, **kw: Any
) -> SceneResult:
    return SceneResult(
        source=f"s3://b/{name}", status=status, bytes_in=bytes_in, bytes_out=bytes_out, **kw
    )


def line(c: Any, label_start: str, side: str = "after") -> Any:
    (found,) = [x for x in c.lines if x.side == side and x.label.startswith(label_start)]
    return found


# --- prices as data ----------------------------------------------------------------------------


def test_every_region_prices_every_class() -> None:
    regions = known_regions()
    assert {"us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1",
            "ap-southeast-2", "ap-northeast-1"} <= set(regions)  # fmt: skip
    classes = {"STANDARD", "INTELLIGENT_TIERING", "STANDARD_IA", "ONEZONE_IA", "GLACIER_IR",
               "GLACIER", "DEEP_ARCHIVE"}  # fmt: skip
    for region in regions:
        table = load_prices(region)
        assert table.region == region
        assert table.date == "2025-01"
        assert table.source.startswith("https://aws.amazon.com/s3/pricing")
        assert {c.name for c in table.classes} == classes, region
        for c in table.classes:
            assert 0 < c.storage < 0.03, (region, c)
            assert 0 < c.get <= 0.01, (region, c)
            assert 0 < c.put <= 0.1, (region, c)
        it = table["INTELLIGENT_TIERING"]
        assert [name for name, _ in it.tiers] == [
            "frequent", "infrequent", "archive_instant", "archive_access", "deep_archive_access",
        ]  # fmt: skip
        assert it.monitoring == 0.0025
        assert it.monitoring_min_bytes == 128 * KiB
        # archive classes are cheaper to keep and dearer to write, in every region
        assert table["DEEP_ARCHIVE"].storage < table["GLACIER"].storage < table.standard.storage
        assert table["DEEP_ARCHIVE"].put > table["GLACIER"].put > table.standard.put


def test_us_east_1_list_prices_and_class_rules() -> None:
    assert (US.standard.storage, US.standard.put, US.standard.get) == (STD, PUT, GET)
    g, d = US["GLACIER"], US["DEEP_ARCHIVE"]
    assert (g.storage, g.put, g.minimum_days) == (GLACIER, GLACIER_PUT, 90)
    assert (d.storage, d.put, d.minimum_days) == (DEEP, DEEP_PUT, 180)
    assert (g.overhead_standard_bytes, g.overhead_class_bytes) == (8 * KiB, 32 * KiB)
    assert (US["GLACIER_IR"].minimum_bytes, US["STANDARD_IA"].minimum_bytes) == (128 * KiB,) * 2
    assert (US["STANDARD_IA"].minimum_days, US["STANDARD_IA"].retrieval) == (30, 0.01)
    assert load_prices("eu-central-1").standard.storage == 0.0245
    assert load_prices("eu-central-1").notes  # flagged uncertain, and the report says so


def test_an_unknown_region_is_a_usage_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        load_prices("mars-north-1")
    message = str(err.value)
    assert "mars-north-1" in message
    assert all(region in message for region in known_regions())
    with pytest.raises(ConfigError):
        prices_for("mars-north-1", "us-east-1")
    settings = resolve_settings(
        {"source": "s3://a/x/", "dest": "s3://b/y/", "price_region": "mars-north-1"}, environ={}
    )
    with pytest.raises(ConfigError, match="known regions: us-east-1"):
        RunContext.from_settings(settings, "r1")


def test_the_price_region_defaults_to_the_run_region_else_us_east_1() -> None:
    assert prices_for("EU-WEST-1").region == "eu-west-1"
    assert prices_for(None, "eu-central-1").region == "eu-central-1"
    unknown = prices_for(None, None)
    assert unknown.region == "us-east-1"
    assert any("region is not known" in n for n in unknown.notes)
    elsewhere = prices_for(None, "sa-east-1")
    assert elsewhere.region == "us-east-1"
    assert any("sa-east-1 is not in" in n for n in elsewhere.notes)
    assert any("S3-compatible" in n for n in prices_for(None, None, "http://minio:9000").notes)


def test_the_run_context_carries_the_prices_as_plain_data() -> None:
    settings = resolve_settings(
        {"source": "s3://a/x/", "dest": "s3://b/y/", "payback_months": 6},
        environ={"AWS_REGION": "eu-west-1", "COMPACTOR_NODE_HOUR_PRICE": "0.2"},
    )
    assert (settings.payback_months, settings.node_hour_price) == (6, 0.2)
    context = RunContext.from_settings(settings, "r1")
    assert context.prices.region == "eu-west-1"
    assert context.payback_months == 6
    again = pickle.loads(pickle.dumps(context))  # what a worker receives
    assert again.prices == context.prices
    assert resolve_settings({}, environ={}).payback_months == 12


def test_the_price_file_ships_with_the_package() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "pricing/prices.json" in data["tool"]["setuptools"]["package-data"]["compactor"]
    raw = json.loads((REPO / "compactor/pricing/prices.json").read_text())
    assert raw["date"]
    assert raw["source"]
    assert raw["notes"]


# --- requests ----------------------------------------------------------------------------------


def test_operations_are_billed_in_their_price_column() -> None:
    get = ["GetObject", "HeadObject", "GetObjectTagging", "HeadBucket", "GetObjectRetention"]
    put = ["PutObject", "CopyObject", "ListObjectsV2", "ListParts", "CreateMultipartUpload",
           "UploadPart", "UploadPartCopy", "CompleteMultipartUpload", "PutObjectLegalHold"]  # fmt: skip
    free = ["DeleteObject", "DeleteObjects", "AbortMultipartUpload"]
    assert {op: request_tier(op) for op in get + put + free} == {
        **dict.fromkeys(get, "get"), **dict.fromkeys(put, "put"), **dict.fromkeys(free, "free"),
    }  # fmt: skip


def test_only_the_archive_copy_is_billed_at_the_archive_class() -> None:
    requests = {"UploadPartCopy": 3, "CreateMultipartUpload": 2, "CompleteMultipartUpload": 2,
                "UploadPart": 4, "GetObject": 1, "DeleteObject": 1}  # fmt: skip
    split = sorted(split_requests(requests, "DEEP_ARCHIVE"))
    assert split == [
        ("CompleteMultipartUpload", "put", "DEEP_ARCHIVE", 1),
        ("CompleteMultipartUpload", "put", "STANDARD", 1),  # the output's
        ("CreateMultipartUpload", "put", "DEEP_ARCHIVE", 1),
        ("CreateMultipartUpload", "put", "STANDARD", 1),
        ("DeleteObject", "free", "STANDARD", 1),
        ("GetObject", "get", "STANDARD", 1),
        ("UploadPart", "put", "STANDARD", 4),
        ("UploadPartCopy", "put", "DEEP_ARCHIVE", 3),
    ]
    # without an archive class nothing is billed as an archive write
    assert {cls for *_, cls, _ in split_requests(requests, None)} == {"STANDARD"}


def test_a_plan_estimates_the_requests_of_the_readme_table() -> None:
    for mode in ("prefix", "in-place", "none"):
        assert PLAN_REQUESTS[mode] == PLAIN_SCENE[mode]  # what tests/runner/test_scale.py counts
    assert sum(PLAN_REQUESTS["prefix"].values()) == 9
    assert sum(PLAN_REQUESTS["none"].values()) == 6
    assert listing_requests(2500) == {"ListObjectsV2": 3}
    row = {"source": "s3://a/k.tif", "action": "compact", "bytes_in": 90 * KiB,
           "est_bytes_out": 30 * KiB, "archive_skipped": "left in STANDARD: ..."}  # fmt: skip
    assert row_result(row, "prefix").requests == PLAN_REQUESTS["none"]  # stays: no copy
    assert row_result({**row, "archive_skipped": None}, "prefix").requests == ARCHIVED


# --- one-time, monthly, payback, by hand -------------------------------------------------------


def test_one_time_monthly_and_payback_by_hand() -> None:
    scenes = [
        scene("a", "compacted", 10 * GB, 1 * GB, requests=ARCHIVED),
        scene("b", "compacted", 1 * GB, GB // 2, requests=ARCHIVED),
        scene("c", "failed", 5 * MiB, None, requests={"PutObject": 1, "GetObject": 2,
                                                      "DeleteObject": 1}),
    ]  # fmt: skip
    c = estimate(scenes, "GLACIER", US, run_requests={"ListObjectsV2": 1, "PutObject": 2},
                 hours=2, workers=3, node_hour_price=0.1)  # fmt: skip
    # once: STANDARD PUT-class 3 + 3 + 1 (c) + 1 LIST + 2 report PUTs = 10; COPY into GLACIER
    # 2; GET-class (2 + 1) * 2 + 2 (c) = 8; DELETE 5, free; compute 2 h x 3 workers x $0.1
    requests = 10 * PUT / 1000 + 2 * GLACIER_PUT / 1000 + 8 * GET / 1000
    assert c.one_time_usd == pytest.approx(requests + 0.6)
    by_label = {x.label: x for x in c.one_time}
    assert by_label["PUT, COPY, POST, LIST requests, STANDARD price"].quantity == 10
    assert by_label["PUT, COPY, POST, LIST requests, GLACIER price"].usd == pytest.approx(6e-5)
    assert by_label["GET, HEAD and other requests, STANDARD price"].quantity == 8
    assert by_label["DELETE requests (free)"].usd == 0
    assert by_label["DELETE requests (free)"].quantity == 5
    assert by_label["compute: 3 workers for 2.00 hours"].quantity == 6
    assert c.requests == {"CopyObject": 2, "DeleteObject": 5, "GetObject": 6, "HeadObject": 2,
                          "ListObjectsV2": 1, "PutObject": 9}  # fmt: skip
    # per month, over the compacted scenes only
    before = 11 * STD
    overhead = 2 * (8 * KiB / GB * STD + 32 * KiB / GB * GLACIER)
    after = 1.5 * STD + 11 * GLACIER + overhead
    assert c.before_usd_month == pytest.approx(before)
    assert c.after_usd_month == pytest.approx(after)
    assert c.saving_usd_month == pytest.approx(before - after)
    assert sum(x.usd_month for x in c.lines if x.side == "after") == pytest.approx(after)
    assert line(c, "originals archived in GLACIER").objects == 2
    assert line(c, "GLACIER overhead: 8 KiB per object at STANDARD").usd_per_gb_month == STD
    assert c.payback_months == pytest.approx((requests + 0.6) / (before - after))
    assert c.minimum_days == 90
    assert c.minimum_commitment_usd == pytest.approx(11 * GLACIER * 3)
    assert (c.archived, c.left_in_place, c.held_in_place) == (2, 0, 0)


def test_no_saving_never_pays_back() -> None:
    c = estimate([scene("a", "compacted", GB, GB // 2, requests={"PutObject": 3})], None, US)
    assert c.saving_usd_month < 0  # the COG is added, the original stays
    assert c.payback_months is None
    assert months(c.payback_months) == "never"
    assert any("not archived" in n for n in c.notes)


def test_compute_needs_a_price_hours_and_workers() -> None:
    s = [scene("a", "compacted", GB, GB // 4, requests=ARCHIVED)]
    priced = estimate(s, "GLACIER", US, hours=1.5, workers=4, node_hour_price=0.2)
    (compute,) = [x for x in priced.one_time if x.kind == "compute"]
    assert (compute.quantity, compute.usd, compute.unit) == (6.0, pytest.approx(1.2), "node-hours")
    assert (priced.hours, priced.workers, priced.node_hour_price) == (1.5, 4, 0.2)
    unknown = estimate(s, "GLACIER", US, hours=1.5, node_hour_price=0.2)
    assert not [x for x in unknown.one_time if x.kind == "compute"]
    assert any("hours or workers are not known" in n for n in unknown.notes)
    unpriced = estimate(s, "GLACIER", US, hours=1.5, workers=4)
    assert any("--node-hour-price" in n for n in unpriced.notes)
    assert unpriced.one_time_usd == pytest.approx(priced.one_time_usd - 1.2)


# --- what stays in place, what is kept, what is held ------------------------------------------


def test_originals_left_kept_and_held_are_billed_after() -> None:
    base = {"requests": ARCHIVED}
    left = scene("left", "compacted", GB, GB // 4, archive_skipped="left in STANDARD: ...",
                 requests=PLAN_REQUESTS["none"])  # fmt: skip
    kept = scene("kept", "compacted", GB, GB // 4, kept_version="v1", **base)
    held = scene("held", "held", GB, GB // 4, reason="Object Lock legal hold", **base)
    glacier = GLACIER + 8 * KiB / GB * STD + 32 * KiB / GB * GLACIER  # one archived GiB
    for s, after in (
        (left, 0.25 * STD + STD),  # the COG and the original, still in STANDARD
        (kept, 0.25 * STD + glacier + STD),  # + the noncurrent version in STANDARD
        (held, 0.25 * STD + glacier + STD),  # + the original at its source
    ):
        c = estimate([s], "GLACIER", US)
        assert c.before_usd_month == pytest.approx(STD), s.source
        assert c.after_usd_month == pytest.approx(after), s.source
    c = estimate([left, kept, held], "GLACIER", US, payback_months=12)
    assert (c.archived, c.left_in_place, c.held_in_place, c.kept_versions) == (2, 1, 1, 1)
    assert line(c, "originals left in STANDARD").objects == 1
    assert line(c, "noncurrent versions kept in STANDARD").objects == 1
    assert line(c, "originals held at their source in STANDARD").objects == 1
    assert line(c, "originals archived in GLACIER").objects == 2
    notes = " | ".join(c.notes)
    assert "originals left where they were: 1 (moving them would not pay back" in notes
    assert "--payback-months 12" in notes
    assert "originals held at their source: 1" in notes
    assert "originals kept as noncurrent versions: 1" in notes


def test_originals_in_an_infrequent_access_class() -> None:
    """Listed in STANDARD_IA: billed at least 128 KiB there before, and reading them costs a
    retrieval per GB (the GET of the scene, and the COPY of the archive copy)."""
    s = scene("ia", "compacted", 64 * KiB, 16 * KiB, source_class="STANDARD_IA",
              requests=ARCHIVED)  # fmt: skip
    c = estimate([s], "GLACIER", US)
    assert c.before_usd_month == pytest.approx(128 * KiB / GB * 0.0125)
    (retrieval,) = [x for x in c.one_time if x.kind == "retrieval"]
    assert retrieval.quantity == pytest.approx(2 * 64 * KiB / GB)
    assert retrieval.usd == pytest.approx(2 * 64 * KiB / GB * 0.01)
    assert any("STANDARD_IA: deleting or moving one before 30 days" in n for n in c.notes)


# --- one original: worth archiving? ------------------------------------------------------------


def test_small_originals_do_not_pay_back_in_glacier_and_large_ones_do() -> None:
    once = GLACIER_PUT / 1000 + GET / 1000  # the COPY into GLACIER and the HEAD

    def saving(size: int) -> float:
        after = (size + 32 * KiB) / GB * GLACIER + 8 * KiB / GB * STD
        return size / GB * STD - after

    worth, small = worth_archiving(50_000, "GLACIER", US, 12)
    assert not worth
    assert small == pytest.approx(once / saving(50_000))
    assert small is not None
    assert 40 < small < 60  # about four years
    worth, large = worth_archiving(50 * 10**6, "GLACIER", US, 12)
    assert worth
    assert large == pytest.approx(once / saving(50 * 10**6))
    assert large is not None
    assert large < 0.1
    # payback 0: always archive (and still say how long it takes)
    assert worth_archiving(50_000, "GLACIER", US, 0) == (True, small)
    # DEEP_ARCHIVE's COPY is dearer: the same small original takes longer still
    deep = worth_archiving(50_000, "DEEP_ARCHIVE", US, 12)[1]
    assert deep is not None
    assert deep > small
    # a 1 KB original costs more per month in GLACIER than in STANDARD (40 KiB overhead)
    assert worth_archiving(1000, "GLACIER", US, 12) == (False, None)
    # in place adds the record written before the class changes
    in_place = worth_archiving(50_000, "GLACIER", US, 12, in_place=True)[1]
    assert in_place == pytest.approx((once + PUT / 1000) / saving(50_000))


def test_the_reason_an_original_stays() -> None:
    _, taken = worth_archiving(90 * KiB, "GLACIER", US, 12)
    assert archive_skip_reason(90 * KiB, "GLACIER", taken, 12) == (
        "left in STANDARD: moving 90.0 KiB to GLACIER would take 22 months to pay back "
        "(--payback-months 12)"
    )
    assert archive_skip_reason(1000, "GLACIER", None, 12, current_class="STANDARD_IA") == (
        "left in STANDARD_IA: moving 1000 B to GLACIER would never pay back (it would cost "
        "more per month there)"
    )


# --- size classes ------------------------------------------------------------------------------


def test_costs_per_size_class() -> None:
    sizes = [50_000, 500 * KiB, 5 * MiB, 50 * MiB, 500 * MiB]
    scenes = [scene(f"s{i}", "compacted", n, n // 4, requests=ARCHIVED)
              for i, n in enumerate(sizes)]  # fmt: skip
    scenes += [scene("t", "skipped", 60_000, None, requests=PLAN_REQUESTS["left as it is"]),
               scene("refused", "failed", None, None)]  # fmt: skip
    c = estimate(scenes, "GLACIER", US, run_requests={"ListObjectsV2": 1})
    assert [r.size_class for r in c.size_classes] == [*(s for s, _, _ in SIZE_CLASSES),
                                                      "size unknown"]  # fmt: skip
    small = c.size_classes[0]
    assert (small.objects, small.compacted, small.archived) == (2, 1, 1)
    assert small.bytes_before == 50_000
    assert small.bytes_after == 12_500
    # its one-time cost: the compacted scene's 9 requests and the skipped one's 5
    per_archived = 3 * PUT / 1000 + GLACIER_PUT / 1000 + 3 * GET / 1000
    per_left = 2 * PUT / 1000 + 2 * GET / 1000
    assert small.one_time_usd == pytest.approx(per_archived + per_left)
    before = 50_000 / GB * STD
    after = 12_500 / GB * STD + (50_000 + 32 * KiB) / GB * GLACIER + 8 * KiB / GB * STD
    assert small.saving_usd_month == pytest.approx(before - after)
    assert small.payback_months is not None
    assert small.payback_months > 12
    large = c.size_classes[4]
    assert large.payback_months is not None
    assert large.payback_months < 0.01
    assert c.size_classes[-1].objects == 1
    assert c.size_classes[-1].compacted == 0
    # the rows share out the scenes' costs; the run's own LIST is in no row
    assert sum(r.one_time_usd for r in c.size_classes) == pytest.approx(c.one_time_usd - PUT / 1000)
    assert sum(r.saving_usd_month for r in c.size_classes) == pytest.approx(c.saving_usd_month)


def test_a_weighted_scene_stands_for_its_stratum() -> None:
    one = CostAccumulator("GLACIER", US)
    one.add(scene("a", "compacted", MiB, MiB // 4, requests=ARCHIVED), weight=1000)
    many = CostAccumulator("GLACIER", US)
    for i in range(1000):
        many.add(scene(f"a{i}", "compacted", MiB, MiB // 4, requests=ARCHIVED))
    a, b = one.estimate(), many.estimate()
    assert a.one_time_usd == pytest.approx(b.one_time_usd)
    assert a.after_usd_month == pytest.approx(b.after_usd_month)
    assert a.size_classes[0].objects == b.size_classes[0].objects == 1000
    assert a.requests == b.requests


# --- money as money ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "full", "short"),
    [
        (1234.5678, "$1,234.57", "$1,234.57"),
        (1_000_000, "$1,000,000.00", "$1,000,000.00"),
        (0.42, "$0.42", "$0.42"),
        (0.01, "$0.01", "$0.01"),
        (0.0042, "$0.0042", "< $0.01"),
        (1.04e-05, "$0.000010", "< $0.01"),
        (2.1e-08, "$0.000000021", "< $0.01"),
        (0, "$0.00", "$0.00"),
        (-0.03, "-$0.03", "-$0.03"),
        (-1.04e-05, "-$0.000010", "> -$0.01"),
        (-2500, "-$2,500.00", "-$2,500.00"),
    ],
)
def test_money_is_never_in_scientific_notation(amount: float, full: str, short: str) -> None:
    assert usd(amount) == full
    assert usd(amount, short=True) == short


def test_prices_and_payback_times_as_text() -> None:
    assert [usd_price(p) for p in (0.023, 0.00099, 0.05, 1.0, 0.0245)] == [
        "$0.023", "$0.00099", "$0.05", "$1.00", "$0.0245",
    ]  # fmt: skip
    assert [months(m) for m in (None, 0.01, 2.34, 31.4, 5000)] == [
        "never", "< 0.1 months", "2.3 months", "31 months", "over 100 years",
    ]  # fmt: skip


# --- the report: cost section, held scenes -----------------------------------------------------


def _report(tmp_path: Path, results: list[SceneResult], **kw: Any) -> Report:
    recorder = RunRecorder(
        str(tmp_path / "report"), S3Options(), storage_class="GLACIER", prices=US,
        payback_months=12, node_hour_price=0.5,
    )  # fmt: skip
    with recorder:
        for r in results:
            recorder.add(r)
        recorder.add_requests({"ListObjectsV2": 3, "PutObject": 4})
    report = recorder.report(run_id="r1", started="s", finished="f",
                             settings={"source": "s3://b/"}, **kw)  # fmt: skip
    return write_report(report, str(tmp_path / "report"), S3Options())


def test_held_scenes_are_counted_kept_and_shown(tmp_path: Path) -> None:
    totals = Totals()
    for status in ("compacted", "held", "skipped", "failed", "held"):
        totals.add(scene("x", status, 100, 10))
    assert (totals.compacted, totals.held, totals.skipped, totals.failed) == (1, 2, 1, 1)
    assert (totals.bytes_in, totals.bytes_out) == (300, 30)  # held outputs exist

    results = [
        scene("a.tif", "compacted", 4 * MiB, MiB, requests=ARCHIVED),
        scene("locked.tif", "held", 4 * MiB, MiB, requests=ARCHIVED,
              reason="Object Lock legal hold: the original could not be deleted"),
    ]  # fmt: skip
    report = _report(tmp_path, results, hours=0.5, workers=2)
    assert report.ok  # held is not a failure: exit status 0
    assert [s.source for s in report.held] == ["s3://b/locked.tif"]
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert data["totals"]["held"] == 1
    assert data["totals"]["compacted"] == 1
    assert [s["reason"] for s in data["held"]] == [results[1].reason]
    page = (tmp_path / "report" / "report.html").read_text()
    held = page.split("<h2>Held scenes</h2>", 1)[1].split("</table>", 1)[0]
    assert "locked.tif" in held
    assert "Object Lock legal hold" in held
    assert '<td class="held">held</td>' in held
    lines = summary_lines(report)
    assert lines[0] == (
        "run r1: 2 scenes - 1 compacted in this run, 1 held, 0 finished earlier, 0 skipped, "
        "0 failed"
    )
    assert (
        "held 1 (archived, original not deleted; a later run finishes it): Object Lock legal "
        "hold" in lines
    )
    # the held original is billed at its source as well as in GLACIER
    assert report.cost is not None
    assert report.cost.held_in_place == 1

    bar = SceneProgress("compacting", enabled=False)
    for r in results:
        bar.advance(r)
    assert bar.counts == {"compacted": 1, "held": 1, "skipped": 0, "failed": 0}


def test_the_cost_section_and_summary(tmp_path: Path) -> None:
    results = [
        scene("big.tif", "compacted", 50 * MiB, 10 * MiB, requests=ARCHIVED),
        scene("small.tif", "compacted", 50_000, 10_000, requests=PLAN_REQUESTS["none"],
              archive_skipped="left in STANDARD: moving 48.8 KiB to GLACIER would take 49 "
              "months to pay back (--payback-months 12)"),
    ]  # fmt: skip
    report = _report(tmp_path, results, hours=0.25, workers=2)
    c = report.cost
    assert c is not None
    assert c.one_time_usd == pytest.approx(
        (3 + 3 + 3 + 4) * PUT / 1000 + GLACIER_PUT / 1000 + (3 + 2) * GET / 1000 + 0.25 * 2 * 0.5
    )
    assert c.payback_limit_months == 12
    assert c.left_in_place == 1
    page = render_html(report)
    cost = page.split("<h2>Cost</h2>", 1)[1].split("<h2>", 1)[0]
    for heading in ("one-time cost", "per month before", "per month after",
                    "saving per month", "pays back in"):  # fmt: skip
        assert f"<th>{heading}</th>" in cost
    assert "<h3>Once</h3>" in cost
    assert "<h3>Per month</h3>" in cost
    assert "<h3>By size of the originals</h3>" in cost
    assert "compute: 2 workers for 0.25 hours" in cost
    assert "$0.03 per 1,000 requests" in cost  # the COPY into GLACIER
    assert "left in STANDARD" in cost  # why the small original stayed
    money = re.findall(r"-?\$[0-9][0-9,.]*(?:e-?\d+)?", page)
    assert money
    assert not [m for m in money if "e" in m]
    lines = summary_lines(report)
    storage = next(x for x in lines if x.startswith("storage: "))
    assert "us-east-1 prices of 2025-01" in storage
    assert "e-0" not in storage
    one_time = next(x for x in lines if x.startswith("one-time: "))
    assert one_time.startswith("one-time: $0.25 (requests < $0.01, compute $0.25); pays back in ")
    assert (
        "originals left where they were: 1 (moving them would not pay back within "
        "--payback-months 12)" in lines
    )
    again = Report.model_validate_json((tmp_path / "report" / "report.json").read_text())
    assert again.cost == report.cost


def test_a_run_that_recorded_no_requests_claims_no_payback() -> None:
    c = estimate([scene("a", "compacted", GB, GB // 4)], "GLACIER", US)
    assert c.one_time_usd == 0
    assert any("requests were not recorded" in n for n in c.notes)
    assert "one-time: not counted (no requests were recorded)" in cost_lines(c)
    recorded = estimate([scene("a", "compacted", GB, GB // 4, requests=ARCHIVED)], "GLACIER", US)
    assert cost_lines(recorded)[1].startswith("one-time: < $0.01 (requests < $0.01); pays back in")


# --- a plan --------------------------------------------------------------------------------------


def test_a_plan_prices_its_requests_and_leaves_small_originals(
    s3: S3, dask_scheduler: str, tmp_path: Path
) -> None:
    """Generated scenes are a few KiB: with --payback-months 12 none is worth moving to
    GLACIER (the plan says why, and prices the requests of a scene that keeps its original);
    with 0 every one is archived; a sampled plan stands its scenes for the whole listing."""
    import compactor

    for i in range(3):
        data = rasters.rgb(tmp_path / f"s{i}.tif", size=96 + 32 * i, seed=i).read_bytes()
        s3.put("src-bucket", f"scenes/s{i}.tif", data)
    kept = compactor.plan(source=SRC, dest=DEST, archive=ARCHIVE, scheduler=dask_scheduler,
                          progress=False, payback_months=12)  # fmt: skip
    compact = kept[kept["action"] == "compact"]
    assert len(compact) >= 2
    assert all(str(r).startswith("left in STANDARD: moving ") for r in compact["archive_skipped"])
    cost = plan_cost(kept)
    assert cost is not None
    assert (cost.archived, cost.left_in_place) == (0, len(compact))
    expected: dict[str, int] = {"ListObjectsV2": 1}
    for row in kept.to_dict(orient="records"):
        for op, n in row_result(row, "prefix").requests.items():
            expected[op] = expected.get(op, 0) + n
    assert cost.requests == expected
    assert "CopyObject" not in cost.requests
    assert cost.payback_months is None  # COGs added, originals kept: nothing saved
    assert kept.attrs["one_time_usd"] == pytest.approx(cost.one_time_usd)

    moved = compactor.plan(source=SRC, dest=DEST, archive=ARCHIVE, scheduler=dask_scheduler,
                           progress=False, payback_months=0)  # fmt: skip
    everything = plan_cost(moved)
    assert everything is not None
    assert everything.archived == len(compact)
    assert everything.requests["CopyObject"] == len(compact)
    assert moved["archive_skipped"].isna().all()

    sampled = compactor.plan(source=SRC, dest=DEST, archive=ARCHIVE, scheduler=dask_scheduler,
                             progress=False, payback_months=0, sample=2, seed=1)  # fmt: skip
    estimate_ = plan_cost(sampled)
    assert estimate_ is not None
    assert sum(r.objects for r in estimate_.size_classes) == 3  # the listing, not the sample
    assert estimate_.requests["ListObjectsV2"] == 1
