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
one bad object never stops a run.

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
import os
import random
import shutil
import time
import traceback
import uuid
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from .. import failpoints, timing
from ..archive import (
    Lease,
    SourceDigest,
    archive_holds,
    archive_link,
    copy_part_size,
    delete_exactly,
    digest_source,
    lock_reason,
    pending_problem,
    recheck_before_delete,
    server_copy,
    source_metadata_header,
)
from ..capture import capturing
from ..cog import EncodedCog, Profile, resolved_predictor
from ..display import human_bytes
from ..encode import (
    Ladder,
    Sample,
    candidates,
    choose_encoding,
    cluster_context,
    encode_cog,
    gdal_writer_reason,
    uses_tile_writer,
)
from ..errors import (
    AccessDenied,
    ArchivedObjectError,
    ArchiveError,
    CompactorError,
    LeaseHeldError,
    LeftAsIs,
    OutputConflictError,
    PreconditionFailed,
    SceneError,
    SceneTooLargeError,
    StorageError,
    VerificationError,
)
from ..gdal import RasterInfo, gdal_env, gdal_errors, scratch_dir
from ..pricing import archive_skip_reason, worth_archiving
from ..records import (
    STATE_VERSION,
    Attempt,
    Fingerprint,
    SceneResult,
    SceneState,
    StateStore,
    Status,
    Step,
    StoredObject,
    lease_location,
    now_iso,
)
from ..redact import redact_text, redact_url, url_identity
from ..storage import (
    ARCHIVE_CLASSES,
    Fetched,
    Location,
    ObjectInfo,
    Source,
    Store,
    counting_requests,
    sha256_file,
    source_store_for,
    store_for,
)
from ..verify import Fidelity, check_output, decoder_margin, validate_cog
from ._chunked import ChunkedOutput, compact_chunked
from ._sidecars import (
    Member,
    Pins,
    archive_sidecars,
    delete_sidecars,
    fetch_sidecars,
    members,
    pin_listed,
)
from ._spec import RunContext, SceneSpec

log = logging.getLogger(__name__)

#: Attempts at reading and encoding a remote source before a GDAL read error fails it.
SOURCE_READ_ATTEMPTS = 3
#: First delay between those attempts, in seconds (doubled each time, with jitter).
READ_RETRY_DELAY = 1.0
#: The finished version of a scene archived to a prefix and gone from its source.
GONE = "-"


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


def records(step: Step, *, archive_mode: str, final: Step, chunked: bool) -> bool:
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


def _place(url: str | None) -> str | None:
    """A URL as the walk spells it (``Location``'s own form); ``"?"`` if it is not one."""
    if url is None:
        return None
    try:
        return Location.parse(url).url
    except ValueError:
        return "?"


def _identity(url: str) -> tuple[str, str | None]:
    """What names a source in a record: its place (:func:`_place`), an HTTP(S) URL's query
    as a digest of it redacted (:func:`~compactor.redact.url_identity`): a record keeps its
    source redacted, so a signed href is its own record's source whatever its signature."""
    return url_identity(_place(url) or url)


