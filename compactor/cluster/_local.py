"""Where tasks run: a LocalCluster started for the run, an existing scheduler, or an
ephemeral DaskCluster on Kubernetes. What was started is always torn down when the run
ends, also on errors and Ctrl-C."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dask
from distributed import Client, LocalCluster
from distributed.utils import get_mp_context

from ..codecs import may_be_lossy
from ..errors import ConfigError
from ..settings import ClusterSettings, Settings, WorkerRange
from ._forkserver import worker_preload
from ._kubernetes import kube_cluster
from ._versions import check_versions

log = logging.getLogger(__name__)

#: Where a LocalCluster's scheduler, workers and dashboard listen.
LOOPBACK = "127.0.0.1"


def default_workers() -> int:
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


@contextmanager
def connect(
    cluster: ClusterSettings,
    *,
    on_dashboard: Callable[[str], None] | None = None,
    settings: Settings | None = None,
) -> Iterator[Any]:
    """Yield a ``distributed.Client`` for ``cluster``; close what was started on exit.
    On a cluster compactor did not start in this process (an address, Kubernetes) the
    workers' software versions are checked against this client's first."""
    if cluster.kind == "address":
        if not cluster.address:
            raise ConfigError("cluster kind 'address' needs an address (--scheduler)")
        try:
            client = Client(cluster.address, timeout="30s")
        except OSError as err:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {cluster.address}: {err}"
            ) from err
        try:
            check_versions(client)
            if on_dashboard and client.dashboard_link:
                on_dashboard(client.dashboard_link)
            yield client
        finally:
            client.close()
        return
    if cluster.kind == "kubernetes":
        with kube_cluster(cluster, settings) as client:
            check_versions(client)
            if on_dashboard and client.dashboard_link:
                on_dashboard(client.dashboard_link)
            yield client
        return

    n_workers = (
        cluster.workers.max if isinstance(cluster.workers, WorkerRange) else cluster.workers
    ) or default_workers()
    kwargs: dict[str, Any] = {
        "n_workers": n_workers,
        "threads_per_worker": cluster.threads_per_worker,
        "processes": True,
        # Loopback only: the scheduler, the workers and the dashboard of a local cluster run
        # tasks for whoever connects, so nothing else on the network may reach them.
        "host": LOOPBACK,
        "dashboard_address": f"{LOOPBACK}:0",
        "silence_logs": logging.WARNING,
        # The workers are forked from a server that may have started for an earlier run of
        # this process (a notebook's): they get this run's environment, as spawned workers
        # would (a token a header names, credentials set between two runs).
        "env": dict(os.environ),
    }
    if cluster.worker_memory:
        kwargs["memory_limit"] = cluster.worker_memory
    log.info(
        "starting a local Dask cluster: %d workers x %d threads",
        n_workers,
        cluster.threads_per_worker,
    )
    with (
        dask.config.set(WORKER_CONFIG),
        LocalCluster(**_forkserver_preloaded(kwargs, settings)) as local,
        Client(local) as client,
    ):
        if on_dashboard and client.dashboard_link:
            on_dashboard(client.dashboard_link)
        try:
            yield client
        finally:
            _quiet_shutdown()


#: How many entries Dask's developer logs keep (``distributed.admin.low-level-log-length``,
#: 1,000 by default): the scheduler's transition log and event topics, and the last
#: messages of each batched stream (client -> scheduler, scheduler -> each worker). Each
#: kept message to a worker holds a task's whole spec, its scenes and the run's context
#: (~30 KB for 8 small scenes): with 1,000 per worker the process holding the scheduler
#: grew ~4 KB per scene until each worker had been sent 1,000 tasks
#: (bench/trace_client_memory.py; bench/bench_many_scenes.py: the CLI 247 -> 303 MB over
#: 10,000 scenes, 1.23x; and 1,000 x 30 KB x workers on a large cluster's scheduler).
LOG_LENGTH = 100

#: The Dask configuration of a local cluster: its scheduler and client (in this process)
#: and its workers (the nannies pass it on). Workers are forked from a fork server
#: (:func:`_forkserver_preloaded`). Dask's statistical profiler is off: every second it
#: kept the call tree of what the worker's thread ran, a history of 1,000 trees of
#: GDAL/numpy/boto stacks that grew each worker by hundreds of MB over the first quarter
#: hour of a run (bench/bench_many_scenes.py: workers 207 -> 395 MB in 10 minutes with it,
#: flat without); the dashboard's task stream and memory views stay. The developer logs
#: keep :data:`LOG_LENGTH` entries.
WORKER_CONFIG = {
    "distributed.worker.multiprocessing-method": "forkserver",
    "distributed.worker.profile.enabled": False,
    "distributed.admin.low-level-log-length": LOG_LENGTH,
}


#: Loggers whose shutdown chatter ("Worker process still alive after ... seconds,
#: killing") says nothing a user can act on: the workers of a local cluster are stopped
#: with it. Errors still show.
SHUTDOWN_LOGGERS = ("distributed.nanny", "distributed.process", "distributed.worker")


def _quiet_shutdown() -> None:
    """Before a local cluster closes: its nannies' and workers' warnings only at -vv."""
    for name in SHUTDOWN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.DEBUG:
            logger.setLevel(logging.ERROR)


def _forkserver_preloaded(kwargs: dict[str, Any], settings: Settings | None) -> dict[str, Any]:
    """Local workers are forked from one server process that imported what a scene task
    needs (GDAL, OpenCV, the codecs, compactor) once: each worker starts in a fraction of
    a second instead of importing it all again (spawn: seconds per worker, on every core at
    once). The server is a fresh interpreter, with no threads of the run's process. The
    SSIM kernel is among its imports unless the run's codec writes lossless scenes only."""
    lossy = settings is None or may_be_lossy(settings.codec)
    get_mp_context().set_forkserver_preload(worker_preload(lossy))
    return kwargs
