"""The core install: ``pip install .`` with no extras gives a working ``compactor`` for every
command but ``demo``, which says what to install. This is what the chart's image holds; the
suite's own venv has every extra and cannot see an import of a test- or demo-only package,
so this test builds a fresh venv with none (pip's cache makes it about a minute)."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

from .. import rasters

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "requirements" / "constraints.txt"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def core_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``compactor`` installed from this tree, no extras (not editable:
    what a user or the image gets)."""
    root = tmp_path_factory.mktemp("core-venv")
    venv.EnvBuilder(with_pip=True).create(root)
    python = root / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", str(CONSTRAINTS), str(REPO)],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.pop(var, None)
    return subprocess.run(
        [str(bin_dir / "compactor"), *args], capture_output=True, text=True, timeout=600,
        cwd=cwd, env=env,
    )  # fmt: skip


def test_no_extra_is_installed(core_bin: Path) -> None:
    """The venv really lacks the extras (else the other tests here prove nothing)."""
    probe = "import importlib.util as u; print([m for m in ('moto', 'pytest', 'skimage') if u.find_spec(m)])"
    out = subprocess.run([str(core_bin / "python"), "-c", probe], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_every_command_but_demo_runs_without_extras(core_bin: Path, tmp_path: Path) -> None:
    top = _run(core_bin, "--help", cwd=tmp_path)
    assert top.returncode == 0, top.stderr
    for command in ("run", "plan", "verify", "restore", "k8s-spec"):
        sub = _run(core_bin, command, "--help", cwd=tmp_path)
        assert sub.returncode == 0, (command, sub.stderr)
    src = tmp_path / "src"
    rasters.gray(src / "g.tif")
    plan = _run(
        core_bin, "plan", "--source", str(src), "--dest", str(tmp_path / "out"), "--workers", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    run = _run(
        core_bin, "run", "--source", str(src), "--dest", str(tmp_path / "out"),
        "--archive", str(tmp_path / "arc"), "--workers", "1", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "1 compacted" in run.stdout
    assert (tmp_path / "out" / "g.tif").exists()
    assert (tmp_path / "arc" / "g.tif").exists()


def test_demo_says_what_to_install(core_bin: Path, tmp_path: Path) -> None:
    demo = _run(core_bin, "demo", "--workdir", str(tmp_path / "demo"), cwd=tmp_path)
    assert demo.returncode == 2, demo.stderr
    assert "pip install 'compactor[demo]'" in " ".join(demo.stderr.split())
    assert "Traceback" not in demo.stderr