def record_problem(state: SceneState, spec: SceneSpec, ctx: RunContext) -> str | None:
    """Why the scene's recorded ``state`` cannot be acted on (``None``: it may be): a
    record says where the scene is in its walk, never where things go (see the module's
    docstring). Pure: the stores are asked nothing."""
    source, output, archive = _place(spec.source), _place(spec.output), _place(spec.archive)
    if state.version != STATE_VERSION:
        return f"the state record has version {state.version}, not {STATE_VERSION}"
    if _identity(state.source) != _identity(spec.source):
        # Compared as the record keeps it: a signed HTTP(S) URL is recorded redacted.
        return f"the state record is of {state.source!r}, not of {redact_url(spec.source)!r}"
    if state.output is not None and _place(state.output.url) != output:
        return f"the state record names output {state.output.url!r}, not {spec.output}"
    in_place = ctx.archive_mode == "in-place" and archive == source
    if state.step >= Step.ARCHIVED and state.archive is None:
        return f"the state record says {state.step.label} but names no archive copy"
    if state.archive is not None:
        got = _place(state.archive.url)
        if archive is None:
            return (
                f"the state record names archive copy {state.archive.url!r}, but this run "
                "archives no original of this scene"
            )
        if got != archive:
            return f"the state record names archive copy {state.archive.url!r}, not {archive}"
        if got == source and not in_place:
            return "the state record's archive copy is the source itself"
        if ctx.archive_mode == "prefix" and not (
            ctx.archive and Location.parse(archive).is_under(Location.parse(ctx.archive))
        ):
            return f"the state record's archive copy {archive} is outside --archive"
        wanted = ctx.storage_class if Location.parse(archive).is_s3 else None
        got_class = state.archive.storage_class
        if wanted is not None:
            got_class = got_class or "STANDARD"
        if got_class != wanted:
            return (
                f"the state record's archive copy is in {got_class or 'no storage class'}, "
                f"not this run's {wanted or 'none'}"
            )
    pending = state.pending_version
    if pending is not None:
        if not in_place:
            return "the state record names a version to delete, which only in place is kept"
        if state.step < Step.ARCHIVED or state.archive is None:
            return "the state record names a version to delete before the original is archived"
        if state.fingerprint.version_id in (None, pending):
            return f"the state record's version to delete ({pending}) is not a replaced one"
    return None


# --- the state and the scene -------------------------------------------------------------------


@dataclass
class StateHandle:
    """A scene's recorded state and the ETag it was read with: every save is conditional
    on that ETag (``None``: the record must not exist yet)."""

    store: StateStore
    state: SceneState | None
    etag: str | None

    def save(self, state: SceneState) -> SceneState:
        with timing.stage("state"):
            self.etag = self.store.save(state, self.etag)
        self.state = state
        return state

    def advance(self, step: Step, run_id: str, **changes: Any) -> SceneState:
        assert self.state is not None
        return self.save(self.state.advanced(step, run_id, **changes))

    def keep(self, state: SceneState) -> SceneState:
        """Move on in memory only (the next :meth:`save` writes it, conditional as ever)."""
        self.state = state
        return state

    @property
    def current(self) -> SceneState:
        assert self.state is not None
        return self.state


