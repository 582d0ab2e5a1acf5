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
(:meth:`~compactor.scene._spec.RunContext.finish_digest`: a run that archives after one
that did not has work left), for a scene left as it is the whole policy
(:meth:`~compactor.scene._spec.RunContext.policy_digest`: another policy tries again).

A run reads every part once (a handful of GETs: thousands of scenes a part), keeps three
64-bit hashes per finished scene in scope, and matches each listing page against them: a
listed object whose version was finished is counted, not submitted. Only new, changed or
unfinished scenes become tasks.

The index is a cache of the state records, never the authority, and it is read back from
the destination, where anyone who can write there may have forged it:

* Each entry names the ETag of the scene's state record as the task that finished it
  left it (``rec``). An entry counts only if that record is still there with that ETag
  (:class:`Records`: one LIST of the state records in scope, 1 request per 1,000
  records, made only when the index has entries in scope), or if the listed object is
  in an archive class (a task would leave it as it is anyway). An entry without ``rec``
  (written before runs recorded it), or whose record is gone or was rewritten, is not
  trusted: the scene gets a task, which finds its record done and indexes it again. A
  forged entry therefore skips a scene only if its forger also knows the ETag of that
  scene's current record (read access to ``_compactor/state/``) or wrote the record
  too; such a scene is still reported as finished earlier, never silently dropped.
* A part is read streaming, with bounds: at most :data:`MAX_PART_BYTES` decompressed,
  lines of at most :data:`MAX_LINE` bytes, :data:`MAX_BAD_LINES` unreadable lines. A part
  past a bound, or one that is not gzip (a corrupt part, a gzip bomb), is ignored whole
  with a warning; an unreadable line is skipped. Ignoring costs only tasks.

A part lost with a killed client (at most the scenes of its last flush) likewise only
means those scenes get a task next time. Nothing is deleted or skipped on the strength of
the index that the records would not skip too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import zlib
from array import array
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import ObjectNotFound, PreconditionFailed, StorageError
from ..records import source_of_state_key, state_prefix_for, state_root
from ..settings import META_PREFIX
from ..storage import ARCHIVE_CLASSES, Location, ObjectInfo, Store

log = logging.getLogger(__name__)

#: Parts read at once.
READERS = 8
#: A run that reads more parts than this merges them into one.
CONSOLIDATE_AT = 32
PART_SUFFIX = ".ndjson.gz"
#: Bounds on one part as read back (it may be forged): its decompressed bytes (a merged
#: part holds about a million scenes below it; :func:`_consolidate` keeps merged parts
#: under it), the longest line, and how many unreadable lines it may hold. Past any of
#: them, or not gzip at all, the part is ignored whole.
MAX_PART_BYTES = 256 * 1024 * 1024
MAX_LINE = 64 * 1024
MAX_BAD_LINES = 100
#: Decompressed bytes taken at a time.
READ_CHUNK = 1024 * 1024

COMPACTED = "compacted"
LEFT = "left"


def index_root(dest: Location) -> Location:
    return dest.as_prefix().join(f"{META_PREFIX}/index/")


