"""Discovery from an S3 Inventory report instead of a listing.

Listing 10^8 objects costs 10^5 LIST requests and hours; S3 Inventory writes the same list
daily or weekly as a handful of data files (CSV gz, ORC or Parquet) described by a
``manifest.json``. :func:`~compactor.sources._manifest.read_manifest` reads and checks
the manifest; :func:`iter_inventory` streams its objects as :class:`~compactor.storage.ObjectInfo`
batches, one data file at a time, so the whole inventory is never in memory.

What is trusted, and what is not:

* The data files are read only from the bucket the manifest is in: a manifest whose
  ``destinationBucket`` names another bucket is refused, so a manifest cannot make
  compactor read a bucket it was not pointed at.
* Each data file is downloaded to scratch and checked against the manifest's size and MD5
  **before** any of its rows is yielded: a file that changed or was cut off never yields
  half its rows (and a dropped connection retries the download, not the rows).
* Every row must name the manifest's ``sourceBucket``: a row naming another bucket stops
  the iteration with a :class:`~compactor.errors.DiscoveryError` (an inventory of one
  bucket that lists another is not what it says it is). The URL of an object is built as
  ``s3://<sourceBucket>/<key>``, so no key can change the bucket.
* Keys are not checked here: the caller runs :func:`compactor.keys.key_problem` on each,
  as it does on listed keys.

Rows that are delete markers or not the latest version (inventories that include all
versions) are skipped and counted in :class:`InventoryStats`.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.orc as pa_orc
import pyarrow.parquet as pa_parquet

from ..errors import DiscoveryError, ObjectNotFound, s3_errors, translate_s3_error
from ..storage import IO_CHUNK, ObjectInfo, S3Options, S3Store, call, with_retries
from ._manifest import DataFile, FileFormat, Manifest, canonical_field

log = logging.getLogger(__name__)

#: The columns compactor reads, by canonical name (see :func:`canonical_field`).
_WANTED = (
    "bucket",
    "key",
    "is_latest",
    "is_delete_marker",
    "size",
    "last_modified",
    "etag",
    "storage_class",
)
#: Types of the CSV columns compactor reads; every other column stays unread.
_CSV_TYPES: dict[str, Any] = {
    "bucket": pa.string(),
    "key": pa.string(),
    "is_latest": pa.bool_(),
    "is_delete_marker": pa.bool_(),
    "size": pa.int64(),
    "last_modified": pa.timestamp("ms", tz="UTC"),
    "etag": pa.string(),
    "storage_class": pa.string(),
}
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class InventoryStats:
    """What :func:`iter_inventory` read; filled in as it goes, complete once it is done."""

    files: int = 0
    #: Rows in the data files read.
    rows: int = 0
    #: Objects yielded, and their bytes.
    objects: int = 0
    bytes: int = 0
    #: Rows skipped: delete markers, and versions that are not the latest.
    delete_markers: int = 0
    not_latest: int = 0

    @property
    def skipped(self) -> int:
        return self.delete_markers + self.not_latest


# --- the data files -------------------------------------------------------------------------


def iter_inventory(
    manifest: Manifest,
    s3: S3Options,
    *,
    batch_rows: int = 65536,
    scratch: str | Path | None = None,
    stats: InventoryStats | None = None,
) -> Iterator[list[ObjectInfo]]:
    """The inventory's current objects, in batches of ``batch_rows`` (the last one
    shorter), data file after data file: ``ObjectInfo(url, size, etag, mtime,
    storage_class)`` with the ETag quoted (as listings give it) and the mtime as ISO 8601
    UTC (seconds).

    Each data file is downloaded to a temporary file in ``scratch`` (a temporary
    directory by default), checked against the manifest's size and MD5, read in Arrow
    record batches and deleted: memory holds a few Arrow batches and about two
    ``batch_rows`` lists of ObjectInfo (the one the caller holds, the next one), the disk
    one data file. A missing or altered data file, an unreadable one,
    or a row naming another bucket raises :class:`DiscoveryError`. ``stats``, when given,
    is filled in as the iteration goes."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    stats = stats if stats is not None else InventoryStats()
    store = S3Store(s3)
    pending: list[ObjectInfo] = []
    with tempfile.TemporaryDirectory(prefix="inventory-", dir=scratch) as tmp:
        for n, data_file in enumerate(manifest.files):
            path = Path(tmp, f"{n}{_suffix(manifest.file_format)}")
            try:
                _download(store, manifest, data_file, path)
                for batch in _read_batches(manifest, data_file, path, batch_rows):
                    try:
                        pending.extend(_objects(manifest, data_file, batch, stats))
                    except pa.ArrowException as err:
                        raise DiscoveryError(
                            f"inventory data file {manifest.data_url(data_file)}: {err}"
                        ) from err
                    while len(pending) >= batch_rows:
                        yield pending[:batch_rows]
                        del pending[:batch_rows]
            finally:
                path.unlink(missing_ok=True)
            stats.files += 1
    if pending:
        yield pending


