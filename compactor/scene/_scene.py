"""One scene's places, stores and lease, and what its walk learns on the way."""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..archive import copy_part_size
from ..encode import (
    Sample,
)
from ..errors import (
    ArchivedObjectError,
    StorageError,
)
from ..gdal import scratch_dir
from ..records import (
    Fingerprint,
    SceneResult,
    SceneState,
    Status,
    Step,
    StoredObject,
    now_iso,
)
from ..redact import redact_text
from ..storage import (
    Fetched,
    Location,
    ObjectInfo,
    Source,
    Store,
    source_store_for,
    store_for,
)
from ._decide import reads_whole
from ._handle import StateHandle
from ._lease import Lease
from ._sidecars import (
    Member,
    Pins,
    fetch_sidecars,
    members,
    pin_listed,
)
from ._spec import RunContext, SceneSpec

log = logging.getLogger(__name__)


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


def fresh_state(scene: Scene, fp: Fingerprint, output: str) -> SceneState:
    return SceneState(
        source=scene.src.url,
        fingerprint=fp,
        step=Step.DISCOVERED,
        output=StoredObject(url=output, size=0),  # claims the output key
        run_id=scene.ctx.run_id,
        updated=now_iso(),
    )
