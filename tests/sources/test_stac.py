"""STAC sources against a real STAC API: ``rustac serve`` on a free loopback port, its items'
assets in the moto S3 server; the run on the session's Dask scheduler and workers."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pystac
import pytest
from distributed import Client

import compactor
from compactor.cog._layout import COG_MEDIA_TYPE
from compactor.errors import ConfigError, DiscoveryError
from compactor.sources._stac import s3_url_for, select_assets

from .. import rasters
from ..conftest import BIN, S3

DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"
COLLECTION = "landsat-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def stac_api(
    tmp_path: Path, items: list[dict[str, Any]], buckets: tuple[str, ...] = ("src-bucket",)
) -> Iterator[str]:
    """``rustac serve`` holding one collection and ``items``; yields its root URL. The
    collection declares ``buckets`` in its storage:schemes (the search's own buckets)."""
    folder = tmp_path / f"stac-{len(list(tmp_path.glob('stac-*')))}"
    folder.mkdir()
    collection = {
        "type": "Collection", "stac_version": "1.0.0", "id": COLLECTION,
        "description": "test scenes", "license": "CC0-1.0", "links": [],
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                   "temporal": {"interval": [["2019-01-01T00:00:00Z", None]]}},
        "stac_extensions": ["https://stac-extensions.github.io/storage/v2.0.0/schema.json"],
        "storage:schemes": {
            b: {"type": "custom-s3", "platform": "http://s3.test/{bucket}", "bucket": b,
                "region": "us-east-1"}
            for b in buckets
        },
    }  # fmt: skip
    (folder / "collection.json").write_text(json.dumps(collection))
    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    with rustac_serve(folder / "collection.json", folder / "items.json") as url:
        yield url


@contextmanager
def rustac_serve(*files: Path) -> Iterator[str]:
    """``rustac serve`` on a free loopback port, loaded with ``files`` (collections, then an
    item collection); yields its root URL once it answers, stops it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(BIN / "rustac"), "serve", "--addr", f"127.0.0.1:{port}", *map(str, files)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("rustac serve did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def item(
    item_id: str, x: float, date: str, assets: dict[str, dict[str, Any]], **props: Any
) -> dict[str, Any]:
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": COLLECTION,
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
        "geometry": {"type": "Polygon",
                     "coordinates": [[[x, 10], [x + 1, 10], [x + 1, 11], [x, 11], [x, 10]]]},
        "bbox": [x, 10, x + 1, 11],
        "properties": {"datetime": date, "eo:cloud_cover": 5, **props},
        "links": [],
        "assets": assets,
    }  # fmt: skip


def image(href: str, **extra: Any) -> dict[str, Any]:
    return {"href": href, "type": "image/tiff; application=geotiff", "roles": ["data"],
            "title": "RGB image", **extra}  # fmt: skip


def thumb(href: str) -> dict[str, Any]:
    return {"href": href, "type": "image/png", "roles": ["thumbnail"]}


@pytest.fixture
def archive_items(s3: S3, tmp_path: Path) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Seven items: four inside the test's bbox and datetime (one of them with a missing
    asset, one with a path-style HTTPS href at the S3 endpoint), three outside."""
    originals: dict[str, bytes] = {}
    files = {
        "a": rasters.rgb(tmp_path / "a.tif", size=320, seed=11),
        "b": rasters.gray(tmp_path / "b.tif", size=300, seed=12),
        "c": rasters.uint16(tmp_path / "c.tif", size=256, bands=2, seed=13),
        "far": rasters.gray(tmp_path / "far.tif", size=256, seed=14),
        "old": rasters.gray(tmp_path / "old.tif", size=256, seed=15),
        "late": rasters.gray(tmp_path / "late.tif", size=256, seed=16),
    }
    for name, path in files.items():
        key = f"scenes/{name}/image.tif"
        data = path.read_bytes()
        s3.put("src-bucket", key, data, ContentType="image/tiff")
        s3.put("src-bucket", f"scenes/{name}/thumb.png", b"\x89PNG fake thumbnail")
        originals[key] = data
    base = "s3://src-bucket/scenes"
    items = [
        item("a", 0, "2020-03-01T00:00:00Z", {"image": image(f"{base}/a/image.tif"),
                                             "thumbnail": thumb(f"{base}/a/thumb.png")}),
        item("b", 1, "2020-07-01T00:00:00Z",
             {"image": image(f"{s3.endpoint}/src-bucket/scenes/b/image.tif"),
              "thumbnail": thumb(f"{base}/b/thumb.png")}),
        item("c", 2, "2021-02-01T00:00:00Z", {"data": image(f"{base}/c/image.tif"),
                                             "thumbnail": thumb(f"{base}/c/thumb.png")}),
        item("missing", 3, "2020-05-01T00:00:00Z",
             {"image": image(f"{base}/missing/image.tif")}),
        item("far", 40, "2020-05-01T00:00:00Z", {"image": image(f"{base}/far/image.tif")}),
        item("old", 1, "2018-05-01T00:00:00Z", {"image": image(f"{base}/old/image.tif")}),
        item("late", 1, "2023-05-01T00:00:00Z", {"image": image(f"{base}/late/image.tif")}),
    ]  # fmt: skip
    return items, originals


