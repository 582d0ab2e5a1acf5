"""The archive and delete steps: copy the original to the archive, delete exactly it."""

from __future__ import annotations

import logging
from typing import Any

from .. import failpoints
from ..archive import (
    archive_holds,
    archive_link,
    copy_part_size,
    delete_exactly,
    digest_source,
    lock_reason,
    pending_problem,
    recheck_before_delete,
    server_copy,
)
from ..errors import (
    AccessDenied,
    ArchiveError,
)
from ..records import (
    Fingerprint,
    SceneState,
    Step,
    StoredObject,
)
from ..redact import redact_url
from ..storage import (
    ObjectInfo,
)
from ._handle import StateHandle, digest_fields, fetched_digest, recorded_digest
from ._scene import Scene
from ._sidecars import (
    archive_sidecars,
    delete_sidecars,
)

log = logging.getLogger(__name__)


def archive(scene: Scene, handle: StateHandle, live: ObjectInfo) -> ObjectInfo:
    """Hash the original (from the whole read at the start of the walk; else streamed, and
    recorded before any copy so a copy interrupted midway is recognised later), copy it to
    the archive class, check the copy; record ``archived``. Returns the source as it now
    is (in place: a new ETag and class). In a versioned bucket the copy is of exactly the
    version read, and in place the version the copy replaced is deleted before the record
    (or kept as pending where S3 refuses)."""
    ctx, arc, store = scene.ctx, scene.arc, scene.owned_source()
    assert arc is not None
    copier = store.server_copier()
    state = handle.current
    digest = recorded_digest(state)
    multipart = copier is not None and live.size > ctx.transfers.multipart_copy_threshold
    if digest is None or (multipart and digest.composite is None):
        fetched = scene.fetched
        read = fetched_digest(fetched) if fetched and fetched.info.etag == live.etag else None
        if read is not None and (read.composite is not None or not multipart):
            digest = read
            handle.remember(state.model_copy(update=digest_fields(read)))
        else:
            part_size = (
                copy_part_size(live.size, ctx.transfers.multipart_copy_part_size)
                if multipart
                else None
            )
            digest = digest_source(store, scene.src, live.etag, part_size, live.version_id)
            handle.save(state.model_copy(update=digest_fields(digest)))
    failpoints.hit("after-source-hash")
    scene.check_lease("copying the original to the archive")
    in_place = arc == scene.src
    after: ObjectInfo | None = None
    # Its sidecars first: each is verified in the archive before the record says archived.
    side_copies, scene.sidecars_archived = archive_sidecars(
        store, scene.sidecars, ctx, scene.sidecar_pins
    )
    if copier is None:
        stored = archive_link(store, scene.src, arc, digest.sha256)
    elif in_place and live.storage_class == ctx.storage_class:
        # An earlier attempt changed the class; the bytes were just recognised.
        stored = StoredObject(
            url=scene.src.url, size=live.size, sha256=digest.sha256, etag=live.etag,
            storage_class=live.storage_class, checksum=live.checksum_sha256,
        )  # fmt: skip
        after = live
    else:
        stored, after = server_copy(
            copier, scene.src, arc, live, digest, ctx.storage_class,
            multipart_threshold=ctx.transfers.multipart_copy_threshold,
            part_size=ctx.transfers.multipart_copy_part_size, replace=in_place,
            kms_key=ctx.transfers.sse_kms_key, leased=True,
        )  # fmt: skip
    scene.did_work = True
    scene.copied_here = True
    update: dict[str, Any] = {"archive": stored}
    if side_copies:
        update["sidecars"] = side_copies
    if in_place:
        now = after or store.head(scene.src)  # a new ETag/mtime: still our original
        if now is not None:
            update["fingerprint"] = Fingerprint.of(now)
            replaced = live.version_id
            if replaced and now.version_id and replaced != now.version_id:
                # The copy is a new version: the one it replaced goes, exactly that one.
                update["pending_version"] = replaced
                scene.replaced = replaced
            live = now
    handle.advance(Step.ARCHIVED, ctx.run_id, **update)
    failpoints.hit("after-archived")
    return live


