"""What a listing's objects are filtered by: the ``--include``/``--exclude`` globs, and
size, last-modified window and storage class; and the runs of keys whose outputs may
collide.
"""

from __future__ import annotations

import fnmatch
import functools
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from ..settings import Settings
from ..storage import ObjectInfo

T = TypeVar("T")


@dataclass(frozen=True)
class _Globs:
    """Globs compiled once: one regex for the name-only ones, one for the key ones."""

    names: re.Pattern[str] | None
    keys: re.Pattern[str] | None

    def match(self, relative: str) -> bool:
        rel = relative.lower()
        if self.names is not None and self.names.fullmatch(rel.rsplit("/", 1)[-1]):
            return True
        return self.keys is not None and self.keys.fullmatch(rel) is not None


@functools.lru_cache(maxsize=64)
def _globs(patterns: tuple[str, ...]) -> _Globs:
    def one(group: list[str]) -> re.Pattern[str] | None:
        if not group:
            return None
        return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in group), re.S)

    lowered = [p.lower() for p in patterns]
    return _Globs(one([p for p in lowered if "/" not in p]), one([p for p in lowered if "/" in p]))


def selected(info: ObjectInfo, settings: Settings) -> bool:
    """Whether an object passes the filters on what a listing says of it: size, last
    modified, storage class."""
    if settings.min_size is not None and info.size < settings.min_size:
        return False
    if settings.max_size is not None and info.size > settings.max_size:
        return False
    if settings.source_classes and info.storage_class not in settings.source_classes:
        return False
    if settings.modified_since or settings.modified_before:
        mtime = _when(info.mtime)
        if mtime is None:
            return False
        if settings.modified_since and mtime < _utc(settings.modified_since):
            return False
        if settings.modified_before and mtime >= _utc(settings.modified_before):
            return False
    return True


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def collision_runs(rels: Iterable[T], key: Callable[[T], str]) -> Iterator[list[T]]:
    """Consecutive items whose outputs may collide (``a.tif``, ``a.jp2`` -> ``a.tif``),
    from a stream in key order. Outputs collide only between names in one folder sharing
    the part before the first dot, and in key order those are next to each other (strings
    with a common prefix are contiguous), so a run ends as soon as a key does not start
    with the run's folder and first-dot stem: memory is one run, not the listing."""
    run: list[T] = []
    anchor = ""
    for item in rels:
        rel = key(item)
        if run and rel.startswith(anchor):
            run.append(item)
            continue
        if run:
            yield run
        anchor = _anchor(rel)
        run = [item]
    if run:
        yield run


def _anchor(rel: str) -> str:
    """The folder and first-dot stem of ``rel`` and a dot (``a/b.c.tif`` -> ``a/b.``),
    as ``posixpath`` gives them; string slicing where the folder has no trailing or
    leading ``/`` to strip (every key that passed :func:`key_problem`)."""
    cut = rel.rfind("/")
    if cut > 0 and rel[cut - 1] != "/":
        return rel[: cut + 1] + rel[cut + 1 :].split(".", 1)[0] + "."
    if cut < 0:
        return rel.split(".", 1)[0] + "."
    head, name = posixpath.split(rel)
    return posixpath.join(head, name.split(".", 1)[0]) + "."
