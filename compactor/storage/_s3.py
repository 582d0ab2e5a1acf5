"""S3 (and S3-compatible stores) through boto3: listings page by page, conditional and
checksummed writes, copies with a storage class, multipart uploads. Requests honour
``endpoint_url`` and retry transient errors with botocore's *standard* retry mode.

Credentials are never handled here: boto3 takes them from the standard AWS chain of the
process it runs in."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import failpoints
from ..errors import (
    ArchivedObjectError,
    ObjectNotFound,
    StorageError,
    s3_errors,
    translate_s3_error,
)
from ._base import (
    MIN_PART_SIZE,
    Capabilities,
    CopyAnswer,
    ObjectInfo,
    Recorded,
    b64,
    same_bytes,
)
from ._location import Location
from ._multipart import PartSent, S3Parts, Written
from ._s3client import count_request, iso
from ._s3read import S3Reads

log = logging.getLogger(__name__)


class S3Store(S3Reads):
    """Object operations on S3 for one set of :class:`S3Options` (the reads are
    :class:`~compactor.storage._s3read.S3Reads`)."""

    capabilities = Capabilities(server_copy=True, content_etags=True)

    def server_copier(self) -> S3Store:
        return self

    def link(self, src: Location, dst: Location) -> None:
        self.copy(src, dst, storage_class="STANDARD", if_match=None, if_none_match=True)

    # listing ------------------------------------------------------------------

    def listing(self, prefix: Location) -> Iterator[ObjectInfo]:
        """Every object below ``prefix`` (recursive), in key order, one ListObjectsV2 page
        (up to 1,000 keys) at a time: the listing is never held whole."""
        paginator = self.client.get_paginator("list_objects_v2")
        payer: dict[str, Any] = (
            {"RequestPayer": self.options.request_payer} if self.options.request_payer else {}
        )
        pages = paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key, **payer)
        try:
            for page in pages:
                count_request("ListObjectsV2")
                for obj in page.get("Contents") or []:
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue  # a "folder" placeholder
                    yield ObjectInfo(
                        url=f"s3://{prefix.bucket}/{key}",
                        size=int(obj.get("Size") or 0),
                        etag=obj.get("ETag"),
                        mtime=iso(obj.get("LastModified")),
                        storage_class=obj.get("StorageClass") or "STANDARD",
                    )
        except s3_errors() as err:
            raise translate_s3_error(err, prefix.url, "listing") from err

    def versioning(self, bucket: str) -> str | None:
        """The bucket's versioning: ``"Enabled"``, ``"Suspended"``, or ``None`` (never
        enabled)."""
        r = self._call(
            "GetBucketVersioning", f"s3://{bucket}", self.client.get_bucket_versioning,
            Bucket=bucket,
        )  # fmt: skip
        status = r.get("Status")
        return str(status) if status else None

    def tiering(self, bucket: str) -> list[tuple[str, str, int]]:
        """The bucket's enabled Intelligent-Tiering archive tiers: (configuration id,
        ``ARCHIVE_ACCESS`` or ``DEEP_ARCHIVE_ACCESS``, days without access)."""
        found: list[tuple[str, str, int]] = []
        token: str | None = None
        while True:
            r = self._call(
                "ListBucketIntelligentTieringConfigurations", f"s3://{bucket}",
                self.client.list_bucket_intelligent_tiering_configurations, Bucket=bucket,
                **({"ContinuationToken": token} if token else {}),
            )  # fmt: skip
            for config in r.get("IntelligentTieringConfigurationList") or []:
                if config.get("Status") != "Enabled":
                    continue
                for tier in config.get("Tierings") or []:
                    found.append((str(config["Id"]), str(tier["AccessTier"]), int(tier["Days"])))
            token = r.get("NextContinuationToken")
            if not r.get("IsTruncated") or not token:
                return found

    def put_probe(self, loc: Location, storage_class: str) -> None:
        """A one-byte object in ``storage_class``: whether the store has that class."""
        self._call(
            "PUT", loc.url, self.client.put_object, Bucket=loc.bucket, Key=loc.key, Body=b"0",
            StorageClass=storage_class,
        )  # fmt: skip

    def bucket_exists(self, bucket: str) -> bool:
        """HeadBucket: False if it does not exist; AccessDenied and others raise."""
        try:
            self._call("HeadBucket", f"s3://{bucket}", self.client.head_bucket, Bucket=bucket)
        except ObjectNotFound:
            return False
        return True

    # reads -----------------------------------------------------------------------
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
        if_none_match: bool = False,
        storage_class: str | None = None,
        sse_kms_key: str | None = None,
    ) -> ObjectInfo:
        """Upload a local file atomically: one PUT carrying its SHA-256 (S3 rejects a
        corrupted body), or above ``multipart_threshold`` a multipart upload with a
        SHA-256 per part that is aborted if anything fails. ``if_none_match``: only if
        nothing is at the key yet (PreconditionFailed otherwise). Returns what the store
        answered (S3 is strongly consistent: a completed write is what a HEAD would see)."""
        size = path.stat().st_size
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": metadata or {}}
        if storage_class and storage_class != "STANDARD":
            extra["StorageClass"] = storage_class
        if sse_kms_key:
            extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=sse_kms_key)
        if size > multipart_threshold:
            written = self._upload_parts(
                path, loc, max(part_size, MIN_PART_SIZE), extra, if_none_match
            )
            return ObjectInfo(
                url=loc.url, size=written.size, etag=written.etag,
                checksum_sha256=written.checksum, content_type=content_type,
                metadata=dict(metadata or {}),
            )  # fmt: skip
        data = path.read_bytes()
        checksum = b64(hashlib.sha256(data).digest())
        if checksum != b64(bytes.fromhex(sha256_hex)):
            raise StorageError(f"{path} changed before upload", url=loc.url)
        r = self._call(
            "PUT",
            loc.url,
            self.client.put_object,
            Bucket=loc.bucket,
            Key=loc.key,
            Body=data,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum,
            **({"IfNoneMatch": "*"} if if_none_match else {}),
            **extra,
        )
        reported = r.get("ChecksumSHA256")
        if reported and reported != checksum:
            raise StorageError(f"{loc.url}: the store reports another SHA-256", url=loc.url)
        return ObjectInfo(
            url=loc.url, size=size, etag=r.get("ETag"), checksum_sha256=reported or checksum,
            content_type=content_type, metadata=dict(metadata or {}),
            version_id=r.get("VersionId"),
        )  # fmt: skip

    def _upload_parts(
        self,
        path: Path,
        loc: Location,
        part_size: int,
        extra: dict[str, Any],
        if_none_match: bool = False,
    ) -> Written:
        """A multipart upload of a local file, a SHA-256 per part, aborted on any failure."""
        parts = S3Parts.create(self.options, loc, if_none_match=if_none_match, **extra)
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
        return parts.complete(sent, path.stat().st_size)

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
        version_id: str | None = None,
    ) -> CopyAnswer:
        """Server-side CopyObject (objects up to 5 GiB) into ``storage_class``. Metadata,
        Content-Type and tags are copied (COPY directives); ``extra`` adds arguments such
        as server-side encryption, which a copy does not carry over by itself. S3 computes
        the copy's SHA-256 as it stores it and answers with it."""
        kwargs: dict[str, Any] = {
            "Bucket": dst.bucket,
            "Key": dst.key,
            "CopySource": _copy_source(src, version_id),
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
        result = r.get("CopyObjectResult") or {}
        return CopyAnswer(
            etag=result.get("ETag"), checksum_sha256=result.get("ChecksumSHA256"),
            mtime=iso(result.get("LastModified")), version_id=r.get("VersionId"),
            sse=r.get("ServerSideEncryption"), sse_kms_key_id=r.get("SSEKMSKeyId"),
        )  # fmt: skip

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
        version_id: str | None = None,
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
                sent.append(
                    parts.copy_part(
                        number, src, start, end, if_match=if_match, version_id=version_id
                    )
                )
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

    def delete(
        self, loc: Location, *, if_match: str | None = None, version_id: str | None = None
    ) -> None:
        """DeleteObject; with ``if_match`` only if the current object is that one
        (conditional delete; stores without them answer NotImplemented: then a plain
        delete). With ``version_id`` (a versioned bucket), exactly that version is removed
        for good, not hidden behind a delete marker."""
        kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key}
        if version_id:
            kwargs["VersionId"] = version_id
            if_match = None  # the version names the bytes exactly
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


def _copy_source(src: Location, version_id: str | None) -> dict[str, str]:
    """A copy's source: the object, or exactly one version of it."""
    source = {"Bucket": src.bucket, "Key": src.key}
    if version_id:
        source["VersionId"] = version_id
    return source
