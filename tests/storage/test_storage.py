"""Locations, and the S3/local stores against a real S3 server."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from compactor.errors import ObjectNotFound, PreconditionFailed, translate_s3_error
from compactor.gdal._env import endpoint_options, gdal_options
from compactor.storage import LocalStore, Location, S3Options, S3Store

from ..conftest import S3

ODD_KEYS = [
    "a b/c d.tif",
    "ünïcødé/Ωmega.tif",
    "plus+sign.tif",
    "per%25cent%.tif",
    "x/y/z/deep.TIF",
]


def test_location_parse_join_relative() -> None:
    loc = Location.parse("s3://bkt/pre/fix/")
    assert (loc.bucket, loc.key) == ("bkt", "pre/fix/")
    child = loc.join("a b/ü+.tif")
    assert child.url == "s3://bkt/pre/fix/a b/ü+.tif"
    assert child.relative_to(Location.parse("s3://bkt/pre/fix")) == "a b/ü+.tif"
    assert child.gdal_path == "/vsis3/bkt/pre/fix/a b/ü+.tif"
    assert not child.is_under(Location.parse("s3://bkt/other/"))
    local = Location.parse("/data/x/")
    assert local.join("a/b.tif").url == os.path.join("/data/x", "a", "b.tif")
    with pytest.raises(ValueError, match="scheme"):
        Location.parse("gs://bucket/x")


def test_gdal_endpoint_translation() -> None:
    assert endpoint_options("http://127.0.0.1:9000") == {
        "AWS_S3_ENDPOINT": "127.0.0.1:9000", "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
    }  # fmt: skip
    assert endpoint_options("https://minio.example.org")["AWS_HTTPS"] == "YES"
    opts = gdal_options(endpoint_url="http://h:1", region="eu-west-1")
    assert opts["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert "GDAL_HTTP_MAX_RETRY" in opts
    assert "GDAL_CACHEMAX" in opts
    assert not any("SECRET" in k or "ACCESS_KEY" in k for k in opts)


def test_s3_error_codes_map_to_the_tree() -> None:
    class Fake(Exception):
        response = {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}

    err = translate_s3_error(Fake(), "s3://b/k", "GET")
    assert type(err).__name__ == "TransientStorageError"
    assert "s3://b/k" in str(err)
    assert err.code == "SlowDown"


def test_s3_keys_round_trip_exactly(s3: S3) -> None:
    store = S3Store(S3Options(endpoint_url=s3.endpoint))
    for key in ODD_KEYS:
        s3.put("src-bucket", f"in/{key}", key.encode())
    listed = [
        Location.parse(i.url).relative_to(Location.parse("s3://src-bucket/in/"))
        for i in store.listing(Location.parse("s3://src-bucket/in/"))
    ]
    assert sorted(listed) == sorted(ODD_KEYS)
    for key in ODD_KEYS:
        loc = Location.parse("s3://src-bucket/in/").join(key)
        assert store.read_bytes(loc) == key.encode()
        sha, _ = store.sha256(loc)
        assert sha == hashlib.sha256(key.encode()).hexdigest()


def test_s3_conditional_writes(s3: S3) -> None:
    store = S3Store(S3Options(endpoint_url=s3.endpoint))
    loc = Location.parse("s3://dst-bucket/state/x.json")
    etag = store.put_bytes(loc, b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_bytes(loc, b"2", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_bytes(loc, b"3", if_match='"0000"')
    store.put_bytes(loc, b"4", if_match=etag)
    assert store.read_bytes(loc) == b"4"


def test_s3_multipart_upload_and_part_hashes(s3: S3, tmp_path: Path) -> None:
    store = S3Store(S3Options(endpoint_url=s3.endpoint))
    data = os.urandom(11 * 1024 * 1024 + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    loc = Location.parse("s3://dst-bucket/big.bin")
    sha = hashlib.sha256(data).hexdigest()
    info = store.put_file(
        path, loc, sha256_hex=sha, multipart_threshold=5 * 1024 * 1024, part_size=5 * 1024 * 1024
    )
    assert info.size == len(data)
    assert "-" in (info.etag or "")  # really a multipart object
    full, parts = store.sha256(loc, part_size=5 * 1024 * 1024)
    assert full == sha
    assert len(parts) == 3
    assert s3.client.list_multipart_uploads(Bucket="dst-bucket").get("Uploads") is None


def test_s3_missing_object(s3: S3) -> None:
    store = S3Store(S3Options(endpoint_url=s3.endpoint))
    assert store.head(Location.parse("s3://src-bucket/nope.tif")) is None
    with pytest.raises(ObjectNotFound):
        store.read_bytes(Location.parse("s3://src-bucket/nope.tif"))


def test_local_store_atomic_and_conditional(tmp_path: Path) -> None:
    store = LocalStore()
    loc = Location.parse(str(tmp_path / "a" / "s.json"))
    store.put_bytes(loc, b"one", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_bytes(loc, b"two", if_none_match=True)
    assert Path(loc.key).read_bytes() == b"one"
    assert oct(Path(loc.key).stat().st_mode & 0o777) != oct(0o600)
    assert not [p for p in Path(loc.key).parent.iterdir() if p.name.endswith(".part")]
