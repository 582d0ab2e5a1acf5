"""One scene's walk through the durable state machine, run as a Dask task on a worker.

::

    discovered -> encoded -> verified -> archived -> deleted

* **encode**: read the source (a scene small enough for one task is read whole, once, into
  scratch and hashed on the way; a chunked scene lazily through GDAL), write a COG (to
  worker-local scratch, or straight to its destination for a chunked scene), check it
  (valid COG, metadata, pixels exact or SSIM >= the bar, re-encoding at higher quality and
  finally losslessly when the bar is missed), make it visible checksummed and whole
  -> ``encoded``;
* **confirm**: what is stored is what was verified -> ``verified``. A one-task output is
  checked whole in scratch and uploaded with its SHA-256, which S3 checks against the
  bytes it stores; a chunked output, assembled at its destination, is read back as a COG;
* **archive**: hash the original (already done if it was read whole), copy it to the
  archive storage class, check the copy -> ``archived``;
* **delete**: delete exactly the archived version of the source -> ``deleted`` (a walk
  resuming this step first re-checks output and archive copy with the stores).

Not every step is written down as it happens: :func:`records` says which are, the fewest
that keep every crash recoverable (each skipped record is one PUT less per scene; what a
crash before the next record leaves behind is recognised by the next run: an output
tagged with its source, an archive copy with the original's checksum).

Which step comes next is decided by :func:`decide`, a pure function of the recorded state,
the live source and a few facts the walk gathers: the branch table in one place, tested
as a table. Each step is a function of its own, doing the I/O and advancing the
:class:`StateHandle` (state + the ETag it was read with; every write is conditional on it).

The whole walk happens under the scene's lease (:mod:`compactor.archive._lease`), checked
again before every step that writes or deletes. A rerun resumes from the last durable step;
a source that changed since it was recorded starts over. Any exception while handling a
scene becomes that scene's failure, with a one-line reason (``<ExceptionType>: message``
for anything but a :class:`~compactor.errors.CompactorError`; its traceback in the scene log):
"""

from __future__ import annotations

import logging
import os
import time
import traceback

from .. import failpoints, timing
from ..archive import (
    Lease,
)
from ..capture import capturing
from ..errors import (
    ArchiveError,
    CompactorError,
    LeaseHeldError,
    LeftAsIs,
)
from ..pricing import archive_skip_reason, worth_archiving
from ..records import (
    Fingerprint,
    SceneResult,
    SceneState,
    StateStore,
    Status,
    Step,
    lease_location,
)
from ..redact import redact_text, redact_url
from ..storage import (
    ObjectInfo,
    counting_requests,
)
from ._archive_step import archive, delete
from ._decide import Action, decide, final_step, record_problem
from ._encode_step import confirm, encode
from ._handle import StateHandle, recorded_digest
from ._scene import Scene, fresh_state
from ._spec import RunContext, SceneSpec

log = logging.getLogger(__name__)


GONE = "-"


