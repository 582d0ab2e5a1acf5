"""The encode and confirm steps: read, encode, check and store a scene's output."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from .. import failpoints, timing
from ..cog import EncodedCog, NoiseBound, Profile, resolved_predictor
from ..display import human_bytes
from ..encode import (
    Ladder,
    candidates,
    choose_encoding,
    cluster_context,
    gdal_writer_reason,
    uses_tile_writer,
)
from ..errors import (
    LeftAsIs,
    SceneError,
    SceneTooLargeError,
    VerificationError,
)
from ..fidelity import Fidelity
from ..gdal import RasterInfo, gdal_env, gdal_errors
from ..records import (
    Attempt,
    BandNoise,
    Step,
    StoredObject,
)
from ..redact import redact_url
from ..storage import (
    ObjectInfo,
    sha256_file,
    sweep_orphans,
)
from ..verify import decoder_margin, encode_verified, validate_cog
from ._chunked import ChunkedOutput, compact_chunked
from ._decide import is_recorded
from ._handle import StateHandle, digest_fields, fetched_digest
from ._scene import Scene
from ._store_output import (
    check_output_key,
    output_create,
    source_metadata_header,
    upload_output,
)

log = logging.getLogger(__name__)


#: Attempts at reading and encoding a remote source before a GDAL read error fails it.
SOURCE_READ_ATTEMPTS = 3
#: First delay between those attempts, in seconds (doubled each time, with jitter).
READ_RETRY_DELAY = 1.0


@dataclass(frozen=True)
class Encoded:
    """An output made visible, and how it was encoded."""

    output: StoredObject
    profile: Profile
    fidelity: Fidelity | None
    #: Tile bytes at full resolution and in the overviews.
    full_bytes: int | None = None
    overview_bytes: int | None = None

    @property
    def ssim(self) -> float | None:
        return self.fidelity.ssim if self.fidelity else None

    @property
    def psnr(self) -> float | None:
        return self.fidelity.psnr if self.fidelity else None


def encode(scene: Scene, handle: StateHandle, live: ObjectInfo) -> None:
    """Read, encode, check and store the scene's output; record ``encoded`` (or that the
    scene is left as it is: :class:`~compactor.errors.LeftAsIs`).

    GDAL retries failed HTTP requests itself, but a transfer cut off midway surfaces as a
    read error indistinguishable from a corrupt file; so for remote sources a GDAL read
    failure is retried (with backoff) before the scene is failed. A corrupt file fails the
    same way each time, quickly."""
    ctx = scene.ctx
    local = scene.fetched.path if scene.fetched is not None else None
    attempts = SOURCE_READ_ATTEMPTS if scene.src.is_s3 and local is None else 1
    for attempt in range(1, attempts + 1):
        scene.notes.attempts.clear()
        try:
            with (
                gdal_env(scene.gdal_options, tmpdir=str(scene.scratch_dir())),
                timing.stage("open source"),
            ):
                scene._src_path, info = ctx.read_source(scene.src, scene.scratch_dir(), local)
                n = scene.notes
                n.width, n.height, n.bands, n.dtype = (
                    info.width,
                    info.height,
                    info.count,
                    info.dtype,
                )
                profile = _profile(scene, info)
                if info.raw_bytes > ctx.encoding.chunk_threshold:
                    break  # the chunked path: its tasks retry their own reads
                encoded = _encode_one_task(scene, handle, live, info, profile)
            _record_encoded(scene, handle, encoded, chunked=False)
            return
        except SceneError as err:
            if attempt == attempts or not isinstance(err.__cause__, gdal_errors()):
                if attempt > 1:
                    raise type(err)(f"{err} (after {attempt} attempts)") from err
                raise
            delay = READ_RETRY_DELAY * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            log.info("%s: %s; retrying in %.1fs", redact_url(scene.src.url), err, delay)
            time.sleep(delay)
    encoded = _encode_chunked(scene, handle, live, info, profile)
    _record_encoded(scene, handle, encoded, chunked=True)


def _profile(scene: Scene, info: RasterInfo) -> Profile:
    """The profile the scene starts with (:func:`choose_encoding`: codec policy, error bound,
    overview policy, the smallest lossless or bounded encoding on the sample)."""
    with timing.stage("encoding choice"):
        choice = choose_encoding(scene.src_path, info, scene.ctx.encoding, scene.scratch_dir())
    scene.sample = choice.sample
    scene.notes.encoding_search = choice.search
    return choice.profile


def _ladder(scene: Scene, info: RasterInfo, profile: Profile) -> Ladder:
    """The profiles to try in order: under ``--quality auto`` the searched one first
    (the search is noted in the result), else the fixed quality and its ladder."""
    ladder = candidates(
        scene.src_path, info, profile, scene.ctx.quality_policy, scene.scratch_dir() / "search",
        sample=scene.sample,
    )  # fmt: skip
    scene.notes.search = ladder.search
    if ladder.search is not None:
        log.info(
            "%s: quality search chose %s (%d probes on %s)",
            redact_url(scene.src.url), ladder.first.label, len(ladder.search.probes),
            "the whole scene" if ladder.search.sample_whole else "a sample",
        )  # fmt: skip
    return ladder


def _tried(scene: Scene, profile: Profile, size: int, ssim: float | None) -> bool:
    """Note an attempt; whether it meets the bar."""
    bar = scene.ctx.encoding.min_ssim
    # Lossless and bounded outputs reached here only if every pixel passed their check.
    ok = profile.lossless or profile.bounded or bar == 0 or (ssim is not None and ssim >= bar)
    scene.notes.attempts.append(
        Attempt(codec=profile.codec, quality=profile.quality, bytes=size, ssim=ssim, accepted=ok)
    )
    return ok


def _note_choice(scene: Scene, first: Profile, kept: Profile) -> None:
    """The ladder settled on ``kept`` (having started at ``first``): it is the attempt the
    result marks accepted."""
    for attempt in scene.notes.attempts:
        attempt.accepted = (attempt.codec, attempt.quality) == (kept.codec, kept.quality)
    if kept != first:
        log.info(
            "%s: started at %s for SSIM %.3f; kept %s",
            redact_url(scene.src.url), first.label, scene.ctx.encoding.min_ssim, kept.label,
        )  # fmt: skip


class _Output(Protocol):
    """An output an attempt made: in scratch (:class:`_InScratch`) or at its destination,
    not yet visible (:class:`ChunkedOutput`)."""

    @property
    def size(self) -> int: ...

    @property
    def full_bytes(self) -> int: ...

    def discard(self) -> None: ...


Out = TypeVar("Out", bound=_Output)


@dataclass(frozen=True)
class _InScratch:
    """A one-task output in scratch, and its check."""

    cog: EncodedCog
    fidelity: Fidelity

    @property
    def size(self) -> int:
        return self.cog.path.stat().st_size

    @property
    def full_bytes(self) -> int:
        return self.cog.full_bytes

    def discard(self) -> None:
        self.cog.path.unlink()


def _settle(
    scene: Scene,
    handle: StateHandle,
    live: ObjectInfo,
    ladder: Ladder,
    attempt: Callable[[Profile], tuple[bool, float | None, Out]],
    noted: Callable[[Out], None] = lambda out: None,
) -> tuple[Profile, Out]:
    """What both ways of encoding end with: walk the ladder, note the profile kept, write it
    again without overviews when that alone makes it worth keeping (:func:`_may_drop_overviews`),
    let ``noted`` note the output, then keep it, or discard it and record that the scene
    stays as it is (raises :class:`~compactor.errors.LeftAsIs`)."""
    first = ladder.first
    kept, out = ladder.walk(attempt, lambda unkept: unkept.discard())
    _note_choice(scene, first, kept)
    if not _worth_keeping(scene, out.size, live) and _may_drop_overviews(scene, kept, out, live):
        out.discard()
        kept = replace(kept, overviews="none")
        _, _, out = attempt(kept)
        _accept_last(scene)
    noted(out)
    failpoints.hit("after-encode")
    size = out.size
    if not _worth_keeping(scene, size, live):
        out.discard()
        raise _left_as_is(scene, handle, size, kept, live)
    return kept, out


def _worth_keeping(scene: Scene, size: int, live: ObjectInfo) -> bool:
    """Whether an output of ``size`` is smaller than the original by ``min_saving``."""
    return size < live.size * (1 - scene.ctx.encoding.min_saving)


def _may_drop_overviews(scene: Scene, kept: Profile, out: _Output, live: ObjectInfo) -> bool:
    """Under ``--overviews lossy`` an output that is not worth keeping is written again
    without overviews when its full resolution alone is worth it: the original had none
    to lose (or the scene would stay as it is, overviews and all)."""
    if not kept.lossy_overviews:
        return False
    if not out.full_bytes or not _worth_keeping(scene, out.full_bytes, live):
        return False
    log.info("%s: %s would not be smaller with its overviews; writing it without",
             redact_url(scene.src.url), kept.label)  # fmt: skip
    return True


def _accept_last(scene: Scene) -> None:
    for attempt in scene.notes.attempts:
        attempt.accepted = False
    scene.notes.attempts[-1].accepted = True


def _left_as_is(
    scene: Scene, handle: StateHandle, size: int, profile: Profile, live: ObjectInfo
) -> LeftAsIs:
    """Record that the scene stays as it is (its COG would not be smaller) and return
    the decision that says so."""
    saving = scene.ctx.encoding.min_saving
    reason = (
        f"left as it is: its COG ({human_bytes(size)}, {profile.label}) would not be "
        f"smaller than the original ({human_bytes(live.size)})"
        + (f" by {saving:.0%}" if saving > 0 else "")
    )
    handle.advance(
        Step.DISCOVERED, scene.ctx.run_id, skip_reason=reason, policy=scene.ctx.policy_digest()
    )
    return LeftAsIs(reason)


def _encode_one_task(
    scene: Scene, handle: StateHandle, live: ObjectInfo, info: RasterInfo, profile: Profile
) -> Encoded:
    """A scene small enough for one task: encode in scratch until the bar is met, each
    attempt verified (from memory as it is encoded where the tile writer writes it, else
    read back with GDAL: :func:`~compactor.verify.encode_verified`), upload checksummed."""
    ctx, scratch = scene.ctx, scene.scratch_dir()
    ladder = _ladder(scene, info, profile)

    def attempt(candidate: Profile) -> tuple[bool, float | None, _InScratch]:
        path = scratch / f"out-{len(scene.notes.attempts)}.tif"
        cog, fidelity = encode_verified(scene.src_path, path, info, candidate)
        ok = _tried(scene, candidate, path.stat().st_size, fidelity.ssim)
        return ok, fidelity.ssim, _InScratch(cog, fidelity)

    kept, made = _settle(scene, handle, live, ladder, attempt)
    cog, fidelity, path, size = made.cog, made.fidelity, made.cog.path, made.size
    with timing.stage("hashing"):
        sha = sha256_file(path)
    out = scene.out  # the spec's output key, never a record's
    scene.check_lease("uploading the output")
    if size > ctx.transfers.multipart_upload_threshold:
        scene.dest_store.abort_stale_uploads(out)
    with timing.stage("write"):
        stored = upload_output(scene, handle, path, out, sha)
    if size > ctx.transfers.multipart_upload_threshold:
        sweep_orphans(scene.dest_store, out)  # a retried CreateMultipartUpload's first one
    output = StoredObject(
        url=out.url, size=stored.size, sha256=sha, etag=stored.etag,
        checksum=stored.checksum_sha256,
    )  # fmt: skip
    return Encoded(output, kept, fidelity, cog.full_bytes, cog.overview_bytes)


def _encode_chunked(
    scene: Scene, handle: StateHandle, live: ObjectInfo, info: RasterInfo, profile: Profile
) -> Encoded:
    """A large scene: chunk tasks on the cluster encode one COG straight to its
    destination (a multipart upload, or part files), made visible only when every check
    passed and it is worth keeping."""
    ctx = scene.ctx
    threshold = human_bytes(ctx.encoding.chunk_threshold)
    if scene.src.is_http:
        raise SceneTooLargeError(
            f"HTTP(S) sources are fetched and encoded in one task; this one has "
            f"{human_bytes(info.raw_bytes)} of raw pixels, more than --chunk-threshold "
            f"({threshold}), which raises the limit"
        )
    if not uses_tile_writer(profile, info):
        raise SceneTooLargeError(
            f"this scene is {gdal_writer_reason(profile, info)}: GDAL's COG driver writes "
            f"it, in one task, not in chunks, and it has {human_bytes(info.raw_bytes)} of "
            f"raw pixels, more than --chunk-threshold ({threshold}); a --chunk-threshold "
            "above that lets one task take it (on workers with the memory for it)"
        )
    out = scene.out  # the spec's output key, never a record's
    check_output_key(scene, out, handle)
    with gdal_env(scene.gdal_options, tmpdir=str(scene.scratch_dir())):
        ladder = _ladder(scene, info, profile)
    notes = scene.notes
    with cluster_context(ctx.worker_memory) as (client, budget, threads):

        def attempt(candidate: Profile) -> tuple[bool, float | None, ChunkedOutput]:
            scene.check_lease("encoding the scene")
            result = compact_chunked(
                scene.remote_path,
                out,
                info,
                candidate,
                gdal=scene.gdal_options,
                s3=ctx.s3,
                client=client,
                budget=budget,
                threads=threads,
                metadata=source_metadata_header(scene.src.url),
                scratch=scene.scratch,
                abort_stale=not notes.attempts,
                create=output_create(ctx),
            )  # fmt: skip  (later tries may hold a kept candidate: no stale-upload abort)
            ssim = result.fidelity_ssim
            # The bar with the decoder margin (libjpeg builds may decode differently).
            margin = None if ssim is None else ssim - decoder_margin(candidate, info)
            ok = _tried(scene, candidate, result.size, margin)
            notes.attempts[-1].ssim = ssim
            return ok, margin, result

        def noted(result: ChunkedOutput) -> None:
            notes.chunked, notes.chunks = True, result.chunks
            stages = sorted((result.task_stages or {}).items())
            notes.task_stages = {k: round(v, 4) for k, v in stages}
            notes.warnings += [w for w in result.task_warnings if w not in notes.warnings]

        kept, result = _settle(scene, handle, live, ladder, attempt, noted)
    scene.check_lease("making the output visible")
    written = result.finish()
    output = StoredObject(
        url=out.url, size=written.size, sha256=written.sha256, etag=written.etag,
        checksum=written.checksum,
    )  # fmt: skip
    return Encoded(output, kept, result.fidelity, result.full_bytes, result.overview_bytes)


def _record_encoded(scene: Scene, handle: StateHandle, encoded: Encoded, *, chunked: bool) -> None:
    """The output is stored: ``encoded``, recorded for a chunked output (confirmed next by
    :func:`confirm`). A one-task output was checked whole before upload and stored with its
    SHA-256 (S3 refuses a body that does not match it): it is ``verified`` at once,
    recorded or kept in memory as :func:`is_recorded` says."""
    failpoints.hit("after-upload")
    scene.did_work = True
    ctx, p = scene.ctx, encoded.profile
    _note_encoding(scene, encoded)
    state = handle.current.advanced(
        Step.ENCODED, ctx.run_id, output=encoded.output, codec=p.codec,
        quality=p.quality, lossless=p.lossless, ssim=encoded.ssim, psnr=encoded.psnr,
        max_error=list(p.max_error) if p.bounded and p.max_error else None,
        skip_reason=None, policy=ctx.policy_digest(),
    )  # fmt: skip
    if chunked:
        handle.save(state)
        failpoints.hit("after-encoded")
        return
    scene.stored_here = True
    handle.remember(state)
    failpoints.hit("after-encoded")
    verified = state.advanced(Step.VERIFIED, ctx.run_id)
    if is_recorded(Step.VERIFIED, archive_mode=ctx.archive_mode, final=scene.final, chunked=False):
        read = fetched_digest(scene.fetched)
        if read is not None:
            verified = verified.model_copy(update=digest_fields(read))
        handle.save(verified)
    else:
        handle.remember(verified)
    failpoints.hit("after-verified")


def _note_encoding(scene: Scene, encoded: Encoded) -> None:
    """What the result says of the encoding: level, predictor, bound, errors, bytes."""
    n, p, f = scene.notes, encoded.profile, encoded.fidelity
    n.level, n.lerc_inner, n.overviews = p.level, p.lerc_inner, p.overviews
    n.lerc_blob = p.lerc_blob if p.codec == "lerc" else None
    n.predictor = resolved_predictor(p, n.dtype or "uint8")
    if f is not None and not f.exact and f.max_error is not None:
        n.error_max = list(f.max_error)
        n.rmse = f.rmse
    if p.noise is not None:
        n.noise_fraction, n.band_noise = p.noise.fraction, band_noise(p.noise, f, p)
    n.bytes_full, n.bytes_overviews = encoded.full_bytes, encoded.overview_bytes


def band_noise(
    noise: NoiseBound, fidelity: Fidelity | None, written: Profile | None = None
) -> list[BandNoise]:
    """What the result says of each band under ``--max-error noise``. A scene ``written``
    lossless (a lossless codec smaller than LERC within the bound, or a fallback), or whose
    output came out exact (float tiles whose bound is below their precision are written
    lossless), says so: bound 0, no saving from a bound it did not use."""
    rmse = fidelity.band_rmse if fidelity is not None else None
    why = ""
    if written is not None and written.lossless:
        why = f"written lossless ({written.codec}), not within the bound"
    elif fidelity is not None and fidelity.exact:
        why = "written exact: no tile took the bound"
    unused = bool(why) and max(noise.bounds, default=0) > 0
    return [
        BandNoise(
            sigma=noise.sigma[k],
            bound=0.0 if unused else noise.bounds[k],
            max_rmse=noise.max_rmse(k),
            rmse=rmse[k] if rmse is not None and k < len(rmse) else None,
            saving=None if unused or k >= len(noise.savings) else noise.savings[k],
            reason=why if unused else noise.reasons[k],
        )
        for k in range(len(noise.bounds))
    ]


def confirm(scene: Scene, handle: StateHandle) -> None:
    """What is stored at the output key is what was verified: same size and SHA-256
    (S3 checked the SHA-256 on upload), and a valid COG read back over the network."""
    state = handle.current
    assert state.output is not None
    out = scene.out  # the spec's key (record_problem: the record names no other)
    with timing.stage("confirm"):
        if not scene.dest_store.holds(out, state.output):
            raise VerificationError(f"stored output {out.url} does not match what was verified")
        with gdal_env(scene.ctx.gdal_options):
            validate_cog(out.gdal_path)
    handle.advance(Step.VERIFIED, scene.ctx.run_id)
    failpoints.hit("after-verified")
