"""`compactor demo` on a fresh environment: it starts its own S3 server and stops it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..reports import scenes_of


@pytest.mark.e2e  # starts its own processes
def test_demo_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # A user whose own default region is not us-east-1 must not break the embedded server.
    env.update(AWS_DEFAULT_REGION="eu-west-1", AWS_REGION="eu-west-1")
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("compactor")), "demo", "--size", "512", "--workers", "2",
         "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 scenes - 4 compacted" in proc.stdout
    html = tmp_path / "demo" / "report" / "report.html"
    assert f"report: {html}" in proc.stdout
    report = json.loads((tmp_path / "demo" / "report" / "report.json").read_text())
    assert report["totals"]["bytes_out"] < report["totals"]["bytes_in"]
    assert "scenes" not in report  # every scene is in the scene log next to it
    assert {s["archive"].split("/")[2] for s in scenes_of(report)} == {"compactor-demo"}
    assert "scene log: 4 scenes in 1 part at " in proc.stdout
    assert report["cost"]["storage_class"] == "GLACIER"
    assert sorted(p.name for p in (tmp_path / "demo" / "originals").iterdir()) == [
        "dem.tif", "hillshade.tif", "landscape.tif", "multiband.tif",
    ]  # fmt: skip