def walk(scene: Scene) -> SceneResult:
    """Take the scene as far as the run's settings say (see :func:`decide`)."""
    ctx = scene.ctx
    handle = StateHandle(StateStore(ctx.dest_location, scene.dest_store), None, None)
    scene.handle = handle
    with timing.stage("state"):
        handle.state, handle.etag = handle.store.load(scene.src)
    if handle.state is not None:
        problem = record_problem(handle.state, scene.spec, ctx)
        if problem is not None:
            where = handle.store.location(scene.src).url
            log.warning(
                "%s: refusing its state record %s: %s", redact_url(scene.src.url), where, problem
            )
            return scene.result(
                "failed", f"{problem}; nothing done, the record {where} is left for a person", None
            )
        output = handle.state.output
        if output is not None and output.size and output.sha256:
            scene.recorded_output = output
    final = final_step(ctx.archive_mode, scene.spec)
    with timing.stage("read"):
        live = scene.observe(handle.state, final)
    if live is not None:
        scene.notes.bytes_in = live.size
        final = _final_if_worth_it(scene, live, handle.state, final)
    scene.final = final
    confirmed = False  # the output was written or confirmed during this walk
    archived = False  # the original was archived during this walk
    while True:
        state = handle.state
        digest = recorded_digest(state) if state is not None else None
        same = (
            live is not None
            and state is not None
            and digest is not None
            and live.size == state.fingerprint.size
            and bool(digest.accepts(live.checksum_sha256))
        )
        intact = True
        if state is not None and state.step >= Step.ENCODED and not confirmed:
            intact = scene.output_intact(state)
            confirmed = intact
        action = decide(
            state, live, final=final, policy=ctx.policy_digest(),
            in_place=ctx.archive_mode == "in-place", storage_class=ctx.storage_class,
            same_bytes=same, output_intact=intact,
        )  # fmt: skip
        log.debug("%s: %s", redact_url(scene.src.url), action.value)
        if action is Action.DONE:
            assert state is not None
            assert live is not None
            return _done(scene, state, live)
        if action is Action.SOURCE_GONE:
            return source_gone(scene, handle, final)
        assert live is not None
        scene.live = live
        fp = Fingerprint.of(live)
        if action is Action.ADOPT:
            handle.state = handle.current.model_copy(update={"fingerprint": fp})
        elif action is Action.RESTART:
            old = handle.current
            log.info(
                "%s changed since run %s; starting over", redact_url(scene.src.url), old.run_id
            )
            handle.state = fresh_state(scene, fp, scene.out.url)  # never the record's
            confirmed = False
        elif action is Action.SKIP_COLD:
            cold = scene.result(
                "skipped",
                f"original is in {live.storage_class} and cannot be read without a restore "
                "(compactor restore, or an S3 restore request)",
                None,
            )
            cold.finished_version = live.version
            return cold
        elif action is Action.CLAIM:
            # In memory: the output key is claimed when the output is stored, conditional on
            # the key being free (or holding this source's earlier output).
            handle.keep(fresh_state(scene, fp, scene.out.url))
            failpoints.hit("after-discovered")
        elif action is Action.SKIP_RECORDED:
            left = scene.result("skipped", handle.current.skip_reason, handle.current)
            left.finished_version = live.version
            return left
        elif action is Action.OUTPUT_LOST:
            return scene.result(
                "failed",
                "the verified output is missing or changed and the original is archived; "
                "restore it to compact it again",
                handle.current,
            )
        elif action is Action.REENCODE:
            log.info(
                "output of %s is missing or not as recorded; encoding again",
                redact_url(scene.src.url),
            )
            handle.state = handle.current.advanced(Step.DISCOVERED, ctx.run_id)
            confirmed = False
        elif action is Action.CONFIRM:
            confirm(scene, handle)
            confirmed = True
        elif action is Action.ENCODE:
            encode(scene, handle, live)
            if handle.current.step == Step.ENCODED:
                confirm(scene, handle)
            confirmed = True
        elif action is Action.ARCHIVE:
            if archived:  # the store does not show what the copy just made
                raise ArchiveError(
                    f"the original is in {live.storage_class or 'no storage class'} after it "
                    f"was archived to {ctx.storage_class}"
                )
            live = archive(scene, handle, live)
            archived = True
        elif action is Action.DELETE:
            held = delete(scene, handle, live)
            if held is not None:
                return scene.result("held", held, handle.current)
            if scene.deleted:  # the source is gone now: done
                return _done(scene, handle.current, live)


def _done(scene: Scene, state: SceneState, live: ObjectInfo) -> SceneResult:
    """The scene went as far as the run's settings say: compacted by this walk, or already."""
    if scene.did_work:
        done = scene.result("compacted", scene.spec.read_only, state)
    else:
        done = scene.result("skipped", f"already compacted (run {state.run_id})", state)
    done.finished_version = GONE if scene.deleted else live.version
    return done


def _final_if_worth_it(
    scene: Scene, live: ObjectInfo, state: SceneState | None, final: Step
) -> Step:
    """Where the walk stops: before the archive when moving this original to the archive
    class would not pay back its one-time cost within ``--payback-months`` (small objects:
    the per-request and per-object charges outweigh the saving); the original then stays
    where it is, and the result says why."""
    ctx = scene.ctx
    if state is None or state.step < Step.ARCHIVED:
        scene.notes.source_class = live.storage_class  # what the original costs before
    if final < Step.ARCHIVED or (state is not None and state.step >= Step.ARCHIVED):
        return final
    if scene.owned is None or scene.owned.server_copier() is None:
        return final  # a directory: the archive is a hard link, free
    worth, taken = worth_archiving(
        live.size, ctx.storage_class, ctx.prices, ctx.payback_months,
        current_class=live.storage_class, in_place=ctx.archive_mode == "in-place",
    )  # fmt: skip
    if worth:
        return final
    scene.notes.archive_skipped = archive_skip_reason(
        live.size, ctx.storage_class, taken, ctx.payback_months, current_class=live.storage_class
    )
    return Step.VERIFIED