@dataclass
class Scene:
    """One scene's places, stores and lease, and what the walk learns on the way."""

    spec: SceneSpec
    ctx: RunContext
    lease: Lease | None = None
    src: Location = field(init=False)
    out: Location = field(init=False)
    arc: Location | None = field(init=False)
    src_store: Source = field(init=False)
    #: The source's store where compactor may archive and delete (not for HTTP(S) sources).
    owned: Store | None = field(init=False)
    dest_store: Store = field(init=False)
    #: Attempts, the quality search, dimensions: filled in as the scene is encoded.
    notes: SceneResult = field(init=False)
    scratch: Path | None = None
    #: Whether this walk wrote, copied or deleted anything.
    did_work: bool = False
    #: The original read whole into scratch at the start of the walk (one-task scenes).
    fetched: Fetched | None = None
    #: The output was stored (checksummed) and the archive copy verified by this walk: the
    #: delete needs no second look (a resumed walk re-checks both with the stores).
    stored_here: bool = False
    copied_here: bool = False
    #: In place in a versioned bucket: the version this walk's archive-class copy replaced.
    replaced: str | None = None
    #: The step the walk goes to (see :func:`final_step` and :func:`_final_if_worth_it`).
    final: Step = Step.VERIFIED
    #: The scene's state record as the walk read and wrote it (set when the walk starts).
    handle: StateHandle | None = None
    #: The source as last seen by the walk, and whether the walk deleted it.
    live: ObjectInfo | None = None
    deleted: bool = False
    #: The scene's sample, when choosing its encoding wrote one (the quality search reuses it).
    sample: Sample | None = None
    #: Its sidecars (:mod:`compactor.scene._sidecars`), the version of each one the output is
    #: built from (pinned when the source is observed), and the ETag of each one this walk
    #: archived (by source URL).
    sidecars: list[Member] = field(init=False)
    sidecar_pins: Pins = field(default_factory=dict)
    sidecars_archived: dict[str, str | None] = field(default_factory=dict)
    #: The output the scene's record (read at the start of the walk, and found valid) says
    #: was written at its output key, with its SHA-256: the only object at that key, besides
    #: one tagged with the source, that the walk may replace (:func:`check_output_key`).
    recorded_output: StoredObject | None = None
    #: What no message of the scene may show (:meth:`HttpPolicy.secrets`).
    secrets: tuple[str, ...] = ()
    _src_path: str | None = None

    def __post_init__(self) -> None:
        spec, ctx = self.spec, self.ctx
        self.src = Location.parse(spec.source)
        self.out = Location.parse(spec.output)
        self.arc = Location.parse(spec.archive) if spec.archive else None
        self.src_store = source_store_for(self.src, ctx.s3, ctx.http)
        self.owned = None if self.src.is_http else store_for(self.src, ctx.s3)
        self.dest_store = store_for(ctx.dest_location, ctx.s3)
        self.notes = SceneResult(
            source=spec.source, status="failed", item=spec.item, asset=spec.asset
        )
        self.sidecars = members(spec)

    @property
    def gdal_options(self) -> dict[str, str]:
        """The run's GDAL options for reading this scene: a scene with sidecars lets GDAL
        look for them (one stat, or HEAD, per name GDAL tries, never a LIST of the folder);
        one without keeps ``EMPTY_DIR`` and costs no request more."""
        options = self.ctx.gdal_options
        if self.sidecars:
            options["GDAL_DISABLE_READDIR_ON_OPEN"] = "TRUE"
        return options

    @property
    def src_path(self) -> str:
        """What GDAL opens: ``/vsis3/...``, a local path, or an HTTP(S) source fetched into
        scratch (by :meth:`RunContext.read_source`, when the header was read)."""
        if self._src_path is None:
            raise AssertionError("the source's header is read first")
        return self._src_path

    @property
    def remote_path(self) -> str:
        """What GDAL opens on any worker: ``/vsis3/...`` or the local path (chunk tasks)."""
        return self.src.gdal_path

    def scratch_dir(self) -> Path:
        if self.scratch is None:
            self.scratch = Path(scratch_dir()) / uuid.uuid4().hex
            self.scratch.mkdir(parents=True)
        return self.scratch

    def owned_source(self) -> Store:
        """The source's store for archiving and deleting: never a read-only source (STAC
        discovery gives those no archive URL, so this only guards the invariant)."""
        if self.owned is None:
            raise StorageError(f"{self.src.url} is read-only: it is never archived or deleted")
        return self.owned

    def check_lease(self, before: str) -> None:
        if self.lease is not None:
            self.lease.check(before)

    def output_intact(self, state: SceneState) -> bool:
        if state.output is None or not state.output.size:
            return False
        return self.dest_store.holds(self.out, state.output)  # the spec's key

    def result(self, status: Status, reason: str | None, state: SceneState | None) -> SceneResult:
        """The scene's result: what the walk noted, and what the state records."""
        # Signed URLs and the header values this worker sends masked.
        shown = None if reason is None else redact_text(reason, self.secrets)
        r = self.notes.model_copy(update={"status": status, "reason": shown})
        if state is not None:
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
            r.max_error = state.max_error
            r.ssim, r.psnr = state.ssim, state.psnr
        return r

    def observe(self, state: SceneState | None, final: Step) -> ObjectInfo | None:
        """The live source: read whole into scratch when the walk will need its bytes
        (:func:`reads_whole`; up to ``--chunk-threshold`` bytes, larger ones are chunked),
        else a HEAD. ``None`` if it is gone."""
        listed, owned = self.spec.listed, self.owned
        limit = self.ctx.encoding.chunk_threshold
        if (
            owned is not None
            and reads_whole(state, listed, final=final)
            and (listed is None or listed.size <= limit)
        ):
            size = listed.size if listed is not None else 0
            t = self.ctx.transfers
            part_size = (
                copy_part_size(size, t.multipart_copy_part_size)
                if final >= Step.ARCHIVED and size > t.multipart_copy_threshold
                else None
            )
            target = self.scratch_dir() / ("source" + _safe_suffix(self.src.key))
            try:
                self.fetched = owned.fetch(
                    self.src, target, digest=final >= Step.ARCHIVED, part_size=part_size,
                    max_bytes=listed.size if listed is not None else limit,
                )  # fmt: skip
            except ArchivedObjectError:
                pass  # in an archive class since it was listed: the HEAD says so
            else:
                if self.fetched is not None and self.sidecars:
                    self.sidecar_pins = fetch_sidecars(
                        owned, self.sidecars, self.src.name, self.fetched.path, limit
                    )
                return self.fetched.info if self.fetched is not None else None
        if owned is not None and self.sidecars:
            pin_listed(owned, self.sidecars, self.sidecar_pins)
        return self.src_store.head(self.src)

    def cleanup(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _safe_suffix(key: str) -> str:
    """The source's extension for its scratch copy, when it is a plain one (GDAL picks no
    driver by extension; sidecar lookups follow the name)."""
    suffix = Path(key).suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ".tif"


def _digest(state: SceneState) -> SourceDigest | None:
    if state.source_sha256 is None:
        return None
    return SourceDigest(state.source_sha256, state.source_part_size, state.source_composite)


def _fresh_state(scene: Scene, fp: Fingerprint, output: str) -> SceneState:
    return SceneState(
        source=scene.src.url,
        fingerprint=fp,
        step=Step.DISCOVERED,
        output=StoredObject(url=output, size=0),  # claims the output key
        run_id=scene.ctx.run_id,
        updated=now_iso(),
    )


# --- the walk --------------------------------------------------------------------------------


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
        digest = _digest(state) if state is not None else None
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
            handle.state = _fresh_state(scene, fp, scene.out.url)  # never the record's
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
            handle.keep(_fresh_state(scene, fp, scene.out.url))
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
            or _place(recorded.url) != out.url
        ):
            continue
        try:
            digest = scene.dest_store.sha256(out, etag=existing.etag)[0]
        except (PreconditionFailed, StorageError):
            return False  # changed or gone while it was read: not shown to be ours
        return digest == recorded.sha256
    return False


