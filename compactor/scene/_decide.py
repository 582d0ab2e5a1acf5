"""The pure decisions of a scene's walk: what to do next (:func:`decide`), which steps are
recorded, whether the walk reads the original whole, and whether a record may be acted on
at all (:func:`record_problem`). The stores are asked nothing here.

**A record says where a scene is in its walk, never where things go.** Everything under
``<dest>/_compactor/`` may be forged, so a record is checked by :func:`record_problem` as
soon as it is read, before :func:`decide` sees it. The source, the output and the archive
copy are always the scene's own (:class:`SceneSpec`: built from the listing and the run's
settings); a record that names any other place is refused: its scene fails with the
reason, nothing is written or deleted, and the record is left for a person. Refused are a
record whose source, output or archive URL differs from the spec's; an archive copy that
is the source (except in place, where it is the source key by design), outside
``--archive``, or not in the run's archive storage class; and a ``pending_version`` a run
could not have written (only in place, once archived, never the archived copy's own
version). Whatever else a record says (fingerprint, step, checksums, encoding, a reason to
skip) can at most make a scene encode again, skip, or fail: nothing is deleted on a
record's word. A walk that resumes at a delete first checks with the stores that the
output at the spec's key is as recorded and that the archive copy at the spec's archive
key holds the live source's very bytes (hashed again); a pending version is deleted only
when the store shows it is another, older version of the same key with the bytes of the
archive-class copy that replaced it. A restart always claims the spec's output key.

A record's existence or claim is no permission either: an output is always written only
if its key is free, and an object already there is replaced only when the store shows it
is this scene's own (:func:`check_output_key`). A record that says the original was
archived names its archive copy (else it is refused); one that says more than the stores
show is walked on from where they show the scene is: a source still there is deleted only
by the re-checked delete, and in place an original not in the run's archive class is
archived again.
"""

from __future__ import annotations

import logging
from enum import Enum

from ..records import (
    STATE_VERSION,
    Fingerprint,
    SceneState,
    Step,
    StoredObject,
)
from ..redact import redact_url, url_identity
from ..storage import (
    ARCHIVE_CLASSES,
    Location,
    ObjectInfo,
)
from ._spec import RunContext, SceneSpec

log = logging.getLogger(__name__)


# --- the decision ------------------------------------------------------------------------------


class Action(Enum):
    """What the walk does next."""

    SOURCE_GONE = "the source is gone: account for it"
    ADOPT = "the same bytes under a new ETag: adopt the new fingerprint"
    RESTART = "the source changed: start over"
    SKIP_COLD = "the original is in an archive class: skip it"
    CLAIM = "no record yet: claim the output key"
    SKIP_RECORDED = "left as it is under this policy: skip it"
    OUTPUT_LOST = "the verified output is gone and the original archived: fail"
    REENCODE = "the output is missing or not as recorded: encode again"
    CONFIRM = "confirm the stored output"
    ENCODE = "encode, check and store the output"
    ARCHIVE = "copy the original to the archive"
    DELETE = "delete the original"
    DONE = "nothing left to do"


def final_step(archive_mode: str, spec: SceneSpec) -> Step:
    """The last step a scene goes to: a scene without an archive URL (originals left, or a
    read-only STAC source) stops once its output is verified."""
    if spec.archive is None:
        return Step.VERIFIED
    return {"none": Step.VERIFIED, "in-place": Step.ARCHIVED, "prefix": Step.DELETED}[archive_mode]


