"""Where tasks run: a LocalCluster started for the run, or an existing scheduler.

The cluster is always torn down when the run ends, also on errors and Ctrl-C.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .config import ClusterSettings
from .errors import ConfigError

log = logging.getLogger(__name__)


def default_workers() -> int:
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


@contextmanager
def connect(
    cluster: ClusterSettings, *, on_dashboard: Callable[[str], None] | None = None
) -> Iterator[Any]:
    """Yield a ``distributed.Client`` for ``cluster``; close what was started on exit."""
    from distributed import Client, LocalCluster

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
            if on_dashboard and client.dashboard_link:
                on_dashboard(client.dashboard_link)
            yield client
        finally:
            client.close()
        return
    if cluster.kind == "kubernetes":
        raise ConfigError("cluster kind 'kubernetes' is not available in this version")

    n_workers = cluster.workers or default_workers()
    kwargs: dict[str, Any] = {
        "n_workers": n_workers,
        "threads_per_worker": cluster.threads_per_worker,
        "processes": True,
        "dashboard_address": ":0",
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