def _suffix(fmt: FileFormat) -> str:
    return {"CSV": ".csv.gz", "ORC": ".orc", "Parquet": ".parquet"}[fmt]


def _download(store: S3Store, manifest: Manifest, f: DataFile, path: Path) -> None:
    """GET one data file into ``path``, hashing it on the way; retried when the
    connection drops. Its size and MD5 must be the manifest's."""
    url = manifest.data_url(f)

    def fetch() -> tuple[str, int]:
        r = call("GET", url, store.client.get_object, Bucket=manifest.bucket, Key=f.key)
        body, md5, size = r["Body"], hashlib.md5(usedforsecurity=False), 0
        with open(path, "wb") as out:
            while True:
                try:
                    chunk = body.read(IO_CHUNK)
                except s3_errors() as err:
                    raise translate_s3_error(err, url, "GET") from err
                if not chunk:
                    break
                md5.update(chunk)
                out.write(chunk)
                size += len(chunk)
        return md5.hexdigest(), size

    try:
        digest, size = with_retries(fetch, what=f"GET {url}")
    except ObjectNotFound as err:
        raise DiscoveryError(f"inventory data file {url} (in {manifest.url}) is missing") from err
    if size != f.size or digest != f.md5:
        raise DiscoveryError(
            f"inventory data file {url} is not the one {manifest.url} lists "
            f"(size {size}, MD5 {digest}; expected size {f.size}, MD5 {f.md5})"
        )


def _read_batches(manifest: Manifest, f: DataFile, path: Path, batch_rows: int) -> Iterator[Any]:
    """Arrow record batches of one verified data file, with canonical column names and
    only the columns compactor reads."""
    try:
        if manifest.file_format == "CSV":
            yield from _csv_batches(manifest, path)
        elif manifest.file_format == "Parquet":
            # A buffered stream decodes page by page, not a whole row group at once.
            pf = pa_parquet.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
            columns = _columns(manifest, f, pf.schema_arrow.names)
            for batch in pf.iter_batches(batch_size=batch_rows, columns=list(columns)):
                yield _renamed(batch, columns)
        else:
            orc = pa_orc.ORCFile(path)
            columns = _columns(manifest, f, orc.schema.names)
            for stripe in range(orc.nstripes):
                batch = orc.read_stripe(stripe, columns=list(columns))
                for offset in range(0, batch.num_rows, batch_rows):
                    yield _renamed(batch.slice(offset, batch_rows), columns)
    except (pa.ArrowException, OSError) as err:
        raise DiscoveryError(
            f"inventory data file {manifest.data_url(f)} cannot be read as "
            f"{manifest.file_format}: {err}"
        ) from err