def decide(
    state: SceneState | None,
    live: ObjectInfo | None,
    *,
    final: Step,
    policy: str,
    in_place: bool,
    storage_class: str,
    same_bytes: bool = False,
    output_intact: bool = True,
) -> Action:
    """The next action, from the recorded ``state``, the ``live`` source (``None``: gone)
    and facts the walk gathers: ``same_bytes`` (the live source is the recorded original
    under a new ETag, e.g. after an in-place class change) and ``output_intact`` (the
    recorded output is at its key as verified; only consulted once one was written)."""
    if live is None:
        return Action.SOURCE_GONE
    first = _by_source(
        state, live, in_place=in_place, storage_class=storage_class, same_bytes=same_bytes
    )
    if first is not None or state is None:
        return first or Action.CLAIM
    return _by_record(
        state, live, final=final, policy=policy, in_place=in_place,
        storage_class=storage_class, output_intact=output_intact,
    )  # fmt: skip


def _by_source(
    state: SceneState | None,
    live: ObjectInfo,
    *,
    in_place: bool,
    storage_class: str,
    same_bytes: bool,
) -> Action | None:
    """What the live source decides before the record is read on: a changed source, an
    original in an archive class, no record yet (``None``: the record decides)."""
    if state is not None and not state.fingerprint.same(Fingerprint.of(live)):
        return Action.ADOPT if same_bytes else Action.RESTART
    resumable_in_place = (
        in_place
        and state is not None
        and state.step >= Step.VERIFIED
        and live.storage_class == storage_class
    )
    if (
        live.storage_class in ARCHIVE_CLASSES
        and not resumable_in_place
        and not (state is not None and state.step >= Step.ARCHIVED)
    ):
        return Action.SKIP_COLD
    if state is None:
        return Action.CLAIM
    return None


def _by_record(
    state: SceneState,
    live: ObjectInfo,
    *,
    final: Step,
    policy: str,
    in_place: bool,
    storage_class: str,
    output_intact: bool,
) -> Action:
    """The next action for a source that is the recorded one, from the step recorded."""
    if state.step == Step.DISCOVERED and state.skip_reason and state.policy == policy:
        return Action.SKIP_RECORDED
    if state.step >= Step.ENCODED and not output_intact:
        if state.step >= Step.VERIFIED and live.storage_class in ARCHIVE_CLASSES:
            return Action.OUTPUT_LOST
        return Action.REENCODE
    if state.step == Step.ENCODED:
        return Action.CONFIRM
    if state.step < Step.VERIFIED:
        return Action.ENCODE
    if final >= Step.ARCHIVED and (
        state.step < Step.ARCHIVED or (in_place and live.storage_class != storage_class)
    ):
        # In place, a record that says archived is believed only once the live original is
        # in the run's archive class.
        return Action.ARCHIVE
    if final >= Step.DELETED:
        # The source is still there, whatever step the record names: the delete re-checks
        # output and archive copy with the stores before it deletes anything.
        return Action.DELETE
    if state.pending_version is not None and state.step >= Step.ARCHIVED:
        return Action.DELETE  # an old version an Object Lock or the bucket kept before
    return Action.DONE


def is_recorded(step: Step, *, archive_mode: str, final: Step, chunked: bool) -> bool:
    """Whether reaching ``step`` is written to the state record (else it is kept in memory
    until the next record). ``archived`` always is: it says where the original is, before
    the source is deleted. The delete is not: a record at ``archived`` whose source is gone
    is complete, one whose source is still there resumes at the delete. ``encoded`` and
    ``verified`` are recorded for a chunked output (expensive to redo), as the last step
    (originals left), and in place (the class change makes the original unreadable: the
    record must say it is ours first). A one-task scene archived to a prefix goes from
    nothing to ``archived``: a crash before that leaves an output tagged with its source
    and maybe an archive copy, both recognised by the rerun."""
    if step == Step.ARCHIVED:
        return True
    if step in (Step.DISCOVERED, Step.DELETED):
        return False  # only "left as it is" decisions are recorded at this step
    if chunked:
        return True
    return step == Step.VERIFIED and (step == final or archive_mode == "in-place")


