"""What a scene task may use for its chunk tasks: a client to submit them with, and the
memory budget of one task.

The budget is Dask's own arithmetic, not a guess: a worker pauses when its process memory
reaches ``distributed.worker.memory.pause`` of its limit (and is restarted at
``terminate``), so a chunk task may plan on what lies between a worker's own footprint
(:data:`BASELINE`: Python, GDAL, OpenCV, Dask, measured) and that threshold, less a margin,
shared among the worker's threads. The footprint is a constant, not the memory a worker
reports at the moment: that moment's reading includes other scenes' running tasks, and a
plan must not change with them (nor refuse a scene because a worker was busy).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dask
from distributed import get_worker, worker_client

log = logging.getLogger(__name__)

#: Per-worker memory assumed when neither the settings nor Dask know it.
DEFAULT_WORKER_MEMORY = 4 * 1024**3
#: Share of the room below the pause threshold that chunk tasks plan to use: the rest is the
#: margin for the allocator's fragmentation, the scene task's own data and measurement noise.
HEADROOM = 0.85
#: What a worker's process holds besides its tasks (measured: 135 MB idle with compactor,
#: GDAL and OpenCV loaded; about 170 MB after a few chunk tasks, what the allocator keeps)
#: plus the compiled SSIM kernel: numba and LLVM add 41 MB to every worker forked from a
#: fork server that loaded it (``compactor.fidelity._ssim_u8``), less the 24 MB of pandas,
#: which workers no longer import (measured in a forked worker after one SSIM: 137 -> 154 MB).
#: Workers of a run that writes lossless scenes only do not load numba (the fork server's
#: preload follows the codec): for them the same budget leaves 41 MB more margin.
BASELINE = (170 + 17) * 1024**2


def memory_threshold() -> float:
    """The fraction of its limit at which a Dask worker stops taking tasks: ``pause``,
    else ``terminate``, else the limit itself (both disabled)."""
    for name in ("pause", "terminate"):
        value = dask.config.get(f"distributed.worker.memory.{name}", default=False)
        if value:
            return float(value)
    return 1.0


@dataclass(frozen=True)
class Budget:
    """The arithmetic behind a chunk task's memory budget (bytes), for the log and tests."""

    limit: int
    threshold: float
    baseline: int
    threads_per_worker: int

    @property
    def per_task(self) -> int:
        room = self.limit * self.threshold - self.baseline
        return max(0, int(room * HEADROOM / max(1, self.threads_per_worker)))


@contextmanager
def cluster_context(worker_memory: int | None) -> Iterator[tuple[Any, int, int]]:
    """Inside a Dask task: (a client to submit sub-tasks with, the memory budget of one
    task in bytes, the number of worker threads in the cluster). The worker memory limit
    comes from the run's settings (``worker_memory``) or else from the cluster itself; on a
    cluster of unequal workers the smallest budget counts (chunk tasks go anywhere).
    Outside a worker: no client (sub-tasks run in this process), and this machine's share."""
    try:
        worker = get_worker()
    except ValueError:
        budget = Budget(worker_memory or DEFAULT_WORKER_MEMORY, memory_threshold(), BASELINE, 1)
        yield None, budget.per_task, 1
        return
    with worker_client() as client:
        workers = list(client.scheduler_info(n_workers=-1)["workers"].values())
        threads = sum(int(w.get("nthreads", 1)) for w in workers) or 1
        threshold = memory_threshold()
        budgets = [
            Budget(
                limit=int(worker_memory or w.get("memory_limit") or DEFAULT_WORKER_MEMORY),
                threshold=threshold,
                baseline=BASELINE,
                threads_per_worker=max(1, int(w.get("nthreads", 1))),
            )
            for w in workers
        ] or [Budget(worker_memory or DEFAULT_WORKER_MEMORY, threshold, BASELINE,
                     max(1, int(worker.state.nthreads)))]  # fmt: skip
        budget = min(budgets, key=lambda b: b.per_task)
        log.debug(
            "chunk budget %d MB per task: (%d MB x %.2f - %d MB) x %.2f / %d threads",
            budget.per_task // 10**6, budget.limit // 10**6, budget.threshold,
            budget.baseline // 10**6, HEADROOM, budget.threads_per_worker,
        )  # fmt: skip
        yield client, budget.per_task, threads
