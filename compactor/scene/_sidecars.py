"""A scene's sidecars (``.aux.xml``, ``.ovr``, ``.msk``, ``.rpb``...) through the walk: read
beside the raster, archived with it, deleted only once each one's archive copy is verified.

Discovery puts the sidecars GDAL reads for a raster in its :class:`SceneSpec`
(:mod:`compactor.gdal._sidecars`). The walk

* fetches them into scratch beside the raster's copy, under the names GDAL looks for
  (:func:`fetch_sidecars`), so the output carries what they say (CRS, RPCs, mask...), each
  bounded by its listed size and all of them together by ``--chunk-threshold``
  (:func:`over_budget`);
* pins the version of each one the output is built from (:class:`Seen`: the ETag, and the
  SHA-256 of the bytes fetched whole; for a scene read in place or in chunks, the ETag
  it was listed with) and archives and deletes exactly that version: one changed since it
  was read fails the scene with nothing deleted (:func:`changed_since_read`);
* copies each to the archive, beside the raster's copy, before the raster itself
  (:func:`archive_sidecars`): a crash between members leaves every member at its source
  or verified in the archive, and the ``archived`` record lists the copies;
* deletes them before the raster (:func:`delete_sidecars`), each exactly the version whose
  copy was verified in this walk, or, in a walk resuming at the delete, once its copy has
  been checked again (an idempotent archive: the same bytes are recognised, never
  overwritten). A raster still at its source keeps the scene resumable; the sidecars go
  first so that none is ever left behind without it.

In place (``--archive in-place``) sidecars are left as they are: nothing is deleted and the
raster stays beside them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..archive import (
    archive_link,
    copy_part_size,
    delete_exactly,
    digest_source,
    lock_reason,
    server_copy,
)
from ..errors import AccessDenied, ArchivedObjectError, ArchiveError, SceneTooLargeError
from ..gdal import renamed
from ..records import StoredObject
from ..storage import Location, ObjectInfo, Store
from ._spec import RunContext, SceneSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """A sidecar at its source and where its archive copy goes, with what the listing said
    of it (``None``: not known)."""

    src: Location
    arc: Location | None
    size: int | None = None
    etag: str | None = None


@dataclass(frozen=True)
class Seen:
    """The version of a sidecar the scene's output is built from: its ETag (a local file's
    is its size and mtime), version id, and the SHA-256 of the bytes read when it was
    fetched whole."""

    etag: str | None
    version_id: str | None = None
    sha256: str | None = None


#: What the walk pins of each sidecar, by source URL: ``None`` for one that was gone when
#: the scene was read (GDAL read the raster without it).
Pins = dict[str, Seen | None]


def members(spec: SceneSpec) -> list[Member]:
    """The scene's sidecars, each with its archive location beside the raster's copy
    (``None`` where the scene is not archived to a prefix or directory)."""
    if not spec.sidecars:
        return []
    arc_folder: Location | None = None
    if spec.archive is not None and spec.archive != spec.source:
        arc = Location.parse(spec.archive)
        arc_folder = Location(arc.scheme, arc.bucket, arc.key[: len(arc.key) - len(arc.name)])
    n = len(spec.sidecars)
    sizes = spec.sidecar_sizes if len(spec.sidecar_sizes) == n else (None,) * n
    etags = spec.sidecar_etags if len(spec.sidecar_etags) == n else (None,) * n
    found = []
    for url, size, etag in zip(spec.sidecars, sizes, etags, strict=True):
        src = Location.parse(url)
        arc_loc = arc_folder.join(src.name) if arc_folder is not None else None
        found.append(Member(src, arc_loc, size, etag))
    return found


def over_budget(sidecars: list[Member], limit: int) -> str | None:
    """Why the sidecars listed at these sizes are not read whole into scratch, or ``None``.

    Together they may take at most ``limit`` bytes, the run's ``--chunk-threshold``: that
    is the operator's bound on what one scene's source puts in a worker's scratch (a larger
    raster is read in chunks), so a scene read whole holds at most twice it there, raster
    and sidecars, however large an object of a sidecar's name anyone uploads. A fixed cap
    per sidecar would not follow the scratch the chart sizes from the threshold; GDAL's
    sidecars beside a raster small enough to be read whole (PAM XML, RPCs, a mask, world
    files, overviews of that raster) are smaller than it."""
    total = 0
    for member in sidecars:
        if member.size is None:
            continue
        total += member.size
        if total > limit:
            return (
                f"its sidecar {member.src.name} holds {member.size:,} bytes, past the "
                f"{limit:,} bytes --chunk-threshold allows a scene's sidecars; nothing was read"
            )
    return None


def fetch_sidecars(
    store: Store, sidecars: list[Member], raster: str, copy: Path, limit: int
) -> Pins:
    """Read each sidecar whole into the folder of ``copy`` (the raster ``raster``'s copy)
    under the name GDAL looks for beside it, hashed; a local store reads them where they
    are. Each read is bounded by its listed size, all of them together by ``limit``
    (:func:`over_budget`, checked before any is read): one larger fails the scene with
    :class:`SceneTooLargeError`, at most one byte past its bound read. One gone since the
    listing, or in an archive class, is left out. Returns the version of each one read."""
    problem = over_budget(sidecars, limit)
    if problem is not None:
        raise SceneTooLargeError(problem)
    left = limit - sum(m.size for m in sidecars if m.size is not None)
    pins: Pins = {}
    for member in sidecars:
        target = copy.parent / renamed(raster, member.src.name, copy.name)
        bound = member.size if member.size is not None else max(left, 0)
        try:
            got = store.fetch(member.src, target, max_bytes=bound)
        except ArchivedObjectError:
            log.info("sidecar %s is in an archive class: read without it", member.src.url)
            pins[member.src.url] = Seen(member.etag)
            continue
        except SceneTooLargeError as err:
            raise SceneTooLargeError(
                f"its sidecar {member.src.name} is larger than the {bound:,} bytes it may "
                f"take: {err}"
            ) from err
        if got is None:
            log.info("sidecar %s is gone since it was listed", member.src.url)
            pins[member.src.url] = None
            continue
        if member.size is None:
            left -= got.info.size
        pins[member.src.url] = Seen(got.info.etag, got.info.version_id, got.sha256)
    return pins


def pin_listed(store: Store, sidecars: list[Member], pins: Pins) -> None:
    """Pin each sidecar not read whole (a scene read in place or in chunks, where GDAL reads
    them itself) to the version it was listed with, or, not known, to the one there now."""
    for member in sidecars:
        if member.src.url in pins:
            continue
        if member.etag is not None:
            pins[member.src.url] = Seen(member.etag)
            continue
        live = store.head(member.src)
        pins[member.src.url] = None if live is None else Seen(live.etag, live.version_id)


def changed_since_read(member: Member, pin: Seen | None, live: ObjectInfo | None) -> str | None:
    """Why a sidecar may not be archived or deleted with the scene: it is not the version
    the output was built from (``pin``), or ``None``."""
    if pin is None and live is None:
        return None
    if pin is not None and live is not None and live.etag == pin.etag:
        return None
    return f"its sidecar {member.src.name} changed since it was read; nothing deleted"


def _pin_of(member: Member, pins: Pins) -> Seen | None:
    return pins[member.src.url] if member.src.url in pins else Seen(member.etag)


def _live_unchanged(store: Store, sidecars: list[Member], pins: Pins) -> dict[str, ObjectInfo]:
    """Every archived sidecar as it is now, each checked to be the version read (else
    :class:`ArchiveError`, before any is copied or deleted); the ones still there."""
    lives: dict[str, ObjectInfo] = {}
    for member in sidecars:
        if member.arc is None:
            continue
        live = store.head(member.src)
        why = changed_since_read(member, _pin_of(member, pins), live)
        if why is not None:
            raise ArchiveError(why)
        if live is not None:
            lives[member.src.url] = live
    return lives


def _archive_one(
    store: Store, member: Member, ctx: RunContext, live: ObjectInfo, pin: Seen | None
) -> StoredObject:
    """Copy exactly the version ``live`` of one sidecar to its archive location and check
    the copy (an existing copy of the same bytes is recognised, a different object there
    is never replaced); bytes other than those read (``pin``'s SHA-256) fail the scene."""
    assert member.arc is not None
    changed = ArchiveError(
        f"its sidecar {member.src.name} changed since it was read; nothing deleted"
    )
    copier = store.server_copier()
    if copier is None:
        sha = store.sha256(member.src, etag=live.etag)[0]
        if pin is not None and pin.sha256 is not None and sha != pin.sha256:
            raise changed
        return archive_link(store, member.src, member.arc, sha)
    t = ctx.transfers
    part = (
        copy_part_size(live.size, t.multipart_copy_part_size)
        if live.size > t.multipart_copy_threshold
        else None
    )
    digest = digest_source(store, member.src, live.etag, part, live.version_id)
    if pin is not None and pin.sha256 is not None and digest.sha256 != pin.sha256:
        raise changed
    stored, _ = server_copy(
        copier, member.src, member.arc, live, digest, ctx.storage_class,
        multipart_threshold=t.multipart_copy_threshold, part_size=t.multipart_copy_part_size,
        kms_key=t.sse_kms_key, leased=True,
    )  # fmt: skip
    return stored


def archive_sidecars(
    store: Store, sidecars: list[Member], ctx: RunContext, pins: Pins
) -> tuple[list[StoredObject], dict[str, str | None]]:
    """Archive every sidecar still at its source, exactly the version read (``pins``): one
    changed since fails the scene before any is copied (:class:`ArchiveError`). Returns the
    copies (for the record) and the ETag of each version archived (by source URL: what
    :func:`delete_sidecars` may delete without a second look)."""
    lives = _live_unchanged(store, sidecars, pins)
    copies: list[StoredObject] = []
    checked: dict[str, str | None] = {}
    for member in sidecars:
        live = lives.get(member.src.url)
        if member.arc is None or live is None:
            continue
        copies.append(_archive_one(store, member, ctx, live, _pin_of(member, pins)))
        checked[member.src.url] = live.etag
    return copies, checked


def delete_sidecars(
    store: Store,
    sidecars: list[Member],
    ctx: RunContext,
    checked: dict[str, str | None],
    pins: Pins,
) -> str | None:
    """Delete each sidecar still at its source, exactly the version read (``pins``) whose
    archive copy is verified: archived in this walk (``checked``), else archived (or its
    copy checked) again now. One changed since it was read fails the scene before any is
    deleted (:class:`ArchiveError`). Returns why one is held instead (an Object Lock, a
    refused delete): the raster then stays too, and a later run finishes."""
    keep_versions = ctx.transfers.keep_versions
    lives = _live_unchanged(store, sidecars, pins)
    for member in sidecars:
        live = lives.get(member.src.url)
        if member.arc is None or live is None:
            continue
        if checked.get(member.src.url, "") != live.etag:
            _archive_one(store, member, ctx, live, _pin_of(member, pins))
        held = lock_reason(live) if not keep_versions else None
        if held is not None:
            return f"its sidecar {member.src.name} not deleted: {held}"
        try:
            delete_exactly(store, member.src, live, keep_version=keep_versions)
        except AccessDenied as err:
            code = err.code or "AccessDenied"
            return f"deleting its sidecar {member.src.name} was refused ({code})"
    return None
