"""S3 Inventory reports written as S3 writes them, for the tests and the benchmark.

:func:`write_inventory` puts a ``manifest.json`` (with its ``manifest.checksum``) and its
data files (CSV gz with every field quoted and URL-encoded keys, ORC or Parquet, built with
pyarrow, column by column) into a bucket; :func:`synthetic_rows` makes a large inventory
without a loop in Python; :func:`edit_manifest` rewrites a manifest (and, by default, its
checksum) to break it on purpose.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.orc as pa_orc
import pyarrow.parquet as pa_parquet

#: (CSV name, ORC/Parquet name, Arrow type, ORC type, Parquet declaration), in the order S3
#: writes the columns.
COLUMNS: tuple[tuple[str, str, Any, str, str], ...] = (
    ("Bucket", "bucket", pa.string(), "string", "required binary bucket (UTF8)"),
    ("Key", "key", pa.string(), "string", "required binary key (UTF8)"),
    ("VersionId", "version_id", pa.string(), "string", "optional binary version_id (UTF8)"),
    ("IsLatest", "is_latest", pa.bool_(), "boolean", "optional boolean is_latest"),
    ("IsDeleteMarker", "is_delete_marker", pa.bool_(), "boolean", "optional boolean is_delete_marker"),
    ("Size", "size", pa.int64(), "bigint", "optional int64 size"),
    ("LastModifiedDate", "last_modified_date", pa.timestamp("ms", tz="UTC"), "timestamp",
     "optional int64 last_modified_date (TIMESTAMP(MILLIS,true))"),
    ("ETag", "e_tag", pa.string(), "string", "optional binary e_tag (UTF8)"),
    ("StorageClass", "storage_class", pa.string(), "string", "optional binary storage_class (UTF8)"),
)  # fmt: skip
VERSION_COLUMNS = ("version_id", "is_latest", "is_delete_marker")
DEFAULT_MTIME = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)


def rows_table(rows: Sequence[Mapping[str, Any]] | pa.Table, source_bucket: str) -> pa.Table:
    """Rows as a table with the ORC/Parquet column names. Dict rows need ``key`` and
    ``size`` (``None`` for a delete marker); ``bucket`` defaults to the source bucket,
    ``last_modified`` (a datetime) to :data:`DEFAULT_MTIME`, ``etag`` and
    ``storage_class`` to a made-up MD5 and ``STANDARD``; ``version_id``, ``is_latest``
    and ``is_delete_marker`` make a versioned inventory."""
    if isinstance(rows, pa.Table):
        return rows
    versioned = any(name in row for row in rows for name in VERSION_COLUMNS)
    defaults: dict[str, Callable[[Mapping[str, Any]], Any]] = {
        "bucket": lambda r: source_bucket,
        "version_id": lambda r: None,
        "is_latest": lambda r: True,
        "is_delete_marker": lambda r: False,
        "last_modified_date": lambda r: r.get("last_modified", DEFAULT_MTIME),
        "e_tag": lambda r: r.get("etag", hashlib.md5(r["key"].encode()).hexdigest()),
        "storage_class": lambda r: "STANDARD",
    }
    data = {}
    for _, name, arrow_type, _, _ in COLUMNS:
        if name in VERSION_COLUMNS and not versioned:
            continue
        values = [row[name] if name in row else defaults[name](row) for row in rows]
        data[name] = pa.array(values, type=arrow_type)
    return pa.table(data)


def synthetic_rows(
    n: int, *, source_bucket: str = "src-bucket", seed: int = 0, versions: bool = False
) -> pa.Table:
    """``n`` inventory rows built column by column (a million in about a second): keys
    ``archive/<group>/scene <i>+v1.tif`` (spaces and ``+`` to decode), log-normal sizes
    around 100 MB, random ETags, a tenth in GLACIER."""
    rng = np.random.default_rng(seed)
    index = pa.array(np.arange(n)).cast(pa.string())
    group = pa.array(np.arange(n) // 1000).cast(pa.string())
    keys = pc.binary_join_element_wise("archive/", group, "/scene ", index, "+v1.tif", "")
    sizes = np.maximum(rng.lognormal(np.log(100e6), 1.0, n).astype(np.int64), 1)
    etags = pa.array(np.frombuffer(rng.bytes(16 * n).hex().encode(), dtype="S32")).cast(pa.string())
    start = int(DEFAULT_MTIME.timestamp() * 1000)
    mtimes = pa.array(start - rng.integers(0, 10**11, n) // 1000 * 1000, pa.timestamp("ms", "UTC"))
    classes = pa.array(np.where(rng.random(n) < 0.1, "GLACIER", "STANDARD"))
    data: dict[str, Any] = {"bucket": pa.array(np.full(n, source_bucket)), "key": keys}
    if versions:
        data |= {
            "version_id": pa.array(np.full(n, "v1")),
            "is_latest": pa.array(np.ones(n, dtype=bool)),
            "is_delete_marker": pa.array(np.zeros(n, dtype=bool)),
        }
    data |= {"size": pa.array(sizes), "last_modified_date": mtimes, "e_tag": etags,
             "storage_class": classes}  # fmt: skip
    return pa.table(data)


def _csv_bytes(table: pa.Table) -> bytes:
    """A CSV data file as S3 writes it: gzip, no header, every field quoted (empty for
    none), keys URL-encoded with spaces as ``+``, dates as ``2024-05-01T12:30:15.000Z``."""
    columns = []
    for name in table.column_names:
        col = table.column(name)
        if name == "key":
            col = pa.array([quote_plus(k, safe="") for k in col.to_pylist()], pa.string())
        elif name == "last_modified_date":
            col = pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ")  # ms: "15.000"
        elif pa.types.is_boolean(col.type):
            col = pc.if_else(col, "true", "false")
        col = pc.fill_null(col.cast(pa.string()), "")
        columns.append(col)
    text = io.BytesIO()
    pa_csv.write_csv(
        pa.table(columns, names=table.column_names),
        text,
        write_options=pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"),
    )
    return gzip.compress(text.getvalue(), compresslevel=1)


def _data_bytes(table: pa.Table, fmt: str) -> bytes:
    if fmt == "CSV":
        return _csv_bytes(table)
    sink = io.BytesIO()
    if fmt == "ORC":
        pa_orc.write_table(table, sink)
    else:
        pa_parquet.write_table(table, sink)
    return sink.getvalue()


def file_schema(table: pa.Table, fmt: str) -> str:
    by_name = {c[1]: c for c in COLUMNS}
    present = [by_name[name] for name in table.column_names]
    if fmt == "CSV":
        return ", ".join(c[0] for c in present)
    if fmt == "ORC":
        return "struct<" + ",".join(f"{c[1]}:{c[3]}" for c in present) + ">"
    return "message s3.inventory { " + " ".join(f"{c[4]};" for c in present) + " }"


def put_manifest(
    client: Any, url: str, manifest: Mapping[str, Any], *, checksum: bool = True
) -> None:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    body = json.dumps(manifest, indent=2).encode()
    client.put_object(Bucket=bucket, Key=key, Body=body)
    if checksum:
        digest = hashlib.md5(body).hexdigest()
        client.put_object(
            Bucket=bucket, Key=key.removesuffix("manifest.json") + "manifest.checksum", Body=digest
        )


def read_manifest_json(client: Any, url: str) -> dict[str, Any]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return dict(json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read()))


def edit_manifest(client: Any, url: str, *, checksum: bool = True, **changes: Any) -> None:
    """Rewrite fields of a manifest (and its checksum, unless ``checksum=False``)."""
    manifest = read_manifest_json(client, url)
    manifest.update(changes)
    put_manifest(client, url, manifest, checksum=checksum)


def write_inventory(
    client: Any,
    bucket: str,
    prefix: str,
    rows: Sequence[Mapping[str, Any]] | pa.Table,
    fmt: str = "CSV",
    files: int = 1,
    *,
    source_bucket: str = "src-bucket",
    config_id: str = "daily",
    stamp: str = "2024-05-01T00-00Z",
) -> str:
    """Write an inventory of ``source_bucket`` into ``bucket`` under ``prefix`` as S3 does
    (``<prefix>/<source>/<config>/<stamp>/manifest.json`` and ``manifest.checksum``, data
    files under ``<prefix>/<source>/<config>/data/``), its rows split evenly over ``files``
    data files; returns the manifest's URL."""
    table = rows_table(rows, source_bucket)
    base = f"{prefix.strip('/')}/{source_bucket}/{config_id}".lstrip("/")
    ext = {"CSV": "csv.gz", "ORC": "orc", "Parquet": "parquet"}[fmt]
    entries = []
    per_file = -(-table.num_rows // files) if table.num_rows else 0
    for i in range(files):
        body = _data_bytes(table.slice(i * per_file, per_file), fmt)
        key = f"{base}/data/{uuid.UUID(int=i + 1)}.{ext}"
        client.put_object(Bucket=bucket, Key=key, Body=body)
        entries.append(
            {"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()}
        )
    url = f"s3://{bucket}/{base}/{stamp}/manifest.json"
    manifest = {
        "sourceBucket": source_bucket,
        "destinationBucket": f"arn:aws:s3:::{bucket}",
        "version": "2016-11-30",
        "creationTimestamp": "1714521600000",
        "fileFormat": fmt,
        "fileSchema": file_schema(table, fmt),
        "files": entries,
    }
    put_manifest(client, url, manifest)
    return url
