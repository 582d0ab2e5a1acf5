"""``compactor verify DEST``: re-check a destination against its state records.

For every scene recorded under ``<dest>/_compactor/state/`` whose output was written:
the output exists, has the recorded size and SHA-256 (the store's checksum when it
reports one, else the object is streamed and hashed), and is a valid COG; where the
original was archived, the archive copy exists with the recorded size and checksum. Any
``.tif`` under the destination that no record accounts for is reported too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import CompactorError, StorageError
from ..gdal import gdal_env, gdal_options
from ..records import SceneState, Step, state_root
from ..settings import META_PREFIX
from ..sources import StratifiedSampler
from ..storage import Location, ObjectInfo, S3Options, S3Store, Store, store_for
from ..verify import validate_cog

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Discrepancy:
    url: str
    problem: str


@dataclass
class AuditResult:
    dest: str
    checked: int = 0
    archives_checked: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)
    #: With a sample: the state records listed, and how many were drawn.
    records: int | None = None
    sampled: int | None = None

    @property
    def ok(self) -> bool:
        return not self.discrepancies


def _check_output(state: SceneState, s3: S3Options, gdal: dict[str, str]) -> list[Discrepancy]:

    assert state.output is not None
    rec = state.output
    loc = Location.parse(rec.url)
    store = store_for(loc, s3)
    found: list[Discrepancy] = []
    info = store.head(loc)
    if info is None:
        return [Discrepancy(rec.url, "output is missing")]
    if info.size != rec.size:
        return [Discrepancy(rec.url, f"size is {info.size}, recorded {rec.size}")]
    if isinstance(store, S3Store) and rec.checksum and info.checksum_sha256:
        if info.checksum_sha256 != rec.checksum:
            found.append(Discrepancy(rec.url, "SHA-256 differs from the recorded one"))
    elif rec.sha256 is not None:
        sha, _ = store.sha256(loc)
        if sha != rec.sha256:
            found.append(Discrepancy(rec.url, "SHA-256 differs from the recorded one"))
    if not found:
        try:
            with gdal_env(gdal):
                validate_cog(loc.gdal_path)
        except CompactorError as err:
            found.append(Discrepancy(rec.url, str(err)))
    return found


def _check_archive(state: SceneState, s3: S3Options) -> list[Discrepancy]:
    assert state.archive is not None
    loc = Location.parse(state.archive.url)
    if not store_for(loc, s3).holds(loc, state.archive):
        return [Discrepancy(loc.url, "archive copy is missing or not as recorded")]
    return []


def audit(
    dest: str,
    s3: S3Options,
    *,
    threads: int = 8,
    progress: Callable[[str], None] | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> AuditResult:
    """Check every recorded output (and archive copy) under ``dest``; with ``sample``, only
    that many records drawn at random (``seed``) from the listing of the state records: a
    spot check of a large archive (outputs no record accounts for are then not looked
    for, which takes a listing of every output)."""
    dest_loc = Location.parse(dest).as_prefix()
    store = store_for(dest_loc, s3)
    gdal = gdal_options(endpoint_url=s3.endpoint_url, region=s3.region)
    result = AuditResult(dest=dest_loc.url)
    root = state_root(dest_loc)
    records = _state_records(store, root, sample, seed, result)
    recorded: set[str] = set()

    def one(info: ObjectInfo) -> tuple[list[Discrepancy], SceneState | None]:
        got = store.read_versioned(Location.parse(info.url))
        if got is None:
            return [], None
        try:
            state = SceneState.model_validate_json(got[0])
        except ValueError:
            return [Discrepancy(info.url, "unreadable state record")], None
        if state.step < Step.ENCODED or state.output is None or not state.output.size:
            return [], None
        problems = _check_output(state, s3, gdal)
        if state.step >= Step.ARCHIVED and state.archive is not None:
            problems += _check_archive(state, s3)
        if progress:
            progress(state.source)
        return problems, state

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for batch in _batches(records, 4 * threads):
            for problems, state in pool.map(one, batch):
                result.discrepancies.extend(problems)
                if state is not None and state.output is not None:
                    recorded.add(state.output.url)
                    result.checked += 1
                    archived = state.step >= Step.ARCHIVED and state.archive is not None
                    result.archives_checked += archived
    if sample is None:
        result.discrepancies += _unrecorded(store, dest_loc, recorded)
    result.discrepancies.sort(key=lambda d: d.url)
    return result


def _state_records(
    store: Store, root: Location, sample: int | None, seed: int, result: AuditResult
) -> Iterable[ObjectInfo]:
    """The state records to check: the listing of ``root`` as it arrives, or with
    ``sample`` that many drawn at random (``seed``), counted in ``result``. None when the
    listing fails."""
    try:
        records: Iterable[ObjectInfo] = store.listing(root)
        if sample is not None:
            sampler: StratifiedSampler[ObjectInfo] = StratifiedSampler(sample, seed=seed)
            for info in records:
                sampler.add(info, 1)  # one stratum: a uniform draw
            records = [d.item for d in sampler.sample()]
            result.records = sampler.objects
            result.sampled = len(records)
    except StorageError:
        records = []
    return records


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """A stream in lists of ``size``: records are checked as the listing arrives."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _unrecorded(store: Store, dest: Location, recorded: set[str]) -> list[Discrepancy]:
    """Any ``.tif`` under the destination that no record accounts for."""
    meta = dest.join(META_PREFIX + "/")
    found = []
    try:
        for info in store.listing(dest):
            loc = Location.parse(info.url)
            if loc.is_under(meta) or not loc.key.lower().endswith(".tif"):
                continue
            if loc.url not in recorded:
                found.append(
                    Discrepancy(
                        loc.url, "no state record: not written by compactor, or its record is lost"
                    )
                )
    except StorageError:
        pass
    return found