# --- encode -----------------------------------------------------------------------------------


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


def _kept(scene: Scene, ladder: Ladder, kept: Profile) -> None:
    ladder.record_kept(kept)
    for attempt in scene.notes.attempts:
        attempt.accepted = (attempt.codec, attempt.quality) == (kept.codec, kept.quality)
    if kept != ladder.first:
        log.info(
            "%s: started at %s for SSIM %.3f; kept %s",
            redact_url(scene.src.url), ladder.first.label, scene.ctx.encoding.min_ssim, kept.label,
        )  # fmt: skip


def _worth_keeping(scene: Scene, size: int, live: ObjectInfo) -> bool:
    """Whether an output of ``size`` is smaller than the original by ``min_saving``."""
    return size < live.size * (1 - scene.ctx.encoding.min_saving)


def _may_drop_overviews(
    scene: Scene, kept: Profile, out: EncodedCog | ChunkedOutput, live: ObjectInfo
) -> bool:
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
    """A scene small enough for one task: encode in scratch until the bar is met, check
    with GDAL, upload checksummed."""
    ctx, scratch = scene.ctx, scene.scratch_dir()
    ladder = _ladder(scene, info, profile)

    def attempt(candidate: Profile) -> tuple[bool, float | None, tuple[EncodedCog, Fidelity]]:
        path = scratch / f"out-{len(scene.notes.attempts)}.tif"
        cog = encode_cog(scene.src_path, path, candidate, info)
        fidelity = check_output(scene.src_path, str(path), info, candidate)
        ok = _tried(scene, candidate, path.stat().st_size, fidelity.ssim)
        return ok, fidelity.ssim, (cog, fidelity)

    kept, (cog, fidelity) = ladder.walk(attempt, lambda out: out[0].path.unlink())
    _kept(scene, ladder, kept)
    if not _worth_keeping(scene, cog.size, live) and _may_drop_overviews(scene, kept, cog, live):
        cog.path.unlink()
        kept = replace(kept, overviews="none")
        _, _, (cog, fidelity) = attempt(kept)
        _accept_last(scene)
    path = cog.path
    failpoints.hit("after-encode")
    size = path.stat().st_size
    if not _worth_keeping(scene, size, live):
        raise _left_as_is(scene, handle, size, kept, live)
    with timing.stage("hashing"):
        sha = sha256_file(path)
    out = scene.out  # the spec's output key, never a record's
    scene.check_lease("uploading the output")
    if size > ctx.transfers.multipart_upload_threshold:
        scene.dest_store.abort_stale_uploads(out)
    with timing.stage("write"):
        stored = _upload(scene, handle, path, out, sha)
    output = StoredObject(
        url=out.url, size=stored.size, sha256=sha, etag=stored.etag,
        checksum=stored.checksum_sha256,
    )  # fmt: skip
    return Encoded(output, kept, fidelity, cog.full_bytes, cog.overview_bytes)