def reads_whole(state: SceneState | None, listed: ObjectInfo | None, *, final: Step) -> bool:
    """Whether the walk starts by reading the original whole (one GET that also says what
    a HEAD would, and hashes it for the archive copy) rather than with a HEAD: when it will
    be encoded, or hashed for its archive copy; never when it is in an archive class."""
    if listed is not None and listed.storage_class in ARCHIVE_CLASSES:
        return False
    if state is None or state.step < Step.VERIFIED:
        return True
    return final >= Step.ARCHIVED and state.step < Step.ARCHIVED and state.source_sha256 is None


def place(url: str | None) -> str | None:
    """A URL as the walk spells it (``Location``'s own form); ``"?"`` if it is not one."""
    if url is None:
        return None
    try:
        return Location.parse(url).url
    except ValueError:
        return "?"


def _identity(url: str) -> tuple[str, str | None]:
    """What names a source in a record: its place (:func:`place`), an HTTP(S) URL's query
    as a digest of it redacted (:func:`~compactor.redact.url_identity`): a record keeps its
    source redacted, so a signed href is its own record's source whatever its signature."""
    return url_identity(place(url) or url)


def record_problem(state: SceneState, spec: SceneSpec, ctx: RunContext) -> str | None:
    """Why the scene's recorded ``state`` cannot be acted on (``None``: it may be): a
    record says where the scene is in its walk, never where things go (see the module's
    docstring). Pure: the stores are asked nothing."""
    source, output, archive = place(spec.source), place(spec.output), place(spec.archive)
    if state.version != STATE_VERSION:
        return f"the state record has version {state.version}, not {STATE_VERSION}"
    if _identity(state.source) != _identity(spec.source):
        # Compared as the record keeps it: a signed HTTP(S) URL is recorded redacted.
        return f"the state record is of {state.source!r}, not of {redact_url(spec.source)!r}"
    if state.output is not None and place(state.output.url) != output:
        return f"the state record names output {state.output.url!r}, not {spec.output}"
    in_place = ctx.archive_mode == "in-place" and archive == source
    if state.step >= Step.ARCHIVED and state.archive is None:
        return f"the state record says {state.step.label} but names no archive copy"
    if state.archive is not None:
        problem = _archive_copy_problem(state.archive, archive, source, ctx, in_place=in_place)
        if problem is not None:
            return problem
    return _pending_problem(state, in_place=in_place)


def _archive_copy_problem(
    recorded: StoredObject, archive: str | None, source: str | None, ctx: RunContext,
    *, in_place: bool,
) -> str | None:  # fmt: skip
    """Why the archive copy a record names is not this scene's (``archive``: the spec's,
    as :func:`place` spells it)."""
    got = place(recorded.url)
    if archive is None:
        return (
            f"the state record names archive copy {recorded.url!r}, but this run "
            "archives no original of this scene"
        )
    if got != archive:
        return f"the state record names archive copy {recorded.url!r}, not {archive}"
    if got == source and not in_place:
        return "the state record's archive copy is the source itself"
    if ctx.archive_mode == "prefix" and not (
        ctx.archive and Location.parse(archive).is_under(Location.parse(ctx.archive))
    ):
        return f"the state record's archive copy {archive} is outside --archive"
    wanted = ctx.storage_class if Location.parse(archive).is_s3 else None
    got_class = recorded.storage_class
    if wanted is not None:
        got_class = got_class or "STANDARD"
    if got_class != wanted:
        return (
            f"the state record's archive copy is in {got_class or 'no storage class'}, "
            f"not this run's {wanted or 'none'}"
        )
    return None


def _pending_problem(state: SceneState, *, in_place: bool) -> str | None:
    """Why the version to delete a record names is not one a run could have written."""
    pending = state.pending_version
    if pending is None:
        return None
    if not in_place:
        return "the state record names a version to delete, which only in place is kept"
    if state.step < Step.ARCHIVED or state.archive is None:
        return "the state record names a version to delete before the original is archived"
    if state.fingerprint.version_id in (None, pending):
        return f"the state record's version to delete ({pending}) is not a replaced one"
    return None
