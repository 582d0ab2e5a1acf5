"""What a scene task may use for its chunk tasks: a client to submit them with, and the
memory budget of one task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from distributed import get_worker, worker_client

#: Per-worker memory assumed when neither the settings nor Dask know it.
DEFAULT_WORKER_MEMORY = 4 * 1024**3
#: Share of a worker's memory limit its tasks may plan to use: the rest is the worker
#: itself (Python, GDAL, OpenCV, Dask) and headroom.
TASK_SHARE = 0.5


@contextmanager
def cluster_context(worker_memory: int | None) -> Iterator[tuple[Any, int, int]]:
    """Inside a Dask task: (a client to submit sub-tasks with, the memory budget of one
    task in bytes, the number of worker threads in the cluster). The worker memory limit
    comes from the run's settings (``worker_memory``) or else from the cluster itself.
    Outside a worker: no client (sub-tasks run in this process), and this machine's share."""
    try:
        worker = get_worker()
    except ValueError:
        yield None, int((worker_memory or DEFAULT_WORKER_MEMORY) * TASK_SHARE), 1
        return
    with worker_client() as client:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        threads = sum(int(w.get("nthreads", 1)) for w in workers) or 1
        limits = [
            int(w.get("memory_limit") or 0) / max(1, int(w.get("nthreads", 1))) for w in workers
        ]
        known = [v for v in limits if v > 0]
        per_thread = (
            worker_memory / max(1, worker.state.nthreads)
            if worker_memory
            else (min(known) if known else DEFAULT_WORKER_MEMORY)
        )
        yield client, int(per_thread * TASK_SHARE), threads
