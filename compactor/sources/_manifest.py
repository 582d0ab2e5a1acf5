"""S3 Inventory manifests: :func:`read_manifest` reads and checks a ``manifest.json``
(its checksum, format, schema, data files, the bucket they are in) into a
:class:`Manifest`; :func:`layout_problem` says whether it sits where S3 Inventory writes
the report of the bucket it names. See :mod:`._inventory` for what is trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ..errors import ConfigError, ObjectNotFound
from ..keys import key_problem
from ..storage import Location, S3Options, S3Store

log = logging.getLogger(__name__)

FileFormat = Literal["CSV", "ORC", "Parquet"]
_FORMATS: dict[str, FileFormat] = {"csv": "CSV", "orc": "ORC", "parquet": "Parquet"}
#: Canonical names that differ from the snake_case form of the inventory's own names.
_RENAMED = {"e_tag": "etag", "last_modified_date": "last_modified"}
_MD5 = re.compile(r"[0-9a-f]{32}")
#: Bucket names (lenient: legacy names allow capitals and ``_``); never a ``/``.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_ARN = re.compile(r"arn:aws[a-z-]*:s3:::(.+)")


def canonical_field(name: str) -> str:
    """The canonical name of an inventory field: ``ETag`` (CSV) and ``e_tag`` (ORC,
    Parquet) are both ``etag``; ``LastModifiedDate``/``last_modified_date`` are
    ``last_modified``; every other name is its snake_case form (``IsLatest`` ->
    ``is_latest``)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name.strip())
    snake = snake.lower()
    return _RENAMED.get(snake, snake)


@dataclass(frozen=True)
class DataFile:
    """One data file of an inventory, as the manifest describes it."""

    key: str
    size: int
    #: Hex MD5 of the file's bytes.
    md5: str


@dataclass(frozen=True)
class Manifest:
    """A checked ``manifest.json``."""

    #: ``s3://bucket/.../manifest.json``
    url: str
    #: The bucket the manifest and its data files are in.
    bucket: str
    #: The bucket the inventory lists.
    source_bucket: str
    file_format: FileFormat
    #: Canonical field names, in the data files' column order (see :func:`canonical_field`).
    fields: tuple[str, ...]
    files: tuple[DataFile, ...]
    #: When S3 began scanning the bucket (ISO 8601, UTC), if the manifest says.
    created: str | None = None

    @property
    def versioned(self) -> bool:
        """Whether the inventory lists every version (``IncludedObjectVersions: All``)."""
        return "is_latest" in self.fields or "is_delete_marker" in self.fields

    def data_url(self, f: DataFile) -> str:
        return f"s3://{self.bucket}/{f.key}"


def read_manifest(url: str, s3: S3Options) -> Manifest:
    """Read and check ``s3://bucket/.../manifest.json``: a :class:`ConfigError` says what is
    wrong with it (missing, not JSON, an unknown format, a schema without Key or Size, data
    files in another bucket, a ``manifest.checksum`` that does not match)."""
    if not url.startswith("s3://") or not url.endswith("/manifest.json"):
        raise ConfigError(f"an S3 Inventory manifest is s3://bucket/.../manifest.json, not {url!r}")
    loc = Location.parse(url)
    store = S3Store(s3)
    try:
        raw = store.read_bytes(loc)
    except ObjectNotFound as err:
        raise ConfigError(f"no S3 Inventory manifest at {url}") from err
    checksum_loc = Location(
        "s3", loc.bucket, loc.key[: -len("manifest.json")] + "manifest.checksum"
    )
    try:
        expected = store.read_bytes(checksum_loc).decode("ascii", "replace").strip().lower()
    except ObjectNotFound:
        log.debug("%s has no manifest.checksum beside it", url)
    else:
        actual = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        if expected != actual:
            raise ConfigError(
                f"{url} does not match its manifest.checksum (MD5 {actual}, expected "
                f"{expected[:40]!r}): the manifest changed or was cut off"
            )
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{url} is not JSON: {err}") from err
    if not isinstance(doc, dict):
        raise ConfigError(f"{url} is not an S3 Inventory manifest (not a JSON object)")
    return _parse_manifest(url, loc.bucket, doc)


