"""The image the chart runs (helm/Dockerfile), in containers hardened as the chart's pods
(read-only root, a tmpfs /tmp, uid 1000, every capability dropped, no privilege
escalation), sharing nothing but loopback with each other and with the S3 server.

Run by ``make image-test`` (after ``make image``), which sets ``COMPACTOR_IMAGE`` and
``COMPACTOR_ENGINE``; skipped otherwise. What only a real cluster can show (the
dask-kubernetes operator's DaskCluster, IRSA, NetworkPolicies enforced by a CNI) is listed
in docs/eks.md."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rasterio
import yaml
from rio_cogeo.cogeo import cog_validate

from .. import rasters
from ..conftest import FAKE_KEY_ID, FAKE_SECRET, S3

IMAGE = os.environ.get("COMPACTOR_IMAGE", "")
ENGINE = shlex.split(os.environ.get("COMPACTOR_ENGINE", "podman"))

pytestmark = [
    pytest.mark.image,
    pytest.mark.skipif(not IMAGE, reason="COMPACTOR_IMAGE is not set: run `make image-test`"),
]

#: The chart's pod hardening, as container flags.
HARDENED = [
    "--network", "host", "--read-only", "--tmpfs", "/tmp:rw,size=2g,mode=1777",
    "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
    "--env", "HOME=/tmp", "--env", "TMPDIR=/tmp",
]  # fmt: skip


def engine(
    *args: str, timeout: float = 600, check: bool = False
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*ENGINE, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{args[:3]}: {proc.stderr[-2000:]}"
    return proc


def s3_env(s3: S3) -> list[str]:
    env = {
        "AWS_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1", "COMPACTOR_PAYBACK_MONTHS": "0",
    }  # fmt: skip
    return [f for k, v in env.items() for f in ("--env", f"{k}={v}")]


class Containers:
    """Containers started by a test, all removed at its end."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.tag = uuid.uuid4().hex[:6]

    def start(self, role: str, *cmd: str, env: list[str]) -> str:
        name = f"compactor-test-{role}-{self.tag}"
        engine("run", "-d", "--name", name, *HARDENED, *env, IMAGE, *cmd, check=True)
        self.names.append(name)
        return name

    def logs(self, name: str) -> str:
        out = engine("logs", name)
        return out.stdout + out.stderr

    def wait(self, name: str, timeout: float) -> int:
        out = engine("wait", name, timeout=timeout, check=True)
        return int(out.stdout.strip().splitlines()[-1])

    def remove(self) -> None:
        for name in self.names:
            engine("rm", "-f", "-t", "2", name)


@pytest.fixture
def containers() -> Iterator[Containers]:
    c = Containers()
    try:
        yield c
    finally:
        c.remove()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version_in_a_hardened_container() -> None:
    out = engine("run", "--rm", *HARDENED, IMAGE, "compactor", "--version", check=True)
    assert out.stdout.startswith("compactor, version ")