def source_gone(scene: Scene, handle: StateHandle, final: Step) -> SceneResult:
    """The source is not there: a STAC href that names nothing, a source removed by
    someone else, or one compactor archived (a delete whose record was lost is recorded)."""
    state, spec = handle.state, scene.spec
    if state is None:
        if spec.item is not None:  # a STAC href that names nothing
            return scene.result(
                "failed", f"asset {spec.asset!r} of item {spec.item!r}: {scene.src.url} not found",
                None,
            )  # fmt: skip
        return scene.result("skipped", "the source was removed after it was listed", None)
    if state.step < Step.ARCHIVED or state.archive is None:
        # Removed by someone else before compactor archived it: nothing of ours is at
        # stake. A record without an output is retired; one with an output stays, so
        # `compactor verify` keeps checking that output.
        if state.step < Step.ENCODED:
            handle.store.delete(state, handle.etag)
            return scene.result("skipped", "the source was removed before it was compacted", state)
        return scene.result(
            "skipped", "the source was removed before it was archived; its output is kept", state
        )
    arc = scene.arc  # the spec's archive key (record_problem: the record names no other)
    if arc is None or not scene.owned_source().holds(arc, state.archive):
        where = arc.url if arc is not None else state.archive.url
        return scene.result(
            "failed", f"the original is neither at its source nor as archived at {where}", state
        )
    gone = scene.result(
        "skipped", f"already compacted (run {state.run_id}); original archived", state
    )
    gone.finished_version = GONE
    return gone


def process_scene(spec: SceneSpec, context: RunContext) -> SceneResult:
    """Dask task: take one scene as far as the run's settings say, under its lease. Any
    exception is the scene's failure, never the run's: a
    :class:`~compactor.errors.CompactorError` with its message, anything else as
    ``<ExceptionType>: message`` with its traceback in the result (the scene log keeps it)."""
    started = time.monotonic()
    scene: Scene | None = None
    # What this worker sends as header values (read from its environment): never shown.
    secrets = context.http.secrets(os.environ)
    said: list[str] = []  # what libraries warn about, into the scene log, not on stderr
    with (
        capturing(said, ignore=(log.name,)),
        counting_requests() as requests,
        timing.collecting() as stages,
    ):
        try:
            scene = Scene(spec, context, secrets=secrets)
            scene.lease = Lease(
                scene.dest_store,
                lease_location(context.dest_location, scene.src),
                context.run_id,
                ttl=context.lease_ttl,
            )
            with scene.lease:
                result = walk(scene)
        except LeftAsIs as decision:
            assert scene is not None
            result = scene.result("skipped", decision.reason, None)
            if scene.live is not None:
                result.finished_version = scene.live.version
        except LeaseHeldError as err:
            result = _failed(scene, spec, redact_text(str(err), secrets), status="skipped")
        except CompactorError as err:
            reason = redact_text(str(err), secrets)
            log.info("%s failed: %s", redact_url(spec.source), reason)
            result = _failed(scene, spec, reason)
        except Exception as err:  # one bad object is one failed scene, never a crashed run
            reason = redact_text(scene_reason(err), secrets)
            log.info("%s failed: %s", redact_url(spec.source), reason)
            result = _failed(scene, spec, reason)
            result.traceback = redact_text("".join(traceback.format_exception(err)), secrets)
        finally:
            if scene is not None:
                with timing.stage("cleanup"):
                    scene.cleanup()
    if result.finished_version is not None and scene is not None and scene.handle is not None:
        result.finished_record = scene.handle.etag  # what the index entry is confirmed by
    result.seconds = round(time.monotonic() - started, 3)
    result.stages = {k: round(v, 4) for k, v in sorted(stages.items())}
    result.requests = dict(sorted(requests.items()))
    said = [redact_text(w, secrets) for w in said]
    result.warnings = [*said, *(w for w in result.warnings if w not in said)]
    return result


def scene_reason(err: BaseException) -> str:
    """An unexpected exception as a scene's one-line reason: ``<ExceptionType>: message``."""
    message = " ".join(str(err).split())
    name = type(err).__name__
    return f"{name}: {message}" if message else name


def _failed(
    scene: Scene | None, spec: SceneSpec, reason: str, *, status: Status = "failed"
) -> SceneResult:
    if scene is not None:
        return scene.result(status, reason, None)
    return SceneResult(
        source=spec.source, status=status, reason=reason, item=spec.item, asset=spec.asset
    )
