"""Workers that share no disk with each other or with the runner, as on Kubernetes (each
pod its own emptyDir): a `dask scheduler` on loopback, two `dask worker` processes each in
its own mount namespace with a fresh tmpfs over /tmp (their HOME, TMPDIR and Dask local
directory), and `compactor run --scheduler` with its own TMPDIR, against S3 (the moto
server). Any path one process wrote and another reads (a scratch copy, a chunk's source, a
report or config file) is missing on the other side, so the run would fail scenes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rio_cogeo.cogeo import cog_validate

from compactor.gdal._env import gdal_env, gdal_options

from .. import rasters
from ..conftest import BIN, S3
from ..runner.test_run_s3 import ARCHIVE, DEST, SRC, by_name, load_report, upload

COMPACTOR = str(Path(sys.executable).with_name("compactor"))

#: Scenes above this many raw bytes are chunked: their chunk tasks spread over both workers
#: and read the source from S3 themselves; the smaller ones run whole in one task each.
CHUNK_THRESHOLD = "1MiB"


def _isolated_tmp_works() -> str | None:
    """Why a worker cannot get a private /tmp here (None: it can)."""
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs tmpfs /tmp && test ! -e /tmp/.compactor-probe"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unshare cannot run: {err}"
    if done.returncode != 0:
        return f"no private mount namespace with a tmpfs /tmp: {done.stderr.strip()}"
    return None


def _isolated_worker(address: str, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`dask worker` in its own mount namespace whose /tmp is a fresh tmpfs, holding its
    HOME, TMPDIR and local directory: nothing it writes is visible to anyone else, nothing
    under the host's /tmp (the runner's TMPDIR, the test's files) is visible to it."""
    worker = " ".join(
        [str(BIN / "dask"), "worker", address, "--name", name, "--nthreads", "1",
         "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0",
         "--local-directory", f"/tmp/dask-{name}"]
    )  # fmt: skip
    script = f"mount -t tmpfs tmpfs /tmp && mkdir -p /tmp/home && exec {worker}"
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        env={**env, "HOME": "/tmp/home", "TMPDIR": "/tmp", "DASK_TEMPORARY_DIRECTORY": "/tmp"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def isolated_cluster(s3: S3, tmp_path: Path) -> Iterator[str]:
    """A scheduler on loopback and two workers that share no disk; yields its address."""
    why = _isolated_tmp_works()
    if why:
        pytest.skip(why)
    from distributed import Client

    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    sched_file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        procs += [_isolated_worker(address, f"iso{i}", env) for i in range(2)]
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_a_run_on_workers_that_share_no_disk(s3: S3, tmp_path: Path, isolated_cluster: str) -> None:
    from distributed import Client

    src = tmp_path / "in"
    files = {
        "gray.tif": rasters.gray(src / "gray.tif"),
        "rgb.tif": rasters.rgb(src / "rgb.tif"),
        "sub/u16.tif": rasters.uint16(src / "u16.tif"),
        "big rgb.tif": rasters.rgb(src / "big.tif", size=1700),  # chunked: 8.7 MB raw
    }
    originals = upload(s3, files)
    # The runner's scratch is its own: under the host's /tmp, which no worker sees.
    runner_tmp = tmp_path / "runner-tmp"
    runner_tmp.mkdir()
    runner_cwd = tmp_path / "runner"
    runner_cwd.mkdir()

    def sees(path: str) -> bool:  # a closure: runs on the workers by value
        return os.path.exists(path)

    with Client(isolated_cluster, timeout="30s") as client:
        # The isolation is real: no worker sees the runner's TMPDIR or the test's files.
        assert set(client.run(sees, str(runner_tmp)).values()) == {False}
        assert set(client.run(sees, str(files["gray.tif"])).values()) == {False}

    run = subprocess.run(
        [COMPACTOR, "run", "--scheduler", isolated_cluster, "--source", SRC, "--dest", DEST,
         "--archive", ARCHIVE, "--chunk-threshold", CHUNK_THRESHOLD, "--min-saving", "-1"],
        env={**os.environ, "TMPDIR": str(runner_tmp)}, cwd=runner_cwd,
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr

    def executed(dask_worker: Any) -> int:
        return int(dask_worker.state.executed_count)

    with Client(isolated_cluster, timeout="30s") as client:
        counts = client.run(executed)
    assert len(counts) == 2
    assert all(n > 0 for n in counts.values()), counts  # both did work

    report = by_name(load_report(s3, run.stdout))
    assert set(report) == {"gray.tif", "rgb.tif", "u16.tif", "big rgb.tif"}
    for name, scene in report.items():
        assert scene["status"] == "compacted", (name, scene["reason"])
    assert report["big rgb.tif"]["chunked"] is True
    assert report["big rgb.tif"]["chunks"] >= 2
    assert report["gray.tif"]["chunked"] is False
    # Every original archived byte-identical and gone from the source; every output a COG.
    assert s3.keys("src-bucket", "scenes/") == []
    for key, data in originals.items():
        rel = key.removeprefix("scenes/")
        assert s3.read("arc-bucket", "orig/" + rel) == data, rel
    outputs = [k for k in s3.keys("dst-bucket", "cogs/") if not k.startswith("cogs/_compactor/")]
    assert sorted(outputs) == sorted(
        "cogs/" + rel.rsplit(".", 1)[0] + ".tif" for rel in (k[len("scenes/") :] for k in originals)
    )
    with gdal_env(gdal_options(endpoint_url=s3.endpoint)):
        for key in outputs:
            valid, errors, _ = cog_validate(f"/vsis3/dst-bucket/{key}")
            assert valid, (key, errors)
