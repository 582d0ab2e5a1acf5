"""One object written as numbered parts, from any process, visible whole or not at all.

A :class:`PartsWriter` is a small picklable description (it travels to Dask tasks): every
producer puts its own parts, and one process completes the object once every check
passed, or aborts it. Two sinks, like odc-geo's ``PartsWriter``:

* :class:`S3Parts`: an S3 multipart upload. Parts carry their SHA-256 (S3 rejects a torn
  body); completion lists the parts and compares their sizes, sends every part's checksum,
  and checks the composite checksum and size S3 reports for the finished object.
* :class:`DirectoryParts`: a folder of part files beside nothing the user sees; completion
  concatenates them in order into a temporary file next to the target (in the kernel),
  hashes and fsyncs that file while the caller checks it whole, and renames it into place.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import failpoints
from ..errors import StorageError
from ._base import IO_CHUNK, MIN_PART_SIZE, b64, sha256_file
from ._location import Location
from ._s3client import S3Options, call, head_object, s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import PartTypeDef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartSent:
    """A part as written: its number, size and base64 SHA-256."""

    number: int
    size: int
    sha256: str


@dataclass(frozen=True)
class Written:
    """The completed object as the store reports it."""

    size: int
    etag: str | None = None
    #: The store's checksum (S3: base64 SHA-256, composite ``...-N`` for multipart).
    checksum: str | None = None
    #: Hex SHA-256 of the whole object, where it was computed while writing.
    sha256: str | None = None


class PartsWriter(Protocol):
    """Where the parts of one object go."""

    @property
    def url(self) -> str:
        """Where the object appears once complete."""
        ...

    @property
    def min_part(self) -> int:
        """Smallest size of every part but the last."""
        ...

    def put(self, number: int, data: bytes) -> PartSent: ...

    def complete(
        self,
        sent: Sequence[PartSent],
        total: int,
        check: Callable[[Path], None] | None = None,
    ) -> Written:
        """Make the object visible from ``sent`` (in part-number order), ``total`` bytes,
        after ``check`` passed on the whole file where the sink has one; else abort."""
        ...

    def abort(self) -> None: ...


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class S3Parts:
    """An S3 multipart upload (each part with its SHA-256)."""

    options: S3Options
    url: str
    upload_id: str
    #: Complete only if nothing is at the key yet (never replace an archived original).
    if_none_match: bool = False

    @property
    def min_part(self) -> int:
        return MIN_PART_SIZE

    @property
    def _loc(self) -> Location:
        return Location.parse(self.url)

    @classmethod
    def create(
        cls, options: S3Options, loc: Location, *, if_none_match: bool = False, **extra: Any
    ) -> S3Parts:
        """Start the upload (``extra``: ContentType, Metadata, StorageClass, Tagging ...)."""
        r = call(
            "CreateMultipartUpload", loc.url, s3_client(options).create_multipart_upload,
            options=options,
            Bucket=loc.bucket, Key=loc.key, ChecksumAlgorithm="SHA256", **extra,
        )  # fmt: skip
        return cls(options, loc.url, str(r["UploadId"]), if_none_match)

    def put(self, number: int, data: bytes) -> PartSent:
        digest = b64(_digest(data))
        loc = self._loc
        call(
            "UploadPart", loc.url, s3_client(self.options).upload_part, options=self.options,
            Bucket=loc.bucket, Key=loc.key, UploadId=self.upload_id, PartNumber=number,
            Body=data, ChecksumSHA256=digest,
        )  # fmt: skip
        return PartSent(number, len(data), digest)

    def copy_part(
        self,
        number: int,
        src: Location,
        first: int,
        last: int,
        *,
        if_match: str | None,
        version_id: str | None = None,
    ) -> PartSent:
        """Part ``number`` from bytes ``first..last`` of ``src`` (server-side); ``if_match``
        pins the source's ETag, ``version_id`` names exactly one version of it."""
        loc = self._loc
        source = {"Bucket": src.bucket, "Key": src.key}
        if version_id:
            source["VersionId"] = version_id
        kwargs: dict[str, Any] = {
            "Bucket": loc.bucket, "Key": loc.key, "UploadId": self.upload_id,
            "PartNumber": number, "CopySource": source,
            "CopySourceRange": f"bytes={first}-{last}",
        }  # fmt: skip
        if if_match:
            kwargs["CopySourceIfMatch"] = if_match
        r = call(
            "UploadPartCopy", f"{src.url} -> {loc.url}", s3_client(self.options).upload_part_copy,
            options=self.options, **kwargs,
        )  # fmt: skip
        result = r.get("CopyPartResult") or {}
        return PartSent(number, last - first + 1, str(result.get("ChecksumSHA256") or ""))

    def _listed(self) -> dict[int, PartTypeDef]:
        loc, parts, marker = self._loc, {}, 0
        while True:
            r = call(
                "ListParts", loc.url, s3_client(self.options).list_parts, options=self.options,
                Bucket=loc.bucket, Key=loc.key, UploadId=self.upload_id,
                PartNumberMarker=marker,
            )  # fmt: skip
            parts.update({p["PartNumber"]: p for p in r.get("Parts") or []})
            if not r.get("IsTruncated"):
                return parts
            marker = int(r["NextPartNumberMarker"])

    def complete(
        self,
        sent: Sequence[PartSent],
        total: int,
        check: Callable[[Path], None] | None = None,
    ) -> Written:
        """Complete after ListParts shows every part at its size; send each part's
        SHA-256; check the finished object's size and composite SHA-256."""
        if check is not None:
            raise ValueError("S3 parts are checked by size and checksum, not as a file")
        loc = self._loc
        expected = {p.number: p for p in sent}
        try:
            listed = self._listed()
            wrong = sorted(
                n for n, p in expected.items() if n not in listed or listed[n]["Size"] != p.size
            )
            if wrong or set(listed) != set(expected):
                raise StorageError(f"multipart upload of {loc.url}: parts {wrong} are not as sent")
            parts = []
            for n in sorted(expected):
                part = {"PartNumber": n, "ETag": listed[n]["ETag"]}
                if expected[n].sha256:
                    part["ChecksumSHA256"] = expected[n].sha256
                parts.append(part)
            failpoints.hit("before-complete")
            call(
                "CompleteMultipartUpload", loc.url,
                s3_client(self.options).complete_multipart_upload, options=self.options,
                Bucket=loc.bucket, Key=loc.key, UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
                **({"IfNoneMatch": "*"} if self.if_none_match else {}),
            )  # fmt: skip
        except BaseException:
            self.abort()
            raise
        info = head_object(self.options, loc)
        if info is None or info.size != total:
            raise StorageError(f"{loc.url} is not the planned {total} bytes after completion")
        if all(p.sha256 for p in sent):
            joined = b"".join(base64.b64decode(expected[n].sha256) for n in sorted(expected))
            reported = (info.checksum_sha256 or "").split("-")[0]
            if reported and reported != b64(hashlib.sha256(joined).digest()):
                raise StorageError(f"{loc.url}: the stored checksum differs from the parts sent")
        return Written(info.size, info.etag, info.checksum_sha256)

    def abort(self) -> None:
        """Abort (best effort: a lifecycle rule cleans up what a killed process left)."""
        loc = self._loc
        try:
            call(
                "AbortMultipartUpload", loc.url, s3_client(self.options).abort_multipart_upload,
                options=self.options, Bucket=loc.bucket, Key=loc.key, UploadId=self.upload_id,
            )  # fmt: skip
        except StorageError as err:
            log.warning("could not abort the multipart upload of %s: %s", loc.url, err)


