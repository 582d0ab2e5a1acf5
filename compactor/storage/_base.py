"""What every store shares: object metadata, hashing, and the :class:`Store` protocol with
its capabilities (server-side copies, conditional writes, abandoned uploads)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import StorageError
from ._location import Location

log = logging.getLogger(__name__)

#: Read size for streaming checksums and copies.
IO_CHUNK = 8 * 1024 * 1024
#: Smallest part S3 accepts in a multipart upload (all parts but the last).
MIN_PART_SIZE = 5 * 1024 * 1024


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
    #: How many tags the object has, where the response said (GetObject's ``TagCount``;
    #: ``None``: unknown, e.g. from a HEAD or a listing).
    tag_count: int | None = None
    #: S3 Object Lock: retention mode (``GOVERNANCE``/``COMPLIANCE``) and until when, and
    #: whether a legal hold is on (from a GET or HEAD of the version).
    lock_mode: str | None = None
    lock_until: str | None = None
    legal_hold: bool = False

    @classmethod
    def listed(
        cls,
        url: str,
        size: int,
        etag: str | None = None,
        mtime: str | None = None,
        storage_class: str = "STANDARD",
    ) -> ObjectInfo:
        """``ObjectInfo(url, size, etag, mtime, storage_class)``, every other field its
        default, built several times faster than the frozen dataclass's ``__init__`` (an
        inventory builds one per row)."""
        obj = object.__new__(cls)
        fields = obj.__dict__
        fields.update(_LISTED_DEFAULTS)
        fields.update(
            url=url, size=size, etag=etag, mtime=mtime, storage_class=storage_class, metadata={}
        )
        return obj

    @property
    def location(self) -> Location:
        return Location.parse(self.url)

    @property
    def version(self) -> str:
        """What identifies this version of the object in a listing as well as in a HEAD:
        ETag (a local file's inode, size and mtime), size and storage class."""
        return f"{self.etag}|{self.size}|{self.storage_class}"


#: The defaults of :meth:`ObjectInfo.listed` (``metadata`` gets a new dict each time).
_LISTED_DEFAULTS = {
    f.name: f.default
    for f in dataclasses.fields(ObjectInfo)
    if f.default is not dataclasses.MISSING
}

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


class Digester:
    """SHA-256 of a stream as it passes, plus the base64 SHA-256 of each ``part_size``
    range when asked (what S3 reports for a multipart copy made with that part size)."""

    def __init__(self, part_size: int | None = None):
        self.part_size = part_size
        self.total = hashlib.sha256()
        self.parts: list[str] = []
        self._part = hashlib.sha256()
        self._fill = 0

    def update(self, block: bytes) -> None:
        self.total.update(block)
        if not self.part_size:
            return
        view = memoryview(block)
        while view:
            take = min(len(view), self.part_size - self._fill)
            self._part.update(view[:take])
            self._fill += take
            view = view[take:]
            if self._fill == self.part_size:
                self.parts.append(b64(self._part.digest()))
                self._part, self._fill = hashlib.sha256(), 0

    def finish(self) -> tuple[str, list[str]]:
        """The hex SHA-256 and the part digests."""
        if self.part_size and self._fill:
            self.parts.append(b64(self._part.digest()))
            self._part, self._fill = hashlib.sha256(), 0
        return self.total.hexdigest(), self.parts


@dataclass(frozen=True)
class CopyAnswer:
    """What a server-side copy answered about the object it wrote."""

    etag: str | None = None
    #: Base64 SHA-256 the store computed over the copy it stored (when asked for one).
    checksum_sha256: str | None = None
    mtime: str | None = None
    version_id: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None


@dataclass(frozen=True)
class Fetched:
    """An original read once, whole: what the store said about it (the response of the
    read itself, so it describes exactly the bytes read), where the bytes now are, and
    our hashes of them."""

    info: ObjectInfo
    #: A local file with the bytes (a scratch copy; a local source's own path).
    path: Path
    #: Hex SHA-256, and the part digests for ``part_size`` (``None``: not hashed).
    sha256: str | None = None
    part_size: int | None = None
    parts: tuple[str, ...] = ()


class Recorded(Protocol):
    """What compactor records of an object it wrote (``records.StoredObject``)."""

    @property
    def size(self) -> int: ...

    @property
    def sha256(self) -> str | None: ...

    @property
    def etag(self) -> str | None: ...

    @property
    def checksum(self) -> str | None: ...


def same_bytes(info: ObjectInfo, record: Recorded) -> bool:
    """Whether ``info`` (a HEAD) is the recorded object, as far as the store can tell:
    size always; then the store's SHA-256 as recorded after verification, or our own
    full SHA-256, or a single-part ETag."""
    if info.size != record.size:
        return False
    reported = info.checksum_sha256
    if reported and record.checksum:
        return reported == record.checksum
    if reported and record.sha256 and "-" not in reported:
        return reported == b64(bytes.fromhex(record.sha256))
    if record.etag and info.etag and "-" not in record.etag:
        return info.etag == record.etag
    return not reported and not record.checksum


@dataclass(frozen=True)
class Capabilities:
    """What a store can do beyond reading."""

    #: Objects can be written, archived and deleted (HTTP(S) sources are read-only).
    writable: bool = True
    #: Copies happen server-side into a storage class (S3 CopyObject, UploadPartCopy).
    server_copy: bool = False
    #: An ETag changes whenever the bytes do (S3). A local file's version tag (inode, size,
    #: mtime) survives a write in place, so its bytes are hashed where it matters.
    content_etags: bool = False


class Source(Protocol):
    """Where an original is read from."""

    capabilities: Capabilities

    def head(self, loc: Location, version_id: str | None = None) -> ObjectInfo | None: ...

    def listing(self, prefix: Location) -> Iterator[ObjectInfo]: ...


class Store(Source, Protocol):
    """A writable store: S3 or a local directory. Every write is atomic; ``if_match`` /
    ``if_none_match`` make it conditional on the version read (or on absence)."""

    def read_bytes(self, loc: Location) -> bytes: ...

    def read_versioned(self, loc: Location) -> tuple[bytes, str | None] | None: ...

    def sha256(
        self,
        loc: Location,
        *,
        etag: str | None = None,
        part_size: int | None = None,
        version_id: str | None = None,
    ) -> tuple[str, list[str]]: ...

    def fetch(
        self,
        loc: Location,
        target: Path,
        *,
        digest: bool = True,
        part_size: int | None = None,
        max_bytes: int | None = None,
    ) -> Fetched | None:
        """Read an object whole, once, into ``target`` (a local source stays where it is),
        hashing it on the way when ``digest``; ``None`` if it does not exist. Raises
        :class:`~compactor.errors.ArchivedObjectError` for an object in an archive class,
        :class:`~compactor.errors.SceneTooLargeError` for one larger than ``max_bytes``
        (the size it was listed with)."""
        ...

    def put_bytes(
        self,
        loc: Location,
        data: bytes,
        *,
        content_type: str = "application/json",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str: ...

    def put_file(
        self,
        path: Path,
        loc: Location,
        *,
        sha256_hex: str,
        content_type: str = ...,
        metadata: dict[str, str] | None = None,
        multipart_threshold: int = ...,
        part_size: int = ...,
        if_none_match: bool = False,
        storage_class: str | None = None,
        sse_kms_key: str | None = None,
    ) -> ObjectInfo: ...

    def delete(
        self, loc: Location, *, if_match: str | None = None, version_id: str | None = None
    ) -> None: ...

    def abort_stale_uploads(self, loc: Location) -> int:
        """Abort unfinished multipart uploads to ``loc`` left by a killed process (only
        while holding the scene's lease); stores without multipart uploads have none."""
        ...

    def holds(self, loc: Location, record: Recorded) -> bool:
        """Whether ``loc`` holds exactly the recorded object: from a HEAD where the store
        reports checksums, by hashing the bytes where it does not."""
        ...

    def link(self, src: Location, dst: Location) -> None:
        """A second name for the same bytes, never replacing ``dst`` (a hard link or an
        atomic copy on disk; a plain CopyObject on S3)."""
        ...

    def server_copier(self) -> ServerCopier | None:
        """This store as a :class:`ServerCopier`, where it copies server-side."""
        ...


class ServerCopier(Protocol):
    """Copies the store makes itself, into a storage class, with the metadata, tags and
    encryption of the original (S3)."""

    def head(self, loc: Location, version_id: str | None = None) -> ObjectInfo | None: ...

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
    ) -> CopyAnswer: ...

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
    ) -> list[Any]: ...

    def get_tags(self, loc: Location) -> dict[str, str] | None: ...

    def abort_stale_uploads(self, loc: Location) -> int: ...


class _Aborts(Protocol):
    def abort_stale_uploads(self, loc: Location) -> int: ...


def sweep_orphans(store: _Aborts, loc: Location) -> None:
    """Once an upload or multipart copy to ``loc`` is complete, abort any other upload left
    to that key, such as one whose CreateMultipartUpload answer was lost and retried. Only
    while holding the scene's lease (no one else writes ``loc``). Best effort: the object
    is already whole, and a lifecycle rule cleans up what this misses."""
    try:
        store.abort_stale_uploads(loc)
    except StorageError as err:
        log.warning("could not look for unfinished uploads to %s: %s", loc.url, err)