def _csv_batches(manifest: Manifest, path: Path) -> Iterator[Any]:
    """CSV data files: gzip, no header row, every field quoted, columns as in
    ``fileSchema``. The gzip stream is decompressed and parsed block by block."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == _GZIP_MAGIC
    stream = pa.input_stream(str(path), compression="gzip" if gzipped else None)
    wanted = [name for name in manifest.fields if name in _CSV_TYPES]
    reader = pa_csv.open_csv(
        stream,
        read_options=pa_csv.ReadOptions(column_names=list(manifest.fields), block_size=1 << 20),
        parse_options=pa_csv.ParseOptions(newlines_in_values=False),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: _CSV_TYPES[name] for name in wanted},
            include_columns=wanted,
            strings_can_be_null=False,
        ),
    )
    try:
        yield from reader
    finally:
        reader.close()
        stream.close()


def _columns(manifest: Manifest, f: DataFile, names: list[str]) -> dict[str, str]:
    """File column -> canonical name, for the columns compactor reads (ORC, Parquet)."""
    columns = {name: canonical_field(name) for name in names}
    columns = {name: canon for name, canon in columns.items() if canon in _WANTED}
    found = set(columns.values())
    missing = [name for name in ("key", "size") if name not in found]
    if missing:
        raise DiscoveryError(
            f"inventory data file {manifest.data_url(f)} has no {' or '.join(missing)} column"
        )
    return columns


def _renamed(batch: Any, columns: dict[str, str]) -> Any:
    return batch.rename_columns([columns[name] for name in batch.schema.names])


def _objects(
    manifest: Manifest, f: DataFile, batch: Any, stats: InventoryStats
) -> list[ObjectInfo]:
    """The current objects of one Arrow batch (canonical columns), counted in ``stats``.
    The checks and conversions are vectorised; only the ObjectInfo construction (and the
    URL-decoding of CSV keys that need it) runs per row."""
    stats.rows += batch.num_rows
    names = set(batch.schema.names)
    batch = _current(batch, names, stats)
    if batch.num_rows == 0:
        return []
    url = manifest.data_url(f)
    if "bucket" in names:
        other = pc.fill_null(pc.not_equal(batch.column("bucket"), manifest.source_bucket), True)
        if pc.any(other).as_py():
            first = batch.column("bucket").filter(other)[0].as_py()
            raise DiscoveryError(
                f"inventory data file {url} lists an object in bucket {first!r}, but "
                f"{manifest.url} is the inventory of {manifest.source_bucket!r}"
            )
    keys, sizes = batch.column("key"), batch.column("size")
    if keys.null_count or sizes.null_count:
        raise DiscoveryError(f"inventory data file {url} has an object without a key or size")
    if pc.min(sizes).as_py() < 0:
        raise DiscoveryError(f"inventory data file {url} has an object with a negative size")
    n = batch.num_rows
    prefix = f"s3://{manifest.source_bucket}/"
    key_list: list[str] = keys.to_pylist()
    if manifest.file_format == "CSV":  # CSV keys are URL-encoded, spaces as '+'
        key_list = _url_decoded(key_list)
    urls = [prefix + k for k in key_list]
    size_list: list[int] = sizes.to_pylist()
    etags: list[str | None] = [None] * n
    if "etag" in names:
        # Quoted, as listings and HEADs give it: versions compare across all three.
        trimmed = pc.utf8_trim(batch.column("etag"), characters='"')
        etags = [f'"{e}"' if e else None for e in trimmed.to_pylist()]
    mtimes: list[str | None] = [None] * n
    if "last_modified" in names:
        mtimes = _iso_seconds(batch.column("last_modified")).to_pylist()
    classes: list[str] = ["STANDARD"] * n
    if "storage_class" in names:
        sc = pc.fill_null(batch.column("storage_class"), "STANDARD")
        classes = pc.if_else(pc.equal(sc, ""), "STANDARD", sc).to_pylist()
    stats.objects += n
    stats.bytes += int(pc.sum(sizes).as_py() or 0)
    return list(map(ObjectInfo.listed, urls, size_list, etags, mtimes, classes))


def _current(batch: Any, names: set[str], stats: InventoryStats) -> Any:
    """The rows of ``batch`` that are current objects: delete markers and versions that
    are not the latest left out (and counted in ``stats``)."""
    keep = None
    if "is_delete_marker" in names:
        marker = pc.fill_null(batch.column("is_delete_marker"), False)
        stats.delete_markers += int(pc.sum(marker.cast(pa.int64())).as_py() or 0)
        keep = pc.invert(marker)
    if "is_latest" in names:
        latest = pc.fill_null(batch.column("is_latest"), True)
        old = pc.and_(pc.invert(latest), keep) if keep is not None else pc.invert(latest)
        stats.not_latest += int(pc.sum(old.cast(pa.int64())).as_py() or 0)
        keep = pc.and_(keep, latest) if keep is not None else latest
    return batch.filter(keep) if keep is not None else batch


def _iso_seconds(column: Any) -> Any:
    """Timestamps as ``2016-11-06T21:32:46+00:00``: the form listings report (UTC, whole
    seconds). ORC and Parquet store them with or without a zone, in any unit; the
    values are UTC either way."""
    if not pa.types.is_timestamp(column.type):
        raise pa.ArrowTypeError(f"its last modified date is {column.type}, not a timestamp")
    naive = column.cast(pa.timestamp(column.type.unit)) if column.type.tz else column
    text = naive.cast(pa.timestamp("s"), safe=False).cast(pa.string())  # 2016-11-06 21:32:46
    # Three times faster than pc.strftime.
    return pc.binary_join_element_wise(
        pc.replace_substring(text, " ", "T", max_replacements=1), "+00:00", ""
    )


def _url_decoded(keys: list[str]) -> list[str]:
    """CSV keys decoded (``%XX`` escapes, ``+`` for a space). All at once as one string
    (twice as fast as key by key): the escaped keys hold no NUL, so NUL separates them,
    unless a decoded key holds one, and then the keys are decoded one by one."""
    decoded = unquote_plus("\0".join(keys)).split("\0")
    if len(decoded) == len(keys):
        return decoded
    return [unquote_plus(k) for k in keys]
