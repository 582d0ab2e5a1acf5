"""Local directories as source, destination and archive; and the default LocalCluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rio_cogeo.cogeo import cog_validate

from .. import rasters
from ..reports import scenes_of


def test_local_source_dest_and_archive_dir(cli: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    rasters.rgb(src / "a b" / "one.tif")
    rasters.uint16(src / "two.TIF")
    (src / "notes.txt").write_text("not a scene")
    original = {p.relative_to(src): p.read_bytes() for p in src.rglob("*.tif*") if p.is_file()}
    original.update({p.relative_to(src): p.read_bytes() for p in src.rglob("*.TIF")})
    dest, arch = tmp_path / "cogs", tmp_path / "archive"
    result = cli("run", "--source", str(src), "--dest", str(dest), "--archive", str(arch))
    assert result.exit_code == 0, result.output
    for rel, data in original.items():
        assert not (src / rel).exists()  # moved...
        assert (arch / rel).read_bytes() == data  # ...byte for byte
        out = dest / rel.with_suffix(".tif")
        valid, errors, _ = cog_validate(str(out), quiet=True)
        assert valid
        assert not errors
    assert (src / "notes.txt").exists()
    reports = list((dest / "_compactor" / "runs").glob("*/report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["totals"]["compacted"] == 2
    assert all(not s["output"].startswith("s3://") for s in scenes_of(report))


@pytest.mark.e2e  # starts its own processes
def test_console_script_with_a_local_cluster(tmp_path: Path) -> None:
    """The installed `compactor` command, no --scheduler: it starts and stops a LocalCluster."""
    src = tmp_path / "src"
    rasters.gray(src / "g.tif")
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("compactor")), "run", "--source", str(src),
         "--dest", str(tmp_path / "out"), "--workers", "1", "--report", str(tmp_path / "rep")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "1 compacted" in proc.stdout
    assert f"report: {tmp_path / 'rep'}/report.html" in proc.stdout
    assert (tmp_path / "rep" / "report.html").exists()
    assert (tmp_path / "out" / "g.tif").exists()


def test_help_explains(cli: Any) -> None:
    top = cli("--help")
    assert top.exit_code == 0
    assert "compactor plan" in top.output
    assert "demo" in top.output
    run = cli("run", "--help", scheduler=False)
    for text in ("--archive", "--storage-class", "--min-ssim", "--scheduler", "Exit status"):
        assert text in run.output


def test_no_secret_in_verbose_logs(s3: Any, tmp_path: Path) -> None:
    """-vv logs from the CLI and from every worker process (LocalCluster workers write to
    the same stderr) never contain the secret key."""
    from ..conftest import FAKE_SECRET

    rasters.gray(tmp_path / "src" / "g.tif")
    (tmp_path / "src" / "bad.tif").write_text("nope")
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("compactor")), "-vv", "run", "--source", str(tmp_path / "src"),
         "--dest", "s3://dst-bucket/cogs/", "--workers", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # bad.tif
    assert "DEBUG" in proc.stderr  # really verbose, botocore included
    assert FAKE_SECRET not in proc.stdout + proc.stderr
