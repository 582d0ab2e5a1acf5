"""The index of finished scenes: what lets a sweep skip, without a task or a request, every
scene an earlier run finished.

A scene is finished when this version of its source needs nothing more under the run's
settings: compacted (and archived, as the run said), left as it is (its COG would not be
smaller; an original in an archive class), or compacted and gone from the source (archived
to a prefix). As results arrive, the client appends one line per finished scene to the
index, ``<dest>/_compactor/index/<run-id>-<part>.ndjson.gz``: the source URL, the version
of it that was finished (:attr:`~compactor.storage.ObjectInfo.version`: ETag, size,
storage class, as a listing shows them), whether it was compacted or left, and the
condition it was finished under: for a compacted scene where originals go
(:meth:`~compactor.safety.spec.RunContext.finish_digest`: a run that archives after one
that did not has work left), for a scene left as it is the whole policy
(:meth:`~compactor.safety.spec.RunContext.policy_digest`: another policy tries again).

A run reads every part once (a handful of GETs: thousands of scenes a part), keeps two
64-bit hashes per finished scene in scope, and matches each listing page against them: a
listed object whose version was finished is counted, not submitted. Only new, changed or
unfinished scenes become tasks.

The index is a cache of the state records, never the authority: a part lost with a killed
client (at most the scenes of its last flush) only means those scenes get a task next
time, which finds their records done and indexes them again. Nothing is deleted or
skipped on the strength of the index that the records would not skip too.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..config import META_PREFIX
from ..errors import ObjectNotFound, PreconditionFailed, StorageError
from ..report.models import SceneResult
from ..storage import Location, ObjectInfo, Store

log = logging.getLogger(__name__)

#: A part of the index is written every this many finished scenes ...
PART_SCENES = 5000
#: ... or this many seconds, whichever comes first (and when the run ends).
PART_SECONDS = 30.0

#: Parts read at once.
READERS = 8
#: A run that reads more parts than this merges them into one.
CONSOLIDATE_AT = 32
PART_SUFFIX = ".ndjson.gz"

COMPACTED = "compacted"
LEFT = "left"


def index_root(dest: Location) -> Location:
    return dest.as_prefix().join(f"{META_PREFIX}/index/")


def _h(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _key(version: str, condition: str) -> int:
    return _h(f"{version}\0{condition}")


@dataclass(frozen=True)
class Entry:
    """One finished scene."""

    source: str
    version: str
    kind: str
    condition: str

    def key(self) -> int:
        """What a listed object must match: its version, under the same condition."""
        return _key(self.version, self.condition)


@dataclass(frozen=True)
class Conditions:
    """What a run finishes scenes under (see the module's docstring)."""

    finish: str
    policy: str

    def of(self, kind: str) -> str:
        return self.finish if kind == COMPACTED else self.policy


def entry_of(result: SceneResult, conditions: Conditions) -> Entry | None:
    """The index entry of a scene result, if the scene is finished."""
    if result.finished_version is None:
        return None
    kind = COMPACTED if result.output is not None else LEFT
    return Entry(result.source, result.finished_version, kind, conditions.of(kind))


class IndexWriter:
    """Appends finished scenes to the index in parts (client side, as results arrive)."""

    def __init__(
        self,
        store: Store,
        dest: Location,
        run_id: str,
        conditions: Conditions,
        *,
        part_scenes: int = PART_SCENES,
        part_seconds: float = PART_SECONDS,
    ):
        self.store = store
        self.root = index_root(dest)
        self.run_id = run_id
        self.conditions = conditions
        self.part_scenes = part_scenes
        self.part_seconds = part_seconds
        self.pending: list[Entry] = []
        self.parts = 0
        self.written = 0
        self._since = time.monotonic()

    def add(self, result: SceneResult) -> None:
        entry = entry_of(result, self.conditions)
        if entry is not None:
            self.pending.append(entry)
        if len(self.pending) >= self.part_scenes or (
            self.pending and time.monotonic() - self._since >= self.part_seconds
        ):
            self.flush()

    def flush(self) -> None:
        """Write what is pending as one part. A failure is logged, not raised: the index is
        a cache (the scenes get a task next time, which finds their records done)."""
        self._since = time.monotonic()
        if not self.pending:
            return
        lines = "".join(
            json.dumps(
                {"source": e.source, "version": e.version, "kind": e.kind, "on": e.condition},
                separators=(",", ":"),
            )
            + "\n"
            for e in self.pending
        )
        loc = self.root.join(f"{self.run_id}-{self.parts:05d}{PART_SUFFIX}")
        try:
            self.store.put_bytes(
                loc,
                gzip.compress(lines.encode(), mtime=0),
                content_type="application/x-ndjson",
                if_none_match=True,
            )
        except (StorageError, PreconditionFailed) as err:
            log.warning("could not write %s of the finished index: %s", loc.url, err)
            return
        self.parts += 1
        self.written += len(self.pending)
        self.pending = []

    def close(self) -> None:
        self.flush()


class FinishedIndex:
    """The finished scenes in scope, as sorted 64-bit hashes: source URL -> version key."""

    def __init__(self, urls: np.ndarray, keys: np.ndarray, parts: int):
        self.urls = urls
        self.keys = keys
        self.parts = parts
        self._seen = np.zeros(len(urls), dtype=bool)
        self.matched = 0

    @classmethod
    def empty(cls) -> FinishedIndex:
        return cls(np.zeros(0, np.uint64), np.zeros(0, np.uint64), 0)

    @classmethod
    def load(
        cls,
        store: Store,
        dest: Location,
        in_scope: Callable[[str], bool],
        *,
        consolidate: bool = False,
    ) -> FinishedIndex:
        """Read every part under ``dest`` (in run order: a later entry for a source wins),
        keeping the entries ``in_scope`` says are this run's. With ``consolidate`` (a run,
        never a dry run), more than :data:`CONSOLIDATE_AT` parts are merged into one, so a
        nightly sweep reads a handful of parts however many nights came before."""
        urls: list[int] = []
        keys: list[int] = []
        read: list[tuple[Location, bytes]] = []
        try:
            listing = list(store.listing(index_root(dest)))
        except ObjectNotFound:
            listing = []
        parts = [
            Location.parse(url)
            for url in sorted(i.url for i in listing)
            if url.endswith(PART_SUFFIX)
        ]

        def fetch(loc: Location) -> tuple[Location, bytes | None, bytes]:
            try:
                packed = store.read_bytes(loc)
                return loc, packed, gzip.decompress(packed)
            except (ObjectNotFound, OSError, EOFError) as err:
                log.warning("skipping part %s of the finished index: %s", loc.url, err)
                return loc, None, b""

        with ThreadPoolExecutor(READERS) as pool:  # in order, a few at a time
            for loc, packed, raw in pool.map(fetch, parts):
                if packed is None:
                    continue
                read.append((loc, packed))
                for line in raw.decode().splitlines():
                    entry = _parse(line)
                    if entry is not None and in_scope(entry.source):
                        urls.append(_h(entry.source))
                        keys.append(entry.key())
        if consolidate and len(read) > CONSOLIDATE_AT:
            _consolidate(store, read)
        return cls.of(urls, keys, len(read))

    @classmethod
    def of(cls, urls: Sequence[int], keys: Sequence[int], parts: int = 0) -> FinishedIndex:
        """From entries in order (the last one for a URL wins)."""
        u = np.asarray(urls, dtype=np.uint64)[::-1]
        k = np.asarray(keys, dtype=np.uint64)[::-1]
        unique, first = np.unique(u, return_index=True)  # first in reversed order = last
        return cls(unique, k[first], parts)

    def __len__(self) -> int:
        return len(self.urls)

    def finished(self, objects: Iterable[ObjectInfo], conditions: Conditions) -> list[bool]:
        """For each listed object: whether this version of it was finished under these
        conditions."""
        objs = list(objects)
        if not objs or not len(self.urls):
            return [False] * len(objs)
        h = np.fromiter((_h(o.url) for o in objs), dtype=np.uint64, count=len(objs))
        at = np.searchsorted(self.urls, h)
        at[at >= len(self.urls)] = 0
        found = self.urls[at] == h
        self._seen[at[found]] = True
        out = []
        for i, obj in enumerate(objs):
            done = bool(found[i]) and int(self.keys[at[i]]) in (
                _key(obj.version, conditions.finish),
                _key(obj.version, conditions.policy),
            )
            out.append(done)
        self.matched += sum(out)
        return out

    @property
    def earlier(self) -> int:
        """Scenes finished in earlier runs: those matched in this listing, plus those whose
        source was not listed at all (archived to a prefix, then deleted)."""
        return self.matched + int((~self._seen).sum())


def _consolidate(store: Store, parts: list[tuple[Location, bytes]]) -> None:
    """One part holding ``parts`` (gzip members concatenate into one valid gzip file, in
    order), written next to the last of them so it sorts where they did; then they are
    deleted. Another run reading meanwhile may miss a deleted part: its scenes then get a
    task, which finds them done. A failure here costs nothing but the merge."""
    last = parts[-1][0]
    merged = Location(last.scheme, last.bucket, last.key.removesuffix(PART_SUFFIX) + "~merged")
    target = Location(merged.scheme, merged.bucket, merged.key + PART_SUFFIX)
    try:
        store.put_bytes(
            target,
            b"".join(packed for _, packed in parts),
            content_type="application/x-ndjson",
            if_none_match=True,
        )
    except (StorageError, PreconditionFailed) as err:
        log.info("finished index not consolidated (%s)", err)
        return
    for loc, _ in parts:
        try:
            store.delete(loc)
        except StorageError as err:
            log.info("could not delete merged index part %s: %s", loc.url, err)
    log.info("consolidated %d parts of the finished index into %s", len(parts), target.url)


def _parse(line: str) -> Entry | None:
    try:
        data = json.loads(line)
        return Entry(str(data["source"]), str(data["version"]), str(data["kind"]), str(data["on"]))
    except (ValueError, KeyError, TypeError):
        return None
