"""The run: discover scenes, fan out one task per scene on Dask, collect a report.

Each scene task (:func:`process_scene`, run on a worker) walks the durable state
machine of :mod:`compactor.state`::

    discovered -> encoded -> verified -> archived -> deleted

* **encode**: read the source lazily through GDAL, write a COG to worker-local
  scratch, check it (valid COG, metadata, pixels exact or SSIM >= the bar, with
  re-encoding at higher quality and finally losslessly when the bar is missed),
  then upload it (checksummed, atomic) -> ``encoded``; confirm what is stored
  (size, checksum, valid COG over the network) -> ``verified``.
* **archive**: hash the original, copy it to the archive storage class and check the
  copy -> ``archived``.
* **delete**: re-check output and archive copy with the stores, delete exactly the
  archived version of the source -> ``deleted``.

A rerun resumes each scene from its last durable step; a scene whose source changed
since it was recorded starts over. Every failure is a per-scene result; the original
is never touched before its output and archive copy are verified.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .archive import (
    archive_local,
    archive_s3,
    delete_source,
    holds,
    same_bytes,
    source_metadata_header,
)
from .cluster import connect
from .cog import read_info, write_cog
from .config import META_PREFIX, Settings, resolve_settings
from .costs import estimate
from .discover import check_locations, discover
from .encode import Profile, RasterInfo, choose_profile, fallback_profiles
from .errors import (
    CompactorError,
    OutputConflictError,
    SceneError,
    StorageError,
    VerificationError,
)
from .gdal_env import gdal_env, scratch_dir
from .models import Attempt, Report, SceneResult, Totals
from .report import human_bytes, write_report
from .state import Fingerprint, SceneState, StateStore, Step, StoredObject, now_iso
from .storage import (
    ARCHIVE_CLASSES,
    LocalStore,
    Location,
    ObjectInfo,
    S3Store,
    sha256_file,
    store_for,
)
from .tasks import RunContext, SceneSpec
from .verify import Fidelity, check_output, validate_cog

log = logging.getLogger(__name__)

ProgressCallback = Callable[[SceneResult], None]


class LeftAsIs(Exception):
    """The scene is skipped on purpose (e.g. its COG would not be smaller)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def final_step(context: RunContext) -> Step:
    return {"none": Step.VERIFIED, "in-place": Step.ARCHIVED, "prefix": Step.DELETED}[
        context.archive_mode
    ]


