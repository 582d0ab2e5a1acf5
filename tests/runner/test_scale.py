"""Archive scale: what a scene costs in requests, what a sweep costs for finished scenes,
the finished index, streaming discovery and the bounded fan-out, inventory runs, sampled
plans and verifications."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from compactor.records import SceneResult, Step
from compactor.runner._fanout import stream
from compactor.scene import is_recorded, reads_whole
from compactor.settings import resolve_settings
from compactor.sources import IndexWriter
from compactor.sources._finished import (
    COMPACTED,
    LEFT,
    Conditions,
    Entry,
    FinishedIndex,
    index_root,
)
from compactor.sources._select import collision_runs, selected
from compactor.storage import LocalStore, Location, ObjectInfo

from .. import rasters
from ..conftest import S3
from ..faultproxy import FaultProxy
from ..inventory_fixture import write_inventory
from ..reports import scenes_of
from .test_run_s3 import load_report

SRC = "s3://src-bucket/scenes/"
DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"


# --- decisions, as tables ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "mode", "final", "chunked", "written"),
    [
        # A one-task scene archived to a prefix: nothing before ``archived``.
        (Step.ENCODED, "prefix", Step.DELETED, False, False),
        (Step.VERIFIED, "prefix", Step.DELETED, False, False),
        (Step.ARCHIVED, "prefix", Step.DELETED, False, True),
        # The delete is not recorded: archived and gone is complete.
        (Step.DELETED, "prefix", Step.DELETED, False, False),
        (Step.DELETED, "prefix", Step.DELETED, True, False),
        # In place: the record says the original is ours before its class changes.
        (Step.VERIFIED, "in-place", Step.ARCHIVED, False, True),
        (Step.ARCHIVED, "in-place", Step.ARCHIVED, False, True),
        # Originals left: verified is the last step, recorded.
        (Step.ENCODED, "none", Step.VERIFIED, False, False),
        (Step.VERIFIED, "none", Step.VERIFIED, False, True),
        # A chunked output is expensive to redo: every step is recorded.
        (Step.ENCODED, "prefix", Step.DELETED, True, True),
        (Step.VERIFIED, "prefix", Step.DELETED, True, True),
        # Claims are never records of their own.
        (Step.DISCOVERED, "none", Step.VERIFIED, True, False),
    ],
)
def test_which_steps_are_recorded(
    step: Step, mode: str, final: Step, chunked: bool, written: bool
) -> None:
    assert is_recorded(step, archive_mode=mode, final=final, chunked=chunked) is written


def _info(size: int = 10, storage_class: str = "STANDARD") -> ObjectInfo:
    return ObjectInfo(url="s3://b/k.tif", size=size, etag='"e"', storage_class=storage_class)


def test_when_the_walk_reads_the_original_whole() -> None:
    from compactor.records import Fingerprint, SceneState

    def state(step: Step, sha: str | None = None) -> SceneState:
        return SceneState(
            source="s3://b/k.tif", fingerprint=Fingerprint(size=10), step=step,
            source_sha256=sha, run_id="r", updated="t",
        )  # fmt: skip

    assert reads_whole(None, _info(), final=Step.DELETED)  # to encode it
    assert not reads_whole(None, _info(storage_class="GLACIER"), final=Step.DELETED)
    assert reads_whole(state(Step.VERIFIED), _info(), final=Step.DELETED)  # to hash it
    assert not reads_whole(state(Step.VERIFIED, "ab"), _info(), final=Step.DELETED)
    assert not reads_whole(state(Step.ARCHIVED, "ab"), _info(), final=Step.DELETED)
    assert not reads_whole(state(Step.VERIFIED), _info(), final=Step.VERIFIED)


@pytest.mark.parametrize(
    ("settings", "info", "kept"),
    [
        ({"min_size": 100}, {"size": 99}, False),
        ({"min_size": 100}, {"size": 100}, True),
        ({"max_size": "1KiB"}, {"size": 1025}, False),
        ({"source_classes": "standard"}, {"storage_class": "GLACIER"}, False),
        ({"source_classes": "standard glacier"}, {"storage_class": "GLACIER"}, True),
        ({"modified_since": "2024-05-01"}, {"mtime": "2024-04-30T23:59:59+00:00"}, False),
        ({"modified_since": "2024-05-01"}, {"mtime": "2024-05-01T00:00:00+00:00"}, True),
        ({"modified_before": "2024-05-01T12:00:00+02:00"}, {"mtime": "2024-05-01T10:00:00Z"}, False),
        ({"modified_before": "2024-05-01T12:00:00+02:00"}, {"mtime": "2024-05-01T09:59:59Z"}, True),
        ({"modified_since": "2024-05-01"}, {"mtime": None}, False),
    ],
)  # fmt: skip
def test_filters(settings: dict[str, Any], info: dict[str, Any], kept: bool) -> None:
    s = resolve_settings({"source": "s3://a/b/", "dest": "s3://c/d/", **settings}, environ={})
    obj = ObjectInfo(**{"url": "s3://a/b/x.tif", "size": 500, **info})
    assert selected(obj, s) is kept


def test_collision_runs_hold_only_names_that_can_collide() -> None:
    keys = ["a.b.jp2", "a.jp2", "a.tif", "a.tiff", "ab.tif", "d/a.tif", "d/b.tif", "d/b.TIF"]
    assert list(collision_runs(keys, key=str)) == [
        ["a.b.jp2", "a.jp2", "a.tif", "a.tiff"],
        ["ab.tif"],
        ["d/a.tif"],
        ["d/b.tif", "d/b.TIF"],
    ]
    # A long listing of distinct names never grows a run: memory is one run, not the listing.
    many = (f"scene{i:07d}.tif" for i in range(100_000))
    assert max(len(run) for run in collision_runs(many, key=str)) == 1


# --- the finished index ----------------------------------------------------------------------


def test_the_last_entry_for_a_source_wins_and_conditions_must_match() -> None:
    cond = Conditions(finish="F", policy="P")
    first = Entry("s3://b/a.tif", "v1", COMPACTED, "F")
    again = Entry("s3://b/a.tif", "v2", COMPACTED, "F")
    left = Entry("s3://b/c.tif", "v9", LEFT, "P")
    other_policy = Entry("s3://b/d.tif", "v3", LEFT, "Q")
    gone = Entry("s3://b/gone.tif", "-", COMPACTED, "F")
    entries = [first, again, left, other_policy, gone]
    from compactor.sources._finished import _h

    index = FinishedIndex.of([_h(e.source) for e in entries], [e.key() for e in entries])
    listed = [
        ObjectInfo(url="s3://b/a.tif", size=1, etag="x"),  # version v1 is not the latest
        ObjectInfo(url="s3://b/c.tif", size=1, etag="y"),
        ObjectInfo(url="s3://b/d.tif", size=1, etag="z"),
        ObjectInfo(url="s3://b/new.tif", size=1, etag="n"),
    ]
    versions = {"s3://b/a.tif": "v2", "s3://b/c.tif": "v9", "s3://b/d.tif": "v3"}

    class Listed(ObjectInfo):
        @property
        def version(self) -> str:
            return versions.get(self.url, "?")

    objs = [Listed(**o.__dict__) for o in listed]
    assert index.finished(objs, cond) == [True, True, False, False]
    # a.tif and c.tif matched; gone.tif was not listed (archived and deleted): 3 earlier.
    assert index.earlier == 3
    # A run that archives after one that left the originals has work left.
    assert FinishedIndex.of([_h(first.source)], [again.key()]).finished(
        objs[:1], Conditions(finish="archive now", policy="P")
    ) == [False]


def test_index_parts_round_trip_and_consolidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from compactor.sources import _finished as finished

    store, dest = LocalStore(), Location.parse(str(tmp_path / "dest")).as_prefix()
    cond = Conditions(finish="F", policy="P")
    for run in range(5):
        writer = IndexWriter(store, dest, f"run{run}", cond, part_scenes=2)
        for i in range(3):
            writer.add(
                SceneResult(
                    source=f"/src/s{run}-{i}.tif", output=f"/dest/s{run}-{i}.tif",
                    status="compacted", finished_version="-",
                )
            )  # fmt: skip
        writer.add(SceneResult(source="/src/failed.tif", status="failed"))  # not finished
        writer.close()
        assert writer.written == 3
    parts = sorted(Path(index_root(dest).key).iterdir())
    assert len(parts) == 10  # two parts a run: 2 + 1 scenes
    monkeypatch.setattr(finished, "CONSOLIDATE_AT", 4)
    index = FinishedIndex.load(store, dest, lambda url: True, consolidate=True)
    assert len(index) == 15
    merged = sorted(Path(index_root(dest).key).iterdir())
    assert [p.name for p in merged] == ["run4-00001~merged.ndjson.gz"]
    again = FinishedIndex.load(store, dest, lambda url: url.endswith("-0.tif"))
    assert (len(again), again.parts) == (5, 1)


# --- the bounded fan-out ---------------------------------------------------------------------


def test_fan_out_keeps_a_bounded_number_in_flight(dask_scheduler: str) -> None:
    from distributed import Client

    pulled = [0]
    ahead: list[int] = []

    def items() -> Any:
        for i in range(60):
            pulled[0] += 1
            yield i

    with Client(dask_scheduler) as client:
        results = []
        for item, result in stream(
            client,
            items(),
            lambda c, _n, x: c.submit(time.sleep, 0.05 + 0 * x, pure=False),
            bound=lambda: 4,
            immediate=lambda x: -x if x % 10 == 0 else None,
        ):
            results.append((item, result))
            ahead.append(pulled[0] - len(results))  # taken from the stream, not yet done
    assert sorted(results, key=lambda r: r[0]) == [
        (i, -i if i % 10 == 0 else None) for i in range(60)
    ]
    assert max(ahead) <= 4  # the stream is consumed only as fast as tasks complete
    assert max(ahead) >= 3  # and the cluster is kept busy


# --- requests per scene, through a counting proxy --------------------------------------------


def _by_scene(trace: list[tuple[str, str]], name: str) -> Counter[str]:
    """The requests that name ``name`` (its source, output, archive copy, record, lease)."""
    return Counter(op for op, path in trace if name in path.split("?")[0])


def _proxied_run(
    s3: S3, cli: Any, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[Any, list[tuple[str, str]]]:
    with FaultProxy(s3.endpoint, error_rate=0, reset_rate=0) as proxy:
        proxy.trace = []
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        result = cli("run", "--source", SRC, "--dest", DEST, *args)
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    assert result.exit_code == 0, result.output
    return result, proxy.trace


#: What one plain scene costs, by mode (the table in docs/backfill.md; each request is justified there).
PLAIN_SCENE = {
    "prefix": {
        "PutObject": 3,  # lease; output; state archived
        "GetObject": 2,  # state; the original, whole
        "HeadObject": 1,  # nothing at the archive key
        "CopyObject": 1,  # the archive copy (checked from its own answer)
        "DeleteObject": 2,  # the original; the lease
    },
    "in-place": {
        "PutObject": 4,  # lease; output; state verified; state archived
        "GetObject": 2,
        "CopyObject": 1,  # the class change
        "HeadObject": 1,  # the copy checked, and its new ETag
        "DeleteObject": 1,  # the lease
    },
    "none": {"PutObject": 3, "GetObject": 2, "DeleteObject": 1},
}


@pytest.mark.parametrize("mode", ["prefix", "in-place", "none"])
def test_requests_per_plain_scene(
    s3: S3, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    s3.put("src-bucket", "scenes/one.tif", rasters.rgb(tmp_path / "one.tif").read_bytes())
    s3.put("src-bucket", "scenes/two.tif", rasters.gray(tmp_path / "two.tif").read_bytes())
    archive = {"prefix": ("--archive", ARCHIVE), "in-place": ("--archive", "in-place")}
    _, trace = _proxied_run(s3, cli, monkeypatch, *archive.get(mode, ()))
    for name in ("one.tif", "two.tif"):
        assert dict(_by_scene(trace, name)) == PLAIN_SCENE[mode], name
    assert sum(PLAIN_SCENE[mode].values()) <= 9


def test_a_sweep_makes_no_request_for_finished_scenes(
    s3: S3, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(4):
        data = rasters.gray(tmp_path / f"g{i}.tif", seed=i).read_bytes()
        s3.put("src-bucket", f"scenes/old{i}.tif", data)
    _proxied_run(s3, cli, monkeypatch, "--archive", ARCHIVE)
    s3.put("src-bucket", "scenes/new.tif", rasters.rgb(tmp_path / "new.tif").read_bytes())
    sweep, trace = _proxied_run(s3, cli, monkeypatch, "--archive", ARCHIVE)
    totals = load_report(s3, sweep.stdout)["totals"]
    assert (totals["compacted"], totals["finished_earlier"]) == (1, 4)
    assert not [path for _, path in trace if "/old" in path]  # not one request
    assert dict(_by_scene(trace, "new.tif")) == PLAIN_SCENE["prefix"]
    ops = Counter(op for op, _ in trace)
    # The source; the finished index; the state records its entries are confirmed by.
    assert ops["ListObjects"] == 3


# --- an S3 Inventory report instead of a listing ---------------------------------------------


def _etag(s3: S3, key: str) -> str:
    return str(s3.client.head_object(Bucket="src-bucket", Key=key)["ETag"]).strip('"')


def test_run_from_an_inventory(s3: S3, cli: Any, tmp_path: Path) -> None:
    a = rasters.rgb(tmp_path / "a.tif").read_bytes()
    b = rasters.gray(tmp_path / "b.tif").read_bytes()
    s3.put("src-bucket", "scenes/a b.tif", a)
    s3.put("src-bucket", "scenes/sub/b.tif", b)
    s3.put("src-bucket", "elsewhere/c.tif", b)
    etag = _etag(s3, "scenes/a b.tif")
    rows = [
        {"key": "scenes/a b.tif", "size": len(a), "etag": etag},
        {"key": "scenes/sub/b.tif", "size": len(b), "etag": _etag(s3, "scenes/sub/b.tif")},
        {"key": "scenes/gone.tif", "size": 1234},  # deleted since the report was made
        {"key": "elsewhere/c.tif", "size": len(b)},  # outside --source
        {"key": "scenes/../escape.tif", "size": 10},  # refused, never read
    ]
    manifest = write_inventory(s3.client, "dst-bucket", "inventory", rows, fmt="Parquet")
    result = cli("run", "--inventory", manifest, "--source", SRC, "--dest", DEST)
    assert result.exit_code == 1, result.output  # the refused key is a failed scene
    scenes = {s["source"]: s for s in scenes_of(load_report(s3, result.stdout))}
    assert set(scenes) == {
        "s3://src-bucket/scenes/a b.tif",
        "s3://src-bucket/scenes/sub/b.tif",
        "s3://src-bucket/scenes/gone.tif",
        "s3://src-bucket/scenes/../escape.tif",
    }
    assert scenes["s3://src-bucket/scenes/a b.tif"]["status"] == "compacted"
    assert scenes["s3://src-bucket/scenes/gone.tif"]["reason"] == (
        "the source was removed after it was listed"
    )
    refused = scenes["s3://src-bucket/scenes/../escape.tif"]
    assert (refused["status"], refused["reason"][:11]) == ("failed", "refused key")
    state = json.loads(
        s3.read("dst-bucket", "cogs/_compactor/state/s3/src-bucket/scenes/a b.tif.json")
    )
    assert state["step"] == Step.VERIFIED
    assert {k for k in s3.keys("dst-bucket", "cogs/") if k.endswith(".tif")} == {
        "cogs/a b.tif",
        "cogs/sub/b.tif",
    }
    # The next run from the same report: the two compacted scenes are finished.
    again = load_report(
        s3, cli("run", "--inventory", manifest, "--source", SRC, "--dest", DEST).stdout
    )
    assert again["totals"]["finished_earlier"] == 2
    wrong = cli("run", "--inventory", manifest, "--source", "s3://arc-bucket/x/", "--dest", DEST)
    assert wrong.exit_code == 2
    assert "not in the inventoried bucket" in wrong.output


# --- sampled plans and verifications ---------------------------------------------------------


def test_plan_sample_extrapolates_with_an_interval(
    s3: S3, dask_scheduler: str, tmp_path: Path
) -> None:
    import compactor

    sizes = []
    for i in range(12):
        path = rasters.rgb(tmp_path / f"s{i}.tif", size=96 + 32 * (i % 4), seed=i)
        data = path.read_bytes()
        sizes.append(len(data))
        s3.put("src-bucket", f"scenes/s{i:02d}.tif", data)
    df = compactor.plan(
        source=SRC, dest=DEST, scheduler=dask_scheduler, progress=False, sample=5, seed=1
    )
    est = df.attrs["estimate"]
    assert df.attrs["sampled"] == len(df) >= 4  # about 5: at least one per size stratum
    assert est["archive_objects"] == 12
    assert est["archive_bytes"] == sum(sizes)
    assert est["output_low"] <= est["output_bytes"] <= est["output_high"]
    assert 0 < est["saving_low"] <= est["saving"] <= est["saving_high"] < 1
    census = compactor.plan(
        source=SRC, dest=DEST, scheduler=dask_scheduler, progress=False, sample=100
    )
    c = census.attrs["estimate"]
    assert len(census) == 12
    assert c["output_low"] == pytest.approx(c["output_high"])  # the whole archive: exact


def test_verify_sample(s3: S3, cli: Any, tmp_path: Path) -> None:
    for i in range(4):
        s3.put(
            "src-bucket",
            f"scenes/v{i}.tif",
            rasters.gray(tmp_path / f"v{i}.tif", seed=i).read_bytes(),
        )
    assert cli("run", "--source", SRC, "--dest", DEST).exit_code == 0
    s3.put("dst-bucket", "cogs/v2.tif", b"tampered")
    everything = cli("verify", DEST, "--sample", "4")
    assert everything.exit_code == 1
    assert "cogs/v2.tif" in everything.output
    assert "a sample of 4 of 4 records" in everything.output
    one = cli("verify", DEST, "--sample", "1", "--seed", "3")
    assert "1 outputs and 0 archive copies checked (a sample of 1 of 4 records)" in one.output
