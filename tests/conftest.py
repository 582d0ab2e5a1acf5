"""Shared fixtures: a real S3 server (moto_server over HTTP on a free loopback port, one
per session, reset before each test that uses it) and a real Dask cluster (a ``dask
scheduler`` process and two ``dask worker`` processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .s3server import MotoServer

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("COMPACTOR_SHARED_DATA", REPO.parent / "shared/data/rasterio-cc0")
)
BIN = Path(sys.executable).parent

#: Credentials for the moto server. The secret is distinctive so tests can prove it never
#: shows up in logs, reports or CLI output.
FAKE_KEY_ID = "AKIACOMPACTORTEST000"
FAKE_SECRET = "compactor-test-secret-Zq9vX2"

BUCKETS = ("src-bucket", "dst-bucket", "arc-bucket")

#: Fixtures that start real servers or processes (the S3 server, the Dask cluster): a test
#: that uses one, directly or through another fixture, is end to end.
E2E_FIXTURES = frozenset({"moto_server", "dask_scheduler"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the end-to-end tier: tests on real servers or clusters, and those a module marks
    ``e2e`` itself (it starts its own processes). ``make check`` runs the rest."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if (
            fixtures & E2E_FIXTURES
            or item.get_closest_marker("slow")
            or item.get_closest_marker("image")
        ):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    saved = {
        k: os.environ.get(k)
        for k in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "COMPACTOR_PAYBACK_MONTHS",
        )
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID=FAKE_KEY_ID,
        AWS_SECRET_ACCESS_KEY=FAKE_SECRET,
        AWS_DEFAULT_REGION="us-east-1",
        # The tests' rasters are a few KiB: by default (12 months) moving them to Glacier
        # would not pay back, so they would stay where they are. Most tests are about the
        # archive: they archive everything; tests/archive/test_versions.py checks the default.
        COMPACTOR_PAYBACK_MONTHS="0",
    )
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        os.environ.pop(var, None)
    with MotoServer() as server:
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
        yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@dataclass
class S3:
    """The moto server, reset, with three empty buckets."""

    server: MotoServer
    client: Any

    @property
    def endpoint(self) -> str:
        return self.server.endpoint_url

    def put(self, bucket: str, key: str, path_or_bytes: Path | bytes, **extra: Any) -> None:
        body = (
            path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
        )
        self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def objects(self, bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {o["Key"]: o for page in pages for o in page.get("Contents", [])}

    def read(self, bucket: str, key: str) -> bytes:
        """Bytes of an object; archived (GLACIER) objects are restored first, as a user would."""
        head = self.client.head_object(Bucket=bucket, Key=key)
        if head.get("StorageClass") in ("GLACIER", "DEEP_ARCHIVE") and not head.get("Restore"):
            self.client.restore_object(
                Bucket=bucket,
                Key=key,
                RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}},
            )
        return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def storage_class(self, bucket: str, key: str) -> str:
        return str(
            self.client.head_object(Bucket=bucket, Key=key).get("StorageClass") or "STANDARD"
        )


@pytest.fixture
def s3(moto_server: MotoServer) -> S3:
    from compactor.storage import S3Options, s3_client

    moto_server.reset()
    client = s3_client(S3Options(endpoint_url=moto_server.endpoint_url))
    for bucket in BUCKETS:
        client.create_bucket(Bucket=bucket)
    return S3(moto_server, client)


@pytest.fixture(scope="session")
def dask_scheduler(
    moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Address of a real scheduler process with two single-threaded worker processes."""
    from distributed import Client

    base = tmp_path_factory.mktemp("dask")
    sched_file = base / "scheduler.json"
    env = dict(os.environ)
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    procs = [
        subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", ":0", "--scheduler-file", str(sched_file)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    deadline = time.monotonic() + 60
    while not sched_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    address = json.loads(sched_file.read_text())["address"]
    for i in range(2):
        procs.append(
            subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                 "--name", f"w{i}", "--dashboard-address", ":0",
                 "--local-directory", str(base / f"w{i}")],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=90)
    yield address
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture
def cli(dask_scheduler: str) -> Any:
    """Invoke ``compactor`` in-process (click's runner) on the session's Dask cluster."""
    from click.testing import CliRunner

    from compactor.cli import main

    def invoke(*args: str, scheduler: bool = True, quiet: bool = True) -> Any:
        argv = list(args)
        if scheduler and {"run", "plan"} & set(argv):
            argv += ["--scheduler", dask_scheduler]
        return CliRunner().invoke(main, [*(["-q"] if quiet else []), *argv], catch_exceptions=False)

    return invoke
