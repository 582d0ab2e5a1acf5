"""Stage timers: where a scene task's time goes (read, encode, verification decode, SSIM ...).

Inert unless a caller collects (:func:`collecting`, one scene task does): :func:`stage`
then adds the seconds spent inside it to the stage's total, **exclusive** of the stages
nested inside it, so the totals of one collection add up to the time covered and never
count a second twice. Per thread of control (a :mod:`contextvars` variable): the tasks a
Dask worker runs in its threads each collect their own. Costs two ``perf_counter`` calls
per stage; nothing is logged or printed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class _Collection:
    totals: dict[str, float] = field(default_factory=dict)
    #: Seconds spent in stages nested in each open stage, innermost last.
    nested: list[float] = field(default_factory=list)


_current: ContextVar[_Collection | None] = ContextVar("compactor_timing", default=None)


@contextmanager
def collecting() -> Iterator[dict[str, float]]:
    """Collect the stages run inside; yields the totals (seconds by stage), filled as they
    end. Collections do not nest: an inner one collects alone until it ends."""
    collection = _Collection()
    token = _current.set(collection)
    try:
        yield collection.totals
    finally:
        _current.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Count the time inside (less nested stages) toward ``name``, when collecting."""
    collection = _current.get()
    if collection is None:
        yield
        return
    collection.nested.append(0.0)
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        inner = collection.nested.pop()
        totals = collection.totals
        totals[name] = totals.get(name, 0.0) + elapsed - inner
        if collection.nested:
            collection.nested[-1] += elapsed


def add(name: str, seconds: float) -> None:
    """Count ``seconds`` measured elsewhere toward ``name`` (e.g. by a callee's clock)."""
    collection = _current.get()
    if collection is not None:
        collection.totals[name] = collection.totals.get(name, 0.0) + seconds
        if collection.nested:
            collection.nested[-1] += seconds
