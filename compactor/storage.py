"""Object storage: S3 (and S3-compatible stores) and local directories behind one interface.

* :class:`Location` parses ``s3://bucket/key`` URLs and local paths, joins keys and
  gives the GDAL path (``/vsis3/...``) of an object.
* :class:`S3Store` uses boto3 for object operations (conditional and checksummed
  writes, copies with a storage class, multipart uploads) and s3fs for listings.
  Both honour ``endpoint_url`` (from ``AWS_ENDPOINT_URL[_S3]``) and retry transient
  errors with exponential backoff and jitter (botocore's *standard* retry mode).
* :class:`LocalStore` does the same on a filesystem; writes go to a temporary file
  in the target directory, are fsynced, then renamed into place (atomic).

Credentials are never handled here: boto3 and s3fs take them from the standard
AWS chain of the process they run in.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import urlsplit

from . import failpoints
from .errors import (
    ForbiddenSourceError,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
    TransientStorageError,
    UnsafeKeyError,
    translate_s3_error,
)
from .redact import redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Read size for streaming checksums and copies.
IO_CHUNK = 8 * 1024 * 1024
#: Smallest part S3 accepts in a multipart upload (all parts but the last).
MIN_PART_SIZE = 5 * 1024 * 1024


# --- locations -----------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """An object in S3 (``scheme == "s3"``), a file on local disk (``"file"``), or a
    read-only HTTP(S) object (``"http"``: ``bucket`` holds the origin, e.g.
    ``https://host:port``; only STAC asset hrefs are read that way)."""

    scheme: Literal["s3", "file", "http"]
    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> Location:
        if url.startswith(("http://", "https://")):
            proto, _, rest = url.partition("://")
            host, _, key = rest.partition("/")
            if not host:
                raise ValueError(f"no host in {url!r}")
            return cls("http", f"{proto}://{host}", key)
        if url.startswith("s3://"):
            rest = url[len("s3://") :]
            bucket, _, key = rest.partition("/")
            if not bucket:
                raise ValueError(f"no bucket in {url!r}")
            return cls("s3", bucket, key)
        if "://" in url and not url.startswith("file://"):
            raise ValueError(f"unsupported URL scheme in {url!r} (use s3:// or a local path)")
        path = url[len("file://") :] if url.startswith("file://") else url
        trailing = path.endswith(os.sep)
        resolved = str(Path(path).expanduser().absolute())
        return cls("file", "", resolved + (os.sep if trailing and resolved != os.sep else ""))

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def is_http(self) -> bool:
        return self.scheme == "http"

    @property
    def url(self) -> str:
        if self.is_http:
            return f"{self.bucket}/{self.key}"
        return f"s3://{self.bucket}/{self.key}" if self.is_s3 else self.key

    def __str__(self) -> str:
        return self.url

    def as_prefix(self) -> Location:
        """This location as a folder: a trailing separator is added when missing."""
        sep = os.sep if self.scheme == "file" else "/"
        if not self.key or self.key.endswith(sep):
            return self
        return Location(self.scheme, self.bucket, self.key + sep)

    def join(self, relative: str) -> Location:
        """The location ``relative`` (a ``/``-separated key) below this prefix. Keys that
        could name anything outside it are refused (:func:`key_problem`); a local path must
        also stay below the prefix once symbolic links are resolved."""
        problem = key_problem(relative)
        if problem:
            raise UnsafeKeyError(f"refused key {relative!r}: {problem}")
        prefix = self.as_prefix()
        if self.scheme != "file":
            return Location(self.scheme, self.bucket, prefix.key + relative)
        path = Path(prefix.key, *relative.rstrip("/").split("/"))
        root = os.path.realpath(prefix.key)
        if not os.path.realpath(path).startswith(root.rstrip(os.sep) + os.sep):
            raise UnsafeKeyError(f"refused path {path}: it resolves outside {prefix.key}")
        return Location("file", "", str(path) + ("/" if relative.endswith("/") else ""))

    def relative_to(self, prefix: Location) -> str:
        """The ``/``-separated key of this location below ``prefix``."""
        base = prefix.as_prefix()
        if self.scheme != base.scheme or self.bucket != base.bucket:
            raise ValueError(f"{self} is not under {prefix}")
        if not self.key.startswith(base.key):
            raise ValueError(f"{self} is not under {prefix}")
        rel = self.key[len(base.key) :]
        return rel.replace(os.sep, "/") if self.scheme == "file" else rel

    def is_under(self, prefix: Location) -> bool:
        try:
            self.relative_to(prefix)
        except ValueError:
            return False
        return True

    @property
    def gdal_path(self) -> str:
        """The path GDAL opens: ``/vsis3/bucket/key`` (range requests) or the file path.
        HTTP(S) objects are never opened by GDAL (see :func:`readable_path`)."""
        if self.is_http:
            raise ForbiddenSourceError(f"{self.url} is fetched by compactor, not opened by GDAL")
        return f"/vsis3/{self.bucket}/{self.key}" if self.is_s3 else self.key

    @property
    def name(self) -> str:
        if self.scheme == "file":
            return Path(self.key).name
        return self.key.rstrip("/").rsplit("/", 1)[-1]


def key_problem(key: str) -> str | None:
    """Why ``key`` (an object key, or a relative key below a prefix; a trailing ``/`` names
    a folder) is unsafe to use, or ``None``. Refused: empty keys, control characters (NUL
    included), a leading ``/``, and empty, ``.`` or ``..`` segments. GDAL's ``/vsis3/``
    and local paths collapse those segments while S3 and boto3 do not, so a key holding
    one would make the two name different objects, or a path leave its folder."""
    if not key:
        return "it is empty"
    control = next((c for c in key if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if control is not None:
        return f"it holds the control character {control!r}"
    body = key[:-1] if key.endswith("/") else key
    if body.startswith("/"):
        return "it starts with '/'"
    for segment in body.split("/"):
        if segment in ("", ".", ".."):
            what = "an empty segment ('//')" if not segment else f"a {segment!r} segment"
            return f"it has {what}, which would name another object or folder"
    return None


# --- object metadata -------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or HEAD says about one object."""

    url: str
    size: int
    etag: str | None = None
    mtime: str | None = None
    storage_class: str = "STANDARD"
    #: Base64 SHA-256 the store reports (full object, or composite ``...-N`` for multipart).
    checksum_sha256: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    version_id: str | None = None
    #: ``x-amz-restore`` header for archived objects being restored.
    restore: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    #: Set for SSE-C objects (customer-provided keys), which compactor cannot copy.
    sse_customer_algorithm: str | None = None
    cache_control: str | None = None
    content_disposition: str | None = None
    content_encoding: str | None = None
    content_language: str | None = None

    @property
    def location(self) -> Location:
        return Location.parse(self.url)


ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a local file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(IO_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# --- retries -----------------------------------------------------------------------


def with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    attempts: int = 6,
    base_delay: float = 0.2,
    max_delay: float = 10.0,
    retry_on: tuple[type[BaseException], ...] = (TransientStorageError,),
) -> T:
    """Call ``fn`` until it succeeds, retrying ``retry_on`` errors with exponential
    backoff and full jitter. Used around operations botocore does not retry itself
    (streamed body reads that break midway)."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except retry_on as err:
            if attempt == attempts:
                raise
            delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))
            log.debug("%s: %s; retry %d/%d in %.2fs", what, err, attempt, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


# --- S3 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Options:
    """How to reach S3. Plain data, shipped to workers; holds no credentials."""

    endpoint_url: str | None = None
    region: str | None = None
    max_attempts: int = 8

    def botocore_config(self) -> Any:
        from botocore.config import Config

        return Config(
            region_name=self.region,
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
            # We compare checksums ourselves (and moto keeps a multipart source's composite
            # CRC32 on CopyObject, which breaks the SDK's own response validation).
            response_checksum_validation="when_required",
            request_checksum_calculation="when_required",
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=32,
        )


_clients: dict[tuple[S3Options, int], Any] = {}
_clients_lock = threading.Lock()


def s3_client(options: S3Options) -> Any:
    """A boto3 S3 client for ``options`` (one per process and options; thread-safe)."""
    key = (options, os.getpid())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import boto3

            session = boto3.session.Session()
            client = session.client(
                "s3", endpoint_url=options.endpoint_url, config=options.botocore_config()
            )
            _clients[key] = client
        return client


def s3_filesystem(options: S3Options) -> Any:
    """An s3fs filesystem for listings (fsspec caches instances per arguments)."""
    import s3fs

    client_kwargs: dict[str, Any] = {}
    if options.endpoint_url:
        client_kwargs["endpoint_url"] = options.endpoint_url
    if options.region:
        client_kwargs["region_name"] = options.region
    return s3fs.S3FileSystem(
        client_kwargs=client_kwargs,
        config_kwargs={"retries": {"max_attempts": options.max_attempts, "mode": "standard"}},
        use_listings_cache=False,
        skip_instance_cache=False,
    )


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


class S3Store:
    """Object operations on S3 for one set of :class:`S3Options`."""

    def __init__(self, options: S3Options):
        self.options = options

    @property
    def client(self) -> Any:
        return s3_client(self.options)

    def _call(self, action: str, url: str, fn: Callable[..., T], **kwargs: Any) -> T:
        try:
            return fn(**kwargs)
        except Exception as err:
            if isinstance(err, StorageError):
                raise
            raise translate_s3_error(err, url, action) from err

    # listing ------------------------------------------------------------------

    def listing(self, prefix: Location) -> Iterator[ObjectInfo]:
        """Every object below ``prefix`` (recursive), through s3fs."""
        fs = s3_filesystem(self.options)
        root = f"{prefix.bucket}/{prefix.key}"
        try:
            found = fs.find(root, detail=True, withdirs=False)
        except Exception as err:
            raise translate_s3_error(err, prefix.url, "listing") from err
        for path, info in sorted(found.items()):
            if info.get("type") == "directory" or path.endswith("/"):
                continue
            bucket, _, key = path.partition("/")
            yield ObjectInfo(
                url=f"s3://{bucket}/{key}",
                size=int(info.get("size") or info.get("Size") or 0),
                etag=info.get("ETag"),
                mtime=_iso(info.get("LastModified")),
                storage_class=info.get("StorageClass") or "STANDARD",
            )

    def bucket_exists(self, bucket: str) -> bool:
        """HeadBucket: False if it does not exist; AccessDenied and others raise."""
        try:
            self._call("HeadBucket", f"s3://{bucket}", self.client.head_bucket, Bucket=bucket)
        except ObjectNotFound:
            return False
        return True

    # reads -----------------------------------------------------------------------

    def head(self, loc: Location) -> ObjectInfo | None:
        """Metadata of one object, or ``None`` if it does not exist."""
        try:
            r = self._call(
                "HEAD",
                loc.url,
                self.client.head_object,
                Bucket=loc.bucket,
                Key=loc.key,
                ChecksumMode="ENABLED",
            )
        except ObjectNotFound:
            return None
        return ObjectInfo(
            url=loc.url,
            size=int(r["ContentLength"]),
            etag=r.get("ETag"),
            mtime=_iso(r.get("LastModified")),
            storage_class=r.get("StorageClass") or "STANDARD",
            checksum_sha256=r.get("ChecksumSHA256"),
            content_type=r.get("ContentType"),
            metadata=dict(r.get("Metadata") or {}),
            version_id=r.get("VersionId"),
            restore=r.get("Restore"),
            sse=r.get("ServerSideEncryption"),
            sse_kms_key_id=r.get("SSEKMSKeyId"),
            sse_customer_algorithm=r.get("SSECustomerAlgorithm"),
            cache_control=r.get("CacheControl"),
            content_disposition=r.get("ContentDisposition"),
            content_encoding=r.get("ContentEncoding"),
            content_language=r.get("ContentLanguage"),
        )

    def read_bytes(self, loc: Location) -> bytes:
        def fetch() -> bytes:
            r = self._call("GET", loc.url, self.client.get_object, Bucket=loc.bucket, Key=loc.key)
            try:
                return bytes(r["Body"].read())
            except Exception as err:
                raise translate_s3_error(err, loc.url, "GET") from err

        return with_retries(fetch, what=f"GET {loc.url}")

    def read_versioned(self, loc: Location) -> tuple[bytes, str | None] | None:
        """Body and ETag of one object from a single GET, or ``None`` if absent."""

        def fetch() -> tuple[bytes, str | None] | None:
            try:
                r = self._call(
                    "GET", loc.url, self.client.get_object, Bucket=loc.bucket, Key=loc.key
                )
            except ObjectNotFound:
                return None
            try:
                return bytes(r["Body"].read()), r.get("ETag")
            except Exception as err:
                raise translate_s3_error(err, loc.url, "GET") from err

        return with_retries(fetch, what=f"GET {loc.url}")

    def sha256(
        self, loc: Location, *, etag: str | None = None, part_size: int | None = None
    ) -> tuple[str, list[str]]:
        """Stream an object and return its hex SHA-256, plus the base64 SHA-256 of each
        ``part_size`` range when asked (to check a multipart copy's composite checksum).
        ``etag`` pins the version read: a change midway fails with PreconditionFailed."""
        info_size = self.head(loc)
        if info_size is None:
            raise ObjectNotFound(f"HEAD {loc.url} failed: NotFound", url=loc.url)
        size = info_size.size
        total = hashlib.sha256()
        parts: list[str] = []
        part_hash = hashlib.sha256()
        part_fill = 0
        offset = 0
        while offset < size:
            end = min(size, offset + IO_CHUNK) - 1

            def fetch(start: int = offset, stop: int = end) -> bytes:
                kwargs: dict[str, Any] = {"Range": f"bytes={start}-{stop}"}
                if etag:
                    kwargs["IfMatch"] = etag
                r = self._call(
                    "GET", loc.url, self.client.get_object, Bucket=loc.bucket, Key=loc.key, **kwargs
                )
                try:
                    return bytes(r["Body"].read())
                except Exception as err:
                    raise translate_s3_error(err, loc.url, "GET") from err

            block = with_retries(fetch, what=f"GET {loc.url}")
            if len(block) != end - offset + 1:
                raise TransientStorageError(f"short read of {loc.url}", url=loc.url)
            total.update(block)
            if part_size:
                view = memoryview(block)
                while view:
                    take = min(len(view), part_size - part_fill)
                    part_hash.update(view[:take])
                    part_fill += take
                    view = view[take:]
                    if part_fill == part_size:
                        parts.append(b64(part_hash.digest()))
                        part_hash, part_fill = hashlib.sha256(), 0
            offset = end + 1
        if part_size and part_fill:
            parts.append(b64(part_hash.digest()))
        return total.hexdigest(), parts

    def download(self, loc: Location, dest: Path) -> None:
        def fetch() -> None:
            try:
                self.client.download_file(loc.bucket, loc.key, str(dest))
            except Exception as err:
                raise translate_s3_error(err, loc.url, "download") from err

        with_retries(fetch, what=f"download {loc.url}")

    # writes ----------------------------------------------------------------------

    def put_bytes(
        self,
        loc: Location,
        data: bytes,
        *,
        content_type: str = "application/json",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Write a small object in one PUT (atomic). Returns its ETag.
        ``if_none_match`` creates only if absent; ``if_match`` replaces only that version."""
        kwargs: dict[str, Any] = {
            "Bucket": loc.bucket,
            "Key": loc.key,
            "Body": data,
            "ContentType": content_type,
            "ContentMD5": b64(hashlib.md5(data).digest()),
        }
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match:
            kwargs["IfMatch"] = if_match
        r = self._call("PUT", loc.url, self.client.put_object, **kwargs)
        return str(r["ETag"])

    def put_file(
        self,
        path: Path,
        loc: Location,
        *,
        sha256_hex: str,
        content_type: str = "image/tiff; application=geotiff; profile=cloud-optimized",
        metadata: dict[str, str] | None = None,
        multipart_threshold: int = 64 * 1024 * 1024,
        part_size: int = 64 * 1024 * 1024,
    ) -> ObjectInfo:
        """Upload a local file atomically: one PUT carrying its SHA-256 (S3 rejects a
        corrupted body), or above ``multipart_threshold`` a multipart upload with a
        SHA-256 per part that is aborted if anything fails. Returns the HEAD afterwards."""
        size = path.stat().st_size
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": metadata or {}}
        if size <= multipart_threshold:
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256_hex:
                raise StorageError(f"{path} changed before upload", url=loc.url)
            self._call(
                "PUT",
                loc.url,
                self.client.put_object,
                Bucket=loc.bucket,
                Key=loc.key,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64(bytes.fromhex(sha256_hex)),
                **extra,
            )
        else:
            self._multipart_upload(path, loc, size, part_size, extra)
        info = self.head(loc)
        if info is None or info.size != size:
            raise StorageError(f"upload of {loc.url} not visible after completion", url=loc.url)
        return info

    def _multipart_upload(
        self, path: Path, loc: Location, size: int, part_size: int, extra: dict[str, Any]
    ) -> None:
        part_size = max(part_size, MIN_PART_SIZE)
        mpu = self._call(
            "CreateMultipartUpload",
            loc.url,
            self.client.create_multipart_upload,
            Bucket=loc.bucket,
            Key=loc.key,
            ChecksumAlgorithm="SHA256",
            **extra,
        )
        upload_id = mpu["UploadId"]
        try:
            parts = []
            with open(path, "rb") as fh:
                number = 1
                while True:
                    block = fh.read(part_size)
                    if not block:
                        break
                    digest = b64(hashlib.sha256(block).digest())
                    r = self._call(
                        "UploadPart",
                        loc.url,
                        self.client.upload_part,
                        Bucket=loc.bucket,
                        Key=loc.key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=block,
                        ChecksumSHA256=digest,
                    )
                    parts.append(
                        {"PartNumber": number, "ETag": r["ETag"], "ChecksumSHA256": digest}
                    )
                    if number == 1:
                        failpoints.hit("mid-upload")
                    number += 1
            self._call(
                "CompleteMultipartUpload",
                loc.url,
                self.client.complete_multipart_upload,
                Bucket=loc.bucket,
                Key=loc.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self.abort_upload(loc, upload_id)
            raise

    def create_upload(self, loc: Location, **extra: Any) -> str:
        r = self._call(
            "CreateMultipartUpload",
            loc.url,
            self.client.create_multipart_upload,
            Bucket=loc.bucket,
            Key=loc.key,
            ChecksumAlgorithm="SHA256",
            **extra,
        )
        return str(r["UploadId"])

    def upload_part(
        self, loc: Location, upload_id: str, number: int, data: bytes, sha256: bytes
    ) -> str:
        """Upload one part with its SHA-256 (S3 rejects a corrupted body); returns its ETag."""
        r = self._call(
            "UploadPart",
            loc.url,
            self.client.upload_part,
            Bucket=loc.bucket,
            Key=loc.key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumSHA256=b64(sha256),
        )
        return str(r["ETag"])

    def list_parts(self, loc: Location, upload_id: str) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        marker = 0
        while True:
            r = self._call(
                "ListParts",
                loc.url,
                self.client.list_parts,
                Bucket=loc.bucket,
                Key=loc.key,
                UploadId=upload_id,
                PartNumberMarker=marker,
            )
            parts += r.get("Parts") or []
            if not r.get("IsTruncated"):
                return parts
            marker = int(r["NextPartNumberMarker"])

    def complete_upload(self, loc: Location, upload_id: str, parts: list[dict[str, Any]]) -> None:
        self._call(
            "CompleteMultipartUpload",
            loc.url,
            self.client.complete_multipart_upload,
            Bucket=loc.bucket,
            Key=loc.key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )

    def abort_stale_uploads(self, loc: Location) -> int:
        """Abort unfinished multipart uploads to exactly this key (left by a killed process).
        Only call while holding the scene's lease: no one else may be writing the key."""
        r = self._call(
            "ListMultipartUploads",
            loc.url,
            self.client.list_multipart_uploads,
            Bucket=loc.bucket,
            Prefix=loc.key,
        )
        stale = [u for u in r.get("Uploads") or [] if u.get("Key") == loc.key]
        for upload in stale:
            log.info("aborting an abandoned multipart upload to %s", loc.url)
            self.abort_upload(loc, upload["UploadId"])
        return len(stale)

    def abort_upload(self, loc: Location, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=loc.bucket, Key=loc.key, UploadId=upload_id)
        except Exception as err:  # best effort; the lifecycle rule cleans up the rest
            log.warning("could not abort multipart upload of %s: %s", loc.url, err)

    def copy(
        self,
        src: Location,
        dst: Location,
        *,
        storage_class: str,
        if_match: str | None,
        if_none_match: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Server-side CopyObject (objects up to 5 GiB) into ``storage_class``. Metadata,
        Content-Type and tags are copied (COPY directives); ``extra`` adds arguments such
        as server-side encryption, which a copy does not carry over by itself."""
        kwargs: dict[str, Any] = {
            "Bucket": dst.bucket,
            "Key": dst.key,
            "CopySource": {"Bucket": src.bucket, "Key": src.key},
            "StorageClass": storage_class,
            "MetadataDirective": "COPY",
            "TaggingDirective": "COPY",
            "ChecksumAlgorithm": "SHA256",
            **(extra or {}),
        }
        if if_match:
            kwargs["CopySourceIfMatch"] = if_match
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"  # never replace an existing object
        r = self._call("CopyObject", f"{src.url} -> {dst.url}", self.client.copy_object, **kwargs)
        return dict(r.get("CopyObjectResult") or {})

    def multipart_copy(
        self,
        src: Location,
        dst: Location,
        *,
        size: int,
        part_size: int,
        if_match: str | None,
        create: dict[str, Any],
        if_none_match: bool = False,
    ) -> list[dict[str, Any]]:
        """Copy ``src`` to ``dst`` with UploadPartCopy, the source ETag a precondition on
        every part (a source replaced midway fails the copy instead of mixing versions).
        ``create`` holds everything set explicitly on the new object (storage class,
        metadata, Content-Type, tags, encryption): a multipart copy carries none of it over.
        ``if_none_match``: complete only if nothing is at ``dst`` yet (archive copies).
        Aborted on any failure. Returns the parts as completed."""
        what = f"{src.url} -> {dst.url}"
        mpu = self._call(
            "CreateMultipartUpload",
            dst.url,
            self.client.create_multipart_upload,
            Bucket=dst.bucket,
            Key=dst.key,
            ChecksumAlgorithm="SHA256",
            **create,
        )
        upload_id = mpu["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            for number, start in enumerate(range(0, size, part_size), start=1):
                end = min(size, start + part_size) - 1
                kwargs: dict[str, Any] = {
                    "Bucket": dst.bucket,
                    "Key": dst.key,
                    "UploadId": upload_id,
                    "PartNumber": number,
                    "CopySource": {"Bucket": src.bucket, "Key": src.key},
                    "CopySourceRange": f"bytes={start}-{end}",
                }
                if if_match:
                    kwargs["CopySourceIfMatch"] = if_match
                r = self._call("UploadPartCopy", what, self.client.upload_part_copy, **kwargs)
                result = r.get("CopyPartResult") or {}
                part = {"PartNumber": number, "ETag": result["ETag"]}
                if result.get("ChecksumSHA256"):
                    part["ChecksumSHA256"] = result["ChecksumSHA256"]
                parts.append(part)
                if number == 1:
                    failpoints.hit("mid-archive-copy")
            self._call(
                "CompleteMultipartUpload",
                dst.url,
                self.client.complete_multipart_upload,
                Bucket=dst.bucket,
                Key=dst.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                **({"IfNoneMatch": "*"} if if_none_match else {}),  # never replace a copy
            )
        except BaseException:
            self.abort_upload(dst, upload_id)
            raise
        return parts

    def get_tags(self, loc: Location) -> dict[str, str] | None:
        """The object's tags, or ``None`` where the store refuses to read them (some
        stores refuse for archived objects)."""
        from .errors import ArchivedObjectError

        try:
            r = self._call(
                "GetObjectTagging",
                loc.url,
                self.client.get_object_tagging,
                Bucket=loc.bucket,
                Key=loc.key,
            )
        except ArchivedObjectError:
            return None
        return {t["Key"]: t["Value"] for t in r.get("TagSet", [])}

    def delete(self, loc: Location, *, if_match: str | None = None) -> None:
        """DeleteObject; with ``if_match`` only that version is deleted (conditional delete).
        Stores without conditional deletes answer NotImplemented: then a plain delete."""
        kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key}
        if if_match:
            kwargs["IfMatch"] = if_match
        try:
            self._call("DELETE", loc.url, self.client.delete_object, **kwargs)
        except StorageError as err:
            if not if_match or err.code not in ("NotImplemented", "501"):
                raise
            log.debug("store has no conditional delete; deleting %s unconditionally", loc.url)
            self._call("DELETE", loc.url, self.client.delete_object, Bucket=loc.bucket, Key=loc.key)

    def restore(self, loc: Location, *, days: int, tier: str) -> None:
        self._call(
            "RestoreObject",
            loc.url,
            self.client.restore_object,
            Bucket=loc.bucket,
            Key=loc.key,
            RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
        )


# --- local disk -------------------------------------------------------------------


class LocalStore:
    """The same operations on a local filesystem, atomic by temp file + rename."""

    def listing(self, prefix: Location) -> Iterator[ObjectInfo]:
        root = Path(prefix.key)
        if not root.exists():
            raise ObjectNotFound(f"listing {prefix.url} failed: no such directory", url=prefix.url)
        if root.is_file():
            yield self._info(root)
            return
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath, name)
                if p.is_file():
                    yield self._info(p)

    def _info(self, p: Path) -> ObjectInfo:
        st = p.stat()
        return ObjectInfo(
            url=str(p),
            size=st.st_size,
            etag=_local_etag(st),
            mtime=datetime.fromtimestamp(st.st_mtime, UTC).isoformat(),
        )

    def head(self, loc: Location) -> ObjectInfo | None:
        p = Path(loc.key)
        return self._info(p) if p.is_file() else None

    def read_bytes(self, loc: Location) -> bytes:
        try:
            return Path(loc.key).read_bytes()
        except FileNotFoundError as err:
            raise ObjectNotFound(f"read {loc.url} failed: not found", url=loc.url) from err

    def read_versioned(self, loc: Location) -> tuple[bytes, str | None] | None:
        p = Path(loc.key)
        try:
            with open(p, "rb") as fh:
                data = fh.read()
                st = os.fstat(fh.fileno())
        except FileNotFoundError:
            return None
        return data, _local_etag(st)

    def sha256(
        self, loc: Location, *, etag: str | None = None, part_size: int | None = None
    ) -> tuple[str, list[str]]:
        return sha256_file(loc.key), []

    def _atomic_write(self, loc: Location, write: Callable[[BinaryIO], object]) -> None:
        target = Path(loc.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give files the usual mode
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_bytes(
        self,
        loc: Location,
        data: bytes,
        *,
        content_type: str = "application/json",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Atomic write (temp file renamed into place); the condition is checked and the
        file replaced under a per-target lock, so concurrent writers on this host serialise."""
        target = Path(loc.key)
        with _locked(target):
            current = self.head(loc)
            if if_none_match and current is not None:
                raise PreconditionFailed(f"{loc.url} exists", url=loc.url)
            if if_match and (current is None or current.etag != if_match):
                raise PreconditionFailed(f"{loc.url} changed", url=loc.url)
            self._atomic_write(loc, lambda fh: fh.write(data))
            info = self.head(loc)
        assert info is not None
        return info.etag or ""

    def put_file(
        self,
        path: Path,
        loc: Location,
        *,
        sha256_hex: str,
        content_type: str = "",
        metadata: dict[str, str] | None = None,
        multipart_threshold: int = 0,
        part_size: int = 0,
    ) -> ObjectInfo:
        def write(fh: BinaryIO) -> None:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, fh, IO_CHUNK)

        self._atomic_write(loc, write)
        if sha256_file(loc.key) != sha256_hex:
            raise StorageError(f"{loc.url} does not match what was written", url=loc.url)
        info = self.head(loc)
        assert info is not None
        return info

    def move(self, src: Location, dst: Location) -> None:
        """Move a file: rename on one filesystem, else copy (atomic at the target) and
        leave the source for the caller to delete after verification."""
        target = Path(dst.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src.key, target)  # same filesystem: the bytes are now at both names
        except FileExistsError as err:
            raise PreconditionFailed(f"{dst.url} exists", url=dst.url) from err
        except OSError:
            self._atomic_write(dst, lambda fh: _copy_into(src.key, fh))
        _fsync_dir(target.parent)

    def delete(self, loc: Location, *, if_match: str | None = None) -> None:
        target = Path(loc.key)
        with _locked(target):
            if if_match:
                current = self.head(loc)
                if current is not None and current.etag != if_match:
                    raise PreconditionFailed(f"{loc.url} changed", url=loc.url)
            try:
                target.unlink()
            except FileNotFoundError as err:
                raise ObjectNotFound(f"delete {loc.url} failed: not found", url=loc.url) from err
        _fsync_dir(target.parent)


def _local_etag(st: os.stat_result) -> str:
    """A version tag for a local file: every atomic write renames a new file (a new inode)
    into place, so inode, size and mtime together change on every write."""
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """An exclusive lock on the target's directory, across processes on this host, for
    the compare-and-swap of conditional writes (flock on the directory itself, so no lock
    files are left behind)."""
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _umask() -> int:
    """The process umask (read from /proc where possible; setting it back otherwise)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def _copy_into(path: str, fh: BinaryIO) -> None:
    with open(path, "rb") as src:
        shutil.copyfileobj(src, fh, IO_CHUNK)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class HttpPolicy:
    """Which HTTP(S) hosts a run may read from (STAC asset hrefs outside any bucket), and
    the headers sent to each: plain data shipped to workers, holding no secret (a header's
    value is the name of an environment variable, read where the request is made).

    ``hosts`` are ``host``, ``host:port`` or ``*.domain``; a host that resolves to a
    loopback, private, link-local or otherwise non-public address is read only when named
    exactly (never through a ``*.`` pattern)."""

    hosts: tuple[str, ...] = ()
    #: (host entry, header name, value or ``${ENV_VAR}``)
    headers: tuple[tuple[str, str, str], ...] = ()
    timeout: float = 30.0

    def _entry(self, url: str) -> tuple[str, bool] | None:
        """The host entry allowing ``url`` and whether it names the host exactly."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
        for entry in self.hosts:
            name, want = split_host(entry)
            if want is not None and want != port:
                continue
            if name == host:
                return entry, True
            if name.startswith("*.") and host.endswith(name[1:]):
                return entry, False
        return None

    def check(self, url: str) -> None:
        """Raise :class:`ForbiddenSourceError` unless ``url`` may be read: an ``http(s)``
        URL at an allowed host whose every address is public, or that is named exactly."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ForbiddenSourceError(f"refused {url}: only http(s) URLs with a host are read")
        if parts.username or parts.password:
            raise ForbiddenSourceError(f"refused {redact_url(url)}: credentials in the URL")
        found = self._entry(url)
        if found is None:
            raise ForbiddenSourceError(
                f"refused {url}: host {parts.netloc} is not allowed (--allow-host; by default "
                "only the STAC API's own host)"
            )
        if found[1]:  # named exactly: the user vouches for it, private address or not
            return
        for address in _addresses(parts.hostname):
            if not address.is_global:
                raise ForbiddenSourceError(
                    f"refused {url}: {parts.hostname} resolves to the non-public address "
                    f"{address}; name the host exactly with --allow-host to read it"
                )

    def request_headers(self, url: str, environ: Mapping[str, str]) -> dict[str, str]:
        """Headers configured for ``url``'s host entry, ``${VAR}`` values read from
        ``environ`` (on the worker); a missing variable is an error, never an empty header."""
        found = self._entry(url)
        if found is None:
            return {}
        out: dict[str, str] = {}
        for entry, name, value in self.headers:
            if entry != found[0]:
                continue
            if value.startswith("${") and value.endswith("}"):
                var = value[2:-1]
                if var not in environ:
                    raise ForbiddenSourceError(
                        f"header {name} for {entry} needs the environment variable {var} on "
                        "the workers"
                    )
                value = environ[var]
            out[name] = value
        return out


def split_host(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or ``*.domain`` -> (lower-case host, port)."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return entry, None


def _addresses(host: str) -> list[Any]:
    import ipaddress
    import socket

    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as err:
        raise TransientStorageError(f"cannot resolve {host}: {err}") from err
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:  # fmt: skip
        raise ForbiddenSourceError(
            f"refused {req.full_url}: it answers HTTP {code}, a redirect to {newurl}; "
            "redirects are not followed"
        )


class HttpStore:
    """Read-only HTTP(S) objects (STAC asset hrefs outside any known bucket). compactor
    fetches them itself under :class:`HttpPolicy` (allowed hosts only, no redirects, headers
    only to the host they were configured for), never through GDAL, and never writes,
    archives or deletes them."""

    def __init__(self, policy: HttpPolicy | None = None):
        self.policy = policy or HttpPolicy()

    def _open(self, loc: Location, method: str) -> Any:
        self.policy.check(loc.url)
        headers = self.policy.request_headers(loc.url, os.environ)
        request = urllib.request.Request(loc.url, method=method, headers=headers)
        opener = urllib.request.build_opener(_NoRedirect())
        try:
            return opener.open(request, timeout=self.policy.timeout)
        except urllib.error.HTTPError as err:
            if err.code in (404, 410):
                raise ObjectNotFound(f"{loc.url} not found (HTTP {err.code})", url=loc.url) from err
            raise translate_http_error(loc.url, err) from err
        except (urllib.error.URLError, OSError) as err:
            raise TransientStorageError(f"{method} {loc.url} failed: {err}", url=loc.url) from err

    def head(self, loc: Location) -> ObjectInfo | None:
        try:
            with self._open(loc, "HEAD") as resp:
                headers = resp.headers
        except ObjectNotFound:
            return None
        length = headers.get("Content-Length")
        return ObjectInfo(
            url=loc.url,
            size=int(length) if length else 0,
            etag=headers.get("ETag"),
            mtime=headers.get("Last-Modified"),
            content_type=headers.get("Content-Type"),
        )

    def download(self, loc: Location, dest: Path, max_bytes: int) -> None:
        """Fetch the object into ``dest``; refuse more than ``max_bytes``."""
        with self._open(loc, "GET") as resp, open(dest, "wb") as out:
            declared = resp.headers.get("Content-Length")
            if declared and int(declared) > max_bytes:
                raise ForbiddenSourceError(
                    f"refused {loc.url}: {int(declared):,} bytes, more than {max_bytes:,}"
                )
            total = 0
            while block := resp.read(IO_CHUNK):
                total += len(block)
                if total > max_bytes:
                    raise ForbiddenSourceError(f"refused {loc.url}: more than {max_bytes:,} bytes")
                out.write(block)

    def listing(self, prefix: Location) -> Iterator[ObjectInfo]:
        raise StorageError(f"cannot list {prefix.url}: HTTP sources come from a STAC search")


def translate_http_error(url: str, err: Any) -> StorageError:
    reason = f"HTTP {err.code} {getattr(err, 'reason', '')}".strip()
    if err.code >= 500 or err.code == 429:
        return TransientStorageError(f"{reason} from {url}", url=url)
    return StorageError(f"{reason} from {url}", url=url)


Store = S3Store | LocalStore


def store_for(loc: Location, options: S3Options) -> Store:
    """The writable store of an ``s3://`` or local location."""
    if loc.is_http:
        raise StorageError(f"{loc.url} is read-only (HTTP)", url=loc.url)
    return S3Store(options) if loc.is_s3 else LocalStore()


def source_store_for(
    loc: Location, options: S3Options, http: HttpPolicy | None = None
) -> Store | HttpStore:
    """Where a scene's original is read from: also read-only HTTP(S) for STAC hrefs."""
    return HttpStore(http) if loc.is_http else store_for(loc, options)


def readable_path(
    loc: Location, scratch: Path, http: HttpPolicy | None = None, max_bytes: int = 0
) -> str:
    """The path GDAL opens for a source: ``/vsis3/...`` (range requests) or a local file;
    an HTTP(S) source is first fetched whole into ``scratch`` under ``http`` (GDAL would
    follow redirects and send its headers anywhere), at most ``max_bytes``."""
    if not loc.is_http:
        return loc.gdal_path
    suffix = Path(urlsplit(loc.url).path).suffix.lower()
    target = scratch / f"http-source{suffix if suffix in _LOCAL_SUFFIXES else '.tif'}"
    if not target.exists():
        scratch.mkdir(parents=True, exist_ok=True)
        HttpStore(http).download(loc, target, max_bytes)
    return str(target)


#: Extensions kept on fetched HTTP(S) sources (GDAL picks no driver by extension, but
#: sidecar names follow it).
_LOCAL_SUFFIXES = frozenset({".tif", ".tiff", ".jp2", ".ntf", ".nitf", ".img"})