def _upload(scene: Scene, handle: StateHandle, path: Path, out: Location, sha: str) -> ObjectInfo:
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
                create=_output_create(ctx),
            )  # fmt: skip  (later tries may hold a kept candidate: no stale-upload abort)
            ssim = result.fidelity_ssim
            # The bar with the decoder margin (libjpeg builds may decode differently).
            margin = None if ssim is None else ssim - decoder_margin(candidate, info)
            ok = _tried(scene, candidate, result.size, margin)
            notes.attempts[-1].ssim = ssim
            return ok, margin, result

        kept, result = ladder.walk(attempt, lambda res: res.discard())
        _kept(scene, ladder, kept)
        if not _worth_keeping(scene, result.size, live) and _may_drop_overviews(
            scene, kept, result, live
        ):
            result.discard()
            kept = replace(kept, overviews="none")
            _, _, result = attempt(kept)
            _accept_last(scene)
    notes.chunked, notes.chunks = True, result.chunks
    notes.task_stages = {k: round(v, 4) for k, v in sorted((result.task_stages or {}).items())}
    notes.warnings += [w for w in result.task_warnings if w not in notes.warnings]
    failpoints.hit("after-encode")
    if not _worth_keeping(scene, result.size, live):
        result.discard()
        raise _left_as_is(scene, handle, result.size, kept, live)
    scene.check_lease("making the output visible")
    written = result.finish()
    output = StoredObject(
        url=out.url, size=written.size, sha256=written.sha256, etag=written.etag,
        checksum=written.checksum,
    )  # fmt: skip
    return Encoded(output, kept, result.fidelity, result.full_bytes, result.overview_bytes)


def _output_create(ctx: RunContext) -> dict[str, Any]:
    """What an output object is created with besides its content: class, encryption."""
    t, create = ctx.transfers, {}
    if t.output_storage_class != "STANDARD":
        create["StorageClass"] = t.output_storage_class
    if t.sse_kms_key:
        create.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=t.sse_kms_key)
    return create


def _record_encoded(scene: Scene, handle: StateHandle, encoded: Encoded, *, chunked: bool) -> None:
    """The output is stored: ``encoded``, recorded for a chunked output (confirmed next by
    :func:`confirm`). A one-task output was checked whole before upload and stored with its
    SHA-256 (S3 refuses a body that does not match it): it is ``verified`` at once,
    recorded or kept in memory as :func:`records` says."""
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
    handle.keep(state)
    failpoints.hit("after-encoded")
    verified = state.advanced(Step.VERIFIED, ctx.run_id)
    if records(Step.VERIFIED, archive_mode=ctx.archive_mode, final=scene.final, chunked=False):
        read = _fetched_digest(scene.fetched)
        if read is not None:
            verified = verified.model_copy(update=_digest_fields(read))
        handle.save(verified)
    else:
        handle.keep(verified)
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
    n.bytes_full, n.bytes_overviews = encoded.full_bytes, encoded.overview_bytes


