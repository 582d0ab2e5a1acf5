"""Discovery trusts nothing it reads back: an S3 Inventory manifest does not choose the
bucket, a corrupt or hostile part of the finished index is ignored (never a crash, never
unbounded memory), a forged index entry does not skip a scene, an asset host that does not
resolve fails its scene only, and STAC items are told apart by collection and id."""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

import compactor
from compactor.scene import RunContext
from compactor.settings import resolve_settings
from compactor.sources import _finished as finished
from compactor.sources._finished import FinishedIndex
from compactor.storage import Location, S3Options, S3Store

from .. import rasters
from ..conftest import S3
from ..inventory_fixture import edit_manifest, write_inventory
from ..reports import scenes_of
from ..runner.test_run_s3 import load_report
from .test_stac import COLLECTION, image, item, rustac_serve, stac_api

SRC = "s3://src-bucket/scenes/"
DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"
INDEX = "cogs/_compactor/index/"


# --- an S3 Inventory manifest names its bucket; it does not choose it -----------------------


def _victim(s3: S3, tmp_path: Path) -> tuple[str, bytes]:
    """A bucket the user never named, with one scene in it; its manifest (laid out as the
    inventory of src-bucket, the bucket the user means) names it as its sourceBucket."""
    s3.client.create_bucket(Bucket="victim-bucket")
    data = rasters.gray(tmp_path / "v.tif").read_bytes()
    s3.put("victim-bucket", "scenes/v.tif", data)
    manifest = write_inventory(
        s3.client, "dst-bucket", "inv", [{"key": "scenes/v.tif", "size": len(data)}],
        fmt="CSV", source_bucket="victim-bucket",
    )  # fmt: skip
    # Moved to where src-bucket's inventory would be: the layout claims src-bucket.
    moved = manifest.replace("/victim-bucket/", "/src-bucket/")
    key, new_key = manifest.split("/", 3)[3], moved.split("/", 3)[3]
    for name in ("manifest.json", "manifest.checksum"):
        body = s3.read("dst-bucket", key.replace("manifest.json", name))
        s3.put("dst-bucket", new_key.replace("manifest.json", name), body)
    return moved, data


def _untouched(s3: S3, data: bytes) -> None:
    assert s3.read("victim-bucket", "scenes/v.tif") == data
    assert s3.keys("arc-bucket") == []
    assert not [k for k in s3.keys("dst-bucket", "cogs/") if k.endswith(".tif")]


