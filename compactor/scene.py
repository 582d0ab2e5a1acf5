"""One scene's walk through the durable state machine, run as a Dask task on a worker.

::

    discovered -> encoded -> verified -> archived -> deleted

* **encode**: read the source lazily through GDAL, write a COG to worker-local scratch,
  check it (valid COG, metadata, pixels exact or SSIM >= the bar, re-encoding at higher
  quality and finally losslessly when the bar is missed), upload it checksummed and
  atomically -> ``encoded``; confirm what is stored (size, checksum, a valid COG read
  over the network) -> ``verified``.
* **archive**: hash the original, copy it to the archive storage class, check the copy
  -> ``archived``.
* **delete**: re-check output and archive copy with the stores, delete exactly the
  archived version of the source -> ``deleted``.

The whole walk happens under the scene's lease (:mod:`compactor.lease`), checked again
before every step that writes or deletes; every state write is conditional on the
version read. A rerun resumes from the last durable step; a source that changed since it
was recorded starts over. Problems with the scene become its result, never an exception.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import failpoints
from .archive import (
    SourceDigest,
    archive_local,
    copy_part_size,
    delete_source,
    digest_source,
    holds,
    server_copy,
    source_metadata_header,
)
from .chunked import compact_chunked, decoder_margin
from .cluster import cluster_context
from .cog import gdal_errors, read_info, uses_tile_writer, write_cog
from .encode import Profile, RasterInfo, choose_profile
from .errors import (
    CompactorError,
    LeaseHeldError,
    OutputConflictError,
    SceneError,
    SceneTooLargeError,
    StorageError,
    VerificationError,
)
from .gdal_env import gdal_env, scratch_dir
from .lease import Lease
from .models import Attempt, SceneResult
from .quality import Ladder
from .quality import candidates as quality_candidates
from .report import human_bytes
from .state import Fingerprint, SceneState, StateStore, Step, StoredObject, lease_location, now_iso
from .storage import (
    ARCHIVE_CLASSES,
    HttpStore,
    LocalStore,
    Location,
    ObjectInfo,
    S3Store,
    Store,
    readable_path,
    sha256_file,
    source_store_for,
    store_for,
)
from .tasks import RunContext, SceneSpec
from .verify import Fidelity, check_output, validate_cog

log = logging.getLogger(__name__)

#: Attempts at reading and encoding a remote source before a GDAL read error fails it.
SOURCE_READ_ATTEMPTS = 3
#: First delay between those attempts, in seconds (doubled each time, with jitter).
READ_RETRY_DELAY = 1.0


class LeftAsIs(Exception):
    """The scene is skipped on purpose (e.g. its COG would not be smaller)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def final_step(context: RunContext, spec: SceneSpec | None = None) -> Step:
    """The last step a scene goes to: a scene without an archive URL (originals left, or a
    read-only HTTP source) stops once its output is verified."""
    if spec is not None and spec.archive is None:
        return Step.VERIFIED
    return {"none": Step.VERIFIED, "in-place": Step.ARCHIVED, "prefix": Step.DELETED}[
        context.archive_mode
    ]