def _parse_manifest(url: str, bucket: str, doc: dict[str, Any]) -> Manifest:
    def field(name: str, kind: type) -> Any:
        value = doc.get(name)
        if not isinstance(value, kind):
            raise ConfigError(f"{url}: {name!r} is missing or not a {kind.__name__}")
        return value

    source = field("sourceBucket", str)
    if not _BUCKET.fullmatch(source):
        raise ConfigError(f"{url}: sourceBucket {source!r} is not a bucket name")
    fmt_name = field("fileFormat", str)
    fmt = _FORMATS.get(fmt_name.lower())
    if fmt is None:
        raise ConfigError(
            f"{url}: unknown fileFormat {fmt_name!r} (S3 Inventory writes CSV, ORC or Parquet)"
        )
    fields = _schema_fields(url, fmt, field("fileSchema", str))
    missing = [name for name in ("key", "size") if name not in fields]
    if missing:
        raise ConfigError(
            f"{url}: the inventory has no {' and no '.join(missing)} field; enable "
            "Size in the inventory configuration (compactor needs Key and Size)"
        )
    destination = doc.get("destinationBucket")
    if destination is not None:
        match = _ARN.fullmatch(str(destination))
        named = match.group(1) if match else str(destination)
        if named != bucket:
            raise ConfigError(
                f"{url}: its data files are in bucket {named!r}, not in {bucket!r} where the "
                "manifest is; compactor reads data files only from the manifest's own bucket"
            )
    files = _data_files(url, field("files", list))
    return Manifest(
        url=url,
        bucket=bucket,
        source_bucket=source,
        file_format=fmt,
        fields=fields,
        files=files,
        created=_created(doc.get("creationTimestamp")),
    )


def _data_files(url: str, entries: list[Any]) -> tuple[DataFile, ...]:
    """The manifest's ``files``, each with a usable key, a size and an MD5."""
    files = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ConfigError(f"{url}: an entry of 'files' is not an object")
        key, size, md5 = entry.get("key"), entry.get("size"), entry.get("MD5checksum")
        if not isinstance(key, str) or key_problem(key):
            raise ConfigError(f"{url}: data file key {key!r} is not a usable key")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"{url}: data file {key} has no valid size")
        if not isinstance(md5, str) or not _MD5.fullmatch(md5.lower()):
            raise ConfigError(f"{url}: data file {key} has no MD5checksum")
        files.append(DataFile(key, size, md5.lower()))
    return tuple(files)


def layout_problem(manifest: Manifest) -> str | None:
    """Why a manifest does not sit where S3 Inventory writes the report of its
    ``sourceBucket``: ``<destination prefix>/<source bucket>/<configuration id>/<date>/
    manifest.json``, its data files under ``<destination prefix>/<source bucket>/
    <configuration id>/data/``; ``None`` when it does. A manifest copied elsewhere, or
    one written to look like another bucket's inventory, is refused."""
    parts = Location.parse(manifest.url).key.split("/")
    # [..., source bucket, configuration id, date, "manifest.json"]
    if len(parts) < 4 or parts[-4] != manifest.source_bucket:
        return (
            f"S3 Inventory writes the report of s3://{manifest.source_bucket}/ to "
            f"<prefix>/{manifest.source_bucket}/<configuration id>/<date>/manifest.json; "
            "give the manifest where the inventory configuration delivered it"
        )
    config = "/".join(parts[:-2]) + "/"
    outside = [f.key for f in manifest.files if not f.key.startswith(config + "data/")]
    if outside:
        return (
            f"its data file {outside[0]} is not under {config}data/ with the reports of "
            "this inventory configuration"
        )
    return None


def _created(value: Any) -> str | None:
    """``creationTimestamp`` (epoch milliseconds, as a string) as ISO 8601."""
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _schema_fields(url: str, fmt: FileFormat, schema: str) -> tuple[str, ...]:
    """Canonical field names of ``fileSchema``: ``Bucket, Key, Size, ...`` (CSV),
    ``struct<bucket:string,key:string,...>`` (ORC) or ``message s3.inventory { required
    binary bucket (UTF8); ... }`` (Parquet)."""
    if fmt == "CSV":
        names = [part for part in schema.split(",")]
    elif fmt == "ORC":
        body = re.fullmatch(r"\s*struct\s*<(.*)>\s*", schema, re.DOTALL)
        if body is None:
            raise ConfigError(f"{url}: ORC fileSchema is not struct<...>: {schema[:80]!r}")
        names = [part.split(":", 1)[0] for part in _top_level(body.group(1))]
    else:
        body = re.fullmatch(r"\s*message\s+\S+\s*\{(.*)\}\s*", schema, re.DOTALL)
        if body is None:
            raise ConfigError(f"{url}: Parquet fileSchema is not message ... {{}}: {schema[:80]!r}")
        names = []
        for decl in body.group(1).split(";"):
            words = decl.split()
            if len(words) >= 3:  # repetition, type, name [annotation]
                names.append(words[2])
            elif words:
                raise ConfigError(f"{url}: cannot read Parquet field {decl.strip()!r}")
    fields = tuple(canonical_field(n) for n in names if n.strip())
    if len(set(fields)) != len(fields):
        raise ConfigError(f"{url}: fileSchema names a field twice: {schema[:200]!r}")
    return fields


def _top_level(body: str) -> list[str]:
    """Split ``a:string,b:map<string,int>`` on the commas outside ``<>``."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(body):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return [p.strip() for p in parts]
