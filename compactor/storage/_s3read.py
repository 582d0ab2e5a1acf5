"""S3 reads through boto3 (the base of :class:`~compactor.storage._s3.S3Store`): HEAD,
small objects read whole, an object's SHA-256 streamed range by range, and the GetObject
that streams a source into scratch, hashed on the way and pinned to the version first
read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
    ObjectNotFound,
    SceneTooLargeError,
    TransientStorageError,
    s3_errors,
    translate_s3_error,
)
from ._base import IO_CHUNK, Digester, Fetched, ObjectInfo
from ._location import Location
from ._retry import with_retries
from ._s3client import S3Options, call, head_object, object_info, s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")


class S3Reads:
    """Reads from S3 for one set of :class:`S3Options`; :class:`S3Store` adds listings,
    bucket settings, writes, copies and deletes."""

    def __init__(self, options: S3Options):
        self.options = options

    @property
    def client(self) -> S3Client:
        return s3_client(self.options)

    def _call(self, action: str, url: str, fn: Callable[..., T], **kwargs: Any) -> T:
        return call(action, url, fn, options=self.options, **kwargs)

    def head(self, loc: Location, version_id: str | None = None) -> ObjectInfo | None:
        """Metadata of one object (``version_id``: that version), or ``None`` if absent."""
        return head_object(self.options, loc, version_id)

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
        self,
        loc: Location,
        *,
        etag: str | None = None,
        part_size: int | None = None,
        version_id: str | None = None,
    ) -> tuple[str, list[str]]:
        """Stream an object and return its hex SHA-256, plus the base64 SHA-256 of each
        ``part_size`` range when asked (to check a multipart copy's composite checksum).
        ``etag`` pins the version read: a change midway fails with PreconditionFailed;
        ``version_id`` reads exactly that version."""
        info_size = self.head(loc, version_id)
        if info_size is None:
            raise ObjectNotFound(f"HEAD {loc.url} failed: NotFound", url=loc.url)
        size = info_size.size
        digester = Digester(part_size)
        offset = 0
        while offset < size:
            end = min(size, offset + IO_CHUNK) - 1

            def fetch(start: int = offset, stop: int = end) -> bytes:
                kwargs: dict[str, Any] = {"Range": f"bytes={start}-{stop}"}
                if etag:
                    kwargs["IfMatch"] = etag
                if version_id:
                    kwargs["VersionId"] = version_id
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
            digester.update(block)
            offset = end + 1
        return digester.finish()

    def fetch(
        self,
        loc: Location,
        target: Path,
        *,
        digest: bool = True,
        part_size: int | None = None,
        max_bytes: int | None = None,
    ) -> Fetched | None:
        """One GetObject, streamed into ``target`` and hashed on the way. The response
        describes exactly the bytes read (size, ETag, checksum, metadata, tag count), so no
        HEAD is needed. A read cut off midway is retried pinned to the first ETag (and the
        version, in a versioned bucket): a source replaced in between fails with
        PreconditionFailed instead of mixing versions. ``max_bytes`` (the size the object
        was listed with): an object answering more, or sending more, is refused with
        :class:`SceneTooLargeError` after at most ``max_bytes + 1`` bytes, whatever its
        Content-Length says (the scratch disk is sized by the listing)."""
        pinned: list[str] = []
        version: list[str] = []

        def attempt() -> Fetched | None:
            try:
                r = self._call(
                    "GET", loc.url, self.client.get_object, Bucket=loc.bucket, Key=loc.key,
                    **_get_arguments(pinned, version),
                )  # fmt: skip
            except ObjectNotFound:
                if pinned:
                    raise
                return None
            info = object_info(loc, r, get=True)
            if info.etag and not pinned:
                pinned.append(info.etag)
            if info.version_id and not version:
                version.append(info.version_id)
            body = r["Body"]
            if max_bytes is not None and info.size > max_bytes:
                body.close()
                raise _grew(loc, max_bytes, info.size)
            digester = Digester(part_size) if digest else None
            written = _stream_body(body, target, loc, info.size, max_bytes, digester)
            if written != info.size:
                raise TransientStorageError(f"short read of {loc.url}", url=loc.url)
            if digester is None:
                return Fetched(info, target)
            sha, parts = digester.finish()
            return Fetched(info, target, sha, part_size, tuple(parts))

        return with_retries(attempt, what=f"GET {loc.url}")

    def download(self, loc: Location, dest: Path) -> None:
        def fetch() -> None:
            try:
                self.client.download_file(loc.bucket, loc.key, str(dest))
            except s3_errors() as err:
                raise translate_s3_error(err, loc.url, "download") from err

        with_retries(fetch, what=f"download {loc.url}")


def _get_arguments(pinned: list[str], version: list[str]) -> dict[str, Any]:
    """A GetObject's arguments: checksums asked for, pinned to the ETag and version first
    read (when there is one)."""
    kwargs: dict[str, Any] = {"ChecksumMode": "ENABLED"}
    if pinned:
        kwargs["IfMatch"] = pinned[0]
    if version:
        kwargs["VersionId"] = version[0]
    return kwargs


def _stream_body(
    body: Any,
    target: Path,
    loc: Location,
    size: int,
    max_bytes: int | None,
    digester: Digester | None,
) -> int:
    """A GetObject's body written to ``target`` (and hashed): the bytes written. Never
    more than one byte past what is expected (``size``, the Content-Length, or
    ``max_bytes``, the listed size, when given: past it, :class:`SceneTooLargeError`),
    whatever arrives."""
    written = 0
    cap = size if max_bytes is None else max_bytes
    try:
        with open(target, "wb") as fh:
            while block := body.read(max(1, min(IO_CHUNK, cap + 1 - written))):
                written += len(block)
                if max_bytes is not None and written > max_bytes:
                    body.close()
                    raise _grew(loc, max_bytes, None)
                fh.write(block)
                if digester is not None:
                    digester.update(block)
                if max_bytes is None and written > cap:
                    break  # more than its Content-Length: a short/long read below
    except s3_errors() as err:
        raise translate_s3_error(err, loc.url, "GET") from err
    return written


def _grew(loc: Location, listed: int, now: int | None) -> SceneTooLargeError:
    answered = f"it answers {now:,}" if now is not None else "more arrived"
    return SceneTooLargeError(
        f"{loc.url}: the object grew after it was listed ({listed:,} bytes listed, "
        f"{answered}); nothing was written"
    )
