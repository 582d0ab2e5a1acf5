"""The scene log: every scene's full :class:`SceneResult`, appended as the scene finishes,
in parts next to the run's report.

``<report>/scenes/part-00000.ndjson.gz``, ``part-00001.ndjson.gz`` ...: gzipped NDJSON, one
``SceneResult`` per line, in the order the scenes finished. Each part is one object,
written atomically by the library's store (one PUT on S3, a renamed temp file on disk), so
a reader never sees half a part. A part is written every :data:`FLUSH_EVERY` results or
once the oldest unwritten result is :data:`FLUSH_SECONDS` old, whichever comes first, and
on close (also when the run stops on an error or Ctrl-C): a client killed outright loses at
most the results since the last part. The report then needs only bounded state however
many scenes a run has (:mod:`compactor.report._recorder`).

Read it back with :func:`read_scene_log`, :meth:`Report.scene_results
<compactor.records._results.Report.scene_results>`, or pandas
(``pd.read_json(part, lines=True)`` on each part).
"""

from __future__ import annotations

import gzip
import logging
import re
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from ..errors import ObjectNotFound, StorageError
from ..storage import Location, S3Options, store_for
from ._results import SceneLog, SceneResult

if TYPE_CHECKING:  # pandas is imported only when a DataFrame is asked for
    import pandas as pd

log = logging.getLogger(__name__)

#: The scene log's folder below the report's.
SCENE_LOG_FOLDER = "scenes/"
#: A part is written every this many results...
FLUSH_EVERY = 1000
#: ...or once its oldest result has waited this many seconds, whichever comes first.
FLUSH_SECONDS = 10.0

PART_RE = re.compile(r"^part-(\d+)\.ndjson\.gz$")


def part_name(index: int) -> str:
    return f"part-{index:05d}.ndjson.gz"


def scene_log_location(report_location: str) -> str:
    """The scene log's folder for a report written under ``report_location``."""
    return Location.parse(report_location).as_prefix().join(SCENE_LOG_FOLDER).url


def _parts(store_location: Location, s3: S3Options) -> list[tuple[int, Location, str | None]]:
    """(index, location, ETag) of the parts directly in ``store_location``, in order."""
    store = store_for(store_location, s3)
    found = []
    try:
        for info in store.listing(store_location):
            loc = Location.parse(info.url)
            match = PART_RE.match(loc.relative_to(store_location))
            if match:
                found.append((int(match[1]), loc, info.etag))
    except ObjectNotFound:  # a local folder that does not exist (yet): no parts
        return []
    return sorted(found, key=lambda p: p[0])