SEARCH = {
    "collection": [COLLECTION],
    "bbox": "-0.5,9.5,4.5,11.5",
    "datetime": "2020-01-01/2021-12-31",
}


def test_search_compacts_matching_items_and_writes_updated_items(
    s3: S3, dask_scheduler: str, tmp_path: Path, archive_items: Any
) -> None:
    items, originals = archive_items
    with stac_api(tmp_path, items) as api, Client(dask_scheduler) as client:
        report = compactor.run(
            # pages of two items: the search must follow `next` links
            stac={"url": api, "limit": 2}, **SEARCH, dest=DEST, archive=ARCHIVE, client=client,
            min_saving=-1,
        )  # fmt: skip

    by_item = {(s.item, s.asset): s for s in report.scene_results()}
    # Exactly the matching items' raster assets; thumbnails and the other items untouched.
    assert set(by_item) == {("a", "image"), ("b", "image"), ("c", "data"), ("missing", "image")}
    assert report.totals.compacted == 3
    assert report.totals.failed == 1
    missing = by_item[("missing", "image")]
    assert missing.status == "failed"
    assert "not found" in (missing.reason or "").lower()
    for name in ("far", "old", "late"):
        assert (
            s3.read("src-bucket", f"scenes/{name}/image.tif")
            == originals[f"scenes/{name}/image.tif"]
        )
    for name in ("a", "b", "c"):
        assert s3.read("src-bucket", f"scenes/{name}/thumb.png") == b"\x89PNG fake thumbnail"

    # Layout: <dest>/<collection>/<item>/<asset>.tif; archive keeps the bucket-relative key.
    assert set(s3.keys("dst-bucket", f"cogs/{COLLECTION}/")) == {
        f"cogs/{COLLECTION}/a/image.tif", f"cogs/{COLLECTION}/b/image.tif",
        f"cogs/{COLLECTION}/c/data.tif",
    }  # fmt: skip
    for name in ("a", "b", "c"):
        key = f"scenes/{name}/image.tif"
        assert key not in s3.keys("src-bucket", "scenes/")
        assert s3.storage_class("arc-bucket", f"orig/{key}") == "GLACIER"
        assert s3.read("arc-bucket", f"orig/{key}") == originals[key]
    assert by_item[("b", "image")].source == "s3://src-bucket/scenes/b/image.tif"  # mapped

    # Updated items next to the report, field by field.
    assert report.stac is not None
    assert report.stac.items == 3
    assert report.location is not None
    stac_key = report.location[len("s3://dst-bucket/") :] + "stac/"
    ndjson = [
        json.loads(line)
        for line in s3.read("dst-bucket", stac_key + "items.ndjson").decode().splitlines()
    ]
    assert sorted(i["id"] for i in ndjson) == ["a", "b", "c"]
    original_items = {i["id"]: i for i in items}
    for name, asset in (("a", "image"), ("b", "image"), ("c", "data")):
        new = json.loads(s3.read("dst-bucket", f"{stac_key}{COLLECTION}/{name}.json"))
        assert new == next(i for i in ndjson if i["id"] == name)
        pystac.Item.from_dict(new)  # readable by pystac
        old = original_items[name]
        cog_key = f"cogs/{COLLECTION}/{name}/{asset}.tif"
        cog = s3.read("dst-bucket", cog_key)
        a = new["assets"][asset]
        assert a["href"] == f"s3://dst-bucket/{cog_key}"
        assert a["type"] == COG_MEDIA_TYPE
        assert a["file:size"] == len(cog)
        assert a["file:checksum"] == "1220" + hashlib.sha256(cog).hexdigest()
        assert a["roles"] == ["data"]
        assert a["title"] == "RGB image"
        src = new["assets"][f"{asset}-source"]
        orig_key = f"scenes/{name}/image.tif"
        assert src["href"] == f"s3://arc-bucket/orig/{orig_key}"
        assert src["roles"] == ["source"]
        assert src["file:size"] == len(originals[orig_key])
        assert src["file:checksum"] == "1220" + hashlib.sha256(originals[orig_key]).hexdigest()
        (ref,) = src["storage:refs"]
        scheme = new["properties"]["storage:schemes"][ref]
        assert scheme["storage_class"] == "GLACIER"
        assert scheme["bucket"] == "arc-bucket"
        assert scheme["type"] == "custom-s3"
        assert scheme["platform"].startswith(s3.endpoint)
        assert new["assets"]["thumbnail"] == old["assets"]["thumbnail"]
        assert set(new["assets"]) == set(old["assets"]) | {f"{asset}-source"}
        for k, v in old["properties"].items():
            assert new["properties"][k] == v
        assert new["geometry"] == old["geometry"]
        assert new["bbox"] == old["bbox"]
        assert old["stac_extensions"][0] in new["stac_extensions"]
        assert "https://stac-extensions.github.io/file/v2.1.0/schema.json" in new["stac_extensions"]
        assert (
            "https://stac-extensions.github.io/storage/v2.0.0/schema.json" in new["stac_extensions"]
        )


