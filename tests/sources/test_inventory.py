"""S3 Inventory reports (CSV gz, ORC, Parquet) streamed from a real S3 server: exact objects,
versions, and every way a report can be wrong."""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime
from typing import Any

import pyarrow.compute as pc
import pytest

from compactor.errors import ConfigError, DiscoveryError
from compactor.sources._inventory import InventoryStats, iter_inventory
from compactor.sources._manifest import Manifest, canonical_field, read_manifest
from compactor.storage import ObjectInfo, S3Options

from ..conftest import S3
from ..inventory_fixture import (
    edit_manifest,
    read_manifest_json,
    synthetic_rows,
    write_inventory,
)

FORMATS = ["CSV", "ORC", "Parquet"]
MTIME = datetime(2023, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)

#: Keys that need decoding in CSV (space as '+', '+' as %2B, '%', unicode, a quote and a
#: comma) and keys that try to leave the bucket (they cannot: the caller refuses them).
TRICKY = [
    "plain/a.tif",
    "with space/b c.tif",
    "plus/a+b.tif",
    "percent/100%25 done.tif",
    "unicode/é 北京.tif",
    'quote/"q",comma.tif',
    "../other-bucket/x.tif",
    "/absolute.tif",
]


def _options(s3: S3) -> S3Options:
    return S3Options(endpoint_url=s3.endpoint)


def _read(s3: S3, url: str, **kwargs: Any) -> tuple[list[list[ObjectInfo]], InventoryStats]:
    stats = InventoryStats()
    manifest = read_manifest(url, _options(s3))
    return list(iter_inventory(manifest, _options(s3), stats=stats, **kwargs)), stats


def _rows() -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "size": 1000 + i,
            "last_modified": MTIME,
            "etag": f"{i:032x}" if i != 2 else '"quotedetag"',
            "storage_class": "GLACIER" if i == 3 else "STANDARD",
        }
        for i, key in enumerate(TRICKY)
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_streams_exactly_the_objects(s3: S3, fmt: str) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt=fmt, files=3)
    batches, stats = _read(s3, url, batch_rows=3)
    expected = [
        ObjectInfo(
            url=f"s3://src-bucket/{key}",
            size=1000 + i,
            etag=f'"{i:032x}"' if i != 2 else '"quotedetag"',
            mtime="2023-02-03T04:05:06+00:00",
            storage_class="GLACIER" if i == 3 else "STANDARD",
        )
        for i, key in enumerate(TRICKY)
    ]
    assert [obj for batch in batches for obj in batch] == expected
    assert [len(b) for b in batches] == [3, 3, 2]  # batches span the three data files
    assert all(obj.location.bucket == "src-bucket" for b in batches for obj in b)
    assert (stats.files, stats.rows, stats.objects, stats.skipped) == (3, 8, 8, 0)
    assert stats.bytes == sum(1000 + i for i in range(len(TRICKY)))


def test_csv_keys_are_url_encoded_in_the_file(s3: S3) -> None:
    """The fixture writes what S3 writes: the raw CSV holds encoded keys only."""
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt="CSV")
    data_key = read_manifest_json(s3.client, url)["files"][0]["key"]
    text = gzip.decompress(s3.read("dst-bucket", data_key)).decode()
    assert '"with+space%2Fb+c.tif"' in text
    assert '"plus%2Fa%2Bb.tif"' in text
    assert "北京" not in text
    assert text.splitlines()[0].startswith('"src-bucket","plain%2Fa.tif","1000",')


