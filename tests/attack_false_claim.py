"""Attack: a record edited to a later step (no archive copy anywhere) makes the run report
the scene as already compacted / archived, while its original was never archived."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .test_records import Backend, LocalBackend, S3Backend, _compacted_once, _run, run_report


def _case(request: Any, backend: str, tmp_path: Path) -> Backend:
    if backend == "s3":
        return S3Backend(request.getfixturevalue("s3"))
    return LocalBackend(tmp_path / "tree")


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_step_deleted_without_archive_prefix(
    request: Any, cli: Any, tmp_path: Path, backend: str
) -> None:
    b = _case(request, backend, tmp_path)
    originals = _compacted_once(cli, b, tmp_path, ["a.tif"])
    state = json.loads(b.read(b.state_url("a.tif")) or b"")
    state["step"] = 5  # 'deleted'; archive stays None
    b.write(b.state_url("a.tif"), json.dumps(state).encode())
    res = _run(cli, b, "--archive", b.arc)
    scene = run_report(b, res.stdout)["a.tif"]
    print(backend, scene.status, scene.step, scene.reason, scene.archive)
    assert b.read(b.source_url("a.tif")) == originals["a.tif"]
    assert b.read(b.archive_url("a.tif")) is None
    # the claim: the report must not say this scene is done
    assert not (
        scene.status in ("skipped", "compacted") and "already compacted" in (scene.reason or "")
    ), scene


def test_in_place_archived_claim_while_standard(s3: Any, cli: Any, tmp_path: Path) -> None:
    b = S3Backend(s3)
    originals = _compacted_once(cli, b, tmp_path, ["a.tif"])
    state = json.loads(b.read(b.state_url("a.tif")) or b"")
    data = originals["a.tif"]
    import hashlib

    state.update(
        step=4,
        source_sha256=hashlib.sha256(data).hexdigest(),
        archive={
            "url": b.source_url("a.tif"),
            "size": len(data),
            "storage_class": "GLACIER",
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    )
    b.write(b.state_url("a.tif"), json.dumps(state).encode())
    res = _run(cli, b, "--archive", "in-place")
    scene = run_report(b, res.stdout)["a.tif"]
    print(
        "in-place",
        scene.status,
        scene.step,
        scene.reason,
        scene.storage_class,
        s3.storage_class("src-bucket", "scenes/a.tif"),
    )
    assert not (
        scene.storage_class == "GLACIER"
        and s3.storage_class("src-bucket", "scenes/a.tif") != "GLACIER"
    ), scene
