"""Durable per-scene state, stored with the destination.

One small JSON object per scene under ``<dest>/_compactor/state/``, at a key that
mirrors the source (``s3/<bucket>/<key>.json`` or ``file/<path>.json``), so the
states of a source prefix can be listed with one LIST. Each write is a single PUT
(atomic on S3) or a temp file renamed into place (atomic locally), and is
conditional on the version read (``If-Match``) or on absence (``If-None-Match``), so
two writers can never silently overwrite each other.

A scene moves through ``discovered -> encoded -> verified -> archived -> deleted``;
a rerun resumes from the last durable step. Nothing is deleted on the strength of a
record alone: the pipeline re-checks the objects themselves first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from datetime import UTC, datetime
from enum import IntEnum

from pydantic import BaseModel, ConfigDict, field_validator

from ..errors import ObjectNotFound, PreconditionFailed
from ..redact import redact_url, url_identity
from ..settings import META_PREFIX
from ..storage import Location, ObjectInfo, Store

log = logging.getLogger(__name__)

STATE_VERSION = 1
#: S3 keys are at most 1024 bytes; longer state keys fall back to a hash.
MAX_KEY_BYTES = 1000


class Step(IntEnum):
    DISCOVERED = 1
    ENCODED = 2  # output object written at the destination
    VERIFIED = 3  # output checked: valid COG, fidelity measured, stored bytes confirmed
    ARCHIVED = 4  # archive copy made and verified; the last step recorded
    #: Source deleted (archive to a prefix or directory). Not recorded: a record at
    #: ``archived`` whose source is gone is complete (records of older versions may say 5).
    DELETED = 5

    @property
    def label(self) -> str:
        return self.name.lower()


class Fingerprint(BaseModel):
    """Identity of one version of a source object."""

    model_config = ConfigDict(frozen=True)

    size: int
    etag: str | None = None
    mtime: str | None = None
    #: The version in a versioned bucket (``None`` elsewhere, and in older records).
    version_id: str | None = None

    @classmethod
    def of(cls, info: ObjectInfo) -> Fingerprint:
        return cls(size=info.size, etag=info.etag, mtime=info.mtime, version_id=info.version_id)

    def same(self, other: Fingerprint) -> bool:
        """The same version of the object (a version id counts where both know one)."""
        if (self.size, self.etag, self.mtime) != (other.size, other.etag, other.mtime):
            return False
        return (
            self.version_id is None
            or other.version_id is None
            or (self.version_id == other.version_id)
        )


class StoredObject(BaseModel):
    """An object compactor wrote, as recorded."""

    url: str
    size: int
    sha256: str | None = None
    etag: str | None = None
    storage_class: str | None = None
    #: The SHA-256 the store reported for the object once verified (full object, or the
    #: composite of its parts), compared with later HEADs.
    checksum: str | None = None


class SceneState(BaseModel):
    version: int = STATE_VERSION
    #: The source's URL, redacted (:func:`~compactor.redact.redact_url`): its state key is
    #: the same from either.
    source: str
    fingerprint: Fingerprint
    step: Step
    source_sha256: str | None = None
    #: For multipart archive copies: the part size and the base64 SHA-256 of the
    #: concatenated part digests (what S3 reports for a multipart object).
    source_part_size: int | None = None
    source_composite: str | None = None
    output: StoredObject | None = None
    archive: StoredObject | None = None
    codec: str | None = None
    quality: int | None = None
    lossless: bool | None = None
    ssim: float | None = None
    psnr: float | None = None
    #: The error bound of a bounded output (LERC with ``--max-error``), per band.
    max_error: list[float] | None = None
    #: Why the scene was left as it is (e.g. no saving), and the policy that decided it:
    #: a rerun with the same policy skips at once, a changed policy tries again.
    skip_reason: str | None = None
    policy: str | None = None
    #: A version of the original still to delete once allowed: in place, the version the
    #: archive-class copy replaced; any archived version an Object Lock or the bucket kept.
    pending_version: str | None = None
    #: The archive copies of the scene's sidecars (``.aux.xml``, ``.rpb``...), verified
    #: before the ``archived`` record; a walk resuming at the delete re-checks each again.
    sidecars: list[StoredObject] = []
    run_id: str
    updated: str

    @field_validator("source")
    @classmethod
    def _redacted_source(cls, value: str) -> str:
        return redact_url(value)

    def advanced(self, step: Step, run_id: str, **changes: object) -> SceneState:
        return self.model_copy(
            update={"step": step, "run_id": run_id, "updated": now_iso(), **changes}
        )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def state_root(dest: Location) -> Location:
    return dest.join(f"{META_PREFIX}/state/")


def lease_location(dest: Location, source: Location) -> Location:
    """Where the lease of a source's scene lives: ``<dest>/_compactor/leases/...``."""
    return dest.join(f"{META_PREFIX}/leases/").join(state_relative_key(source))