def test_http_asset_is_fetched_by_compactor_and_left_in_place(
    s3: S3, dask_scheduler: str, tmp_path: Path
) -> None:
    """An HTTP(S) href outside any known bucket (here `localhost`, while the S3 endpoint is
    127.0.0.1), at a host allowed with --allow-host, is fetched by compactor; it is never
    archived or deleted."""
    data = rasters.gray(tmp_path / "h.tif", size=300).read_bytes()
    s3.put("src-bucket", "public/h.tif", data, ACL="public-read")  # anonymous HTTP reads
    host = s3.endpoint.replace("http://127.0.0.1", "localhost")
    href = f"http://{host}/src-bucket/public/h.tif"
    items = [item("h", 0, "2020-03-01T00:00:00Z", {"image": image(href)})]
    with stac_api(tmp_path, items) as api, Client(dask_scheduler) as client:
        report = compactor.run(
            stac=api, collection=[COLLECTION], dest=DEST, archive=ARCHIVE, client=client,
            min_saving=-1, allow_host=[host],
        )  # fmt: skip
    (scene,) = report.scene_results()
    assert scene.status == "compacted", scene.reason
    assert scene.source == href
    assert scene.archive is None
    assert s3.read("src-bucket", "public/h.tif") == data
    assert s3.keys("arc-bucket") == []
    assert report.stac is not None
    assert report.stac.items == 1


def test_plan_on_a_search_and_update_without_transactions(
    s3: S3, dask_scheduler: str, tmp_path: Path, archive_items: Any
) -> None:
    items, originals = archive_items
    with stac_api(tmp_path, items) as api, Client(dask_scheduler) as client:
        df = compactor.plan(stac=api, **SEARCH, dest=DEST, archive=ARCHIVE, client=client)
        assert sorted(zip(df["item"], df["asset"], strict=True)) == [
            ("a", "image"), ("b", "image"), ("c", "data"), ("missing", "image"),
        ]  # fmt: skip
        assert s3.keys("dst-bucket") == []  # a plan writes nothing
        report = compactor.run(
            stac=api, collection=[COLLECTION], bbox="-0.5,9.5,0.5,11.5", dest=DEST,
            client=client, stac_update=True, min_saving=-1,
        )  # fmt: skip
    assert [s.item for s in report.scene_results()] == ["a"]
    assert report.stac is not None
    assert report.stac.updated == 0
    assert "does not support the Transactions extension" in (report.stac.update_error or "")
    # No --archive: the original stays where it is, and the item says so.
    assert s3.read("src-bucket", "scenes/a/image.tif") == originals["scenes/a/image.tif"]