@pytest.mark.parametrize("fmt", FORMATS)
def test_versioned_inventory_keeps_only_current_objects(s3: S3, fmt: str) -> None:
    rows = [
        {
            "key": "a.tif",
            "version_id": "a2",
            "is_latest": True,
            "is_delete_marker": False,
            "size": 20,
        },
        {
            "key": "a.tif",
            "version_id": "a1",
            "is_latest": False,
            "is_delete_marker": False,
            "size": 10,
        },
        {
            "key": "b.tif",
            "version_id": "b2",
            "is_latest": True,
            "is_delete_marker": True,
            "size": None,
        },
        {
            "key": "b.tif",
            "version_id": "b1",
            "is_latest": False,
            "is_delete_marker": False,
            "size": 5,
        },
        {
            "key": "c.tif",
            "version_id": "null",
            "is_latest": True,
            "is_delete_marker": False,
            "size": 7,
        },
        {
            "key": "d.tif",
            "version_id": "d1",
            "is_latest": False,
            "is_delete_marker": True,
            "size": None,
        },
    ]
    url = write_inventory(s3.client, "dst-bucket", "inv", rows, fmt=fmt)
    manifest = read_manifest(url, _options(s3))
    assert manifest.versioned
    batches, stats = _read(s3, url)
    assert [(o.url, o.size) for b in batches for o in b] == [
        ("s3://src-bucket/a.tif", 20),
        ("s3://src-bucket/c.tif", 7),
    ]
    assert (stats.rows, stats.objects, stats.delete_markers, stats.not_latest) == (6, 2, 2, 2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_large_inventory_in_full_batches(s3: S3, fmt: str) -> None:
    table = synthetic_rows(20_000, seed=3)
    url = write_inventory(s3.client, "dst-bucket", "big", table, fmt=fmt, files=3)
    batches, stats = _read(s3, url, batch_rows=4096)
    assert [len(b) for b in batches] == [4096] * 4 + [20_000 - 4 * 4096]
    objects = [o for b in batches for o in b]
    assert sum(o.size for o in objects) == pc.sum(table.column("size")).as_py() == stats.bytes
    assert objects[12345].url == "s3://src-bucket/archive/12/scene 12345+v1.tif"
    assert (
        sum(o.storage_class == "GLACIER" for o in objects)
        == pc.sum(pc.equal(table.column("storage_class"), "GLACIER").cast("int64")).as_py()
    )
    assert (stats.files, stats.rows, stats.objects) == (3, 20_000, 20_000)


def test_manifest_fields(s3: S3) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv/", _rows(), fmt="Parquet", files=2)
    manifest = read_manifest(url, _options(s3))
    assert isinstance(manifest, Manifest)
    assert url == "s3://dst-bucket/inv/src-bucket/daily/2024-05-01T00-00Z/manifest.json"
    assert (manifest.bucket, manifest.source_bucket, manifest.file_format) == (
        "dst-bucket", "src-bucket", "Parquet"
    )  # fmt: skip
    assert manifest.fields == (
        "bucket", "key", "size", "last_modified", "etag", "storage_class"
    )  # fmt: skip
    assert not manifest.versioned
    assert [f.key for f in manifest.files] == [
        "inv/src-bucket/daily/data/00000000-0000-0000-0000-000000000001.parquet",
        "inv/src-bucket/daily/data/00000000-0000-0000-0000-000000000002.parquet",
    ]
    assert all(len(f.md5) == 32 and f.size > 0 for f in manifest.files)
    assert manifest.created == "2024-05-01T00:00:00+00:00"


#: The schemas of the three manifests in the S3 user guide.
AWS_SCHEMAS = {
    "CSV": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, "
    "StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, "
    "ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, "
    "IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm",
    "ORC": "struct<bucket:string,key:string,version_id:string,is_latest:boolean,"
    "is_delete_marker:boolean,size:bigint,last_modified_date:timestamp,e_tag:string,"
    "storage_class:string,is_multipart_uploaded:boolean,replication_status:string,"
    "encryption_status:string,object_lock_retain_until_date:timestamp,object_lock_mode:string,"
    "object_lock_legal_hold_status:string,intelligent_tiering_access_tier:string,"
    "bucket_key_status:string,checksum_algorithm:string>",
    "Parquet": "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); "
    "optional binary version_id (UTF8); optional boolean is_latest; optional boolean "
    "is_delete_marker; optional int64 size; optional int64 last_modified_date "
    "(TIMESTAMP(MILLIS,true)); optional binary e_tag (UTF8); optional binary storage_class "
    "(UTF8); optional boolean is_multipart_uploaded; optional binary replication_status (UTF8); "
    "optional binary encryption_status (UTF8); optional int64 object_lock_retain_until_date "
    "(TIMESTAMP_MILLIS); optional binary object_lock_mode (UTF8); optional binary "
    "object_lock_legal_hold_status (UTF8); optional binary intelligent_tiering_access_tier "
    "(UTF8); optional binary bucket_key_status (UTF8); optional binary checksum_algorithm (UTF8); }",
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_aws_schemas_read_the_same_in_every_format(s3: S3, fmt: str) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt=fmt)
    edit_manifest(s3.client, url, fileSchema=AWS_SCHEMAS[fmt])
    fields = read_manifest(url, _options(s3)).fields
    assert fields[:9] == (
        "bucket", "key", "version_id", "is_latest", "is_delete_marker", "size",
        "last_modified", "etag", "storage_class",
    )  # fmt: skip
    assert fields[-3:] == (
        "intelligent_tiering_access_tier", "bucket_key_status", "checksum_algorithm"
    )  # fmt: skip
    assert canonical_field("ETag") == canonical_field("e_tag") == "etag"


@pytest.mark.parametrize("fmt", FORMATS)
def test_schema_without_size_is_refused(s3: S3, fmt: str) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt=fmt)
    schema = AWS_SCHEMAS[fmt]
    without = {
        "CSV": schema.replace(" Size,", ""),
        "ORC": schema.replace("size:bigint,", ""),
        "Parquet": schema.replace("optional int64 size;", ""),
    }[fmt]
    assert without != schema
    edit_manifest(s3.client, url, fileSchema=without)
    with pytest.raises(ConfigError, match="no size field"):
        read_manifest(url, _options(s3))


