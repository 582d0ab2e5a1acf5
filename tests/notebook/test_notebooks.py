"""The notebooks: clean in git, explore.ipynb runs top to bottom in a real kernel (its own
embedded S3 server and LocalCluster) and leaves no process behind, and every cell of
eks.ipynb compiles and calls only real API names."""

from __future__ import annotations

import ast
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from nbclient import NotebookClient

import compactor
from compactor.settings import Settings
from compactor.settings._resolve import STAC_FLAGS

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_notebooks_are_committed_without_outputs() -> None:
    assert {p.name for p in ALL} >= {"explore.ipynb", "eks.ipynb"}
    for path in ALL:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert "widgets" not in nb.metadata, path.name
        assert nb.metadata.kernelspec.name == "python3", path.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], (path.name, cell.source[:60])
                assert cell.execution_count is None, (path.name, cell.source[:60])
        assert path.stat().st_size < 40_000, path.name


def html_of(cell: Any) -> str:
    return "".join(
        o.get("data", {}).get("text/html", "")
        for o in cell.outputs
        if o.output_type in ("display_data", "execute_result")
    )


def text_of(cell: Any) -> str:
    parts = []
    for o in cell.outputs:
        if o.output_type == "stream" and o.name == "stdout":
            parts.append(o.text)
        elif o.output_type in ("display_data", "execute_result"):
            parts.append(o.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def marked_processes(marker: str) -> list[psutil.Process]:
    """Processes whose environment carries ``marker``: the kernel and all it started."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("COMPACTOR_NOTEBOOK_TEST") == marker:
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


@pytest.mark.slow
def test_explore_notebook_runs_top_to_bottom(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS / "explore.ipynb", as_version=4)
    # The kernel starts from a clean AWS and compactor environment (as a user's would),
    # marked so that every process it starts can be found afterwards.
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COMPACTOR_"))}
    env["COMPACTOR_NOTEBOOK_TEST"] = marker
    started = time.monotonic()
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute(env=env)
    elapsed = time.monotonic() - started

    errors = [
        (c.metadata.get("tags"), o.get("ename"), o.get("evalue"))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert errors == []
    cells = {tag: c for c in nb.cells for tag in c.metadata.get("tags", [])}

    assert "<table" in html_of(cells["plan"])
    assert "notebook-demo/scenes/landscape.tif" in html_of(cells["plan"])

    compare = html_of(cells["compare"])
    assert "<svg" in compare
    assert 'class="mark"' in compare
    assert "SSIM bar 0.95" in compare
    assert "<progress" in compare  # the live bar, shown because this is a kernel
    assert "webp:75" in html_of(cells["compare-table"])

    preview = html_of(cells["preview"])
    assert len(re.findall(r'src="data:image/png;base64,', preview)) == 3
    assert "landscape.tif" in preview
    assert "jpeg q75" in preview

    report = html_of(cells["run"])
    assert "compactor run " in report
    assert "compacted" in report
    assert "<svg" in report

    totals = text_of(cells["totals"])
    match = re.search(r"(\d+)/(\d+) scenes compacted, (\d+) skipped, (\d+) failed", totals)
    assert match, totals
    assert match.groups() == ("4", "4", "0", "0")
    assert "s3://notebook-demo/cogs/_compactor/runs/" in totals

    # The cleanup cell stopped the server and the cluster; nbclient shut the kernel down.
    deadline = time.monotonic() + 30
    while marked_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert marked_processes(marker) == []
    assert elapsed < 300, f"the notebook took {elapsed:.0f} s"


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def test_eks_notebook_compiles_and_uses_real_names() -> None:
    nb = nbformat.read(NOTEBOOKS / "eks.ipynb", as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code
    settings_names = (
        set(Settings.model_fields)
        | set(STAC_FLAGS)
        | {"cluster_kind", "scheduler", "workers", "worker_memory"}
    )
    api_names = {
        "run": {"settings", "config_file", "progress", "on_start", "on_dashboard", "client"},
        "plan": {"settings", "config_file", "client", "progress", "on_start"},
        "compare": {"whole", "client", "settings", "config_file", "progress"},
        "preview": {"window", "size", "gain", "client", "settings", "config_file"},
    }
    used = set()
    for i, source in enumerate(code):
        tree = compile(source, f"eks.ipynb cell {i}", "exec", ast.PyCF_ONLY_AST)
        compile(tree, f"eks.ipynb cell {i}", "exec")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "compactor"
            ):
                assert hasattr(compactor, node.attr), node.attr
        for call in _calls(tree):
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "compactor"
                and func.attr in api_names
            ):
                used.add(func.attr)
                for kw in call.keywords:
                    if kw.arg is not None:
                        assert kw.arg in settings_names | api_names[func.attr], kw.arg
    assert {"plan", "run"} <= used

    # The cluster settings and the STAC search resolve as settings do.
    namespace: dict[str, Any] = {}
    exec(code[0], namespace)
    stac_cell = next(c for c in code if "STAC = dict(" in c)
    stac_source = stac_cell.split("plan = ", 1)[0]
    exec(stac_source, namespace)
    settings = compactor.resolve_settings(
        {**namespace["STAC"], "dest": namespace["DEST"], "archive": namespace["ARCHIVE"],
         "cluster": namespace["CLUSTER"], "quality": "auto"},
        environ={},
    )  # fmt: skip
    assert settings.cluster.kind == "kubernetes"
    assert settings.cluster.image
    assert settings.cluster.service_account == "compactor"
    assert settings.stac.collections == ("sentinel-2-l2a",)
    assert settings.stac.bbox == (5.9, 45.8, 10.5, 47.8)
