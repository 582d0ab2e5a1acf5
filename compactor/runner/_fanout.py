"""The one fan-out of ``run``, ``plan`` and ``compare``: progress (the caller's callbacks,
or a live bar in a notebook), the cluster (the caller's client, or one connected for the
call and closed after), and :func:`stream`: submitting as tasks complete, never more in
flight than a small multiple of the cluster's threads (:class:`Bound`), so memory in the
client and load on the scheduler stay flat in the number of scenes.

A task whose worker died (``KilledWorker``: the scheduler gave up on it) becomes a result
through ``task_died``; any other exception in a task is a bug and propagates, cancelling
what is still pending (as any error or Ctrl-C here does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from distributed import as_completed
from distributed.scheduler import KilledWorker

from ..cluster import check_versions, connect
from ..settings import Settings, WorkerRange
from ._progress import NotebookProgress, in_notebook

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


def _outcome(fut: Any, item: T, task_died: Callable[[T, BaseException], R] | None) -> R:
    try:
        result: R = fut.result()
    except KilledWorker as err:
        if task_died is None:
            raise
        return task_died(item, err)
    return result


class Bound:
    """How many tasks may be in flight: ``per_thread`` times the cluster's worker threads,
    or the threads an adaptive cluster may grow to (so it sees enough backlog to scale
    up). The scheduler is asked at most every ``refresh`` seconds."""

    def __init__(self, client: Any, settings: Settings, *, refresh: float = 5.0):
        self.client = client
        self.per_thread = settings.tasks_per_thread
        workers = settings.cluster.workers
        self.ceiling = (
            workers.max * settings.cluster.threads_per_worker
            if isinstance(workers, WorkerRange)
            else 0
        )
        self.refresh = refresh
        self._threads = 0
        self._asked = -refresh

    @property
    def threads(self) -> int:
        now = time.monotonic()
        if now - self._asked >= self.refresh:
            self._asked = now
            self._threads = sum(self.client.nthreads().values()) or 1
        return self._threads

    def __call__(self) -> int:
        return max(MIN_IN_FLIGHT, self.per_thread * max(self.threads, self.ceiling))


#: Never fewer tasks in flight than this (a cluster still starting has no threads yet).
MIN_IN_FLIGHT = 4


def stream(
    client: Any,
    items: Iterable[T],
    submit: Callable[[Any, int, T], Any],
    *,
    bound: Callable[[], int],
    weight: Callable[[T], int] = lambda _item: 1,
    immediate: Callable[[T], R | None] = lambda _item: None,
    task_died: Callable[[T, BaseException], R] | None = None,
) -> Iterator[tuple[T, R]]:
    """(item, result) as tasks complete, submitting as they do: tasks in flight (each
    counted ``weight(item)``) stay within ``bound()``, so the client holds a bounded number
    of futures whatever the number of items, and ``items`` is consumed only as fast as
    the cluster works (a listing streams through). An item for which ``immediate`` gives a
    result becomes no task. Any error or Ctrl-C cancels the tasks in flight."""
    queue = as_completed(loop=client.loop)
    pending: dict[Any, tuple[T, int]] = {}
    ready: list[tuple[T, R]] = []
    source = iter(items)
    load = submitted = 0
    exhausted = False

    def refill() -> None:
        nonlocal load, submitted, exhausted
        limit = bound()
        while load < limit and not ready:
            try:
                item = next(source)
            except StopIteration:
                exhausted = True
                return
            now = immediate(item)
            if now is not None:
                ready.append((item, now))
                continue
            w = max(1, weight(item))
            fut = submit(client, submitted, item)
            submitted += 1
            pending[fut] = (item, w)
            load += w
            queue.add(fut)

    try:
        while True:
            refill()
            if ready:
                yield from ready
                ready.clear()
                continue
            if not pending:
                if exhausted:
                    return
                continue
            fut = next(queue)
            item, w = pending.pop(fut)
            load -= w
            result = _outcome(fut, item, task_died)
            fut.release()
            yield item, result
    except BaseException:
        client.cancel(list(pending))
        raise


@contextmanager
def cluster_for(
    settings: Settings, client: Any = None, progress: Progress[Any] | None = None
) -> Iterator[Any]:
    """The caller's client (its versions checked), or a cluster ``settings`` name, started
    for the call and closed after."""
    on_dashboard = progress.dashboard if progress is not None else None
    if client is not None:
        check_versions(client)
        if on_dashboard is not None and client.dashboard_link:
            on_dashboard(client.dashboard_link)
        yield client
        return
    with connect(settings.cluster, on_dashboard=on_dashboard, settings=settings) as c:
        yield c


@contextmanager
def early_cluster(
    settings: Settings,
    client: Any = None,
    progress: Progress[Any] | None = None,
    *,
    warm: Callable[[], None] | None = None,
) -> Iterator[Callable[[], Any]]:
    """The cluster of :func:`cluster_for`, a local one started now in a background thread
    (while the caller lists: starting the scheduler and the worker processes takes
    seconds): yields a function that waits for it and returns its client, to hand to
    :func:`fan_out` as ``started``. ``warm`` is then run on each of its workers (a
    module-level function of the tasks' module: loading it loads what the tasks import).
    The caller's client, or a cluster elsewhere, is connected only when asked for. Closed
    on exit, whether asked for or not."""
    with ExitStack() as stack:
        if client is not None or settings.cluster.kind != "local":

            def connected() -> Any:
                if not box:
                    box["client"] = stack.enter_context(cluster_for(settings, client, progress))
                return box["client"]

            box: dict[str, Any] = {}
            yield connected
            return

        # The cluster is entered and left in its own thread: a Client is a context manager
        # bound to the context (contextvars) it was entered in.
        started: dict[str, Any] = {}
        up, done = threading.Event(), threading.Event()

        def run() -> None:
            try:
                with cluster_for(settings) as c:
                    if warm is not None:
                        c.wait_for_workers(1)
                        c.run(warm)
                    started["client"] = c
                    up.set()
                    done.wait()
            except BaseException as err:  # raised where the client is asked for, or on exit
                started["error"] = err
            finally:
                up.set()

        thread = threading.Thread(target=run, name="compactor-cluster", daemon=True)
        thread.start()
        told: list[bool] = []

        def ready() -> Any:
            up.wait()
            if "client" not in started:
                raise started["error"]
            c = started["client"]
            if not told and progress is not None and progress.dashboard and c.dashboard_link:
                progress.dashboard(c.dashboard_link)
            told.append(True)
            return c

        try:
            yield ready
        finally:
            done.set()
            thread.join()
        if told and "error" in started:
            raise started["error"]  # closing the cluster failed


def fan_out(
    items: Sequence[T],
    submit: Callable[[Any, int, T], Any],
    *,
    settings: Settings,
    client: Any = None,
    progress: Progress[R] | None = None,
    task_died: Callable[[T, BaseException], R] | None = None,
    started: Callable[[], Any] | None = None,
) -> list[R]:
    """Run one task per item (``submit(client, index, item)`` returns its future) on
    ``client``, or on the cluster ``settings`` name (started for the call and closed
    after), or on the one ``started`` gives (:func:`early_cluster`); the results in the
    order of ``items``."""
    progress = progress or Progress()
    if not items:
        return []

    def died(pair: tuple[int, T], err: BaseException) -> R:
        assert task_died is not None
        return task_died(pair[1], err)

    results: dict[int, R] = {}
    cluster = cluster_for(settings, client, progress) if started is None else nullcontext(started())
    with cluster as c:
        for (index, _), result in stream(
            c,
            enumerate(items),
            lambda c_, _n, pair: submit(c_, pair[0], pair[1]),
            bound=Bound(c, settings),
            task_died=died if task_died is not None else None,
        ):
            results[index] = result
            if progress.advance is not None:
                progress.advance(result)
    return [results[i] for i in range(len(items))]
