"""Fault injection with real processes against the moto server on loopback.

After every fault the invariant must hold: every original byte-identical at its source key
or at its archive key, every output visible at the destination a valid COG. Then a rerun
must finish the job. The figures in docs/testing.md's "what the suite proves" come from here.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rio_cogeo.cogeo import cog_validate

import compactor
from compactor.gdal._env import gdal_env, gdal_options

from .. import rasters
from ..conftest import BIN, S3
from ..faultproxy import FaultProxy
from ..reports import scenes_of

SRC = "s3://src-bucket/scenes/"
DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"
COMPACTOR = str(Path(sys.executable).with_name("compactor"))

#: Small thresholds so multipart uploads and copies happen, short leases so a rerun after a
#: kill waits seconds, not minutes, and every scene is taken even if its COG is larger.
FAULT_CONFIG = """\
multipart_copy_threshold: 5MiB
multipart_copy_part_size: 5MiB
multipart_upload_threshold: 5MiB
lease_ttl: 3
min_saving: -1
"""

#: Every failpoint on the way, in order (see compactor/failpoints.py).
KILL_POINTS = [
    "after-discovered",
    "after-encode",
    "mid-upload",
    "after-upload",
    "after-encoded",
    "after-verified",
    "after-source-hash",
    "mid-archive-copy",
    "after-archive-copy",
    "after-archived",
    "before-delete",
    "after-delete",
]


def make_archive(s3: S3, tmp: Path) -> dict[str, bytes]:
    """Three small scenes and one over 5 MiB (multipart upload and copy)."""
    rng = np.random.default_rng(0)
    big = rasters.write(tmp / "big.tif", rng.integers(1, 65535, (1, 1700, 1700), dtype="uint16"))
    files = {
        "a.tif": rasters.rgb(tmp / "a.tif"),
        "sub/b.tif": rasters.gray(tmp / "b.tif"),
        "c d.tif": rasters.uint16(tmp / "c.tif"),
        "big.tif": big,
    }
    originals = {}
    for rel, path in files.items():
        data = path.read_bytes()
        s3.put("src-bucket", "scenes/" + rel, data, Metadata={"k": "v"})
        originals[rel] = data
    return originals


def assert_invariant(s3: S3, originals: dict[str, bytes]) -> dict[str, str]:
    """Every original byte-identical at its source or archive key; every visible output a
    valid COG. Returns where each original is ("source" or "archive")."""
    where = {}
    at_source = set(s3.keys("src-bucket", "scenes/"))
    for rel, data in originals.items():
        if "scenes/" + rel in at_source:
            assert s3.read("src-bucket", "scenes/" + rel) == data, rel
            where[rel] = "source"
        else:
            assert s3.read("arc-bucket", "orig/" + rel) == data, f"{rel} lost"
            where[rel] = "archive"
    with gdal_env(gdal_options(endpoint_url=s3.endpoint)):
        for key in s3.keys("dst-bucket", "cogs/"):
            if "/_compactor/" in key or not key.endswith(".tif"):
                continue
            valid, errors, _ = cog_validate(f"/vsis3/dst-bucket/{key}", quiet=True)
            assert (valid, errors) == (True, []), key
    return where


def run_cli(
    config: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`compactor run` as its own process group (session), with a LocalCluster."""
    return subprocess.run(
        [COMPACTOR, "-q", "--config", str(config), "run", "--source", SRC, "--dest", DEST,
         "--archive", ARCHIVE, "--workers", "2", *extra],
        capture_output=True, text=True, timeout=timeout, start_new_session=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def finish_and_check(s3: S3, config: Path, originals: dict[str, bytes]) -> None:
    """A rerun completes: everything compacted, every original only in the archive (in a
    versioned bucket, no version of it and no delete marker left at the source),
    `compactor verify` clean, no multipart upload left behind."""
    done = run_cli(config)
    assert done.returncode == 0, done.stdout + done.stderr
    where = assert_invariant(s3, originals)
    assert set(where.values()) == {"archive"}
    left = s3.client.list_object_versions(Bucket="src-bucket", Prefix="scenes/")
    assert (left.get("Versions"), left.get("DeleteMarkers")) == (None, None)
    outputs = {k for k in s3.keys("dst-bucket", "cogs/") if "/_compactor/" not in k}
    assert outputs == {"cogs/a.tif", "cogs/sub/b.tif", "cogs/c d.tif", "cogs/big.tif"}
    verify = subprocess.run(
        [COMPACTOR, "-q", "verify", DEST], capture_output=True, text=True, timeout=120
    )
    assert verify.returncode == 0, verify.stdout
    for bucket in ("dst-bucket", "arc-bucket"):
        assert s3.client.list_multipart_uploads(Bucket=bucket).get("Uploads") is None


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "faults.yaml"
    path.write_text(FAULT_CONFIG)
    return path


@pytest.mark.parametrize("versioned", [False, True], ids=["plain", "versioned"])
@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_every_step(
    s3: S3, tmp_path: Path, config: Path, point: str, versioned: bool
) -> None:
    if versioned:
        s3.client.put_bucket_versioning(
            Bucket="src-bucket", VersioningConfiguration={"Status": "Enabled"}
        )
    originals = make_archive(s3, tmp_path)
    killed = run_cli(config, env={"COMPACTOR_FAILPOINTS": f"{point}=kill"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert_invariant(s3, originals)
    finish_and_check(s3, config, originals)


@pytest.mark.parametrize("versioned", [False, True], ids=["plain", "versioned"])
def test_a_rerun_deletes_a_multipart_archived_original_killed_before_its_delete(
    s3: S3, tmp_path: Path, config: Path, versioned: bool
) -> None:
    """big.tif alone: the kill at ``before-delete`` is its own, after its ``archived`` record
    (with the small scenes, one of them usually reaches the point first, and big.tif is
    archived before the kill only under load). The rerun resumes at the delete and hashes the
    original again by parts against its multipart archive copy; the composite SHA-256 a HEAD
    reports may lack its ``-N`` suffix (moto's does), which once made it refuse."""
    if versioned:
        s3.client.put_bucket_versioning(
            Bucket="src-bucket", VersioningConfiguration={"Status": "Enabled"}
        )
    rng = np.random.default_rng(1)
    big = rasters.write(tmp_path / "big.tif", rng.integers(1, 65535, (1, 1700, 1700), "uint16"))
    data = big.read_bytes()
    assert len(data) > 5 * 1024**2  # a multipart copy
    s3.put("src-bucket", "scenes/big.tif", data)
    killed = run_cli(config, env={"COMPACTOR_FAILPOINTS": "before-delete=kill"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert s3.read("src-bucket", "scenes/big.tif") == data  # archived, not yet deleted
    assert s3.read("arc-bucket", "orig/big.tif") == data
    done = run_cli(config)
    assert done.returncode == 0, done.stdout + done.stderr
    left = s3.client.list_object_versions(Bucket="src-bucket", Prefix="scenes/")
    assert (left.get("Versions"), left.get("DeleteMarkers")) == (None, None)
    assert s3.read("arc-bucket", "orig/big.tif") == data


def test_sigkill_at_random_moments(s3: S3, tmp_path: Path, config: Path) -> None:
    """Kill the process group after random delays, again and again, on one archive."""
    originals = make_archive(s3, tmp_path)
    rng = random.Random(7)
    kills = 0
    # Slow every step down a little, so a run lasts long enough to be killed in the middle.
    slow = ",".join(f"{p}=sleep:0.7" for p in KILL_POINTS if not p.startswith("mid"))
    for _ in range(6):
        proc = subprocess.Popen(
            [COMPACTOR, "-q", "--config", str(config), "run", "--source", SRC, "--dest", DEST,
             "--archive", ARCHIVE, "--workers", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "COMPACTOR_FAILPOINTS": slow},
        )  # fmt: skip
        time.sleep(rng.uniform(3.0, 9.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        assert_invariant(s3, originals)
    assert kills >= 3
    finish_and_check(s3, config, originals)


def test_worker_killed_mid_task(s3: S3, tmp_path: Path) -> None:
    """External `dask scheduler` and `dask worker` processes; one worker is SIGKILLed
    while it holds a scene between upload and record. The run still completes."""
    originals = make_archive(s3, tmp_path)
    pidfile = tmp_path / "victim.pid"
    sched_file = tmp_path / "sched.json"
    env = {**os.environ, "COMPACTOR_FAILPOINTS": f"after-upload@1=pidfile:{pidfile}+sleep:6"}
    procs = [
        subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                          "--dashboard-address", ":0", "--scheduler-file", str(sched_file)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            procs.append(
                subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1",
                                  "--name", f"v{i}", "--dashboard-address", ":0",
                                  "--local-directory", str(tmp_path / f"v{i}")],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )  # fmt: skip
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
            result: dict[str, Any] = {}

            def killer() -> None:
                end = time.monotonic() + 120
                while not pidfile.exists() and time.monotonic() < end:
                    time.sleep(0.05)
                time.sleep(0.2)
                victim = int(pidfile.read_text())
                os.kill(victim, signal.SIGKILL)
                result["victim"] = victim

            import threading

            t = threading.Thread(target=killer)
            t.start()
            report = compactor.run(
                source=SRC, dest=DEST, archive=ARCHIVE, client=client, lease_ttl=3, min_saving=-1
            )
            t.join()
        with pytest.raises(ProcessLookupError):
            os.kill(result["victim"], 0)
        assert report.totals.failed == 0, [s.reason for s in report.failed]
        assert report.totals.compacted == 4
        where = assert_invariant(s3, originals)
        assert set(where.values()) == {"archive"}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_flaky_network_loses_nothing(
    s3: S3, cli: Any, tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every S3 request of the run (listing, GDAL range reads, uploads, copies, deletes,
    state and lease writes) goes through a proxy that fails or resets some of them."""
    originals = make_archive(s3, tmp_path)
    # A run makes 45-70 requests here, depending on timing: every 4th one fails on schedule
    # (all four kinds), the others at random, so at least 10 faults are injected.
    with FaultProxy(s3.endpoint, error_rate=0.10, reset_rate=0.05, seed=3, every=4) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        flaky = cli(
            "--config", str(config), "run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE
        )
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    assert flaky.exit_code in (0, 1), flaky.output
    assert sum(proxy.faults.values()) >= 10, (proxy.requests, proxy.faults)
    assert {"500", "503", "reset-before", "reset-midway"} <= set(proxy.faults)
    assert_invariant(s3, originals)
    finish_and_check(s3, config, originals)


def test_a_lost_create_multipart_answer_leaves_no_upload(
    s3: S3, cli: Any, tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first answer to every CreateMultipartUpload (the output's upload, the archive's
    multipart copy) is cut midway: the client retries and S3 holds two uploads to one key,
    the first never known to the run. Once the object is complete the run aborts the other,
    so no upload is left to bill for."""
    originals = make_archive(s3, tmp_path)
    created: set[str] = set()

    def cut_first_create(op: str, path: str) -> str | None:
        if op != "POST ?uploads" or path in created:
            return None
        created.add(path)
        return "reset-midway"

    with FaultProxy(s3.endpoint, error_rate=0, reset_rate=0) as proxy:
        proxy.inject = cut_first_create
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        run = cli(
            "--config", str(config), "run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE
        )
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    assert run.exit_code == 0, run.output
    assert proxy.faults["reset-midway"] >= 2, (proxy.faults, sorted(created))
    assert any(p.startswith("/arc-bucket/") for p in created), sorted(created)
    assert any(p.startswith("/dst-bucket/") for p in created), sorted(created)
    for bucket in ("dst-bucket", "arc-bucket"):
        assert s3.client.list_multipart_uploads(Bucket=bucket).get("Uploads") is None, bucket
    assert set(assert_invariant(s3, originals).values()) == {"archive"}


def test_two_concurrent_runs_share_the_work(s3: S3, tmp_path: Path, config: Path) -> None:
    originals = make_archive(s3, tmp_path)
    for i in range(4):
        data = rasters.gray(tmp_path / f"g{i}.tif", seed=20 + i).read_bytes()
        s3.put("src-bucket", f"scenes/more/g{i}.tif", data)
        originals[f"more/g{i}.tif"] = data
    env = {**os.environ, "COMPACTOR_FAILPOINTS": "after-encoded=sleep:0.5"}
    cmd = [COMPACTOR, "--config", str(config), "-q", "run", "--source", SRC, "--dest", DEST,
           "--archive", ARCHIVE, "--workers", "1"]  # fmt: skip
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outs
    compacted: list[str] = []
    for stdout, _ in outs:
        line = next(ln for ln in stdout.splitlines() if ln.startswith("report: "))
        key = line.split("s3://dst-bucket/", 1)[1].replace("report.html", "report.json")
        report = json.loads(s3.read("dst-bucket", key))
        assert report["totals"]["failed"] == 0
        compacted += [s["source"] for s in scenes_of(report) if s["status"] == "compacted"]
    # every scene compacted exactly once across the two runs
    assert sorted(compacted) == sorted(SRC + rel for rel in originals)
    where = assert_invariant(s3, originals)
    assert set(where.values()) == {"archive"}