def test_md5_mismatch_yields_nothing_from_that_file(s3: S3) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt="CSV", files=2)
    second = read_manifest_json(s3.client, url)["files"][1]["key"]
    body = bytearray(s3.read("dst-bucket", second))
    body[-5] ^= 0xFF  # same size, different bytes
    s3.put("dst-bucket", second, bytes(body))
    manifest = read_manifest(url, _options(s3))
    stats = InventoryStats()
    batches = iter_inventory(manifest, _options(s3), batch_rows=1, stats=stats)
    seen = [next(batches)[0] for _ in range(4)]  # file 1: four objects, one per batch
    with pytest.raises(DiscoveryError, match=f"s3://dst-bucket/{second} is not the one") as err:
        next(batches)
    assert "MD5" in str(err.value)
    assert [o.url for o in seen] == [f"s3://src-bucket/{k}" for k in TRICKY[:4]]  # file 1 only
    assert stats.files == 1


def test_missing_data_file(s3: S3) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt="ORC")
    key = read_manifest_json(s3.client, url)["files"][0]["key"]
    s3.client.delete_object(Bucket="dst-bucket", Key=key)
    with pytest.raises(DiscoveryError, match=f"s3://dst-bucket/{key} .* is missing"):
        _read(s3, url)


def test_unreadable_data_file_with_a_matching_md5(s3: S3) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt="Parquet")
    manifest = read_manifest_json(s3.client, url)
    key = manifest["files"][0]["key"]
    s3.put("dst-bucket", key, b"not parquet at all")
    manifest["files"][0].update(size=18, MD5checksum=hashlib.md5(b"not parquet at all").hexdigest())
    edit_manifest(s3.client, url, files=manifest["files"])
    with pytest.raises(DiscoveryError, match="cannot be read as Parquet"):
        _read(s3, url)


def test_csv_with_other_columns_than_its_schema(s3: S3) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt="CSV")
    edit_manifest(s3.client, url, fileSchema="Bucket, Key, Size")
    with pytest.raises(DiscoveryError, match="cannot be read as CSV"):
        _read(s3, url)


def test_manifest_checksum_mismatch(s3: S3) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt="CSV")
    edit_manifest(s3.client, url, checksum=False, sourceBucket="arc-bucket")
    with pytest.raises(ConfigError, match=r"does not match its manifest\.checksum"):
        read_manifest(url, _options(s3))
    # Without a manifest.checksum beside it, the manifest is read as it is.
    s3.client.delete_object(
        Bucket="dst-bucket", Key=url.split("/", 3)[3].replace(".json", ".checksum")
    )
    assert read_manifest(url, _options(s3)).source_bucket == "arc-bucket"


