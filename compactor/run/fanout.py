"""The one fan-out of ``run``, ``plan`` and ``compare``: progress (the caller's callbacks,
or a live bar in a notebook), the cluster (the caller's client, or one connected for the
call and closed after), submitting, collecting as completed, and putting the results back
in the order of the items.

A task whose worker died (``KilledWorker``: the scheduler gave up on it) becomes a result
through ``task_died``; any other exception in a task is a bug and propagates, cancelling
what is still pending (as any error or Ctrl-C here does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from distributed import as_completed
from distributed.scheduler import KilledWorker

from ..cluster.local import connect
from ..cluster.versions import check_versions
from ..config import Settings
from .progress import NotebookProgress, in_notebook

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Progress(Generic[R]):
    """Where a fan-out reports: each result, the number of items, the dashboard's URL."""

    advance: Callable[[R], None] | None = None
    start: Callable[[int], None] | None = None
    dashboard: Callable[[str], None] | None = None


@contextmanager
def progress_of(
    title: str,
    progress: Callable[[R], None] | bool | None,
    *,
    on_start: Callable[[int], None] | None = None,
    on_dashboard: Callable[[str], None] | None = None,
    advance: Callable[[NotebookProgress, R], None] | None = None,
) -> Iterator[Progress[R]]:
    """The callbacks of one call. ``progress``: a callable given each result, ``False``
    (none), or ``None``: a live bar in a Jupyter notebook (nothing elsewhere: the library
    never prints). ``advance`` adapts a result to the bar (default: the result itself)."""
    if progress is None and in_notebook():
        with NotebookProgress(title) as bar:

            def step(result: R) -> None:
                if advance is not None:
                    advance(bar, result)
                else:
                    bar.advance(result)

            yield Progress(step, on_start or bar.start, on_dashboard or bar.dashboard)
        return
    yield Progress(progress if callable(progress) else None, on_start, on_dashboard)


def as_completed_results(
    client: Any,
    futures: Mapping[Any, T],
    task_died: Callable[[T, BaseException], R] | None = None,
) -> Iterator[tuple[T, R]]:
    """(item, result) for each future of ``futures`` (future -> item) as it completes. A
    task whose worker died gives ``task_died(item, error)`` (or raises without it); any
    error or Ctrl-C here cancels the tasks still pending."""
    try:
        for fut in as_completed(list(futures)):
            item = futures[fut]
            try:
                result = fut.result()
            except KilledWorker as err:
                if task_died is None:
                    raise
                result = task_died(item, err)
            yield item, result
    except BaseException:
        client.cancel(list(futures))
        raise


def fan_out(
    items: Sequence[T],
    submit: Callable[[Any, int, T], Any],
    *,
    settings: Settings,
    client: Any = None,
    progress: Progress[R] | None = None,
    task_died: Callable[[T, BaseException], R] | None = None,
) -> list[R]:
    """Run one task per item (``submit(client, index, item)`` returns its future) on
    ``client``, or on the cluster ``settings`` name (started for the call and closed
    after); the results in the order of ``items``."""
    progress = progress or Progress()

    def on(c: Any) -> list[R]:
        futures = {submit(c, i, item): i for i, item in enumerate(items)}
        results: dict[int, R] = {}

        def died(index: int, err: BaseException) -> R:
            assert task_died is not None
            return task_died(items[index], err)

        for index, result in as_completed_results(c, futures, died if task_died else None):
            results[index] = result
            if progress.advance is not None:
                progress.advance(result)
        return [results[i] for i in range(len(items))]

    if not items:
        return []
    if client is not None:
        check_versions(client)
        if progress.dashboard is not None and client.dashboard_link:
            progress.dashboard(client.dashboard_link)
        return on(client)
    with connect(settings.cluster, on_dashboard=progress.dashboard, settings=settings) as c:
        return on(c)