def _digest_fields(digest: SourceDigest) -> dict[str, Any]:
    """What the state records of an original's hashes."""
    return {
        "source_sha256": digest.sha256,
        "source_part_size": digest.part_size,
        "source_composite": digest.composite,
    }


def _fetched_digest(fetched: Fetched | None) -> SourceDigest | None:
    if fetched is None or fetched.sha256 is None:
        return None
    return SourceDigest.of(fetched.sha256, fetched.part_size, fetched.parts)


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


# --- archive and delete -----------------------------------------------------------------------


def archive(scene: Scene, handle: StateHandle, live: ObjectInfo) -> ObjectInfo:
    """Hash the original (from the whole read at the start of the walk; else streamed, and
    recorded before any copy so a copy interrupted midway is recognised later), copy it to
    the archive class, check the copy; record ``archived``. Returns the source as it now
    is (in place: a new ETag and class). In a versioned bucket the copy is of exactly the
    version read, and in place the version the copy replaced is deleted before the record
    (or kept as pending where S3 refuses)."""
    ctx, arc, store = scene.ctx, scene.arc, scene.owned_source()
    assert arc is not None
    copier = store.server_copier()
    state = handle.current
    digest = _digest(state)
    multipart = copier is not None and live.size > ctx.transfers.multipart_copy_threshold
    if digest is None or (multipart and digest.composite is None):
        fetched = scene.fetched
        read = _fetched_digest(fetched) if fetched and fetched.info.etag == live.etag else None
        if read is not None and (read.composite is not None or not multipart):
            digest = read
            handle.keep(state.model_copy(update=_digest_fields(read)))
        else:
            part_size = (
                copy_part_size(live.size, ctx.transfers.multipart_copy_part_size)
                if multipart
                else None
            )
            digest = digest_source(store, scene.src, live.etag, part_size, live.version_id)
            handle.save(state.model_copy(update=_digest_fields(digest)))
    failpoints.hit("after-source-hash")
    scene.check_lease("copying the original to the archive")
    in_place = arc == scene.src
    after: ObjectInfo | None = None
    # Its sidecars first: each is verified in the archive before the record says archived.
    side_copies, scene.sidecars_archived = archive_sidecars(
        store, scene.sidecars, ctx, scene.sidecar_pins
    )
    if copier is None:
        stored = archive_link(store, scene.src, arc, digest.sha256)
    elif in_place and live.storage_class == ctx.storage_class:
        # An earlier attempt changed the class; the bytes were just recognised.
        stored = StoredObject(
            url=scene.src.url, size=live.size, sha256=digest.sha256, etag=live.etag,
            storage_class=live.storage_class, checksum=live.checksum_sha256,
        )  # fmt: skip
        after = live
    else:
        stored, after = server_copy(
            copier, scene.src, arc, live, digest, ctx.storage_class,
            multipart_threshold=ctx.transfers.multipart_copy_threshold,
            part_size=ctx.transfers.multipart_copy_part_size, replace=in_place,
            kms_key=ctx.transfers.sse_kms_key,
        )  # fmt: skip
    scene.did_work = True
    scene.copied_here = True
    update: dict[str, Any] = {"archive": stored}
    if side_copies:
        update["sidecars"] = side_copies
    if in_place:
        now = after or store.head(scene.src)  # a new ETag/mtime: still our original
        if now is not None:
            update["fingerprint"] = Fingerprint.of(now)
            replaced = live.version_id
            if replaced and now.version_id and replaced != now.version_id:
                # The copy is a new version: the one it replaced goes, exactly that one.
                update["pending_version"] = replaced
                scene.replaced = replaced
            live = now
    handle.advance(Step.ARCHIVED, ctx.run_id, **update)
    failpoints.hit("after-archived")
    return live