class SceneJob:
    """One scene's walk through the state machine (on a worker)."""

    def __init__(self, spec: SceneSpec, context: RunContext):
        self.spec = spec
        self.ctx = context
        self.src = Location.parse(spec.source)
        self.out = Location.parse(spec.output)
        self.arc = Location.parse(spec.archive) if spec.archive else None
        self.src_store = store_for(self.src, context.s3)
        self.dest_store = store_for(context.dest_location, context.s3)
        self.states = StateStore(context.dest_location, self.dest_store)
        self.result = SceneResult(
            source=spec.source, output=spec.output, archive=spec.archive, status="failed"
        )
        self.did_work = False
        self.scratch: Path | None = None

    # -- bookkeeping -------------------------------------------------------------

    def _save(self, state: SceneState, etag: str | None) -> str:
        return self.states.save(state, etag)

    def _fill_from_state(self, state: SceneState) -> None:
        r = self.result
        r.step = state.step.label
        r.bytes_in = state.fingerprint.size
        if state.output:
            r.output = state.output.url
            r.bytes_out = state.output.size
        if state.archive:
            r.archive = state.archive.url
            r.storage_class = state.archive.storage_class
        r.codec, r.quality, r.lossless = state.codec, state.quality, state.lossless
        r.ssim, r.psnr = state.ssim, state.psnr

    def _finish(self, status: str, reason: str | None = None) -> SceneResult:
        self.result.status = status  # type: ignore[assignment]
        self.result.reason = reason
        return self.result

    # -- the walk --------------------------------------------------------------------

    def run(self) -> SceneResult:
        state, etag = self.states.load(self.src)
        live = self.src_store.head(self.src)
        if live is None:
            return self._source_gone(state, etag)
        self.result.bytes_in = live.size
        fp = Fingerprint.of(live)
        if state is not None and state.fingerprint != fp:
            if state.source_sha256 and same_bytes(live, fp.size, state.source_sha256, None):
                # Same bytes with a new ETag/mtime (e.g. an in-place storage-class change).
                state = state.model_copy(update={"fingerprint": fp})
            else:
                log.info("%s changed since run %s; starting over", self.src.url, state.run_id)
                state = self._restart(state, fp)
        if live.storage_class in ARCHIVE_CLASSES and not (
            state is not None and state.step >= Step.ARCHIVED
        ):
            return self._finish(
                "skipped",
                f"original is in {live.storage_class} and cannot be read without a restore "
                "(compactor restore, or an S3 restore request)",
            )
        if state is None:
            state = SceneState(
                source=self.src.url,
                fingerprint=fp,
                step=Step.DISCOVERED,
                output=StoredObject(url=self.out.url, size=0),
                run_id=self.ctx.run_id,
                updated=now_iso(),
            )
            etag = self._save(state, etag)
        final = final_step(self.ctx)
        if (
            state.step == Step.DISCOVERED
            and state.skip_reason
            and state.policy == self.ctx.policy_digest()
        ):
            self._fill_from_state(state)
            return self._finish("skipped", state.skip_reason)

        if state.step >= Step.VERIFIED and not self._output_intact(state):
            log.info("output of %s is missing or changed; encoding again", self.src.url)
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
            return self._finish("compacted")
        return self._finish("skipped", f"already compacted (run {state.run_id})")

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
            return self._finish("failed", "the source object disappeared after it was listed")
        self._fill_from_state(state)
        if state.step < Step.ARCHIVED or state.archive is None:
            return self._finish(
                "failed",
                f"the source disappeared before it was archived (state: {state.step.label})",
            )
        arc = Location.parse(state.archive.url)
        held = self.src_store.head(arc)
        if held is None or held.size != state.fingerprint.size:
            return self._finish(
                "failed",
                f"the original is neither at its source nor at its archive key {arc.url}",
            )
        if state.step == Step.ARCHIVED and final_step(self.ctx) >= Step.DELETED:
            # The delete went through but its record did not: record it now.
            state = state.advanced(Step.DELETED, state.run_id)
            self._save(state, etag)
            self.result.step = state.step.label
        return self._finish("skipped", f"already compacted (run {state.run_id}); original archived")

    def _output_intact(self, state: SceneState) -> bool:
        if state.output is None or not state.output.size:
            return False
        out = state.output
        return holds(self.dest_store, Location.parse(out.url), out.size, out.sha256, out.etag)

    # -- encode ------------------------------------------------------------------------

    def _encode(
        self, state: SceneState, etag: str | None, live: ObjectInfo
    ) -> tuple[SceneState, str | None]:
        self.scratch = Path(scratch_dir()) / f"{uuid.uuid4().hex}"
        self.scratch.mkdir(parents=True)
        with gdal_env(self.ctx.gdal_options, tmpdir=str(self.scratch)):
            info = read_info(self.src.gdal_path)
            r = self.result
            r.width, r.height, r.bands, r.dtype = info.width, info.height, info.count, info.dtype
            profile = choose_profile(info, self.ctx.codec, self.ctx.quality)
            path, profile, fidelity = self._encode_until_good(info, profile)
        size = path.stat().st_size
        if size >= live.size * (1 - self.ctx.min_saving):
            reason = (
                f"left as it is: its COG ({human_bytes(size)}, {profile.label}) would not be "
                f"smaller than the original ({human_bytes(live.size)})"
                + (f" by {self.ctx.min_saving:.0%}" if self.ctx.min_saving > 0 else "")
            )
            state = state.advanced(
                Step.DISCOVERED,
                self.ctx.run_id,
                skip_reason=reason,
                policy=self.ctx.policy_digest(),
            )
            self._save(state, etag)
            raise LeftAsIs(reason)
        sha = sha256_file(path)
        out = Location.parse(state.output.url) if state.output else self.out
        self._check_output_key(out, state)
        stored = self.dest_store.put_file(
            path, out, sha256_hex=sha, metadata=source_metadata_header(self.src.url)
        )
        self.did_work = True
        state = state.advanced(
            Step.ENCODED,
            self.ctx.run_id,
            output=StoredObject(url=out.url, size=stored.size, sha256=sha, etag=stored.etag),
            codec=profile.codec,
            quality=profile.quality,
            lossless=profile.lossless,
            ssim=fidelity.ssim,
            psnr=fidelity.psnr,
            skip_reason=None,
            policy=self.ctx.policy_digest(),
        )
        etag = self._save(state, etag)
        return self._confirm_output(state, etag)

    def _encode_until_good(
        self, info: RasterInfo, profile: Profile
    ) -> tuple[Path, Profile, Fidelity]:
        assert self.scratch is not None
        ladder = [profile]
        if not profile.lossless and self.ctx.min_ssim > 0:
            ladder += fallback_profiles(profile, info)
        for n, candidate in enumerate(ladder):
            path = self.scratch / f"out-{n}.tif"
            write_cog(self.src.gdal_path, path, candidate, info)
            fidelity = check_output(self.src.gdal_path, str(path), info, candidate)
            ok = (
                candidate.lossless
                or self.ctx.min_ssim == 0
                or (fidelity.ssim is not None and fidelity.ssim >= self.ctx.min_ssim)
            )
            self.result.attempts.append(
                Attempt(
                    codec=candidate.codec,
                    quality=candidate.quality,
                    bytes=path.stat().st_size,
                    ssim=fidelity.ssim,
                    accepted=ok,
                )
            )
            if ok:
                if n:
                    log.info(
                        "%s: %s missed SSIM %.3f; kept %s",
                        self.src.url,
                        profile.label,
                        self.ctx.min_ssim,
                        candidate.label,
                    )
                return path, candidate, fidelity
            path.unlink()
        raise VerificationError("no encoding met the SSIM bar")  # lossless always does

    def _check_output_key(self, out: Location, state: SceneState) -> None:
        """Refuse to overwrite an object at the output key that this scene did not write."""
        existing = self.dest_store.head(out)
        if existing is None:
            return
        claimed = state.output is not None and state.output.url == out.url
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
        rec = state.output
        if not holds(self.dest_store, out, rec.size, rec.sha256, rec.etag):
            raise VerificationError(f"stored output {out.url} does not match what was verified")
        with gdal_env(self.ctx.gdal_options):
            validate_cog(out.gdal_path)
        state = state.advanced(Step.VERIFIED, self.ctx.run_id)
        return state, self._save(state, etag)

    # -- archive -------------------------------------------------------------------------

    def _archive(
        self, state: SceneState, etag: str | None, live: ObjectInfo
    ) -> tuple[SceneState, str | None]:
        assert self.arc is not None
        if state.source_sha256 is None:
            sha, _ = self.src_store.sha256(self.src, etag=live.etag)
            # Recorded before any copy: a copy interrupted midway can be recognised later.
            state = state.model_copy(update={"source_sha256": sha})
            etag = self._save(state, etag)
        assert state.source_sha256 is not None
        if isinstance(self.src_store, S3Store):
            stored = archive_s3(
                self.src_store,
                self.src,
                self.arc,
                live,
                state.source_sha256,
                self.ctx.storage_class,
            )
        else:
            assert isinstance(self.src_store, LocalStore)
            stored = archive_local(self.src_store, self.src, self.arc, state.source_sha256)
        self.did_work = True
        update: dict[str, Any] = {"archive": stored}
        if self.arc == self.src:
            # In place: the object now has a new ETag/mtime; it is still our original.
            now = self.src_store.head(self.src)
            if now is not None:
                update["fingerprint"] = Fingerprint.of(now)
        state = state.advanced(Step.ARCHIVED, self.ctx.run_id, **update)
        return state, self._save(state, etag)

    def _delete(self, state: SceneState, etag: str | None) -> tuple[SceneState, str | None]:
        delete_source(self.src_store, self.dest_store, self.src, state)
        self.did_work = True
        state = state.advanced(Step.DELETED, self.ctx.run_id)
        return state, self._save(state, etag)

    def cleanup(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def process_scene(spec: SceneSpec, context: RunContext) -> SceneResult:
    """Dask task: take one scene as far as the run's settings say. Never raises for a
    problem with the scene: the result carries the reason."""
    started = time.monotonic()
    job = SceneJob(spec, context)
    try:
        result = job.run()
    except LeftAsIs as decision:
        result = job._finish("skipped", decision.reason)
    except (SceneError, StorageError) as err:
        log.warning("%s failed: %s", spec.source, err)
        result = job._finish("failed", str(err))
    except CompactorError as err:
        result = job._finish("failed", str(err))
    except Exception as err:  # a bug or an unforeseen library error: still one scene
        log.exception("%s failed unexpectedly", spec.source)
        result = job._finish("failed", f"unexpected {type(err).__name__}: {err}")
    finally:
        job.cleanup()
    result.seconds = round(time.monotonic() - started, 3)
    return result


# --- the run (client side) ---------------------------------------------------------


def versions() -> dict[str, str]:
    import dask
    import distributed
    import rasterio

    return {
        "compactor": __version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
    }


def report_location(settings: Settings, run_id: str) -> str:
    if settings.report:
        return settings.report
    assert settings.dest is not None
    return Location.parse(settings.dest).join(f"{META_PREFIX}/runs/{run_id}/").url


def run(
    settings: Settings | None = None,
    *,
    config_file: str | None = None,
    progress: ProgressCallback | None = None,
    on_start: Callable[[int], None] | None = None,
    on_dashboard: Callable[[str], None] | None = None,
    client: Any = None,
    **arguments: Any,
) -> Report:
    """Compact every scene under ``source`` into ``dest``; returns the run's report.

    ``arguments`` are settings by name (``source=``, ``dest=``, ``archive=``, ``codec=``
    ...), resolved over the environment and ``config_file``. ``progress`` is called with
    each scene's result as it completes; ``on_start`` with the number of scenes.
    """
    if settings is None:
        settings = resolve_settings(arguments, config_file=config_file)
    check_locations(settings)
    run_id = new_run_id()
    context = RunContext.from_settings(settings, run_id)
    started = now_iso()
    found = discover(settings, context)
    if on_start:
        on_start(len(found.scenes))

    results: list[SceneResult] = []
    if client is not None:
        results = _run_on(client, found.scenes, context, progress)
    else:
        with connect(settings.cluster, on_dashboard=on_dashboard) as c:
            results = _run_on(c, found.scenes, context, progress)

    order = {s.source: i for i, s in enumerate(found.scenes)}
    results.sort(key=lambda r: order.get(r.source, 0))
    archive_class = None
    if context.archive_mode != "none":
        archive_class = settings.storage_class
    report = Report(
        run_id=run_id,
        started=started,
        finished=now_iso(),
        settings=settings.redacted(),
        totals=Totals.of(results),
        scenes=results,
        cost=estimate(results, archive_class),
        versions=versions(),
    )
    return write_report(report, report_location(settings, run_id), context.s3)


def _run_on(
    client: Any, scenes: list[SceneSpec], context: RunContext, progress: ProgressCallback | None
) -> list[SceneResult]:
    from distributed import as_completed

    futures = {}
    for spec in scenes:
        fut = client.submit(
            process_scene, spec, context, key=spec.key(context), retries=1, pure=False
        )
        futures[fut] = spec
    results: list[SceneResult] = []
    try:
        for fut in as_completed(list(futures)):
            spec = futures[fut]
            try:
                result = fut.result()
            except Exception as err:  # the task itself died (e.g. KilledWorker)
                result = SceneResult(
                    source=spec.source,
                    output=spec.output,
                    archive=spec.archive,
                    status="failed",
                    reason=f"task failed: {type(err).__name__}: {err}",
                )
            results.append(result)
            if progress:
                progress(result)
    except BaseException:
        client.cancel(list(futures))
        raise
    return results
