"""S3 (and S3-compatible stores): boto3 for object operations (conditional and checksummed
writes, copies with a storage class, multipart uploads), s3fs for listings. Both honour
``endpoint_url`` and retry transient errors with botocore's *standard* retry mode.

Credentials are never handled here: boto3 and s3fs take them from the standard AWS chain
of the process they run in."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import failpoints
from ..errors import (
    ArchivedObjectError,
    ObjectNotFound,
    StorageError,
    TransientStorageError,
    s3_errors,
    translate_s3_error,
)
from .base import IO_CHUNK, MIN_PART_SIZE, Capabilities, ObjectInfo, Recorded, b64, same_bytes
from .location import Location
from .multipart import PartSent, S3Parts
from .retry import with_retries
from .s3client import S3Options, call, head_object, iso, s3_client, s3_filesystem

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

T = TypeVar("T")


class S3Store:
    """Object operations on S3 for one set of :class:`S3Options`."""

    def __init__(self, options: S3Options):
        self.options = options

    @property
    def client(self) -> S3Client:
        return s3_client(self.options)

    capabilities = Capabilities(server_copy=True, content_etags=True)

    def server_copier(self) -> S3Store:
        return self

    def link(self, src: Location, dst: Location) -> None:
        self.copy(src, dst, storage_class="STANDARD", if_match=None, if_none_match=True)

    def _call(self, action: str, url: str, fn: Callable[..., T], **kwargs: Any) -> T:
        return call(action, url, fn, **kwargs)

    # listing ------------------------------------------------------------------

    def listing(self, prefix: Location) -> Iterator[ObjectInfo]:
        """Every object below ``prefix`` (recursive), through s3fs."""
        fs = s3_filesystem(self.options)
        root = f"{prefix.bucket}/{prefix.key}"
        try:
            found = fs.find(root, detail=True, withdirs=False)
        except s3_errors() as err:
            raise translate_s3_error(err, prefix.url, "listing") from err
        for path, info in sorted(found.items()):
            if info.get("type") == "directory" or path.endswith("/"):
                continue
            bucket, _, key = path.partition("/")
            yield ObjectInfo(
                url=f"s3://{bucket}/{key}",
                size=int(info.get("size") or info.get("Size") or 0),
                etag=info.get("ETag"),
                mtime=iso(info.get("LastModified")),
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
        return head_object(self.options, loc)

    def read_bytes(self, loc: Location) -> bytes:
        def fetch() -> bytes:
            r = self._call("GET", loc.url, self.client.get_object, Bucket=loc.bucket, Key=loc.key)
            try:
                return bytes(r["Body"].read())
            except s3_errors() as err:
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
            except s3_errors() as err:
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
                except s3_errors() as err:
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
            except s3_errors() as err:
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
            self._upload_parts(path, loc, max(part_size, MIN_PART_SIZE), extra)
        info = self.head(loc)
        if info is None or info.size != size:
            raise StorageError(f"upload of {loc.url} not visible after completion", url=loc.url)
        return info

    def _upload_parts(
        self, path: Path, loc: Location, part_size: int, extra: dict[str, Any]
    ) -> None:
        """A multipart upload of a local file, a SHA-256 per part, aborted on any failure."""
        parts = S3Parts.create(self.options, loc, **extra)
        sent: list[PartSent] = []
        try:
            with open(path, "rb") as fh:
                while block := fh.read(part_size):
                    sent.append(parts.put(len(sent) + 1, block))
                    if len(sent) == 1:
                        failpoints.hit("mid-upload")
        except BaseException:
            parts.abort()
            raise
        parts.complete(sent, path.stat().st_size)

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
            S3Parts(self.options, loc.url, upload["UploadId"]).abort()
        return len(stale)

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
    ) -> list[PartSent]:
        """Copy ``src`` to ``dst`` with UploadPartCopy, the source ETag a precondition on
        every part (a source replaced midway fails the copy instead of mixing versions).
        ``create`` holds everything set explicitly on the new object (storage class,
        metadata, Content-Type, tags, encryption): a multipart copy carries none of it over.
        ``if_none_match``: complete only if nothing is at ``dst`` yet (archive copies).
        Aborted on any failure. Returns the parts as completed."""
        parts = S3Parts.create(self.options, dst, if_none_match=if_none_match, **create)
        sent: list[PartSent] = []
        try:
            for number, start in enumerate(range(0, size, part_size), start=1):
                end = min(size, start + part_size) - 1
                sent.append(parts.copy_part(number, src, start, end, if_match=if_match))
                if number == 1:
                    failpoints.hit("mid-archive-copy")
        except BaseException:
            parts.abort()
            raise
        parts.complete(sent, size)
        return sent

    def get_tags(self, loc: Location) -> dict[str, str] | None:
        """The object's tags, or ``None`` where the store refuses to read them (some
        stores refuse for archived objects)."""
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

    def holds(self, loc: Location, record: Recorded) -> bool:
        """Whether ``loc`` holds the recorded object, from one HEAD (see :func:`same_bytes`)."""
        info = self.head(loc)
        return info is not None and same_bytes(info, record)

    def restore(self, loc: Location, *, days: int, tier: str) -> None:
        self._call(
            "RestoreObject",
            loc.url,
            self.client.restore_object,
            Bucket=loc.bucket,
            Key=loc.key,
            RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
        )
