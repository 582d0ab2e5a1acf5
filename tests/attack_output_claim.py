"""Attack: a record under <dest>/_compactor/state/ (even an unreadable one) makes the run
overwrite an object at the scene's output key that compactor did not write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import rasters
from .test_records import Backend, LocalBackend, S3Backend, _run, run_report

FOREIGN = b"someone else's object at the output key, not written by compactor"


def _attack(cli: Any, b: Backend, tmp_path: Path, record: bytes | None) -> tuple[Any, bytes | None]:
    data = rasters.gray(tmp_path / "r" / "a.tif", size=128, seed=3).read_bytes()
    b.put_source("a.tif", data)
    b.write(b.output_url("a.tif"), FOREIGN)
    if record is not None:
        b.write(b.state_url("a.tif"), record)
    res = _run(cli, b)
    scenes = run_report(b, res.stdout)
    return scenes["a.tif"], b.read(b.output_url("a.tif"))


@pytest.mark.parametrize("record", [None, b"not json"], ids=["no-record", "garbage-record"])
@pytest.mark.parametrize("backend", ["s3", "local"])
def test_output_key_not_overwritten(
    request: Any, cli: Any, tmp_path: Path, record: bytes | None, backend: str
) -> None:
    b: Backend
    if backend == "s3":
        b = S3Backend(request.getfixturevalue("s3"))
    else:
        b = LocalBackend(tmp_path / "tree")
    scene, out = _attack(cli, b, tmp_path, record)
    print(backend, record, scene.status, scene.reason)
    assert out == FOREIGN, (scene.status, scene.reason)
