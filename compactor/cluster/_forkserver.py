"""The fork server local workers start from, startable before anything heavy is imported
(this module imports the standard library only)."""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver

#: What the fork server of a local cluster imports once, before it forks each worker.
WORKER_PRELOAD = ("distributed", "compactor.scene._walk", "compactor.encode._chunk_tasks")
#: The compiled 8-bit SSIM kernel (numba and LLVM: about 41 MB in every worker forked from a
#: server that loaded it), preloaded only for runs that may write lossy scenes; a worker of
#: another run that needs it after all imports it on first use.
SSIM_KERNEL = "compactor.fidelity._ssim_u8"


def worker_preload(lossy: bool) -> list[str]:
    """The fork server's imports for a run that may (``lossy``) or may not write lossy
    scenes."""
    return [*WORKER_PRELOAD, SSIM_KERNEL] if lossy else list(WORKER_PRELOAD)


def start_fork_server(lossy: bool = True) -> None:
    """Start the fork server of local workers now, in the background: it imports what a
    scene task needs (about a second of CPU, half of a cold local cluster's start) while
    this process goes on with its own imports and the listing, instead of when the
    cluster starts. The CLI calls it as soon as it knows a run takes a local cluster; the
    cluster then forks its workers from the running server (a process has one), or starts
    it if nobody did. A run that writes lossless scenes only (``lossy`` false) leaves the
    SSIM kernel out: its workers keep 41 MB more room for their chunks."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(worker_preload(lossy))
    forkserver.ensure_running()