def _h(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _key(version: str, condition: str) -> int:
    return _h(f"{version}\0{condition}")


def _record_hash(etag: str | None) -> int:
    """What an entry and a listed state record are compared by (0: no record)."""
    return (_h(etag) or 1) if etag else 0


@dataclass(frozen=True)
class Entry:
    """One finished scene."""

    source: str
    version: str
    kind: str
    condition: str
    #: The ETag of the scene's state record as the task that finished it left it
    #: (``None``: no record, or an entry of a run before records were confirmed).
    record: str | None = None

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


class Records:
    """The state records in scope, as sorted 64-bit hashes: source URL -> record ETag.
    What index entries are confirmed against (see the module's docstring)."""

    def __init__(self, urls: np.ndarray, etags: np.ndarray, listed: int = 0):
        self.urls = urls
        self.etags = etags
        #: Records listed (in scope or not).
        self.listed = listed

    @classmethod
    def empty(cls) -> Records:
        return cls(np.zeros(0, np.uint64), np.zeros(0, np.uint64))

    @classmethod
    def load(cls, store: Store, dest: Location, prefix: Location) -> Records:
        """One LIST of the state records of the sources below ``prefix`` (1 request per
        1,000 records). A listing that fails leaves no record confirmed: every indexed
        scene gets a task (logged)."""
        root = state_root(dest)
        base = root.join(state_prefix_for(prefix.as_prefix()))
        at = len(root.url)
        urls, etags = array("Q"), array("Q")
        listed = 0
        try:
            for info in store.listing(base):
                listed += 1
                source = source_of_state_key(info.url[at:])
                if source is not None and info.etag:
                    urls.append(_h(source.url))
                    etags.append(_record_hash(info.etag))
        except ObjectNotFound:
            pass
        except StorageError as err:
            log.warning(
                "cannot list the state records under %s (%s): scenes in the finished index "
                "get a task this time", base.url, err,
            )  # fmt: skip
            return cls.empty()
        u = np.frombuffer(urls, dtype=np.uint64) if urls else np.zeros(0, np.uint64)
        e = np.frombuffer(etags, dtype=np.uint64) if etags else np.zeros(0, np.uint64)
        order = np.argsort(u, kind="stable")
        return cls(u[order], e[order], listed)

    def __len__(self) -> int:
        return len(self.urls)

    def of(self, url_hashes: np.ndarray) -> np.ndarray:
        """The record hash of each source (0: no record)."""
        out = np.zeros(len(url_hashes), dtype=np.uint64)
        if not len(self.urls) or not len(url_hashes):
            return out
        at = np.searchsorted(self.urls, url_hashes)
        at[at >= len(self.urls)] = 0
        found = self.urls[at] == url_hashes
        out[found] = self.etags[at[found]]
        return out


class FinishedIndex:
    """The finished scenes in scope, as sorted 64-bit hashes: source URL -> version key,
    and the ETag of the state record the entry was written with (0: none)."""

    def __init__(
        self, urls: np.ndarray, keys: np.ndarray, parts: int, records: np.ndarray | None = None
    ):
        self.urls = urls
        self.keys = keys
        self.records = records if records is not None else np.zeros(len(urls), np.uint64)
        self.parts = parts
        self._seen = np.zeros(len(urls), dtype=bool)
        self.matched = 0
        #: Entries that matched a listed version but were not confirmed by a record.
        self.unconfirmed = 0
        #: The state records entries are confirmed against (:meth:`confirm_with`);
        #: ``None``: entries are taken as they are (tests of the index alone).
        self.confirmed_by: Records | None = None

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
        keeping the entries ``in_scope`` says are this run's. A part that is not gzip, or
        past a bound (:data:`MAX_PART_BYTES`, :data:`MAX_LINE`, :data:`MAX_BAD_LINES`), is
        ignored with a warning. With ``consolidate`` (a run, never a dry run), more than
        :data:`CONSOLIDATE_AT` parts are merged (into parts below :data:`MAX_PART_BYTES`),
        so a nightly sweep reads a handful of parts however many nights came before."""
        urls, keys, records = array("Q"), array("Q"), array("Q")
        read: list[tuple[Location, bytes, int]] = []
        parts = _listed_parts(store, dest)

        def fetch(loc: Location) -> tuple[Location, bytes, list[Entry] | None, int]:
            try:
                packed = store.read_bytes(loc)
            except StorageError as err:
                log.warning("skipping part %s of the finished index: %s", loc.url, err)
                return loc, b"", None, 0
            if len(packed) > MAX_PART_BYTES:
                log.warning("ignoring part %s of the finished index: too large", loc.url)
                return loc, b"", None, 0
            entries, size = read_part(packed, loc.url)
            return loc, packed, entries, size

        with ThreadPoolExecutor(READERS) as pool:  # in order, a few at a time
            for loc, packed, entries, size in pool.map(fetch, parts):
                if entries is None:
                    continue
                read.append((loc, packed, size))
                for entry in entries:
                    if in_scope(entry.source):
                        urls.append(_h(entry.source))
                        keys.append(entry.key())
                        records.append(_record_hash(entry.record))
        if consolidate and len(read) > CONSOLIDATE_AT:
            _consolidate(store, read)
        return cls.of(urls, keys, len(read), records)

    @classmethod
    def of(
        cls,
        urls: Sequence[int],
        keys: Sequence[int],
        parts: int = 0,
        records: Sequence[int] | None = None,
    ) -> FinishedIndex:
        """From entries in order (the last one for a URL wins)."""
        u = np.asarray(urls, dtype=np.uint64)[::-1]
        k = np.asarray(keys, dtype=np.uint64)[::-1]
        r = (
            np.asarray(records, dtype=np.uint64)[::-1]
            if records is not None
            else np.zeros(len(u), np.uint64)
        )
        unique, first = np.unique(u, return_index=True)  # first in reversed order = last
        return cls(unique, k[first], parts, r[first])

    def __len__(self) -> int:
        return len(self.urls)

    def confirm_with(self, records: Records) -> None:
        """From now on an entry counts only if ``records`` holds its state record with the
        ETag the entry names, or the listed object is in an archive class."""
        self.confirmed_by = records

    def finished(self, objects: Iterable[ObjectInfo], conditions: Conditions) -> list[bool]:
        """For each listed object: whether this version of it was finished under these
        conditions (and the entry is confirmed, see :meth:`confirm_with`)."""
        objs = list(objects)
        if not objs or not len(self.urls):
            return [False] * len(objs)
        h = np.fromiter((_h(o.url) for o in objs), dtype=np.uint64, count=len(objs))
        at = np.searchsorted(self.urls, h)
        at[at >= len(self.urls)] = 0
        found = self.urls[at] == h
        self._seen[at[found]] = True
        confirmed = np.ones(len(objs), dtype=bool)
        if self.confirmed_by is not None:
            entry_records = self.records[at]
            confirmed = (entry_records != 0) & (self.confirmed_by.of(h) == entry_records)
        out = []
        for i, obj in enumerate(objs):
            done = bool(found[i]) and int(self.keys[at[i]]) in (
                _key(obj.version, conditions.finish),
                _key(obj.version, conditions.policy),
            )
            if done and not confirmed[i] and obj.storage_class not in ARCHIVE_CLASSES:
                self.unconfirmed += 1
                done = False
            out.append(done)
        self.matched += sum(out)
        return out

    @property
    def earlier(self) -> int:
        """Scenes finished in earlier runs: those matched in this listing, plus those whose
        source was not listed at all (archived to a prefix, then deleted) and whose entry
        is confirmed by its record."""
        unseen = ~self._seen
        if self.confirmed_by is not None:
            unseen &= (self.records != 0) & (self.confirmed_by.of(self.urls) == self.records)
        return self.matched + int(unseen.sum())


def _listed_parts(store: Store, dest: Location) -> list[Location]:
    """The parts of the index under ``dest``, in run order; those listed past
    :data:`MAX_PART_BYTES` left out (logged). A listing that fails lists none (logged)."""
    try:
        listing = list(store.listing(index_root(dest)))
    except ObjectNotFound:
        listing = []
    except StorageError as err:
        log.warning("cannot list the finished index (%s): every scene gets a task", err)
        listing = []
    parts: list[Location] = []
    for info in sorted(listing, key=lambda i: i.url):
        if not info.url.endswith(PART_SUFFIX):
            continue
        if info.size > MAX_PART_BYTES:
            log.warning(
                "ignoring part %s of the finished index: %d bytes (at most %d)",
                info.url, info.size, MAX_PART_BYTES,
            )  # fmt: skip
            continue
        parts.append(Location.parse(info.url))
    return parts


def read_part(packed: bytes, url: str) -> tuple[list[Entry] | None, int]:
    """The entries of one part and its decompressed size, read streaming within the
    bounds; ``None`` (logged) for a part to ignore whole. Unreadable lines are skipped."""
    entries: list[Entry] = []
    bad = total = 0
    tail = b""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as stream:
            while True:
                chunk = stream.read(READ_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > MAX_PART_BYTES:
                    log.warning(
                        "ignoring part %s of the finished index: over %d bytes decompressed",
                        url, MAX_PART_BYTES,
                    )  # fmt: skip
                    return None, total
                lines = (tail + chunk).split(b"\n")
                tail = lines.pop()
                if len(tail) > MAX_LINE:
                    log.warning(
                        "ignoring part %s of the finished index: a line of over %d bytes",
                        url, MAX_LINE,
                    )  # fmt: skip
                    return None, total
                for line in lines:
                    entry = _parse(line)
                    if entry is None:
                        bad += 1
                        if bad > MAX_BAD_LINES:
                            log.warning(
                                "ignoring part %s of the finished index: over %d unreadable "
                                "lines", url, MAX_BAD_LINES,
                            )  # fmt: skip
                            return None, total
                    else:
                        entries.append(entry)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        log.warning("ignoring part %s of the finished index: %s", url, err)
        return None, total
    if tail:
        entry = _parse(tail)
        if entry is None:
            bad += 1
        else:
            entries.append(entry)
    if bad:
        log.warning("part %s of the finished index: %d unreadable lines skipped", url, bad)
    return entries, total


def _consolidate(store: Store, parts: list[tuple[Location, bytes, int]]) -> None:
    """Neighbouring parts merged into parts of at most :data:`MAX_PART_BYTES`
    decompressed (gzip members concatenate into one valid gzip file, in order), each
    written next to the last part it holds so it sorts where they did; then they are
    deleted. A part that fills a merged part alone is left as it is. Another run reading
    meanwhile may miss a deleted part: its scenes then get a task, which finds them done.
    A failure here costs nothing but the merge."""
    groups: list[list[tuple[Location, bytes, int]]] = [[]]
    size = 0
    for part in parts:
        if groups[-1] and size + part[2] > MAX_PART_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(part)
        size += part[2]
    for group in groups:
        if len(group) > 1:
            _merge(store, [(loc, packed) for loc, packed, _ in group])


def _merge(store: Store, parts: list[tuple[Location, bytes]]) -> None:
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


def _parse(line: bytes | str) -> Entry | None:
    try:
        data = json.loads(line)
        record = data.get("rec")
        return Entry(
            str(data["source"]),
            str(data["version"]),
            str(data["kind"]),
            str(data["on"]),
            record if isinstance(record, str) and record else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):  # UnicodeDecodeError too
        return None