def state_relative_key(source: Location) -> str:
    """Key of a source's state below the state root (mirrors the source)."""
    if source.is_s3:
        rel = f"s3/{source.bucket}/{source.key}.json"
    elif source.is_http:  # origin "https://host:port" -> "https/host:port"
        proto, _, host = source.bucket.partition("://")
        # A query becomes a digest of it as redacted: no signature in a key, and the same
        # key from the record's own (redacted) source.
        base, query = url_identity(source.url)
        key = base.partition("://")[2].partition("/")[2] + f".q-{query}" if query else source.key
        rel = f"{proto}/{host}/{key}.json"
    else:
        rel = "file/" + source.key.lstrip("/") + ".json"
    if len(rel.encode()) > MAX_KEY_BYTES:
        rel = "hashed/" + hashlib.sha256(redact_url(source.url).encode()).hexdigest() + ".json"
    return rel


def state_prefix_for(source_prefix: Location) -> str:
    """Relative prefix under which the states of a source prefix live."""
    if source_prefix.is_s3:
        return f"s3/{source_prefix.bucket}/{source_prefix.key}"
    return "file/" + source_prefix.as_prefix().key.lstrip("/")


def source_of_state_key(rel: str) -> Location | None:
    """Inverse of :func:`state_relative_key` (``None`` for hashed keys)."""
    if not rel.endswith(".json"):
        return None
    body = rel[: -len(".json")]
    if body.startswith("s3/"):
        bucket, _, key = body[3:].partition("/")
        return Location("s3", bucket, key)
    if body.startswith("file/"):
        return Location("file", "", "/" + body[5:])
    return None


class StateStore:
    """Read and conditionally write scene states under ``<dest>/_compactor/state/``."""

    def __init__(self, dest: Location, store: Store):
        self.root = state_root(dest)
        self.store = store

    def location(self, source: Location) -> Location:
        return self.root.join(state_relative_key(source))

    def load(self, source: Location) -> tuple[SceneState | None, str | None]:
        """The recorded state and the ETag to write it back with (both ``None`` if absent)."""
        loc = self.location(source)
        got = self.store.read_versioned(loc)
        if got is None:
            return None, None
        raw, etag = got
        try:
            state = SceneState.model_validate_json(raw)
        except ValueError:
            log.warning("unreadable state record %s; treating the scene as new", loc.url)
            return None, etag
        return state, etag

    def save(self, state: SceneState, etag: str | None) -> str:
        """Write ``state``; ``etag`` is the version it replaces (``None``: must not exist).
        Raises :class:`PreconditionFailed` if someone else wrote in between."""
        loc = self.location(Location.parse(state.source))
        data = json.dumps(state.model_dump(mode="json"), indent=1, sort_keys=True).encode()
        try:
            if etag is None:
                return self.store.put_bytes(loc, data, if_none_match=True)
            return self.store.put_bytes(loc, data, if_match=etag)
        except PreconditionFailed as err:
            raise PreconditionFailed(
                f"state of {state.source} was changed by another run", url=loc.url
            ) from err

    def delete(self, state: SceneState, etag: str | None) -> None:
        """Retire a record (only the version read: a concurrent update wins)."""
        loc = self.location(Location.parse(state.source))
        with contextlib.suppress(PreconditionFailed, ObjectNotFound):
            self.store.delete(loc, if_match=etag)
