"""The output key: what may be written there, and the upload that writes it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import (
    OutputConflictError,
    PreconditionFailed,
    StorageError,
)
from ..storage import (
    Location,
    ObjectInfo,
)
from ._decide import place
from ._handle import StateHandle
from ._scene import Scene
from ._spec import RunContext

log = logging.getLogger(__name__)


def check_output_key(scene: Scene, out: Location, handle: StateHandle) -> ObjectInfo | None:
    """Refuse to overwrite an object at the output key that this scene did not write.
    Returns what is there (``None``: nothing).

    A record counts for nothing here (it may be forged, or unreadable): an object is this
    scene's own only if the store shows it is. On S3 it carries this source in its
    ``compactor-source`` metadata (another source's tag: never ours). Where there is no tag
    (a local folder keeps no metadata), its bytes must hash to the SHA-256 of an output
    this scene's valid record says it wrote there: a record can make a run replace at
    most the very bytes it recorded, never anything else."""
    existing = scene.dest_store.head(out)
    if existing is None:
        return None
    if not _own_output(scene, out, existing, handle):
        raise OutputConflictError(
            f"{out.url} already exists and was not written for this source; not overwriting it"
        )
    return existing


def _own_output(scene: Scene, out: Location, existing: ObjectInfo, handle: StateHandle) -> bool:
    """Whether ``existing`` (at the scene's output key ``out``) is this scene's own output
    (see :func:`check_output_key`)."""
    tag = existing.metadata.get("compactor-source")
    if tag is not None:
        return tag == source_metadata_header(scene.src.url)["compactor-source"]
    if out.is_s3:
        return False  # every output compactor stores in S3 carries the tag: this one is not ours
    # A folder keeps no metadata: the bytes must be those this scene's record says it wrote
    # (someone who can read the destination and forge a record could aim this at a foreign
    # file's exact bytes; on S3 the tag alone decides).
    current = handle.state.output if handle.state is not None else None
    for recorded in (scene.recorded_output, current):
        if (
            recorded is None
            or recorded.sha256 is None
            or recorded.size != existing.size
            or place(recorded.url) != out.url
        ):
            continue
        try:
            digest = scene.dest_store.sha256(out, etag=existing.etag)[0]
        except (PreconditionFailed, StorageError):
            return False  # changed or gone while it was read: not shown to be ours
        return digest == recorded.sha256
    return False


def upload_output(
    scene: Scene, handle: StateHandle, path: Path, out: Location, sha: str
) -> ObjectInfo:
    """Store the output at ``out``: only if the key is free; a key that is taken is replaced
    only if the store shows it holds this scene's own output (:func:`check_output_key`:
    tagged with the source, or the very bytes a valid record says were written there).
    A record's existence or claim alone is no permission."""
    t = scene.ctx.transfers

    def put(if_none_match: bool) -> ObjectInfo:
        return scene.dest_store.put_file(
            path, out, sha256_hex=sha, metadata=source_metadata_header(scene.src.url),
            multipart_threshold=t.multipart_upload_threshold,
            part_size=t.multipart_upload_threshold, if_none_match=if_none_match,
            storage_class=t.output_storage_class, sse_kms_key=t.sse_kms_key,
        )  # fmt: skip

    try:
        return put(if_none_match=True)
    except PreconditionFailed:
        check_output_key(scene, out, handle)  # raises unless it is this source's output
        return put(if_none_match=False)


def output_create(ctx: RunContext) -> dict[str, Any]:
    """What an output object is created with besides its content: class, encryption."""
    t, create = ctx.transfers, {}
    if t.output_storage_class != "STANDARD":
        create["StorageClass"] = t.output_storage_class
    if t.sse_kms_key:
        create.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=t.sse_kms_key)
    return create


def source_metadata_header(source_url: str) -> dict[str, str]:
    """User metadata on outputs naming their source (percent-encoded: S3 metadata is ASCII)."""
    return {"compactor-source": quote(source_url, safe="")}
