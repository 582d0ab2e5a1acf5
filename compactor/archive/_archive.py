"""Moving originals to an archive storage class, verified, and the guarded delete.

* ``prefix`` mode: a server-side copy to ``--archive`` in ``--storage-class``. Up to the
  multipart threshold (5 GiB, S3's CopyObject limit) one CopyObject keeps metadata,
  Content-Type and tags; above it UploadPartCopy, with the source ETag as a
  precondition on every part, and metadata, Content-Type, tags and server-side
  encryption read from the source and set explicitly (a multipart copy drops them).
  Encryption is always set explicitly: a copy otherwise takes the bucket default.
* ``in-place`` mode: the same copy onto the source key, changing only the class.
* local sources: the file is hard-linked (or copied) into the archive directory.

Every copy is checked afterwards: the SHA-256 the store computed over the copy against our
own hash of the source (full-object or composite-of-parts), and from a HEAD where the copy's
answer does not say enough: size, storage class, metadata, tags where readable,
encryption. Only then is the source deleted, exactly the archived version
(:func:`delete_exactly`); a walk resuming at the delete first re-checks output and archive
copy with the stores (:func:`recheck_before_delete`). An object already at the archive key
is never overwritten unless it is the very same bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from .. import failpoints
from ..errors import ArchiveError, PreconditionFailed, StorageError
from ..records import SceneState, SourceDigest, StoredObject
from ..storage import CopyAnswer, Location, ObjectInfo, ServerCopier, Store, sweep_orphans

log = logging.getLogger(__name__)

#: S3 allows at most this many parts per multipart upload.
MAX_PARTS = 10_000


def copy_part_size(size: int, wanted: int) -> int:
    """A part size at least ``wanted`` that keeps ``size`` within S3's part count."""
    floor = -(-size // MAX_PARTS)
    return max(wanted, floor)


def digest_source(
    store: Store,
    loc: Location,
    etag: str | None,
    part_size: int | None,
    version_id: str | None = None,
) -> SourceDigest:
    """Stream the original once (``version_id``: exactly that version): its SHA-256, and
    the part digests for a multipart copy."""
    sha, parts = store.sha256(loc, etag=etag, part_size=part_size, version_id=version_id)
    return SourceDigest.of(sha, part_size, parts)


@dataclass(frozen=True)
class Encryption:
    """Server-side encryption of an archive copy: the original's unless a KMS key is
    given for the run (``--sse-kms-key``)."""

    sse: str | None = None
    kms_key: str | None = None

    @classmethod
    def of(cls, live: ObjectInfo, kms_key: str | None = None) -> Encryption:
        if live.sse_customer_algorithm:
            raise ArchiveError(
                "the original is encrypted with a customer-provided key (SSE-C); compactor "
                "cannot copy it without the key"
            )
        if kms_key:
            return cls("aws:kms", kms_key)
        return cls(live.sse, live.sse_kms_key_id if live.sse == "aws:kms" else None)

    def arguments(self) -> dict[str, Any]:
        """What a copy must be told: a copy otherwise takes the bucket's default."""
        out: dict[str, Any] = {}
        if self.sse:
            out["ServerSideEncryption"] = self.sse
            if self.sse == "aws:kms" and self.kms_key:
                out["SSEKMSKeyId"] = self.kms_key
        return out


def lock_reason(info: ObjectInfo, now: datetime | None = None) -> str | None:
    """Why S3 Object Lock keeps this version from being deleted now, or ``None``."""
    if info.legal_hold:
        return "a legal hold is on it"
    if info.lock_mode and info.lock_until:
        until = datetime.fromisoformat(info.lock_until.replace("Z", "+00:00"))
        if until > (now or datetime.now(UTC)):
            return f"it is under {info.lock_mode} retention until {until.date().isoformat()}"
    return None


def _explicit_headers(
    live: ObjectInfo, tags: dict[str, str] | None, encryption: Encryption
) -> dict[str, Any]:
    """Everything a multipart copy must be told: what CopyObject would have kept."""
    create: dict[str, Any] = {"Metadata": dict(live.metadata)}
    for arg, value in (
        ("ContentType", live.content_type),
        ("CacheControl", live.cache_control),
        ("ContentDisposition", live.content_disposition),
        ("ContentEncoding", live.content_encoding),
        ("ContentLanguage", live.content_language),
    ):
        if value:
            create[arg] = value
    if tags:
        create["Tagging"] = urlencode(tags, quote_via=quote)
    create.update(encryption.arguments())
    return create


def check_copy(
    store: ServerCopier,
    dst: Location,
    live: ObjectInfo,
    digest: SourceDigest,
    storage_class: str,
    tags: dict[str, str] | None,
    encryption: Encryption,
) -> ObjectInfo:
    """HEAD the copy and compare it with the original; raise listing every difference."""
    got = store.head(dst)
    if got is None:
        raise ArchiveError(f"archive copy {dst.url} is not there after the copy")
    problems = []
    if got.size != live.size:
        problems.append(f"size {got.size} != {live.size}")
    if (got.storage_class or "STANDARD") != storage_class:
        problems.append(f"storage class {got.storage_class} != {storage_class}")
    verdict = digest.accepts(got.checksum_sha256)
    if verdict is False:
        problems.append("SHA-256 differs from the original's")
    elif (
        verdict is None
        and got.etag
        and live.etag
        and "-" not in live.etag + got.etag
        and got.etag != live.etag
    ):
        problems.append(f"ETag {got.etag} != {live.etag}")
    for what, a, b in (
        ("user metadata", got.metadata, live.metadata),
        ("Content-Type", got.content_type, live.content_type),
        ("Cache-Control", got.cache_control, live.cache_control),
        ("Content-Encoding", got.content_encoding, live.content_encoding),
        ("Content-Disposition", got.content_disposition, live.content_disposition),
        ("Content-Language", got.content_language, live.content_language),
        ("encryption", got.sse, encryption.sse),
        ("KMS key", got.sse_kms_key_id, encryption.kms_key),
    ):
        if a != b:
            problems.append(f"{what} {a!r} != {b!r}")
    if tags:  # an original without tags gives a copy without (TaggingDirective COPY)
        copy_tags = store.get_tags(dst)
        if copy_tags is not None and copy_tags != tags:
            problems.append("tags differ")
    if problems:
        raise ArchiveError(
            f"archive copy {dst.url} does not match the original: " + "; ".join(problems)
        )
    return got


def server_copy(
    store: ServerCopier,
    src: Location,
    dst: Location,
    live: ObjectInfo,
    digest: SourceDigest,
    storage_class: str,
    *,
    multipart_threshold: int,
    part_size: int,
    replace: bool = False,
    kms_key: str | None = None,
    leased: bool = False,
) -> tuple[StoredObject, ObjectInfo | None]:
    """Copy ``src`` to ``dst`` in ``storage_class`` and check the copy. ``replace`` allows
    an existing ``dst`` (in-place class changes, restores of the same key). ``leased``: the
    caller holds the scene's lease, so no one else writes ``dst``: once a multipart copy is
    complete, any other upload to that key is an orphan (a CreateMultipartUpload whose
    answer was lost and retried) and is aborted.

    A single CopyObject is checked from its answer: the SHA-256 S3 computed over the copy
    it stored must be our own hash of the original (bytes, hence size), and the encryption
    the original's; storage class, metadata and tags are what the request set (COPY
    directives). Where the answer holds no checksum, the original has tags, or the copy
    replaced the source (in place), and after a multipart copy, a HEAD checks everything.
    In a versioned bucket the copy's source is exactly the version read (``VersionId``).
    Returns the copy as recorded, and that HEAD when one was made."""
    encryption = Encryption.of(live, kms_key)
    tags = {} if live.tag_count == 0 else store.get_tags(src)
    if not replace:
        existing = store.head(dst)  # a copy may not count on If-None-Match being honoured
        if existing is not None:
            if existing.size == live.size and digest.accepts(existing.checksum_sha256):
                log.info("archive copy %s already present", dst.url)
                got = check_copy(store, dst, live, digest, storage_class, tags, encryption)
                return _stored(dst, got, digest), got
            raise ArchiveError(
                f"{dst.url} already holds a different object; not overwriting it "
                "(move it away or choose another archive prefix)"
            )
    answer: CopyAnswer | None = None
    try:
        if live.size > multipart_threshold:
            store.abort_stale_uploads(dst)
            store.multipart_copy(
                src,
                dst,
                size=live.size,
                part_size=digest.part_size or copy_part_size(live.size, part_size),
                if_match=live.etag,
                create={"StorageClass": storage_class, **_explicit_headers(live, tags, encryption)},
                if_none_match=not replace,
                version_id=live.version_id,
            )
            if leased:
                sweep_orphans(store, dst)
        else:
            answer = store.copy(
                src,
                dst,
                storage_class=storage_class,
                if_match=live.etag,
                if_none_match=not replace,
                extra=encryption.arguments(),
                version_id=live.version_id,
            )
    except PreconditionFailed as err:
        raise ArchiveError(
            f"the original changed, or the archive key was taken, during the copy: {err}"
        ) from err
    except StorageError as err:
        raise ArchiveError(f"copy to {dst.url} failed: {err}") from err
    failpoints.hit("after-archive-copy")
    if answer is not None and answer.checksum_sha256 and not tags and not replace:
        return _checked_answer(dst, answer, live, digest, storage_class, encryption), None
    got = check_copy(store, dst, live, digest, storage_class, tags, encryption)
    return _stored(dst, got, digest), got


def _checked_answer(
    dst: Location,
    answer: CopyAnswer,
    live: ObjectInfo,
    digest: SourceDigest,
    storage_class: str,
    encryption: Encryption,
) -> StoredObject:
    """The copy as its CopyObject answer describes it, checked against the original."""
    problems = []
    if not digest.accepts(answer.checksum_sha256):
        problems.append("SHA-256 differs from the original's")
    for what, a, b in (
        ("encryption", answer.sse, encryption.sse),
        ("KMS key", answer.sse_kms_key_id, encryption.kms_key),
    ):
        if a != b:
            problems.append(f"{what} {a!r} != {b!r}")
    if problems:
        raise ArchiveError(
            f"archive copy {dst.url} does not match the original: " + "; ".join(problems)
        )
    return StoredObject(
        url=dst.url, size=live.size, sha256=digest.sha256, etag=answer.etag,
        storage_class=storage_class, checksum=answer.checksum_sha256,
    )  # fmt: skip


def _stored(dst: Location, got: ObjectInfo, digest: SourceDigest) -> StoredObject:
    return StoredObject(
        url=dst.url,
        size=got.size,
        sha256=digest.sha256,
        etag=got.etag,
        storage_class=got.storage_class,
        checksum=got.checksum_sha256,
    )


def archive_link(store: Store, src: Location, dst: Location, sha256_hex: str) -> StoredObject:
    """Archive an original in a store without server-side copies (a directory): a second
    name for its bytes (:meth:`Store.link`), checked by hash."""
    if store.head(dst) is not None:
        if store.sha256(dst)[0] != sha256_hex:
            raise ArchiveError(f"{dst.url} already holds a different file; not overwriting it")
    else:
        try:
            store.link(src, dst)
        except StorageError as err:
            raise ArchiveError(f"archive copy failed: {err}") from err
    failpoints.hit("after-archive-copy")
    if store.sha256(dst)[0] != sha256_hex:
        raise ArchiveError(f"archive copy {dst.url} does not match the original")
    info = store.head(dst)
    assert info is not None
    return StoredObject(url=dst.url, size=info.size, sha256=sha256_hex, etag=info.etag)


def recheck_before_delete(
    src_store: Store,
    dest_store: Store,
    src: Location,
    out: Location,
    arc: Location,
    state: SceneState,
) -> ObjectInfo | None:
    """Before deleting an original on the strength of an earlier record, check with the
    stores that the verified output (at ``out``, the scene's own output key) and the
    archive copy (at ``arc``, the scene's own archive key) exist with the recorded sizes
    and checksums, and that the source is still the version that was archived. Returns the
    source as it is (``None``: already gone). The record may be forged: before the delete,
    :func:`archive_holds` checks the copy against the live source's own bytes."""
    if state.output is None or state.archive is None or state.source_sha256 is None:
        raise ArchiveError("refusing to delete the original: its state is incomplete")
    if not dest_store.holds(out, state.output):
        raise ArchiveError(f"refusing to delete the original: output {out.url} is not as verified")
    if not src_store.holds(arc, state.archive):
        raise ArchiveError(
            f"refusing to delete the original: archive copy {arc.url} is not as verified"
        )
    live = src_store.head(src)
    if live is None:
        return None  # already gone (an earlier attempt deleted it)
    changed = live.etag != state.fingerprint.etag or live.size != state.fingerprint.size
    if changed:
        raise ArchiveError("refusing to delete the original: it changed after it was archived")
    return live


def archive_holds(
    store: Store, src: Location, arc: Location, live: ObjectInfo, part_size: int | None
) -> None:
    """Raise unless the archive copy at ``arc`` holds the very bytes of the source version
    ``live``: the source is hashed again (``part_size``: how a multipart copy was split)
    and compared with the SHA-256 the store reports for the copy (a directory: the copy's
    own hash), or, where the store reports none, single-part ETags (MD5s)."""
    copy = store.head(arc)
    refuse = f"refusing to delete the original: archive copy {arc.url}"
    if copy is None or copy.size != live.size:
        raise ArchiveError(f"{refuse} is not there with the original's size")
    if store.server_copier() is None:
        if store.sha256(arc)[0] != store.sha256(src)[0]:
            raise ArchiveError(f"{refuse} does not hold the original's bytes")
        return
    reported = copy.checksum_sha256
    if reported:
        split = part_size if _multipart(copy) else None
        digest = digest_source(store, src, live.etag, split, live.version_id)
        if not digest.accepts(reported):
            raise ArchiveError(f"{refuse} does not hold the original's bytes")
        return
    etags = (copy.etag or "-") + (live.etag or "-")
    if "-" in etags or copy.etag != live.etag:
        raise ArchiveError(f"{refuse} reports no checksum to compare with the original's")


def _multipart(info: ObjectInfo) -> bool:
    """Whether the store's SHA-256 of ``info`` is the composite of its parts' (the source is
    then hashed by parts to compare): a ``-N`` suffix on the checksum or on the ETag says so.
    A HEAD may leave the suffix off the checksum (the moto server does), never off the
    ETag; either way the comparison is with our own hashes of the source's bytes."""
    return "-" in (info.checksum_sha256 or "") or "-" in (info.etag or "")


def pending_problem(
    store: Store, src: Location, version: str, storage_class: str, part_size: int | None
) -> str | None:
    """Why the version ``version`` of ``src`` may not be deleted as the one an in-place
    archive copy replaced (``None``: it may): it must be another version than the current
    one, no newer than it, the current one in ``storage_class``, and its bytes those of the
    current one (hashed, against the SHA-256 the store reports for the current version)."""
    old = store.head(src, version)
    if old is None:
        return None  # already gone
    now = store.head(src)
    if now is None:
        return "the archive-class copy that replaced it is not there"
    if now.version_id is None or now.version_id == version:
        return "it is the current version, not one the archive-class copy replaced"
    if (now.storage_class or "STANDARD") != storage_class:
        return f"the current version is in {now.storage_class or 'STANDARD'}, not {storage_class}"
    if old.mtime and now.mtime and _when(old.mtime) > _when(now.mtime):
        return "it is newer than the archive-class copy"
    if old.size != now.size or not now.checksum_sha256:
        return "its bytes cannot be shown to be those of the archive-class copy"
    split = part_size if _multipart(now) else None
    digest = digest_source(store, src, old.etag, split, version)
    if not digest.accepts(now.checksum_sha256):
        return "its bytes differ from the archive-class copy's"
    return None


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def delete_exactly(
    src_store: Store, src: Location, live: ObjectInfo, *, keep_version: bool = False
) -> None:
    """Delete the original only if it is still the version ``live``, the one whose output
    and archive copy were verified: in a versioned bucket exactly that version, for good
    (``VersionId``; with ``keep_version``, a delete marker that leaves it as a noncurrent
    version), elsewhere If-Match on its ETag. A delete S3 refuses (Object Lock, a bucket
    policy, MFA delete) raises :class:`~compactor.errors.AccessDenied`."""
    failpoints.hit("before-delete")
    version = None if keep_version else live.version_id
    try:
        src_store.delete(src, if_match=live.etag, version_id=version)
    except PreconditionFailed as err:
        raise ArchiveError("refusing to delete the original: it changed just now") from err
    failpoints.hit("after-delete")
