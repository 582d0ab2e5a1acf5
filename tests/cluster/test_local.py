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
