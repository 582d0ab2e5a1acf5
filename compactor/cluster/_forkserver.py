"""The fork server local workers start from, startable before anything heavy is imported
(this module imports the standard library only)."""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver

#: What the fork server of a local cluster imports once, before it forks each worker.
WORKER_PRELOAD = (
    "distributed", "compactor.scene._walk", "compactor.encode._chunk_tasks",
    "compactor.fidelity._ssim_u8",
)  # fmt: skip


def start_fork_server() -> None:
    """Start the fork server of local workers now, in the background: it imports what a
    scene task needs (about a second of CPU, half of a cold local cluster's start) while
    this process goes on with its own imports and the listing, instead of when the
    cluster starts. The CLI calls it as soon as it knows a run takes a local cluster; the
    cluster then forks its workers from the running server (a process has one), or starts
    it if nobody did."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(WORKER_PRELOAD))
    forkserver.ensure_running()