@dataclass(frozen=True)
class DirectoryParts:
    """Part files in ``folder``, concatenated into ``target`` on completion."""

    folder: str
    url: str
    #: Whether completion fsyncs the target: ``False`` only for a scratch file that this
    #: process reads back itself (nothing is deleted on its strength).
    durable: bool = True

    @property
    def min_part(self) -> int:
        return 0

    @classmethod
    def create(
        cls, target: Path, scratch: Path | None = None, *, durable: bool = True
    ) -> DirectoryParts:
        """A fresh parts folder in ``scratch`` (default: next to the target)."""
        base = scratch if scratch is not None else target.parent
        folder = base / f".{target.name}.parts-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)
        return cls(str(folder), str(target), durable)

    def _part(self, number: int) -> Path:
        return Path(self.folder, f"part-{number:05d}")

    def put(self, number: int, data: bytes) -> PartSent:
        path = self._part(number)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        # No per-part SHA-256: nothing reads it here; the completed file is hashed whole.
        return PartSent(number, len(data), "")

    def complete(
        self,
        sent: Sequence[PartSent],
        total: int,
        check: Callable[[Path], None] | None = None,
    ) -> Written:
        target = Path(self.url)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
        try:
            with open(tmp, "wb") as out:
                for part in sorted(sent, key=lambda p: p.number):
                    with open(self._part(part.number), "rb") as fh:
                        _append(fh, out)
            size = tmp.stat().st_size
            if size != total:
                raise StorageError(f"{target} is {size} bytes, planned {total}")
            # The file's SHA-256 (of the bytes in it, not of the parts as read), the fsync
            # and the caller's check run side by side: each reads the file from the page
            # cache (or writes it back) with the GIL released.
            with ThreadPoolExecutor(2, thread_name_prefix="complete") as pool:
                digest = pool.submit(sha256_file, tmp)
                synced = pool.submit(_fsync, tmp) if self.durable else None
                if check is not None:
                    check(tmp)
                sha = digest.result()
                if synced is not None:
                    synced.result()
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            self.abort()
        return Written(total, sha256=sha)

    def abort(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _append(src: Any, out: Any) -> None:
    """Append the file ``src`` to ``out`` in the kernel (``sendfile``: no copy through
    Python, about 3x faster for a 1 GB output); what it did not send (a kernel or file
    system that refuses), block by block."""
    out.flush()
    size, sent = os.fstat(src.fileno()).st_size, 0
    try:
        while sent < size and (n := os.sendfile(out.fileno(), src.fileno(), sent, size - sent)):
            sent += n
    except OSError:
        pass
    src.seek(sent)
    shutil.copyfileobj(src, out, IO_CHUNK)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
