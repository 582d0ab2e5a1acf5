"""Moving originals to an archive storage class, verified, and the guarded delete.

* ``prefix`` mode: server-side copy to ``--archive`` with ``--storage-class``, keeping
  Content-Type, user metadata and tags; the copy is checked (size, storage class,
  metadata, tags where readable, and SHA-256 against our own hash of the source);
  only then may the source be deleted, by :func:`delete_source`, which re-checks the
  output and the archive copy first and deletes only the version that was copied.
* ``in-place`` mode: the object is copied onto itself with the new storage class.
* local sources: the file is hard-linked (or copied) into the archive directory,
  hashed there, and only then unlinked from the source.

An existing object at the archive key is never overwritten: if it is not the same
bytes as the source, the scene fails and both are left alone.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from .errors import ArchiveError, PreconditionFailed, StorageError
from .state import SceneState, StoredObject
from .storage import LocalStore, Location, ObjectInfo, S3Store, b64, sha256_file

log = logging.getLogger(__name__)


def _composite_free(checksum: str | None) -> str | None:
    """A store's SHA-256 without the ``-N`` part count of multipart composites."""
    return checksum.split("-", 1)[0] if checksum else None


def _simple_etag(etag: str | None) -> bool:
    """True for an MD5 ETag (single-part upload), which a plain copy keeps."""
    return bool(etag) and "-" not in (etag or "")


def same_bytes(info: ObjectInfo, size: int, sha256_hex: str | None, etag: str | None) -> bool:
    """Whether ``info`` is the object of ``size``/``sha256_hex``/``etag``, as far as the
    store can tell: size always; SHA-256 when the store reports a full-object one;
    otherwise a single-part ETag."""
    if info.size != size:
        return False
    reported = info.checksum_sha256
    if reported and sha256_hex and "-" not in reported:
        return reported == b64(bytes.fromhex(sha256_hex))
    if _simple_etag(info.etag) and _simple_etag(etag):
        return info.etag == etag
    return reported is None and sha256_hex is None


def holds(
    store: S3Store | LocalStore, loc: Location, size: int, sha256_hex: str | None, etag: str | None
) -> bool:
    """Whether ``loc`` holds exactly the recorded object. On S3 from a HEAD (size, and the
    store's SHA-256 or single-part ETag); on local disk by hashing the file."""
    info = store.head(loc)
    if info is None or info.size != size:
        return False
    if isinstance(store, LocalStore):
        return sha256_hex is not None and sha256_file(loc.key) == sha256_hex
    return same_bytes(info, size, sha256_hex, etag)


def check_copy(
    store: S3Store,
    dst: Location,
    live: ObjectInfo,
    sha256_hex: str,
    storage_class: str,
    tags: dict[str, str] | None,
) -> ObjectInfo:
    """HEAD the archive copy and compare it with the source; raise on any difference."""
    got = store.head(dst)
    if got is None:
        raise ArchiveError(f"archive copy {dst.url} is not there after the copy")
    problems = []
    if got.size != live.size:
        problems.append(f"size {got.size} != {live.size}")
    if (got.storage_class or "STANDARD") != storage_class:
        problems.append(f"storage class {got.storage_class} != {storage_class}")
    checksum = _composite_free(got.checksum_sha256)
    if checksum and got.checksum_sha256 and "-" not in got.checksum_sha256:
        if checksum != b64(bytes.fromhex(sha256_hex)):
            problems.append("SHA-256 differs from the source's")
    elif _simple_etag(live.etag) and _simple_etag(got.etag) and got.etag != live.etag:
        problems.append(f"ETag {got.etag} != {live.etag}")
    if got.metadata != live.metadata:
        problems.append("user metadata differs")
    if live.content_type and got.content_type != live.content_type:
        problems.append(f"Content-Type {got.content_type} != {live.content_type}")
    if tags is not None:
        copy_tags = store.get_tags(dst)
        if copy_tags is not None and copy_tags != tags:
            problems.append("tags differ")
    if problems:
        raise ArchiveError(
            f"archive copy {dst.url} does not match the original: " + "; ".join(problems)
        )
    return got


