"""Where tasks run: a LocalCluster started for the run, or an existing scheduler.

The cluster is always torn down when the run ends, also on errors and Ctrl-C.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from .config import ClusterSettings, Settings, WorkerRange
from .errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Where a LocalCluster's scheduler, workers and dashboard listen.
LOOPBACK = "127.0.0.1"
R = TypeVar("R")


def as_completed_results(
    client: Any,
    futures: Mapping[Any, T],
    task_died: Callable[[T, Exception], R] | None = None,
) -> Iterator[tuple[T, R]]:
    """(item, result) for each future of ``futures`` (future -> item) as it completes. A
    task that died (e.g. ``KilledWorker``) gives ``task_died(item, error)``, or raises
    without it; any error or Ctrl-C here cancels the tasks still pending."""
    from distributed import as_completed

    try:
        for fut in as_completed(list(futures)):
            item = futures[fut]
            try:
                result = fut.result()
            except Exception as err:
                if task_died is None:
                    raise
                result = task_died(item, err)
            yield item, result
    except BaseException:
        client.cancel(list(futures))
        raise


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
    from distributed import Client, LocalCluster

    from .kube import check_versions

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
        with _kubernetes(cluster, settings) as client:
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
    }
    if cluster.worker_memory:
        kwargs["memory_limit"] = cluster.worker_memory
    log.info(
        "starting a local Dask cluster: %d workers x %d threads",
        n_workers,
        cluster.threads_per_worker,
    )
    with LocalCluster(**kwargs) as local, Client(local) as client:
        if on_dashboard and client.dashboard_link:
            on_dashboard(client.dashboard_link)
        yield client


@contextmanager
def _kubernetes(cluster: ClusterSettings, settings: Settings | None) -> Iterator[Any]:
    """An ephemeral DaskCluster through the dask-kubernetes operator, deleted on exit
    (also on errors and Ctrl-C)."""
    from distributed import Client

    from .kube import cluster_spec

    try:
        from dask_kubernetes.operator import KubeCluster
    except ImportError as err:
        raise ConfigError(
            "cluster kind 'kubernetes' needs dask-kubernetes (pip install dask-kubernetes)"
        ) from err
    spec = cluster_spec(settings or Settings(cluster=cluster))
    name = spec["metadata"]["name"]
    log.info("creating DaskCluster %s (image %s)", name, cluster.image)
    try:
        kube = KubeCluster(
            custom_cluster_spec=spec, namespace=cluster.namespace, shutdown_on_close=True
        )
    except Exception as err:
        raise ConfigError(f"cannot create DaskCluster {name}: {err}") from err
    try:
        if isinstance(cluster.workers, WorkerRange):
            kube.adapt(minimum=cluster.workers.min, maximum=cluster.workers.max)
        with Client(kube) as client:
            yield client
    finally:
        log.info("deleting DaskCluster %s", name)
        kube.close()


#: Per-worker memory assumed when neither the settings nor Dask know it.
DEFAULT_WORKER_MEMORY = 4 * 1024**3
#: Share of a worker's memory limit its tasks may plan to use: the rest is the worker
#: itself (Python, GDAL, OpenCV, Dask) and headroom.
TASK_SHARE = 0.5


@contextmanager
def cluster_context(context: Any) -> Iterator[tuple[Any, int, int]]:
    """Inside a Dask task: (a client to submit sub-tasks with, the memory budget of one
    task in bytes, the number of worker threads in the cluster). The worker memory limit
    comes from the run's settings (``--worker-memory``) or else from the cluster itself.
    Outside a worker: no client (sub-tasks run in this process), and this machine's share."""
    try:
        from distributed import get_worker, worker_client

        worker = get_worker()
    except (ImportError, ValueError):
        limit = getattr(context, "worker_memory", None) or DEFAULT_WORKER_MEMORY
        yield None, int(limit * TASK_SHARE), 1
        return
    with worker_client() as client:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        threads = sum(int(w.get("nthreads", 1)) for w in workers) or 1
        limits = [
            int(w.get("memory_limit") or 0) / max(1, int(w.get("nthreads", 1))) for w in workers
        ]
        known = [v for v in limits if v > 0]
        per_thread = (
            context.worker_memory / max(1, worker.state.nthreads)
            if getattr(context, "worker_memory", None)
            else (min(known) if known else DEFAULT_WORKER_MEMORY)
        )
        yield client, int(per_thread * TASK_SHARE), threads
