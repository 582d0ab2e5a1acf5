"""The I/O side of the walk's decision table: one handler per :class:`Action`, in
:data:`STEPS`. :func:`~compactor.scene._decide.decide` says which action comes next (pure);
the handler does it and says how the walk goes on: a :class:`Facts` to go on with, or the
scene's :class:`~compactor.records.SceneResult` when the walk ends there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from .. import failpoints
from ..errors import ArchiveError
from ..records import Fingerprint, SceneResult, SceneState, Step
from ..redact import redact_url
from ..storage import ObjectInfo
from ._archive_step import archive, delete
from ._decide import Action
from ._encode_step import confirm, encode
from ._handle import StateHandle
from ._scene import Scene, fresh_state

log = logging.getLogger(__name__)

#: The finished version of a scene archived to a prefix and gone from its source.
GONE = "-"


@dataclass(frozen=True)
class Facts:
    """What the walk knows between two decisions, besides the state record."""

    #: The source as last seen (``None``: gone).
    live: ObjectInfo | None
    #: The output was written or confirmed during this walk (no second look at it).
    confirmed: bool = False
    #: The original was archived during this walk.
    archived: bool = False

    @property
    def source(self) -> ObjectInfo:
        """The live source, for the actions :func:`decide` takes only when it is there."""
        assert self.live is not None
        return self.live


#: How a handler says what comes next: go on with these facts, or the walk ends here.
Outcome = Facts | SceneResult
Handler = Callable[[Scene, StateHandle, Facts], Outcome]


def _source_gone(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
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


def _adopt(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    handle.state = handle.current.model_copy(update={"fingerprint": Fingerprint.of(facts.source)})
    return facts


def _restart(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    log.info(
        "%s changed since run %s; starting over",
        redact_url(scene.src.url), handle.current.run_id,
    )  # fmt: skip
    handle.state = fresh_state(
        scene, Fingerprint.of(facts.source), scene.out.url
    )  # never the record's
    return replace(facts, confirmed=False)


def _skip_cold(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    live = facts.source
    cold = scene.result(
        "skipped",
        f"original is in {live.storage_class} and cannot be read without a restore "
        "(compactor restore, or an S3 restore request)",
        None,
    )
    cold.finished_version = live.version
    return cold


def _claim(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    # In memory: the output key is claimed when the output is stored, conditional on the
    # key being free (or holding this source's earlier output).
    handle.remember(fresh_state(scene, Fingerprint.of(facts.source), scene.out.url))
    failpoints.hit("after-discovered")
    return facts


def _skip_recorded(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    left = scene.result("skipped", handle.current.skip_reason, handle.current)
    left.finished_version = facts.source.version
    return left


def _output_lost(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    return scene.result(
        "failed",
        "the verified output is missing or changed and the original is archived; "
        "restore it to compact it again",
        handle.current,
    )


def _reencode(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    log.info(
        "output of %s is missing or not as recorded; encoding again", redact_url(scene.src.url)
    )
    handle.state = handle.current.advanced(Step.DISCOVERED, scene.ctx.run_id)
    return replace(facts, confirmed=False)


def _confirm(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    confirm(scene, handle)
    return replace(facts, confirmed=True)


def _encode(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    encode(scene, handle, facts.source)
    if handle.current.step == Step.ENCODED:
        confirm(scene, handle)
    return replace(facts, confirmed=True)


def _archive(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    live = facts.source
    if facts.archived:  # the store does not show what the copy just made
        raise ArchiveError(
            f"the original is in {live.storage_class or 'no storage class'} after it "
            f"was archived to {scene.ctx.storage_class}"
        )
    return replace(facts, live=archive(scene, handle, live), archived=True)


def _delete(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    held = delete(scene, handle, facts.source)
    if held is not None:
        return scene.result("held", held, handle.current)
    if scene.deleted:  # the source is gone now: done
        return done(scene, handle.current, facts.source)
    return facts


def _done(scene: Scene, handle: StateHandle, facts: Facts) -> Outcome:
    return done(scene, handle.current, facts.source)


def done(scene: Scene, state: SceneState, live: ObjectInfo) -> SceneResult:
    """The scene went as far as the run's settings say: compacted by this walk, or already."""
    if scene.did_work:
        result = scene.result("compacted", scene.spec.read_only, state)
    else:
        result = scene.result("skipped", f"already compacted (run {state.run_id})", state)
    result.finished_version = GONE if scene.deleted else live.version
    return result


#: Each action's one handler.
STEPS: dict[Action, Handler] = {
    Action.SOURCE_GONE: _source_gone,
    Action.ADOPT: _adopt,
    Action.RESTART: _restart,
    Action.SKIP_COLD: _skip_cold,
    Action.CLAIM: _claim,
    Action.SKIP_RECORDED: _skip_recorded,
    Action.OUTPUT_LOST: _output_lost,
    Action.REENCODE: _reencode,
    Action.CONFIRM: _confirm,
    Action.ENCODE: _encode,
    Action.ARCHIVE: _archive,
    Action.DELETE: _delete,
    Action.DONE: _done,
}