def test_a_manifest_naming_another_bucket_archives_nothing(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    manifest, data = _victim(s3, tmp_path)
    # Without --source the manifest's sourceBucket used to be the source: refused now.
    result = cli("run", "--inventory", manifest, "--dest", DEST, "--archive", ARCHIVE)
    assert result.exit_code == 2, result.output
    assert "--inventory needs --source s3://BUCKET/" in result.output
    _untouched(s3, data)
    # --source names the bucket the user means; the manifest is of another one.
    result = cli(
        "run", "--inventory", manifest, "--source", SRC, "--dest", DEST, "--archive", ARCHIVE
    )
    assert result.exit_code == 2, result.output
    assert "is the inventory of s3://victim-bucket/" in " ".join(result.output.split())
    _untouched(s3, data)
    # Naming the victim bucket does not make a manifest laid out as src-bucket's its report.
    result = cli(
        "run", "--inventory", manifest, "--source", "s3://victim-bucket/", "--dest", DEST,
        "--archive", ARCHIVE,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "is not where S3 Inventory puts it" in " ".join(result.output.split())
    _untouched(s3, data)


def test_a_manifest_out_of_the_inventory_layout_is_refused(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    data = rasters.gray(tmp_path / "a.tif").read_bytes()
    s3.put("src-bucket", "scenes/a.tif", data)
    rows = [{"key": "scenes/a.tif", "size": len(data)}]
    manifest = write_inventory(s3.client, "dst-bucket", "inv", rows, fmt="CSV")
    # The same report copied to a folder that is not <prefix>/src-bucket/<config>/<date>/.
    key = manifest.split("/", 3)[3]
    for name in ("manifest.json", "manifest.checksum"):
        body = s3.read("dst-bucket", key.replace("manifest.json", name))
        s3.put("dst-bucket", f"elsewhere/2024/{name}", body)
    copied = "s3://dst-bucket/elsewhere/2024/manifest.json"
    result = cli("run", "--inventory", copied, "--source", SRC, "--dest", DEST)
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "is not where S3 Inventory puts it" in out
    assert "<prefix>/src-bucket/<configuration id>/<date>/manifest.json" in out
    # In its place, but with a data file taken from another configuration's folder.
    edit_manifest(
        s3.client, manifest,
        files=[{**f, "key": "inv/src-bucket/other/" + f["key"].rsplit("/", 1)[-1]}
               for f in json.loads(s3.read("dst-bucket", key))["files"]],
    )  # fmt: skip
    result = cli("run", "--inventory", manifest, "--source", SRC, "--dest", DEST)
    assert result.exit_code == 2, result.output
    assert "is not under inv/src-bucket/daily/data/" in " ".join(result.output.split())
    assert s3.read("src-bucket", "scenes/a.tif") == data
    assert not [k for k in s3.keys("dst-bucket", "cogs/") if k.endswith(".tif")]


# --- the finished index: corrupt parts, bombs, forged entries ---------------------------------


def _bomb(size: int, fill: bytes = b"\0") -> bytes:
    """``size`` bytes of ``fill`` gzipped: one gzip member of 1 MiB repeated (members
    concatenate into one gzip stream), a couple of MB whatever ``size``, made at once."""
    return gzip.compress(fill * (1 << 20), compresslevel=9) * (size >> 20)


HOSTILE_PARTS = {
    "zlib-garbage": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + os.urandom(4096),
    "not-gzip": b"just text\n",
    "invalid-utf8": gzip.compress(b'{"source":"s3://src-bucket/scenes/\xff\xfe.tif"}\n\xc3\x28\n'),
    "truncated": gzip.compress(b'{"source":"a","version":"b","kind":"c","on":"d"}\n' * 50)[:-20],
}


def test_hostile_index_parts_are_ignored_and_the_run_goes_on(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    s3.put("src-bucket", "scenes/old.tif", rasters.gray(tmp_path / "old.tif").read_bytes())
    assert cli("run", "--source", SRC, "--dest", DEST).exit_code == 0
    for name, body in HOSTILE_PARTS.items():
        s3.put("dst-bucket", f"{INDEX}zz-{name}.ndjson.gz", body)
    # 2 GiB of zeros (one endless line) and 2 GiB of newlines (endless empty lines).
    s3.put("dst-bucket", f"{INDEX}zz-bomb-zeros.ndjson.gz", _bomb(2 << 30))
    s3.put("dst-bucket", f"{INDEX}zz-bomb-lines.ndjson.gz", _bomb(2 << 30, b"\n"))
    s3.put("src-bucket", "scenes/new.tif", rasters.rgb(tmp_path / "new.tif").read_bytes())
    result = cli("run", "--source", SRC, "--dest", DEST)
    assert result.exit_code == 0, result.output
    report = load_report(s3, result.stdout)
    assert (report["totals"]["compacted"], report["totals"]["finished_earlier"]) == (1, 1)
    assert [s["source"] for s in scenes_of(report)] == ["s3://src-bucket/scenes/new.tif"]


def test_reading_a_bomb_stays_bounded(s3: S3) -> None:
    """Each hostile part alone: ignored (``None``) or its readable lines only, in bounded
    memory; a part decompressing past MAX_PART_BYTES is ignored even with valid lines."""
    from compactor.sources._finished import read_part  # new with the bounds

    for body in HOSTILE_PARTS.values():
        entries, _ = read_part(body, "s3://x/part")
        assert entries is None or entries == []
    tracemalloc.start()
    try:
        for fill in (b"\0", b"\n", b"x"):
            entries, _ = read_part(_bomb(512 << 20, fill), "s3://x/bomb")
            assert entries is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20  # a few decompressed chunks, never the part
    line = b'{"source":"s3://b/k.tif","version":"v","kind":"compacted","on":"F","rec":"e"}\n'
    ok, size = read_part(gzip.compress(line * 1000), "s3://x/ok")
    assert ok is not None
    assert (len(ok), size) == (1000, len(line) * 1000)
    assert ok[0].record == "e"
    mixed, _ = read_part(gzip.compress(line + b"not json\n" + line), "s3://x/mixed")
    assert mixed is not None
    assert len(mixed) == 2  # the bad line skipped, the part kept
    store = S3Store(S3Options(endpoint_url=s3.endpoint))
    s3.put("dst-bucket", f"{INDEX}big.ndjson.gz", gzip.compress(line * 1000))
    dest = Location.parse(DEST)
    assert len(FinishedIndex.load(store, dest, lambda url: True)) == 1
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(finished, "MAX_PART_BYTES", len(line) * 999)
        assert len(FinishedIndex.load(store, dest, lambda url: True)) == 0


def _forge(s3: S3, key: str, rec: str | None = None) -> None:
    """An index part saying ``key``'s listed version was finished under this run's
    settings: everything it needs is computable from the settings and the listing."""
    settings = resolve_settings({"source": SRC, "dest": DEST})
    ctx = RunContext.from_settings(settings, "forger")
    head = s3.client.head_object(Bucket="src-bucket", Key=key)
    version = f"{head['ETag']}|{head['ContentLength']}|STANDARD"
    entry = {"source": f"s3://src-bucket/{key}", "version": version, "kind": "compacted",
             "on": ctx.finish_digest()}  # fmt: skip
    if rec is not None:
        entry["rec"] = rec
    part = gzip.compress((json.dumps(entry) + "\n").encode())
    s3.put("dst-bucket", f"{INDEX}0000-forged-{len(s3.keys('dst-bucket', INDEX))}.ndjson.gz", part)


def test_a_forged_index_entry_does_not_skip_a_scene(s3: S3, cli: Any, tmp_path: Path) -> None:
    s3.put("src-bucket", "scenes/a.tif", rasters.gray(tmp_path / "a.tif").read_bytes())
    _forge(s3, "scenes/a.tif")
    _forge(s3, "scenes/a.tif", rec='"0123456789abcdef0123456789abcdef"')
    result = cli("run", "--source", SRC, "--dest", DEST)
    assert result.exit_code == 0, result.output
    report = load_report(s3, result.stdout)
    assert (report["totals"]["compacted"], report["totals"]["finished_earlier"]) == (1, 0)
    assert "cogs/a.tif" in s3.keys("dst-bucket", "cogs/")
    # The genuine entry the run wrote names the record: the next run skips the scene.
    again = load_report(s3, cli("run", "--source", SRC, "--dest", DEST).stdout)
    assert (again["totals"]["scenes"], again["totals"]["finished_earlier"]) == (0, 1)
    # A record rewritten since (here: by hand) no longer confirms the entry: a task again,
    # which finds the scene done.
    state = "cogs/_compactor/state/s3/src-bucket/scenes/a.tif.json"
    s3.put("dst-bucket", state, s3.read("dst-bucket", state) + b" ")
    third = load_report(s3, cli("run", "--source", SRC, "--dest", DEST).stdout)
    (scene,) = scenes_of(third)
    assert scene["status"] == "skipped"
    assert "already compacted" in scene["reason"]


# --- STAC: hosts that do not resolve; ids across collections ----------------------------------


def test_an_asset_host_that_does_not_resolve_fails_its_scene_only(
    s3: S3, dask_scheduler: str, tmp_path: Path
) -> None:
    s3.put("src-bucket", "scenes/a/image.tif", rasters.gray(tmp_path / "a.tif").read_bytes())
    items = [
        item("a", 0, "2020-03-01T00:00:00Z", {"image": image("s3://src-bucket/scenes/a/image.tif")}),
        item("gone", 0, "2020-03-01T00:00:00Z",
             {"image": image("https://scenes.nowhere.invalid/gone.tif")}),
    ]  # fmt: skip
    with stac_api(tmp_path, items) as api, Client(dask_scheduler) as client:
        report = compactor.run(
            stac=api, collection=[COLLECTION], dest=DEST, client=client, min_saving=-1,
            allow_host=["*.invalid"],
        )  # fmt: skip
    by_item = {s.item: s for s in report.scene_results()}
    assert by_item["a"].status == "compacted"
    assert by_item["gone"].status == "failed"
    assert "cannot resolve scenes.nowhere.invalid" in (by_item["gone"].reason or "")
    assert report.location is not None  # the report was written


def test_items_with_one_id_in_two_collections_stay_apart(
    s3: S3, dask_scheduler: str, tmp_path: Path
) -> None:
    for name, seed in (("uploads", 1), ("victims", 2)):
        data = rasters.gray(tmp_path / f"{name}.tif", seed=seed).read_bytes()
        s3.put("src-bucket", f"{name}/scene-42.tif", data)
    items = []
    for name in ("uploads", "victims"):
        it = item("scene-42", 0, "2020-03-01T00:00:00Z",
                  {"image": image(f"s3://src-bucket/{name}/scene-42.tif")})  # fmt: skip
        it["collection"] = name
        items.append(it)
    with two_collections(tmp_path, items) as api, Client(dask_scheduler) as client:
        report = compactor.run(
            stac=api, collection=["uploads", "victims"], dest=DEST, archive=ARCHIVE,
            client=client, min_saving=-1, allow_bucket=["src-bucket"],
        )  # fmt: skip
    assert report.totals.compacted == 2
    assert report.stac is not None
    assert report.stac.items == 2
    assert report.location is not None
    stac_key = report.location[len("s3://dst-bucket/") :] + "stac/"
    ndjson = [
        json.loads(line)
        for line in s3.read("dst-bucket", stac_key + "items.ndjson").decode().splitlines()
    ]
    assert sorted((i["collection"], i["id"]) for i in ndjson) == [
        ("uploads", "scene-42"), ("victims", "scene-42"),
    ]  # fmt: skip
    for name in ("uploads", "victims"):
        new = json.loads(s3.read("dst-bucket", f"{stac_key}{name}/scene-42.json"))
        assert new["collection"] == name
        assert new["assets"]["image"]["href"] == f"s3://dst-bucket/cogs/{name}/scene-42/image.tif"
        source = new["assets"]["image-source"]
        assert source["href"] == f"s3://arc-bucket/orig/{name}/scene-42.tif"
        assert set(new["assets"]) == {"image", "image-source"}


@contextmanager
def two_collections(tmp_path: Path, items: list[dict[str, Any]]) -> Iterator[str]:
    """``rustac serve`` with collections ``uploads`` and ``victims`` (stac_api's one
    collection, twice under other ids)."""
    folder = tmp_path / "stac-two"
    folder.mkdir()
    hrefs = []
    for cid in ("uploads", "victims"):
        collection = {
            "type": "Collection", "stac_version": "1.0.0", "id": cid, "description": cid,
            "license": "CC0-1.0", "links": [],
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                       "temporal": {"interval": [["2019-01-01T00:00:00Z", None]]}},
        }  # fmt: skip
        (folder / f"{cid}.json").write_text(json.dumps(collection))
        hrefs.append(str(folder / f"{cid}.json"))
    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    with rustac_serve(*map(Path, hrefs), folder / "items.json") as url:
        yield url
