"""A scene's sidecars (``.aux.xml``, ``.ovr``, ``.msk``, ``.rpb``...) through the walk: read
beside the raster, archived with it, deleted only once each one's archive copy is verified.

Discovery puts the sidecars GDAL reads for a raster in its :class:`SceneSpec`
(:mod:`compactor.gdal.sidecars`). The walk

* fetches them into scratch beside the raster's copy, under the names GDAL looks for
  (:func:`fetch_sidecars`), so the output carries what they say (CRS, RPCs, mask...);
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

from ..errors import AccessDenied, ArchivedObjectError
from ..gdal.sidecars import renamed
from ..storage import Location, ObjectInfo, Store
from .archive import (
    archive_link,
    copy_part_size,
    delete_exactly,
    digest_source,
    lock_reason,
    server_copy,
)
from .spec import RunContext, SceneSpec
from .state import StoredObject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """A sidecar at its source and where its archive copy goes."""

    src: Location
    arc: Location | None


def members(spec: SceneSpec) -> list[Member]:
    """The scene's sidecars, each with its archive location beside the raster's copy
    (``None`` where the scene is not archived to a prefix or directory)."""
    if not spec.sidecars:
        return []
    arc_folder: Location | None = None
    if spec.archive is not None and spec.archive != spec.source:
        arc = Location.parse(spec.archive)
        arc_folder = Location(arc.scheme, arc.bucket, arc.key[: len(arc.key) - len(arc.name)])
    found = []
    for url in spec.sidecars:
        src = Location.parse(url)
        found.append(Member(src, arc_folder.join(src.name) if arc_folder is not None else None))
    return found


def fetch_sidecars(store: Store, sidecars: list[Member], raster: str, copy: Path) -> None:
    """Read each sidecar whole into the folder of ``copy`` (the raster ``raster``'s copy)
    under the name GDAL looks for beside it; a local store reads them where they are. One
    gone since the listing, or in an archive class, is left out."""
    for member in sidecars:
        target = copy.parent / renamed(raster, member.src.name, copy.name)
        try:
            if store.fetch(member.src, target, digest=False) is None:
                log.info("sidecar %s is gone since it was listed", member.src.url)
        except ArchivedObjectError:
            log.info("sidecar %s is in an archive class: read without it", member.src.url)


def _archive_one(
    store: Store, member: Member, ctx: RunContext
) -> tuple[StoredObject, ObjectInfo] | None:
    """Copy one sidecar to its archive location and check the copy (an existing copy of the
    same bytes is recognised, a different object there is never replaced); ``None`` if it
    is gone from its source."""
    assert member.arc is not None
    live = store.head(member.src)
    if live is None:
        return None
    copier = store.server_copier()
    if copier is None:
        sha = store.sha256(member.src)[0]
        return archive_link(store, member.src, member.arc, sha), live
    t = ctx.transfers
    part = (
        copy_part_size(live.size, t.multipart_copy_part_size)
        if live.size > t.multipart_copy_threshold
        else None
    )
    digest = digest_source(store, member.src, live.etag, part, live.version_id)
    stored, _ = server_copy(
        copier, member.src, member.arc, live, digest, ctx.storage_class,
        multipart_threshold=t.multipart_copy_threshold, part_size=t.multipart_copy_part_size,
        kms_key=t.sse_kms_key,
    )  # fmt: skip
    return stored, live


def archive_sidecars(
    store: Store, sidecars: list[Member], ctx: RunContext
) -> tuple[list[StoredObject], dict[str, str | None]]:
    """Archive every sidecar still at its source; the copies (for the record) and the
    ETag of each version archived (by source URL: what :func:`delete_sidecars` may delete
    without a second look)."""
    copies: list[StoredObject] = []
    checked: dict[str, str | None] = {}
    for member in sidecars:
        if member.arc is None:
            continue
        done = _archive_one(store, member, ctx)
        if done is not None:
            copies.append(done[0])
            checked[member.src.url] = done[1].etag
    return copies, checked


def delete_sidecars(
    store: Store, sidecars: list[Member], ctx: RunContext, checked: dict[str, str | None]
) -> str | None:
    """Delete each sidecar still at its source, exactly the version whose archive copy is
    verified: archived in this walk as that version (``checked``), else archived (or its
    copy checked) again now. Returns why one is held instead (an Object Lock, a refused
    delete): the raster then stays too, and a later run finishes."""
    keep = ctx.transfers.keep_versions
    for member in sidecars:
        if member.arc is None:
            continue
        live = store.head(member.src)
        if live is None:
            continue
        if member.src.url not in checked or checked[member.src.url] != live.etag:
            done = _archive_one(store, member, ctx)
            if done is None:
                continue
            live = done[1]
        held = lock_reason(live) if not keep else None
        if held is not None:
            return f"its sidecar {member.src.name} not deleted: {held}"
        try:
            delete_exactly(store, member.src, live, keep_version=keep)
        except AccessDenied as err:
            code = err.code or "AccessDenied"
            return f"deleting its sidecar {member.src.name} was refused ({code})"
    return None
