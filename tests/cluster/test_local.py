"""The local cluster a run starts: its workers are forked from one preloaded server, and
still see the environment of the run that starts them."""

from __future__ import annotations

import os

import pytest

from compactor.cluster import connect
from compactor.settings import ClusterSettings

pytestmark = pytest.mark.e2e  # starts local clusters


def _worker_env(name: str) -> list[str | None]:
    cluster = ClusterSettings(kind="local", workers=1)
    with connect(cluster) as client:
        # os.getenv by reference: read on the worker (a bound os.environ.get would carry
        # this process's environment along with it)
        return list(client.run(os.getenv, name).values())


def test_workers_see_a_variable_set_after_an_earlier_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fork server outlives a run (one per process, as in a notebook): a variable set or
    changed between two runs (a token a header names, credentials) reaches the second run's
    workers. (One unset between runs stays on them: the workers' environment is updated,
    not replaced.)"""
    monkeypatch.setenv("COMPACTOR_TEST_CHANGED", "old")
    assert _worker_env("COMPACTOR_TEST_LATE") == [None]  # the fork server starts here
    monkeypatch.setenv("COMPACTOR_TEST_LATE", "set-between-runs")
    monkeypatch.setenv("COMPACTOR_TEST_CHANGED", "new")
    assert _worker_env("COMPACTOR_TEST_LATE") == ["set-between-runs"]
    assert _worker_env("COMPACTOR_TEST_CHANGED") == ["new"]


_LOADED_ON_WORKERS = """
import sys
from compactor.cluster import connect
from compactor.settings import ClusterSettings, Settings

settings = Settings(codec=sys.argv[1], cluster=ClusterSettings(kind="local", workers=1))
with connect(settings.cluster, settings=settings) as client:
    loaded = client.run(lambda: "numba" in sys.modules)
print(*loaded.values())
"""


@pytest.mark.parametrize(
    ("codec", "numba"), [("jpeg", True), ("auto", True), ("lossless", False), ("zstd", False)]
)
def test_the_ssim_kernel_is_preloaded_only_for_runs_that_may_be_lossy(
    codec: str, numba: bool
) -> None:
    """numba and LLVM (41 MB per worker) are in the fork server's imports only when the
    run's codec may write lossy scenes: a lossless run's workers keep that room for their
    chunks. A fresh process: the fork server is one per process and keeps its imports."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _LOADED_ON_WORKERS, codec],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.split() == [str(numba)]


def test_dask_keeps_a_bounded_history_of_the_task_messages_it_sent() -> None:
    """Dask's batched streams keep their last messages for debugging; each message to a
    worker holds a task's spec (its scenes, the run's context). At Dask's default of 1,000
    per stream, the process holding the scheduler grew with every task until each worker
    had been sent 1,000 (the CLI +6 MB per 1,000 scenes, bench/bench_many_scenes.py): a
    local cluster keeps LOG_LENGTH, however many tasks run."""
    from compactor.cluster._local import LOG_LENGTH

    cluster = ClusterSettings(kind="local", workers=1)
    with connect(cluster) as client:
        for n in range(LOG_LENGTH + 30):  # one task at a time: one message each
            assert client.submit(len, "x" * n, pure=False).result() == n
        scheduler = client.cluster.scheduler
        (to_worker,) = scheduler.stream_comms.values()
        streams = {"client -> scheduler": client.scheduler_comm, "scheduler -> worker": to_worker}
        for name, stream in streams.items():
            assert stream.batch_count > LOG_LENGTH, name  # sent more than it keeps
            assert len(stream.recent_message_log) <= LOG_LENGTH, name
        assert len(scheduler.transition_log) <= LOG_LENGTH
