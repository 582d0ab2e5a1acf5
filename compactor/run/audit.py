"""``compactor verify DEST``: re-check a destination against its state records.

For every scene recorded under ``<dest>/_compactor/state/`` whose output was written:
the output exists, has the recorded size and SHA-256 (the store's checksum when it
reports one, else the object is streamed and hashed), and is a valid COG; where the
original was archived, the archive copy exists with the recorded size and checksum. Any
``.tif`` under the destination that no record accounts for is reported too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..config import META_PREFIX
from ..errors import CompactorError, StorageError
from ..fidelity.verify import validate_cog
from ..gdal.env import gdal_env, gdal_options
from ..safety.state import SceneState, Step, state_root
from ..storage import Location, S3Options, S3Store, store_for

log = logging.getLogger(__name__)


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
) -> AuditResult:
    """Check every recorded output (and archive copy) under ``dest``."""
    dest_loc = Location.parse(dest).as_prefix()
    store = store_for(dest_loc, s3)
    gdal = gdal_options(endpoint_url=s3.endpoint_url, region=s3.region)
    result = AuditResult(dest=dest_loc.url)
    root = state_root(dest_loc)
    try:
        records = list(store.listing(root))
    except StorageError:
        records = []
    states: list[SceneState] = []
    for info in records:
        got = store.read_versioned(Location.parse(info.url))
        if got is None:
            continue
        try:
            states.append(SceneState.model_validate_json(got[0]))
        except ValueError:
            result.discrepancies.append(Discrepancy(info.url, "unreadable state record"))
    written = [s for s in states if s.step >= Step.ENCODED and s.output and s.output.size]
    recorded = {s.output.url for s in written if s.output}

    def one(state: SceneState) -> list[Discrepancy]:
        problems = _check_output(state, s3, gdal)
        if state.step >= Step.ARCHIVED and state.archive is not None:
            problems += _check_archive(state, s3)
        if progress:
            progress(state.source)
        return problems

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for problems in pool.map(one, written):
            result.discrepancies.extend(problems)
    result.checked = len(written)
    result.archives_checked = sum(
        1 for s in written if s.step >= Step.ARCHIVED and s.archive is not None
    )
    meta = dest_loc.join(META_PREFIX + "/")
    try:
        listing = list(store.listing(dest_loc))
    except StorageError:
        listing = []
    for info in listing:
        loc = Location.parse(info.url)
        if loc.is_under(meta) or not loc.key.lower().endswith(".tif"):
            continue
        if loc.url not in recorded:
            result.discrepancies.append(
                Discrepancy(
                    loc.url, "no state record: not written by compactor, or its record is lost"
                )
            )
    result.discrepancies.sort(key=lambda d: d.url)
    return result