def test_demo_in_a_hardened_container(s3: S3) -> None:
    """`compactor demo` against the S3 server on loopback (the image has no moto: the
    demo uses AWS_ENDPOINT_URL when it is set)."""
    out = engine(
        "run", "--rm", *HARDENED, *s3_env(s3), IMAGE,
        "compactor", "demo", "--workdir", "/tmp/demo", "--size", "512", "--workers", "2",
        timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "4 compacted" in out.stdout, out.stdout
    assert s3.keys("compactor-demo", "cogs/")
    assert s3.keys("compactor-demo", "archive/")


def _originals(s3: S3, tmp_path: Path, count: int) -> dict[str, bytes]:
    originals: dict[str, bytes] = {}
    for i in range(count):
        path = rasters.rgb(tmp_path / f"scene-{i:02d}.tif", size=1024, seed=i)
        key = f"scenes/scene-{i:02d}.tif"
        s3.put("src-bucket", key, path)
        originals[key] = path.read_bytes()
    return originals


def _check_outcome(s3: S3, tmp_path: Path, originals: dict[str, bytes]) -> None:
    """Every original archived byte for byte and gone from the source; every output a
    valid COG of the original's shape."""
    assert s3.keys("src-bucket", "scenes/") == []
    for key, data in originals.items():
        rel = key.removeprefix("scenes/")
        assert s3.read("arc-bucket", f"orig/{rel}") == data, key
        out = tmp_path / f"out-{rel}"
        out.write_bytes(s3.read("dst-bucket", f"cogs/{rel}"))
        valid, errors, _ = cog_validate(str(out), quiet=True)
        assert valid, (key, errors)
        assert not errors, (key, errors)
        with rasterio.open(out) as ds:
            assert (ds.width, ds.height, ds.count) == (1024, 1024, 3)


def _outputs(s3: S3) -> int:
    return len([k for k in s3.keys("dst-bucket", "cogs/") if k.endswith(".tif")])


def test_a_run_on_separate_containers_survives_lost_workers(
    s3: S3, tmp_path: Path, containers: Containers
) -> None:
    """A scheduler, two workers and a runner, each its own hardened container. One worker
    is stopped with SIGTERM (a spot interruption: it closes, its tasks move to the
    others), one killed with SIGKILL mid-run, and a fresh worker joins: every scene is
    compacted, every original archived byte for byte, exit 0."""
    originals = _originals(s3, tmp_path, 24)
    port, dash = free_port(), free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = s3_env(s3)
    containers.start(
        "scheduler", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
        "--dashboard-address", f"127.0.0.1:{dash}", env=env,
    )  # fmt: skip

    def worker(name: str) -> str:
        return containers.start(
            name, "dask", "worker", address, "--name", name, "--nthreads", "1",
            "--memory-limit", "1.5GiB", "--local-directory", "/tmp/dask", env=env,
        )  # fmt: skip

    first, second = worker("w1"), worker("w2")
    runner = containers.start(
        "runner", "compactor", "run", "--scheduler", address,
        "--source", "s3://src-bucket/scenes/", "--dest", "s3://dst-bucket/cogs/",
        "--archive", "s3://arc-bucket/orig/", env=env,
    )  # fmt: skip

    def until(outputs: int, deadline: float) -> None:
        while _outputs(s3) < outputs:
            assert time.monotonic() < deadline, containers.logs(runner)
            time.sleep(0.3)

    deadline = time.monotonic() + 600
    until(3, deadline)
    engine("kill", "--signal", "TERM", first, check=True)  # a spot interruption
    until(8, deadline)
    engine("kill", "--signal", "KILL", second, check=True)  # a lost node
    worker("w3")
    code = containers.wait(runner, timeout=900)
    logs = containers.logs(runner)
    assert code == 0, logs[-4000:]
    # A scene whose task finished on a worker that was then lost is run again and found
    # compacted ("already compacted"): every scene is compacted, none failed.
    summary = re.search(
        r"(\d+) compacted in this run, \d+ finished earlier, (\d+) skipped, (\d+) failed", logs
    )
    assert summary, logs[-4000:]
    compacted, skipped, failed = (int(g) for g in summary.groups())
    assert failed == 0, logs[-4000:]
    assert compacted + skipped == 24, logs[-4000:]
    assert skipped == 0 or f"skipped {skipped}: already compacted" in logs, logs[-4000:]
    assert _outputs(s3) == 24
    _check_outcome(s3, tmp_path, originals)


def _runner_pod(s3: S3) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chart's backfill Job, rendered by Helm's engine, as a Pod podman can play (it
    cannot play Jobs), and its ConfigMap. The Dask cluster is a local one inside the pod (no
    operator here); the credentials are added as a Secret would add them."""
    from .test_helm import render

    repository, _, tag = IMAGE.rpartition(":")
    values = {
        "sweep": {"enabled": False},
        "backfill": {"enabled": True},
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "config": {
            "source": "s3://src-bucket/scenes/", "dest": "s3://dst-bucket/cogs/",
            "archive": "s3://arc-bucket/orig/", "storage_class": "GLACIER",
            "cluster": {"kind": "local", "workers": 2},
        },
        "env": {"AWS_ENDPOINT_URL": s3.endpoint, "AWS_REGION": "us-east-1",
                "COMPACTOR_PAYBACK_MONTHS": "0"},
    }  # fmt: skip
    objects = render(values)
    job = next(o for o in objects if o["kind"] == "Job")
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    spec = job["spec"]["template"]["spec"]
    spec["hostNetwork"] = True
    for container in spec["containers"]:
        container.setdefault("env", []).extend(
            [{"name": "AWS_ACCESS_KEY_ID", "value": FAKE_KEY_ID},
             {"name": "AWS_SECRET_ACCESS_KEY", "value": FAKE_SECRET}]
        )  # fmt: skip
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"compactor-backfill-{uuid.uuid4().hex[:6]}",
                     "labels": job["spec"]["template"]["metadata"]["labels"]},
        "spec": spec,
    }  # fmt: skip
    return pod, config_map


def test_the_charts_runner_pod_through_kube_play(s3: S3, tmp_path: Path) -> None:
    originals = _originals(s3, tmp_path, 6)
    pod, config_map = _runner_pod(s3)
    pod_file, cm_file = tmp_path / "pod.yaml", tmp_path / "configmap.yaml"
    pod_file.write_text(yaml.safe_dump(pod))
    cm_file.write_text(yaml.safe_dump(config_map))
    name = pod["metadata"]["name"]
    container = f"{name}-{pod['spec']['containers'][0]['name']}"
    try:
        engine("kube", "play", "--configmap", str(cm_file), str(pod_file), check=True)
        out = engine("wait", container, timeout=900, check=True)
        logs = engine("logs", container)
        text = logs.stdout + logs.stderr
        assert out.stdout.strip().splitlines()[-1] == "0", text[-4000:]
        assert "6 compacted" in text, text[-4000:]
        _check_outcome(s3, tmp_path, originals)
    finally:
        engine("kube", "down", str(pod_file))