class SceneJob:
    """One scene's walk through the state machine."""

    def __init__(self, spec: SceneSpec, context: RunContext, lease: Lease | None = None):
        self.spec = spec
        self.ctx = context
        self.lease = lease
        self.src = Location.parse(spec.source)
        self.out = Location.parse(spec.output)
        self.arc = Location.parse(spec.archive) if spec.archive else None
        self.src_store = source_store_for(self.src, context.s3, context.http)
        self.dest_store = store_for(context.dest_location, context.s3)
        self.states = StateStore(context.dest_location, self.dest_store)
        # Output and archive URLs are filled in only once those objects exist.
        self.result = SceneResult(
            source=spec.source, status="failed", item=spec.item, asset=spec.asset
        )
        self.did_work = False
        self.scratch: Path | None = None
        self._src_path: str | None = None

    @property
    def src_path(self) -> str:
        """What GDAL opens: ``/vsis3/...`` or a local path; an HTTP(S) source is fetched
        into scratch first, bounded by the one-task size (it is never chunked)."""
        if self._src_path is None:
            assert self.scratch is not None
            self._src_path = readable_path(
                self.src, self.scratch / "source", self.ctx.http, self.ctx.chunk_threshold
            )
        return self._src_path

    # -- bookkeeping ---------------------------------------------------------------

    def _save(self, state: SceneState, etag: str | None) -> str:
        return self.states.save(state, etag)

    def _owned_source(self) -> Store:
        """The source's store for archiving and deleting: never an HTTP source (read-only;
        discovery gives such scenes no archive, so this only guards the invariant)."""
        if isinstance(self.src_store, HttpStore):
            raise StorageError(f"{self.src.url} is read-only: it is never archived or deleted")
        return self.src_store

    def _check_lease(self, before: str) -> None:
        if self.lease is not None:
            self.lease.check(before)

    def _fill_from_state(self, state: SceneState) -> None:
        r = self.result
        r.step = state.step.label
        r.bytes_in = state.fingerprint.size
        if state.output and state.output.size:
            r.output = state.output.url
            r.bytes_out = state.output.size
            r.output_sha256 = state.output.sha256
        if state.archive:
            r.archive = state.archive.url
            r.storage_class = state.archive.storage_class
            r.archive_sha256 = state.archive.sha256
        r.codec, r.quality, r.lossless = state.codec, state.quality, state.lossless
        r.ssim, r.psnr = state.ssim, state.psnr

    def finish(self, status: str, reason: str | None = None) -> SceneResult:
        self.result.status = status  # type: ignore[assignment]
        self.result.reason = reason
        return self.result

    def _digest(self, state: SceneState) -> SourceDigest | None:
        if state.source_sha256 is None:
            return None
        return SourceDigest(state.source_sha256, state.source_part_size, state.source_composite)

    # -- the walk ------------------------------------------------------------------

    def run(self) -> SceneResult:
        state, etag = self.states.load(self.src)
        live = self.src_store.head(self.src)
        if live is None:
            return self._source_gone(state, etag)
        self.result.bytes_in = live.size
        fp = Fingerprint.of(live)
        if state is not None and state.fingerprint != fp:
            digest = self._digest(state)
            if (
                digest is not None
                and live.size == state.fingerprint.size
                and digest.accepts(live.checksum_sha256)
            ):
                # The same bytes with a new ETag/mtime (an in-place class change).
                state = state.model_copy(update={"fingerprint": fp})
            else:
                log.info("%s changed since run %s; starting over", self.src.url, state.run_id)
                state = self._restart(state, fp)
        resumable_in_place = (
            self.ctx.archive_mode == "in-place"
            and state is not None
            and state.step >= Step.VERIFIED
            and live.storage_class == self.ctx.storage_class
        )
        if (
            live.storage_class in ARCHIVE_CLASSES
            and not resumable_in_place
            and not (state is not None and state.step >= Step.ARCHIVED)
        ):
            return self.finish(
                "skipped",
                f"original is in {live.storage_class} and cannot be read without a restore "
                "(compactor restore, or an S3 restore request)",
            )
        if state is None:
            # Claim the output key only if it is free or already ours: the claim is what
            # later lets this scene replace an output it wrote.
            self._check_output_key(self.out, None)
            state = SceneState(
                source=self.src.url,
                fingerprint=fp,
                step=Step.DISCOVERED,
                output=StoredObject(url=self.out.url, size=0),  # claims the output key
                run_id=self.ctx.run_id,
                updated=now_iso(),
            )
            etag = self._save(state, etag)
            failpoints.hit("after-discovered")
        if (
            state.step == Step.DISCOVERED
            and state.skip_reason
            and state.policy == self.ctx.policy_digest()
        ):
            self._fill_from_state(state)
            return self.finish("skipped", state.skip_reason)

        final = final_step(self.ctx, self.spec)
        if state.step >= Step.VERIFIED and not self._output_intact(state):
            if live.storage_class in ARCHIVE_CLASSES:
                self._fill_from_state(state)
                return self.finish(
                    "failed",
                    "the verified output is missing or changed and the original is archived; "
                    "restore it to compact it again",
                )
            log.info("output of %s is missing or changed; encoding again", self.src.url)
            state = state.advanced(Step.DISCOVERED, self.ctx.run_id)
        if state.step == Step.ENCODED and not self._output_intact(state):
            log.info("output of %s is not as uploaded; encoding again", self.src.url)
            state = state.advanced(Step.DISCOVERED, self.ctx.run_id)
        if state.step == Step.ENCODED:
            state, etag = self._confirm_output(state, etag)
        if state.step < Step.VERIFIED:
            state, etag = self._encode(state, etag, live)
        if final >= Step.ARCHIVED and state.step < Step.ARCHIVED:
            state, etag = self._archive(state, etag, live)
        if final >= Step.DELETED and state.step < Step.DELETED:
            state, etag = self._delete(state, etag)
        self._fill_from_state(state)
        if self.did_work:
            return self.finish("compacted", self.spec.read_only)
        return self.finish("skipped", f"already compacted (run {state.run_id})")

    def _restart(self, old: SceneState, fp: Fingerprint) -> SceneState:
        """A fresh state for a changed source that keeps the claim on the output key."""
        return SceneState(
            source=self.src.url,
            fingerprint=fp,
            step=Step.DISCOVERED,
            output=StoredObject(url=old.output.url if old.output else self.out.url, size=0),
            run_id=self.ctx.run_id,
            updated=now_iso(),
        )

    def _source_gone(self, state: SceneState | None, etag: str | None) -> SceneResult:
        if state is None:
            if self.spec.item is not None:  # a STAC href that names nothing
                return self.finish(
                    "failed",
                    f"asset {self.spec.asset!r} of item {self.spec.item!r}: "
                    f"{self.src.url} not found",
                )
            return self.finish("skipped", "the source was removed after it was listed")
        self._fill_from_state(state)
        if state.step < Step.ARCHIVED or state.archive is None:
            # Removed by someone else before compactor archived it: nothing of ours is at
            # stake. A record without an output is retired; one with an output stays, so
            # `compactor verify` keeps checking that output.
            if state.step < Step.ENCODED:
                self.states.delete(state, etag)
                return self.finish("skipped", "the source was removed before it was compacted")
            return self.finish(
                "skipped", "the source was removed before it was archived; its output is kept"
            )
        arc = Location.parse(state.archive.url)
        if not holds(self._owned_source(), arc, state.archive):
            return self.finish(
                "failed",
                f"the original is neither at its source nor as archived at {arc.url}",
            )
        if state.step == Step.ARCHIVED and final_step(self.ctx, self.spec) >= Step.DELETED:
            # The delete went through but its record did not: record it now.
            state = state.advanced(Step.DELETED, state.run_id)
            self._save(state, etag)
            self.result.step = state.step.label
        return self.finish("skipped", f"already compacted (run {state.run_id}); original archived")

    def _output_intact(self, state: SceneState) -> bool:
        if state.output is None or not state.output.size:
            return False
        return holds(self.dest_store, Location.parse(state.output.url), state.output)

    # -- encode ----------------------------------------------------------------------

    def _encode(
        self, state: SceneState, etag: str | None, live: ObjectInfo
    ) -> tuple[SceneState, str | None]:
        self.scratch = Path(scratch_dir()) / uuid.uuid4().hex
        self.scratch.mkdir(parents=True)
        with gdal_env(self.ctx.gdal_options):
            info = read_info(self.src_path)
        self.ctx.limits.check(info)
        profile = self._profile(info)
        if info.raw_bytes > self.ctx.chunk_threshold:
            if self.src.is_http:
                raise SceneTooLargeError(
                    f"HTTP(S) sources are fetched and encoded in one task; this one has "
                    f"{human_bytes(info.raw_bytes)} of raw pixels, more than --chunk-threshold "
                    f"({human_bytes(self.ctx.chunk_threshold)}), which raises the limit"
                )
            if not uses_tile_writer(profile, info):
                raise SceneTooLargeError(
                    f"{profile.label} scenes and scenes georeferenced by GCPs or RPCs are "
                    f"encoded by GDAL in one task; this one has {human_bytes(info.raw_bytes)} "
                    f"of raw pixels, more than --chunk-threshold "
                    f"({human_bytes(self.ctx.chunk_threshold)}), which raises the limit"
                )
            return self._encode_chunked(state, etag, live, info, profile)
        path, profile, fidelity = self._encode_with_retries()
        failpoints.hit("after-encode")
        size = path.stat().st_size
        if not self._worth_keeping(size, live):
            raise self._left_as_is(state, etag, size, profile, live)
        sha = sha256_file(path)
        out = Location.parse(state.output.url) if state.output else self.out
        self._check_output_key(out, state)
        self._check_lease("uploading the output")
        if isinstance(self.dest_store, S3Store) and size > self.ctx.multipart_upload_threshold:
            self.dest_store.abort_stale_uploads(out)
        stored = self.dest_store.put_file(
            path,
            out,
            sha256_hex=sha,
            metadata=source_metadata_header(self.src.url),
            multipart_threshold=self.ctx.multipart_upload_threshold,
            part_size=self.ctx.multipart_upload_threshold,
        )
        output = StoredObject(
            url=out.url, size=stored.size, sha256=sha, etag=stored.etag,
            checksum=stored.checksum_sha256,
        )  # fmt: skip
        return self._record_encoded(state, etag, output, profile, fidelity.ssim, fidelity.psnr)

    def _encode_chunked(
        self,
        state: SceneState,
        etag: str | None,
        live: ObjectInfo,
        info: RasterInfo,
        profile: Profile,
    ) -> tuple[SceneState, str | None]:
        """A large scene: chunk tasks on the cluster encode one COG straight to its
        destination (a multipart upload, or part files), made visible only when every
        check passed and it is worth keeping."""
        r = self.result
        r.width, r.height, r.bands, r.dtype = info.width, info.height, info.count, info.dtype
        out = Location.parse(state.output.url) if state.output else self.out
        self._check_output_key(out, state)
        with gdal_env(self.ctx.gdal_options, tmpdir=str(self.scratch)):
            ladder = self._ladder(info, profile)
        with cluster_context(self.ctx) as (client, budget, threads):

            def attempt(candidate: Profile) -> tuple[bool, float | None, Any]:
                self._check_lease("encoding the scene")
                result = compact_chunked(
                    self.src_path,
                    out,
                    info,
                    candidate,
                    gdal=self.ctx.gdal_options,
                    s3=self.ctx.s3,
                    client=client,
                    budget=budget,
                    threads=threads,
                    metadata=source_metadata_header(self.src.url),
                    scratch=self.scratch,
                    abort_stale=not r.attempts,  # later tries may hold a kept candidate
                )
                ssim = result.fidelity_ssim
                # The bar with the decoder margin (libjpeg builds may decode differently).
                margin = None if ssim is None else ssim - decoder_margin(candidate, info)
                ok = self._tried(candidate, result.size, margin)
                r.attempts[-1].ssim = ssim
                return ok, margin, result

            candidate, result = ladder.walk(attempt, lambda res: res.discard())
            self._kept(ladder, candidate)
            ssim = result.fidelity_ssim
        r.chunked, r.chunks = True, result.chunks
        failpoints.hit("after-encode")
        if not self._worth_keeping(result.size, live):
            result.discard()
            raise self._left_as_is(state, etag, result.size, candidate, live)
        self._check_lease("making the output visible")
        stored = result.finish()
        output = StoredObject(
            url=out.url, size=stored["size"], sha256=stored["sha256"], etag=stored["etag"],
            checksum=stored["checksum"],
        )  # fmt: skip
        return self._record_encoded(state, etag, output, candidate, ssim, result.fidelity_psnr)

    def _worth_keeping(self, size: int, live: ObjectInfo) -> bool:
        """Whether an output of ``size`` is smaller than the original by ``min_saving``."""
        return size < live.size * (1 - self.ctx.min_saving)

    def _left_as_is(
        self, state: SceneState, etag: str | None, size: int, profile: Profile, live: ObjectInfo
    ) -> LeftAsIs:
        """Record that the scene stays as it is (its COG would not be smaller) and return
        the exception that says so."""
        reason = (
            f"left as it is: its COG ({human_bytes(size)}, {profile.label}) would not be "
            f"smaller than the original ({human_bytes(live.size)})"
            + (f" by {self.ctx.min_saving:.0%}" if self.ctx.min_saving > 0 else "")
        )
        state = state.advanced(
            Step.DISCOVERED, self.ctx.run_id, skip_reason=reason, policy=self.ctx.policy_digest()
        )
        self._save(state, etag)
        return LeftAsIs(reason)

    def _record_encoded(
        self,
        state: SceneState,
        etag: str | None,
        output: StoredObject,
        profile: Profile,
        ssim: float | None,
        psnr: float | None,
    ) -> tuple[SceneState, str | None]:
        """The output is stored: record ENCODED, then confirm what is stored."""
        failpoints.hit("after-upload")
        self.did_work = True
        state = state.advanced(
            Step.ENCODED,
            self.ctx.run_id,
            output=output,
            codec=profile.codec,
            quality=profile.quality,
            lossless=profile.lossless,
            ssim=ssim,
            psnr=psnr,
            skip_reason=None,
            policy=self.ctx.policy_digest(),
        )
        etag = self._save(state, etag)
        failpoints.hit("after-encoded")
        return self._confirm_output(state, etag)

    def _ladder(self, info: RasterInfo, profile: Profile) -> Ladder:
        """The profiles to try in order: under ``--quality auto`` the searched one first
        (the search is recorded in the result), else the fixed quality and its ladder."""
        assert self.scratch is not None
        ladder = quality_candidates(
            self.src_path, info, profile, self.ctx.quality_policy, self.scratch / "search"
        )
        self.result.search = ladder.search
        if ladder.search is not None:
            log.info(
                "%s: quality search chose %s (%d probes on %s)",
                self.src.url, ladder.first.label, len(ladder.search.probes),
                "the whole scene" if ladder.search.sample_whole else "a sample",
            )  # fmt: skip
        return ladder

    def _tried(self, profile: Profile, size: int, ssim: float | None) -> bool:
        """Record an attempt; whether it meets the bar."""
        ok = (
            profile.lossless
            or self.ctx.min_ssim == 0
            or (ssim is not None and ssim >= self.ctx.min_ssim)
        )
        self.result.attempts.append(
            Attempt(codec=profile.codec, quality=profile.quality, bytes=size, ssim=ssim,
                    accepted=ok)
        )  # fmt: skip
        return ok

    def _kept(self, ladder: Ladder, kept: Profile) -> None:
        ladder.record_kept(kept)
        for attempt in self.result.attempts:
            attempt.accepted = (attempt.codec, attempt.quality) == (kept.codec, kept.quality)
        if kept != ladder.first:
            log.info(
                "%s: started at %s for SSIM %.3f; kept %s",
                self.src.url, ladder.first.label, self.ctx.min_ssim, kept.label,
            )  # fmt: skip

    def _profile(self, info: RasterInfo) -> Profile:
        profile = choose_profile(info, self.ctx.codec, self.ctx.quality)
        return replace(profile, force_bigtiff=self.ctx.bigtiff == "yes")

    def _encode_with_retries(self) -> tuple[Path, Profile, Fidelity]:
        """Read, encode and check the scene. GDAL retries failed HTTP requests itself, but a
        transfer cut off midway surfaces as a read error indistinguishable from a corrupt
        file; so for remote sources a GDAL read failure is retried (with backoff) before the
        scene is failed. A corrupt file fails the same way each time, quickly."""
        attempts = SOURCE_READ_ATTEMPTS if self.src.is_s3 else 1
        for attempt in range(1, attempts + 1):
            self.result.attempts.clear()
            try:
                with gdal_env(self.ctx.gdal_options, tmpdir=str(self.scratch)):
                    info = read_info(self.src_path)
                    r = self.result
                    r.width, r.height, r.bands = info.width, info.height, info.count
                    r.dtype = info.dtype
                    return self._encode_until_good(info, self._profile(info))
            except SceneError as err:
                if attempt == attempts or not isinstance(err.__cause__, gdal_errors()):
                    if attempt > 1:
                        raise type(err)(f"{err} (after {attempt} attempts)") from err
                    raise
                delay = READ_RETRY_DELAY * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                log.info("%s: %s; retrying in %.1fs", self.src.url, err, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _encode_until_good(
        self, info: RasterInfo, profile: Profile
    ) -> tuple[Path, Profile, Fidelity]:
        assert self.scratch is not None
        scratch = self.scratch
        ladder = self._ladder(info, profile)

        def attempt(candidate: Profile) -> tuple[bool, float | None, tuple[Path, Fidelity]]:
            path = scratch / f"out-{len(self.result.attempts)}.tif"
            write_cog(self.src_path, path, candidate, info)
            fidelity = check_output(self.src_path, str(path), info, candidate)
            ok = self._tried(candidate, path.stat().st_size, fidelity.ssim)
            return ok, fidelity.ssim, (path, fidelity)

        kept, (path, fidelity) = ladder.walk(attempt, lambda out: out[0].unlink())
        self._kept(ladder, kept)
        return path, kept, fidelity

    def _check_output_key(self, out: Location, state: SceneState | None) -> None:
        """Refuse to overwrite an object at the output key that this scene did not write
        (it carries our source in its metadata, or our state claimed the key while free)."""
        existing = self.dest_store.head(out)
        if existing is None:
            return
        claimed = state is not None and state.output is not None and state.output.url == out.url
        tagged = (
            existing.metadata.get("compactor-source")
            == source_metadata_header(self.src.url)["compactor-source"]
        )
        if not (claimed or tagged):
            raise OutputConflictError(
                f"{out.url} already exists and was not written for this source; not overwriting it"
            )

    def _confirm_output(self, state: SceneState, etag: str | None) -> tuple[SceneState, str | None]:
        """What is stored at the output key is what was verified: same size and SHA-256
        (S3 checked the SHA-256 on upload), and a valid COG read back over the network."""
        assert state.output is not None
        out = Location.parse(state.output.url)
        if not holds(self.dest_store, out, state.output):
            raise VerificationError(f"stored output {out.url} does not match what was verified")
        with gdal_env(self.ctx.gdal_options):
            validate_cog(out.gdal_path)
        state = state.advanced(Step.VERIFIED, self.ctx.run_id)
        etag = self._save(state, etag)
        failpoints.hit("after-verified")
        return state, etag

    # -- archive ---------------------------------------------------------------------

    def _archive(
        self, state: SceneState, etag: str | None, live: ObjectInfo
    ) -> tuple[SceneState, str | None]:
        assert self.arc is not None
        digest = self._digest(state)
        multipart = isinstance(self.src_store, S3Store) and (
            live.size > self.ctx.multipart_copy_threshold
        )
        if digest is None or (multipart and digest.composite is None):
            part_size = (
                copy_part_size(live.size, self.ctx.multipart_copy_part_size) if multipart else None
            )
            digest = digest_source(self._owned_source(), self.src, live.etag, part_size)
            # Recorded before any copy, so a copy interrupted midway is recognised later.
            state = state.model_copy(
                update={
                    "source_sha256": digest.sha256,
                    "source_part_size": digest.part_size,
                    "source_composite": digest.composite,
                }
            )
            etag = self._save(state, etag)
            failpoints.hit("after-source-hash")
        self._check_lease("copying the original to the archive")
        if isinstance(self.src_store, S3Store):
            in_place = self.arc == self.src
            if in_place and live.storage_class == self.ctx.storage_class:
                # An earlier attempt changed the class; the bytes were just recognised.
                stored = StoredObject(
                    url=self.src.url, size=live.size, sha256=digest.sha256, etag=live.etag,
                    storage_class=live.storage_class, checksum=live.checksum_sha256,
                )  # fmt: skip
            else:
                stored = server_copy(
                    self.src_store,
                    self.src,
                    self.arc,
                    live,
                    digest,
                    self.ctx.storage_class,
                    multipart_threshold=self.ctx.multipart_copy_threshold,
                    part_size=self.ctx.multipart_copy_part_size,
                    replace=in_place,
                )
        else:
            assert isinstance(self.src_store, LocalStore)
            stored = archive_local(self.src_store, self.src, self.arc, digest.sha256)
        self.did_work = True
        update: dict[str, Any] = {"archive": stored}
        if self.arc == self.src:
            now = self.src_store.head(self.src)  # a new ETag/mtime: still our original
            if now is not None:
                update["fingerprint"] = Fingerprint.of(now)
        state = state.advanced(Step.ARCHIVED, self.ctx.run_id, **update)
        etag = self._save(state, etag)
        failpoints.hit("after-archived")
        return state, etag

    def _delete(self, state: SceneState, etag: str | None) -> tuple[SceneState, str | None]:
        self._check_lease("deleting the original")
        delete_source(self._owned_source(), self.dest_store, self.src, state)
        self.did_work = True
        state = state.advanced(Step.DELETED, self.ctx.run_id)
        return state, self._save(state, etag)

    def cleanup(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def process_scene(spec: SceneSpec, context: RunContext) -> SceneResult:
    """Dask task: take one scene as far as the run's settings say, under its lease.
    Never raises for a problem with the scene: the result carries the reason."""
    started = time.monotonic()
    dest_store = store_for(context.dest_location, context.s3)
    lease = Lease(
        dest_store,
        lease_location(context.dest_location, Location.parse(spec.source)),
        context.run_id,
        ttl=context.lease_ttl,
    )
    job = SceneJob(spec, context, lease)
    try:
        with lease:
            result = job.run()
    except LeftAsIs as decision:
        result = job.finish("skipped", decision.reason)
    except LeaseHeldError as err:
        result = job.finish("skipped", str(err))
    except (SceneError, StorageError) as err:
        log.warning("%s failed: %s", spec.source, err)
        result = job.finish("failed", str(err))
    except CompactorError as err:
        result = job.finish("failed", str(err))
    except Exception as err:  # a bug or an unforeseen library error: still one scene
        log.exception("%s failed unexpectedly", spec.source)
        result = job.finish("failed", f"unexpected {type(err).__name__}: {err}")
    finally:
        job.cleanup()
    result.seconds = round(time.monotonic() - started, 3)
    return result