def test_search_errors_are_clear(s3: S3, cli: Any, tmp_path: Path, archive_items: Any) -> None:
    items, _ = archive_items
    dead = f"http://127.0.0.1:{free_port()}"
    result = cli("run", "--stac", dead, "--collection", COLLECTION, "--dest", DEST)
    assert result.exit_code == 2
    assert f"cannot reach the STAC API at {dead}" in result.output
    with stac_api(tmp_path, items) as api:
        result = cli("run", "--stac", api, "--collection", "nope", "--dest", DEST)
        assert result.exit_code == 2
        assert "has no collection 'nope'" in result.output
        assert COLLECTION in result.output
        result = cli("run", "--stac", api, "--collection", COLLECTION, "--dest", DEST,
                     "--filter", '{"op": "=", "args": [{"property": "id"}, "a"]}')  # fmt: skip
        assert result.exit_code == 2
        assert "--filter needs the Filter extension" in result.output
        result = cli("run", "--stac", api, "--collection", COLLECTION, "--dest", DEST,
                     "--bbox=100,10,101,11")  # fmt: skip
        assert result.exit_code == 2
        assert "the STAC search matched no items" in result.output
        result = cli("run", "--stac", api, "--dest", DEST)
        assert result.exit_code == 2
        assert "--collection" in result.output
        result = cli("run", "--stac", api, "--collection", COLLECTION, "--source",
                     "s3://src-bucket/scenes/", "--dest", DEST)  # fmt: skip
        assert result.exit_code == 2
        assert "either --source or --stac" in result.output
    assert s3.keys("dst-bucket") == []


def test_asset_selection_and_href_mapping() -> None:
    it = {
        "assets": {
            "visual": {"href": "s3://b/v.tif", "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["visual"]},
            "B04": {"href": "s3://b/B04.tif", "type": "image/tiff; application=geotiff", "roles": ["data"]},
            "jp2": {"href": "s3://b/x.jp2", "type": "image/jp2"},
            "untyped": {"href": "https://h/x.TIF"},
            "thumbnail": {"href": "s3://b/t.tif", "type": "image/tiff", "roles": ["thumbnail"]},
            "overview": {"href": "s3://b/o.tif", "type": "image/tiff", "roles": ["data", "overview"]},
            "metadata": {"href": "s3://b/m.xml", "type": "application/xml", "roles": ["metadata"]},
        }
    }  # fmt: skip
    assert select_assets(it, []) == ["B04", "jp2", "untyped"]
    assert select_assets(it, ["visual", "nope"]) == ["visual"]
    assert (
        s3_url_for("https://bkt.s3.us-west-2.amazonaws.com/a/b%20c.tif", None)
        == "s3://bkt/a/b c.tif"
    )
    assert s3_url_for("https://bkt.s3.amazonaws.com/k.tif", None) == "s3://bkt/k.tif"
    assert s3_url_for("https://s3.eu-central-1.amazonaws.com/bkt/k.tif", None) == "s3://bkt/k.tif"
    assert (
        s3_url_for("http://127.0.0.1:9000/bkt/k.tif", "http://127.0.0.1:9000") == "s3://bkt/k.tif"
    )
    assert s3_url_for("https://example.com/bkt/k.tif", "http://127.0.0.1:9000") is None
    assert s3_url_for("https://bkt.s3.amazonaws.com/k.tif?X-Amz-Signature=1", None) is None


def test_unknown_option_combinations_raise_before_touching_anything(s3: S3) -> None:
    with pytest.raises(ConfigError, match="--dest must be an s3:// prefix"):
        compactor.run(stac="http://127.0.0.1:1", collection=["x"], dest="https://example.com/x/")
    with pytest.raises(DiscoveryError, match="cannot reach the STAC API"):
        compactor.run(stac=f"http://127.0.0.1:{free_port()}", collection=["x"], dest=DEST)
    assert s3.keys("dst-bucket") == []
