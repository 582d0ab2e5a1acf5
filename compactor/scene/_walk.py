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

Not every step is written down as it happens: :func:`~compactor.scene.is_recorded`
says which are, the fewest that keep every crash recoverable (each skipped record is one
PUT less per scene; what a crash before the next record leaves behind is recognised by the
next run: an output tagged with its source, an archive copy with the original's checksum).

Which step comes next is decided by :func:`~compactor.scene._decide.decide`, a pure function
of the recorded state, the live source and a few facts the walk gathers: the branch table
in one place, tested as a table. Each :class:`~compactor.scene._decide.Action` has one
handler (:data:`~compactor.scene._steps.STEPS`), doing the I/O and advancing the
:class:`~compactor.scene._handle.StateHandle` (state + the ETag it was read with; every
write is conditional on it); what the walk learns between two decisions travels in a frozen
:class:`~compactor.scene._steps.Facts`. Where the parts live: the decisions and the record
checks in ``_decide``, the state handle in ``_handle``, the scene's places and stores in
``_scene``, the steps in ``_encode_step`` (encode, confirm), ``_store_output`` (the output
key) and ``_archive_step`` (archive, delete), the dispatch table in ``_steps``.

The whole walk happens under the scene's lease (:mod:`compactor.scene._lease`), checked
again before every step that writes or deletes. A rerun resumes from the last durable step;
a source that changed since it was recorded starts over. Any exception while handling a
scene becomes that scene's failure, with a one-line reason (``<ExceptionType>: message``
for anything but a :class:`~compactor.errors.CompactorError`; its traceback in the scene log):
one bad object never stops a run. Why a record is believed only so far: see ``_decide``.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from dataclasses import replace

from .. import timing
from ..capture import capturing
from ..errors import (
    CompactorError,
    LeaseHeldError,
    LeftAsIs,
    PreconditionFailed,
)
from ..pricing import archive_skip_reason, worth_archiving
from ..records import (
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
from ._decide import Action, decide, final_step, record_problem
from ._handle import StateHandle, recorded_digest
from ._lease import Lease
from ._scene import Scene
from ._spec import RunContext, SceneSpec
from ._steps import STEPS, Facts

log = logging.getLogger(__name__)


def walk_scene(scene: Scene) -> SceneResult:
    """Take the scene as far as the run's settings say: decide (:func:`decide`, pure), do
    (the action's one handler in :data:`STEPS`), until a handler ends the walk."""
    handle, refused = _open_record(scene)
    if refused is not None:
        return refused
    facts = _start(scene, handle)
    while True:
        action, facts = _next_action(scene, handle, facts)
        log.debug("%s: %s", redact_url(scene.src.url), action.value)
        if facts.live is not None:
            scene.live = facts.live
        outcome = STEPS[action](scene, handle, facts)
        if isinstance(outcome, SceneResult):
            return outcome
        facts = outcome


def _open_record(scene: Scene) -> tuple[StateHandle, SceneResult | None]:
    """Read the scene's state record; the scene's failure if the record cannot be acted on
    (:func:`record_problem`: nothing done, the record left for a person)."""
    ctx = scene.ctx
    handle = StateHandle(StateStore(ctx.dest_location, scene.dest_store), None, None)
    scene.handle = handle
    with timing.stage("state"):
        handle.state, handle.etag = handle.store.load(scene.src)
    if handle.state is None:
        return handle, None
    problem = record_problem(handle.state, scene.spec, ctx)
    if problem is not None:
        where = handle.store.location(scene.src).url
        log.warning(
            "%s: refusing its state record %s: %s", redact_url(scene.src.url), where, problem
        )
        return handle, scene.result(
            "failed", f"{problem}; nothing done, the record {where} is left for a person", None
        )
    output = handle.state.output
    if output is not None and output.size and output.sha256:
        scene.recorded_output = output
    return handle, None


def _start(scene: Scene, handle: StateHandle) -> Facts:
    """Look at the live source (:meth:`Scene.observe`) and settle where the walk stops."""
    final = final_step(scene.ctx.archive_mode, scene.spec)
    with timing.stage("read"):
        live = scene.observe(handle.state, final)
    if live is not None:
        scene.notes.bytes_in = live.size
        final = _final_if_worth_it(scene, live, handle.state, final)
    scene.final = final
    return Facts(live)


def _next_action(scene: Scene, handle: StateHandle, facts: Facts) -> tuple[Action, Facts]:
    """What :func:`decide` says comes next, given the facts the walk gathers first: whether
    the live source is the recorded original under a new ETag, whether the recorded output
    is intact (asked of the store once per walk, unless the walk wrote or confirmed it)."""
    ctx, state, live = scene.ctx, handle.state, facts.live
    digest = recorded_digest(state) if state is not None else None
    same = (
        live is not None
        and state is not None
        and digest is not None
        and live.size == state.fingerprint.size
        and bool(digest.accepts(live.checksum_sha256))
    )
    intact = True
    if state is not None and state.step >= Step.ENCODED and not facts.confirmed:
        intact = scene.output_intact(state)
        facts = replace(facts, confirmed=intact)
    action = decide(
        state, live, final=scene.final, policy=ctx.policy_digest(),
        in_place=ctx.archive_mode == "in-place", storage_class=ctx.storage_class,
        same_bytes=same, output_intact=intact,
    )  # fmt: skip
    return action, facts


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


#: Walks of one scene under one lease. A conditional write that fails while this task still
#: holds the lease was raced by an earlier attempt of this same run: Dask gave that attempt
#: up (its worker closing on SIGTERM, or lost) and this task took its lease over at once,
#: but the attempt's thread was still running. It cannot pass a lease check again (its
#: renewal fails), so this task, once a renewal shows the lease is still its own, walks the
#: scene again from what is recorded now, as a rerun after a crash would.
WALKS = 3


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
            lease = Lease(
                scene.dest_store,
                lease_location(context.dest_location, scene.src),
                context.run_id,
                ttl=context.lease_ttl,
            )
            scene.lease = lease
            with lease:
                for walk in range(1, WALKS + 1):
                    try:
                        result = walk_scene(scene)
                        break
                    except PreconditionFailed as err:
                        # Renewing proves the lease still ours (an If-Match on our version).
                        if walk == WALKS or not lease.renew():
                            raise
                        log.info(
                            "%s: walking again from its record: %s", redact_url(spec.source), err
                        )
                        with timing.stage("cleanup"):
                            scene.cleanup()
                        scene = Scene(spec, context, secrets=secrets)
                        scene.lease = lease
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