def delete(scene: Scene, handle: StateHandle, live: ObjectInfo) -> str | None:
    """Delete exactly the archived version of the original (``deleted``, not recorded:
    see :func:`is_recorded`); in place, the version the archive-class copy replaced. Output
    and archive copy checked earlier in this walk are trusted; a walk that resumes here
    re-checks both with the stores first. Returns why the original is held instead (an
    Object Lock, or a delete the bucket refuses): nothing is lost, a later run finishes."""
    scene.check_lease("deleting the original")
    store, state, ctx = scene.owned_source(), handle.current, scene.ctx
    keep_versions = ctx.transfers.keep_versions
    if state.pending_version is not None:
        return _delete_pending(scene, handle, state.pending_version)
    fetched = scene.fetched
    straight = (
        scene.stored_here
        and scene.copied_here
        and fetched is not None
        and fetched.info.etag == live.etag == state.fingerprint.etag
    )
    arc = scene.arc
    assert arc is not None  # final_step: no delete without an archive URL
    current = (
        live
        if straight
        else recheck_before_delete(store, scene.dest_store, scene.src, scene.out, arc, state)
    )
    if current is not None:
        held = lock_reason(current) if not keep_versions else None
        if held is not None:
            return _held(scene, f"not deleted: {held}")
        if not straight:  # a record may be forged: the copy must hold these very bytes
            archive_holds(store, scene.src, arc, current, _part_size(scene, state, current))
        # Its sidecars first (each verified in the archive): none outlives the raster.
        held = delete_sidecars(
            store, scene.sidecars, ctx, scene.sidecars_archived, scene.sidecar_pins
        )
        if held is not None:
            return _held(scene, held)
        try:
            delete_exactly(store, scene.src, current, keep_version=keep_versions)
        except AccessDenied as err:
            return _held(scene, f"the delete was refused ({err.code or 'AccessDenied'})")
        if keep_versions and current.version_id:
            scene.notes.kept_version = current.version_id
    scene.did_work = True
    scene.deleted = True
    handle.remember(state.advanced(Step.DELETED, scene.ctx.run_id))
    return None


def _delete_pending(scene: Scene, handle: StateHandle, version: str) -> str | None:
    """In place: delete the version the archive-class copy replaced (unless versions are
    kept, or S3 refuses: then it stays pending for a later run)."""
    store, state = scene.owned_source(), handle.current
    if scene.ctx.transfers.keep_versions:
        scene.notes.kept_version = version
        handle.save(state.model_copy(update={"pending_version": None}))
        return None
    old = store.head(scene.src, version)
    if old is not None:
        held = lock_reason(old)
        if held is not None:
            return _held(scene, f"the replaced version {version} not deleted: {held}")
        if not (scene.copied_here and scene.replaced == version):
            # Not replaced by this walk: the store must show it is the original's bytes.
            why = pending_problem(
                store, scene.src, version, scene.ctx.storage_class, _part_size(scene, state, old)
            )
            if why is not None:
                raise ArchiveError(f"refusing to delete version {version} of the original: {why}")
        try:
            failpoints.hit("before-delete")
            store.delete(scene.src, version_id=version)
            failpoints.hit("after-delete")
        except AccessDenied as err:
            return _held(scene, f"deleting the replaced version {version} was refused ({err.code})")
    scene.did_work = True
    handle.save(state.model_copy(update={"pending_version": None}))
    return None


def _part_size(scene: Scene, state: SceneState, live: ObjectInfo) -> int:
    """How the original was split for a multipart archive copy (as recorded, else as this
    run would split it: a wrong one only makes a check fail)."""
    t = scene.ctx.transfers
    return state.source_part_size or copy_part_size(live.size, t.multipart_copy_part_size)


def _held(scene: Scene, why: str) -> str:
    arc = scene.arc.url if scene.arc is not None else "the archive"
    reason = f"{why}; the original is archived at {arc}, a later run deletes it once allowed"
    log.info("%s held: %s", redact_url(scene.src.url), reason)
    return reason
