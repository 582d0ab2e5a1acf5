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