def archive_s3(
    store: S3Store,
    src: Location,
    dst: Location,
    live: ObjectInfo,
    sha256_hex: str,
    storage_class: str,
) -> StoredObject:
    """Copy ``src`` to ``dst`` (another key, or itself for in-place) in ``storage_class``."""
    in_place = src == dst
    tags = store.get_tags(src)
    if not in_place:
        existing = store.head(dst)
        if existing is not None:
            if same_bytes(existing, live.size, sha256_hex, live.etag):
                log.info("archive copy %s already present", dst.url)
                got = check_copy(store, dst, live, sha256_hex, storage_class, tags)
                return StoredObject(
                    url=dst.url,
                    size=got.size,
                    sha256=sha256_hex,
                    etag=got.etag,
                    storage_class=got.storage_class,
                )
            raise ArchiveError(
                f"{dst.url} already holds a different object; not overwriting it "
                "(move it away or choose another --archive prefix)"
            )
    try:
        store.copy(
            src,
            dst,
            storage_class=storage_class,
            if_match=live.etag,
            if_none_match=not in_place,
            tagging=None,
        )
    except PreconditionFailed as err:
        raise ArchiveError(
            f"the original changed or the archive key was taken during the copy: {err}"
        ) from err
    except StorageError as err:
        raise ArchiveError(f"archive copy failed: {err}") from err
    got = check_copy(store, dst, live, sha256_hex, storage_class, tags)
    return StoredObject(
        url=dst.url,
        size=got.size,
        sha256=sha256_hex,
        etag=got.etag,
        storage_class=got.storage_class,
    )


def archive_local(store: LocalStore, src: Location, dst: Location, sha256_hex: str) -> StoredObject:
    """Link or copy a local original into the archive directory and check its hash."""
    existing = store.head(dst)
    if existing is not None:
        if sha256_file(dst.key) != sha256_hex:
            raise ArchiveError(f"{dst.url} already holds a different file; not overwriting it")
    else:
        try:
            store.move(src, dst)
        except StorageError as err:
            raise ArchiveError(f"archive copy failed: {err}") from err
    if sha256_file(dst.key) != sha256_hex:
        raise ArchiveError(f"archive copy {dst.url} does not match the original")
    info = store.head(dst)
    assert info is not None
    return StoredObject(url=dst.url, size=info.size, sha256=sha256_hex, etag=info.etag)


def _must_hold(info: ObjectInfo | None, what: str, size: int, sha256_hex: str | None) -> None:
    if info is None:
        raise ArchiveError(f"refusing to delete the original: {what} is missing")
    if info.size != size:
        raise ArchiveError(
            f"refusing to delete the original: {what} has size {info.size}, expected {size}"
        )
    reported = info.checksum_sha256
    if (
        reported
        and sha256_hex
        and "-" not in reported
        and reported != b64(bytes.fromhex(sha256_hex))
    ):
        raise ArchiveError(f"refusing to delete the original: {what} has a different SHA-256")


def delete_source(
    src_store: S3Store | LocalStore,
    dest_store: S3Store | LocalStore,
    src: Location,
    state: SceneState,
) -> None:
    """Delete the original, after re-checking with the stores (never on the record alone)
    that the verified output and the archive copy exist with the recorded sizes and
    checksums, and that the source is still the version that was archived."""
    if state.output is None or state.archive is None or state.source_sha256 is None:
        raise ArchiveError("refusing to delete the original: its state is incomplete")
    out = Location.parse(state.output.url)
    arc = Location.parse(state.archive.url)
    _must_hold(dest_store.head(out), f"output {out.url}", state.output.size, state.output.sha256)
    if arc.is_s3:
        _must_hold(
            src_store.head(arc),
            f"archive copy {arc.url}",
            state.fingerprint.size,
            state.source_sha256,
        )
    else:
        info = src_store.head(arc)
        _must_hold(info, f"archive copy {arc.url}", state.fingerprint.size, None)
        if sha256_file(arc.key) != state.source_sha256:
            raise ArchiveError(f"refusing to delete the original: archive copy {arc.url} differs")
    live = src_store.head(src)
    if live is None:
        return  # already gone (an earlier attempt deleted it)
    if isinstance(src_store, S3Store):
        if live.etag != state.fingerprint.etag or live.size != state.fingerprint.size:
            raise ArchiveError("refusing to delete the original: it changed after it was archived")
        try:
            src_store.delete(src, if_match=live.etag)
        except PreconditionFailed as err:
            raise ArchiveError("refusing to delete the original: it changed just now") from err
    else:
        if sha256_file(src.key) != state.source_sha256:
            raise ArchiveError("refusing to delete the original: it changed after it was archived")
        src_store.delete(src)


def source_metadata_header(source_url: str) -> dict[str, str]:
    """User metadata on outputs naming their source (percent-encoded: S3 metadata is ASCII)."""
    return {"compactor-source": urlencode({"u": source_url})[2:]}
