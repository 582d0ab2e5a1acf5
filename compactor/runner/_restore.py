"""``compactor restore``: bring archived originals back.

For every original under ``--archive`` (or only those of one run: the archive copies its
scene log names, never a list inside report.json, and still only below ``--archive``):

* archived in GLACIER or DEEP_ARCHIVE without a restore: a restore is requested
  (``--tier``, ``--days``) and the original counts as pending;
* a restore still in progress: pending;
* readable (restored, or in an instantly readable class): hashed, copied back to the
  same relative key under ``--to`` in STANDARD with metadata, Content-Type, tags and
  encryption kept, and the copy checked against the hash.

An original already back at its target (same bytes) counts as restored; a target that
holds something else is never overwritten. Rerun until nothing is pending.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..archive import copy_part_size, digest_source, server_copy
from ..errors import CompactorError, ConfigError, StorageError
from ..gdal import is_sidecar_of, sidecar_names
from ..records import read_scene_log, scene_log_location
from ..storage import (
    ARCHIVE_CLASSES,
    LocalStore,
    Location,
    S3Options,
    S3Store,
    sha256_file,
    store_for,
)

log = logging.getLogger(__name__)

Outcome = Literal["restored", "already", "requested", "pending", "failed"]
_ONGOING = re.compile(r'ongoing-request="(true|false)"')


@dataclass
class RestoreResult:
    restored: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def waiting(self) -> int:
        return len(self.requested) + len(self.pending)

    @property
    def done(self) -> bool:
        return self.waiting == 0 and not self.failed


def _from_report(report: str, s3: S3Options) -> list[str]:
    """The archive copies of every scene not failed in one run: from its scene log, the
    ``scenes/`` folder next to its report.json (``report`` names the report or its folder).
    Nothing inside report.json is read: it may have been edited, and no list or location it
    holds is trusted (the caller still keeps every path below ``--archive``)."""
    loc = Location.parse(report)
    if not loc.key.endswith(".json"):
        loc = loc.as_prefix().join("report.json")
    folder = loc.url[: -len(loc.name)]
    try:
        return [
            s.archive
            for s in read_scene_log(scene_log_location(folder), s3)
            if s.archive and s.status != "failed"
        ]
    except StorageError as err:
        raise ConfigError(f"cannot read the scene log of the run report {loc.url}: {err}") from err


def _with_sidecars(sources: list[Location], s3: S3Options) -> list[Location]:
    """The archived originals and, beside each, the sidecars archived with it (a scene is
    a raster and its sidecars: :mod:`compactor.gdal._sidecars`): on S3 one listing of the
    keys that start with the raster's stem, in a directory a look at each name GDAL reads."""
    found: list[Location] = []
    for src in sources:
        found.append(src)
        store, name = store_for(src, s3), src.name
        folder = Location(src.scheme, src.bucket, src.key[: len(src.key) - len(name)])
        try:
            if src.is_s3:
                stem = name.rsplit(".", 1)[0] if "." in name else name
                listed = store.listing(Location(src.scheme, src.bucket, folder.key + stem))
                names = [Location.parse(i.url).key[len(folder.key) :] for i in listed]
            else:
                names = [n for n in sidecar_names(name) if store.head(folder.join(n)) is not None]
            found += [folder.join(n) for n in names if "/" not in n and is_sidecar_of(name, n)]
        except (StorageError, CompactorError) as err:
            log.warning("cannot look for the sidecars of %s: %s", src.url, err)
    return found


def restore_one(
    src: Location,
    target: Location,
    s3: S3Options,
    *,
    tier: str,
    days: int,
    multipart_threshold: int,
    part_size: int,
) -> tuple[Outcome, str]:
    store = store_for(src, s3)
    if isinstance(store, LocalStore):
        if store.head(src) is None:
            return "failed", "not in the archive"
        sha = sha256_file(src.key)
        if store.head(target) is not None:
            if sha256_file(target.key) == sha:
                return "already", ""
            return "failed", f"{target.url} holds a different file; not overwriting it"
        store.put_file(Path(src.key), target, sha256_hex=sha)
        return "restored", ""
    assert isinstance(store, S3Store)
    info = store.head(src)
    if info is None:
        return "failed", "not in the archive"
    existing = store.head(target)
    if existing is not None:
        same = existing.size == info.size and (
            (existing.checksum_sha256 and existing.checksum_sha256 == info.checksum_sha256)
            or (existing.etag == info.etag and "-" not in (info.etag or "-"))
        )
        if same:
            return "already", ""
    if info.storage_class in ARCHIVE_CLASSES:
        match = _ONGOING.search(info.restore or "")
        if match is None:
            store.restore(src, days=days, tier=tier)
            return "requested", ""
        if match.group(1) == "true":
            return "pending", ""
    if existing is not None:
        return "failed", f"{target.url} holds a different object; not overwriting it"
    multipart = info.size > multipart_threshold
    digest = digest_source(
        store, src, info.etag, copy_part_size(info.size, part_size) if multipart else None
    )
    server_copy(
        store, src, target, info, digest, "STANDARD",
        multipart_threshold=multipart_threshold, part_size=part_size,
    )  # fmt: skip
    return "restored", ""


def restore(
    archive: str,
    to: str,
    s3: S3Options,
    *,
    tier: str = "Bulk",
    days: int = 7,
    report: str | None = None,
    threads: int = 8,
    multipart_threshold: int = 5 * 1024**3,
    part_size: int = 512 * 1024**2,
    progress: Callable[[str, Outcome], None] | None = None,
) -> RestoreResult:
    """Request restores and copy back what is available; see the module docstring."""
    base = Location.parse(archive).as_prefix()
    dest = Location.parse(to).as_prefix()
    if base.is_s3 != dest.is_s3:
        raise ConfigError("--archive and --to must both be s3:// prefixes or both directories")
    if report:
        sources = [Location.parse(u) for u in _from_report(report, s3)]
        sources = _with_sidecars([s for s in sources if s.is_under(base)], s3)
    else:
        store = store_for(base, s3)
        try:
            sources = [Location.parse(i.url) for i in store.listing(base)]
        except StorageError as err:
            raise ConfigError(f"cannot list {base.url}: {err}") from err
    if not sources:
        raise ConfigError(
            f"nothing archived under {base.url}" + (f" for {report}" if report else "")
        )
    result = RestoreResult()

    def one(src: Location) -> tuple[Location, Outcome, str]:
        try:
            # Paths read from a report are data: both ends are rebuilt from the key below
            # the archive prefix, which must not leave either prefix (``..``, symlinks).
            relative = src.relative_to(base)
            src = base.join(relative)
            target = dest.join(relative)
            outcome, why = restore_one(
                src, target, s3, tier=tier, days=days,
                multipart_threshold=multipart_threshold, part_size=part_size,
            )  # fmt: skip
        except CompactorError as err:
            outcome, why = "failed", str(err)
        if progress:
            progress(src.url, outcome)
        return src, outcome, why

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for src, outcome, why in pool.map(one, sources):
            if outcome == "failed":
                result.failed.append((src.url, why))
            else:
                getattr(result, outcome).append(src.url)
    return result