class SceneLogWriter:
    """Appends results to the scene log at ``location`` (a folder), a part at a time.

    Opening it removes the parts an earlier run left at the same place (a ``--report``
    given again), so the folder only ever holds this run's log; a ``fresh`` location (the
    run's own folder, named by its run id) is not listed for them. A background thread writes
    a part whose oldest result has waited ``flush_seconds`` while no new result arrives;
    ``flush_every`` results write one at once. A part that cannot be written is logged and
    its results stay buffered for the next one; :meth:`close` raises if the last write
    fails (the log would be incomplete).
    """

    def __init__(
        self,
        location: str,
        s3: S3Options,
        *,
        flush_every: int = FLUSH_EVERY,
        flush_seconds: float = FLUSH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        fresh: bool = False,
    ):
        self.location = Location.parse(location).as_prefix()
        self._store = store_for(self.location, s3)
        self._s3 = s3
        self.flush_every = max(1, flush_every)
        self.flush_seconds = flush_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._lines: list[bytes] = []
        self._oldest: float | None = None
        #: After a failed write, no new attempt before this time (a store that is down is
        #: not hammered with one attempt per result).
        self._retry_after = 0.0
        #: Parts and scenes written so far.
        self.parts = 0
        self.scenes = 0
        self.closed = False
        if not fresh:
            self._remove_earlier_parts()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        if flush_seconds > 0:
            self._timer = threading.Thread(
                target=_flush_when_due,
                args=(weakref.ref(self), self._stop, min(1.0, flush_seconds / 4)),
                name="compactor-scene-log",
                daemon=True,
            )
            self._timer.start()

    def _remove_earlier_parts(self) -> None:
        earlier = _parts(self.location, self._s3)
        if not earlier:
            return
        log.warning(
            "replacing the scene log of an earlier run at %s (%d parts)",
            self.location.url, len(earlier),
        )  # fmt: skip
        for _, loc, etag in earlier:
            try:
                self._store.delete(loc, if_match=etag)
            except ObjectNotFound:
                continue

    @property
    def summary(self) -> SceneLog:
        return SceneLog(location=self.location.url, parts=self.parts, scenes=self.scenes)

    @property
    def pending(self) -> int:
        """Results not written yet."""
        return len(self._lines)

    def append(self, result: SceneResult) -> None:
        """Buffer ``result``; write a part when ``flush_every`` are waiting or the oldest
        has waited ``flush_seconds``."""
        line = result.model_dump_json().encode() + b"\n"
        with self._lock:
            if self.closed:
                raise RuntimeError("the scene log is closed")
            if self._oldest is None:
                self._oldest = self._clock()
            self._lines.append(line)
            if self._due(full=len(self._lines) >= self.flush_every):
                self._write(strict=False)

    def _due(self, *, full: bool = False) -> bool:
        now = self._clock()
        if self._oldest is None or now < self._retry_after:
            return False
        return full or now - self._oldest >= self.flush_seconds

    def flush_if_due(self) -> None:
        with self._lock:
            if not self.closed and self._due():
                self._write(strict=False)

    def flush(self) -> None:
        """Write what is buffered as a part now (raises if it cannot)."""
        with self._lock:
            self._write(strict=True)

    def _write(self, *, strict: bool) -> None:
        """Write the buffered results as the next part (the lock is held)."""
        if not self._lines:
            return
        data = gzip.compress(b"".join(self._lines), compresslevel=6, mtime=0)
        target = self.location.join(part_name(self.parts))
        try:
            self._store.put_bytes(target, data, content_type="application/gzip")  # of NDJSON
        except StorageError as err:
            if strict:
                raise
            log.warning(
                "writing %s failed (%s); its %d results go with the next part",
                target.url, err, len(self._lines),
            )  # fmt: skip
            self._retry_after = self._clock() + max(self.flush_seconds, 1.0)
            return
        log.debug("scene log: %s, %d results", target.url, len(self._lines))
        self.parts += 1
        self.scenes += len(self._lines)
        self._lines = []
        self._oldest = None

    def close(self) -> SceneLog:
        """Write the last part and stop; idempotent. Returns where the log is."""
        self._stop.set()
        with self._lock:
            if not self.closed:
                try:
                    self._write(strict=True)
                finally:
                    self.closed = True
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.join(timeout=5)
        return self.summary

    def __enter__(self) -> SceneLogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # keep what finished, without hiding why the run stopped
            self.close()
        except StorageError as err:
            log.error("the last part of the scene log at %s was not written: %s",
                      self.location.url, err)  # fmt: skip


def _flush_when_due(
    ref: weakref.ref[SceneLogWriter], stop: threading.Event, interval: float
) -> None:
    """The writer's timer: holds it only weakly, so an abandoned writer is not kept alive
    (and writes nothing more) once nothing else refers to it."""
    while not stop.wait(interval):
        writer = ref()
        if writer is None:
            return
        writer.flush_if_due()
        del writer


def read_scene_log(location: str, s3: S3Options | None = None) -> Iterator[SceneResult]:
    """Every :class:`SceneResult` in the scene log at ``location`` (its folder, or the
    report's folder holding it in ``scenes/``), part after part, in the order the scenes
    finished. Lazy: one part is in memory at a time. ``s3``: how to reach S3 (default:
    boto3's own configuration, ``AWS_ENDPOINT_URL`` included)."""
    s3 = s3 or S3Options()
    base = Location.parse(location).as_prefix()
    parts = _parts(base, s3)
    if not parts:
        parts = _parts(base.join(SCENE_LOG_FOLDER), s3)
    store = store_for(base, s3)
    for _, loc, _ in parts:
        data = store.read_bytes(loc)
        try:
            results = [
                SceneResult.model_validate_json(line)
                for line in gzip.decompress(data).splitlines()
                if line.strip()
            ]
        except (OSError, EOFError, zlib.error, ValueError) as err:  # ValidationError too
            raise StorageError(
                f"{loc.url} is not a part of a scene log: {err}", url=loc.url
            ) from err
        yield from results


#: Columns of :func:`scenes_dataframe`: the scalar fields of a SceneResult, and the ratio.
FRAME_COLUMNS = (
    *(name for name in SceneResult.model_fields if name not in ("attempts", "search")),
    "ratio",
)


def scenes_dataframe(results: Iterable[SceneResult]) -> pd.DataFrame:
    """One row per result with :data:`FRAME_COLUMNS` (nested ``attempts`` and ``search``
    left out); integer columns keep missing values as ``<NA>``."""
    import pandas as pd

    rows = ({**r.model_dump(exclude={"attempts", "search"}), "ratio": r.ratio} for r in results)
    df = pd.DataFrame.from_records(rows, columns=list(FRAME_COLUMNS))
    ints = {c: "Int64" for c in ("quality", "bytes_in", "bytes_out", "width", "height",
                                 "bands", "chunks")}  # fmt: skip
    return df.astype(ints)
