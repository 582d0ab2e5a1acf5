"""The writing side of the index of finished scenes (see :mod:`._finished`): as results
arrive, the client appends one line per finished scene, a part at a time, to
``<dest>/_compactor/index/<run-id>-<part>.ndjson.gz``.
"""

from __future__ import annotations

import gzip
import json
import logging
import time

from ..errors import PreconditionFailed, StorageError
from ..records import SceneResult
from ..storage import Location, Store
from ._finished import COMPACTED, LEFT, PART_SUFFIX, Conditions, Entry, index_root

log = logging.getLogger(__name__)

#: A part of the index is written every this many finished scenes ...
PART_SCENES = 5000
#: ... or this many seconds, whichever comes first (and when the run ends).
PART_SECONDS = 30.0


def entry_of(result: SceneResult, conditions: Conditions) -> Entry | None:
    """The index entry of a scene result, if the scene is finished."""
    if result.finished_version is None:
        return None
    kind = COMPACTED if result.output is not None else LEFT
    return Entry(
        result.source, result.finished_version, kind, conditions.of(kind), result.finished_record
    )


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
        lines = "".join(_line(e) for e in self.pending)
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


def _line(e: Entry) -> str:
    fields = {"source": e.source, "version": e.version, "kind": e.kind, "on": e.condition}
    if e.record:
        fields["rec"] = e.record
    return json.dumps(fields, separators=(",", ":")) + "\n"