def test_unknown_format(s3: S3) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt="CSV")
    edit_manifest(s3.client, url, fileFormat="JSON")
    with pytest.raises(ConfigError, match="unknown fileFormat 'JSON'"):
        read_manifest(url, _options(s3))


def test_data_files_in_another_bucket_are_refused(s3: S3) -> None:
    """The manifest names the bucket its data files are in; compactor reads them only from
    the bucket the manifest itself is in."""
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt="CSV")
    manifest = read_manifest_json(s3.client, url)
    for f in manifest["files"]:
        s3.put("arc-bucket", f["key"], s3.read("dst-bucket", f["key"]))
    edit_manifest(s3.client, url, destinationBucket="arn:aws:s3:::arc-bucket")
    with pytest.raises(
        ConfigError, match="data files are in bucket 'arc-bucket', not in 'dst-bucket'"
    ):
        read_manifest(url, _options(s3))


def test_rows_naming_another_bucket_stop_discovery(s3: S3) -> None:
    rows = [*_rows(), {"key": "stolen.tif", "size": 1, "bucket": "arc-bucket"}]
    url = write_inventory(s3.client, "dst-bucket", "inv", rows, fmt="Parquet")
    with pytest.raises(DiscoveryError, match="lists an object in bucket 'arc-bucket'"):
        _read(s3, url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://dst-bucket/nowhere/manifest.json", "no S3 Inventory manifest at"),
        ("s3://dst-bucket/inv/manifest.checksum", "is s3://bucket/.../manifest.json"),
        ("/tmp/manifest.json", "is s3://bucket/.../manifest.json"),
    ],
)
def test_bad_manifest_urls(s3: S3, url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_manifest(url, _options(s3))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<xml/>", "is not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"fileFormat": "CSV"}', "'sourceBucket' is missing"),
        (b'{"sourceBucket": "a/b", "fileFormat": "CSV"}', "is not a bucket name"),
    ],
)
def test_malformed_manifests(s3: S3, body: bytes, message: str) -> None:
    s3.put("dst-bucket", "bad/manifest.json", body)
    with pytest.raises(ConfigError, match=message):
        read_manifest("s3://dst-bucket/bad/manifest.json", _options(s3))


def test_data_file_keys_and_checksums_are_checked(s3: S3) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt="CSV")
    files = read_manifest_json(s3.client, url)["files"]
    edit_manifest(s3.client, url, files=[{**files[0], "key": "inv/../x.csv.gz"}])
    with pytest.raises(ConfigError, match="is not a usable key"):
        read_manifest(url, _options(s3))
    edit_manifest(s3.client, url, files=[{**files[0], "MD5checksum": "abc-2"}])
    with pytest.raises(ConfigError, match="has no MD5checksum"):
        read_manifest(url, _options(s3))


def test_scratch_holds_nothing_afterwards(s3: S3, tmp_path: Any) -> None:
    url = write_inventory(s3.client, "dst-bucket", "inv", _rows(), fmt="ORC", files=2)
    batches, _ = _read(s3, url, scratch=tmp_path)
    assert sum(map(len, batches)) == len(TRICKY)
    assert list(tmp_path.iterdir()) == []
    # Abandoned halfway: the temporary directory goes too.
    manifest = read_manifest(url, _options(s3))
    it = iter_inventory(manifest, _options(s3), batch_rows=1, scratch=tmp_path)
    next(it)
    assert len(list(tmp_path.iterdir())) == 1
    it.close()
    assert list(tmp_path.iterdir()) == []


def test_url_decoding_all_at_once_equals_key_by_key() -> None:
    """Keys are decoded as one string; a key that decodes to hold the separator (NUL)
    makes the batch decode key by key, with the same result."""
    from urllib.parse import unquote_plus

    from compactor.sources._inventory import _url_decoded

    plain = ["a%2Fb+c.tif", "100%25", "%E2%82", "trailing%", "%C3", "x%2", "%e9t%C3%A9", ""]
    assert _url_decoded(plain) == [unquote_plus(k) for k in plain]
    with_nul = [*plain, "nul%00inside", "z"]
    assert _url_decoded(with_nul) == [unquote_plus(k) for k in with_nul]
    assert _url_decoded(with_nul)[-2] == "nul\0inside"