def delete(scene: Scene, handle: StateHandle, live: ObjectInfo) -> str | None:
    """Delete exactly the archived version of the original (``deleted``, not recorded:
    see :func:`records`); in place, the version the archive-class copy replaced. Output
    and archive copy checked earlier in this walk are trusted; a walk that resumes here
    re-checks both with the stores first. Returns why the original is held instead (an
    Object Lock, or a delete the bucket refuses): nothing is lost, a later run finishes."""
    scene.check_lease("deleting the original")
    store, state, ctx = scene.owned_source(), handle.current, scene.ctx
    keep = ctx.transfers.keep_versions
    if state.pending_version is not None:
        return _delete_pending(scene, handle, state.pending_version)
    fetched = scene.fetched
    straight = (
        scene.stored_here
        and scene.copied_here
        and fetched is not None
        and fetched.info.etag == live.etag == state.fingerprint.etag
    )
    arc = scene.arc
    assert arc is not None  # final_step: no delete without an archive URL
    current = (
        live
        if straight
        else recheck_before_delete(store, scene.dest_store, scene.src, scene.out, arc, state)
    )
    if current is not None:
        held = lock_reason(current) if not keep else None
        if held is not None:
            return _held(scene, f"not deleted: {held}")
        if not straight:  # a record may be forged: the copy must hold these very bytes
            archive_holds(store, scene.src, arc, current, _part_size(scene, state, current))
        # Its sidecars first (each verified in the archive): none outlives the raster.
        held = delete_sidecars(
            store, scene.sidecars, ctx, scene.sidecars_archived, scene.sidecar_pins
        )
        if held is not None:
            return _held(scene, held)
        try:
            delete_exactly(store, scene.src, current, keep_version=keep)
        except AccessDenied as err:
            return _held(scene, f"the delete was refused ({err.code or 'AccessDenied'})")
        if keep and current.version_id:
            scene.notes.kept_version = current.version_id
    scene.did_work = True
    scene.deleted = True
    handle.keep(state.advanced(Step.DELETED, scene.ctx.run_id))
    return None


def _delete_pending(scene: Scene, handle: StateHandle, version: str) -> str | None:
    """In place: delete the version the archive-class copy replaced (unless versions are
    kept, or S3 refuses: then it stays pending for a later run)."""
    store, state = scene.owned_source(), handle.current
    if scene.ctx.transfers.keep_versions:
        scene.notes.kept_version = version
        handle.save(state.model_copy(update={"pending_version": None}))
        return None
    old = store.head(scene.src, version)
    if old is not None:
        held = lock_reason(old)
        if held is not None:
            return _held(scene, f"the replaced version {version} not deleted: {held}")
        if not (scene.copied_here and scene.replaced == version):
            # Not replaced by this walk: the store must show it is the original's bytes.
            why = pending_problem(
                store, scene.src, version, scene.ctx.storage_class, _part_size(scene, state, old)
            )
            if why is not None:
                raise ArchiveError(f"refusing to delete version {version} of the original: {why}")
        try:
            failpoints.hit("before-delete")
            store.delete(scene.src, version_id=version)
            failpoints.hit("after-delete")
        except AccessDenied as err:
            return _held(scene, f"deleting the replaced version {version} was refused ({err.code})")
    scene.did_work = True
    handle.save(state.model_copy(update={"pending_version": None}))
    return None


def _part_size(scene: Scene, state: SceneState, live: ObjectInfo) -> int:
    """How the original was split for a multipart archive copy (as recorded, else as this
    run would split it: a wrong one only makes a check fail)."""
    t = scene.ctx.transfers
    return state.source_part_size or copy_part_size(live.size, t.multipart_copy_part_size)


def _held(scene: Scene, why: str) -> str:
    arc = scene.arc.url if scene.arc is not None else "the archive"
    reason = f"{why}; the original is archived at {arc}, a later run deletes it once allowed"
    log.info("%s held: %s", redact_url(scene.src.url), reason)
    return reason


# --- the task ---------------------------------------------------------------------------------


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
