"""The documentation beside the code: ``docs/`` builds with Sphinx and no warning, its API
reference shows every function and class of each package's surface, every page is in the
table of contents, and the README links only to files that exist."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

#: The package surfaces the API reference documents (docs/api.rst).
SURFACES = [
    "sources", "scene", "encode", "verify", "fidelity", "cog", "archive", "pricing", "records",
    "report", "runner", "cluster", "storage", "gdal", "settings", "notebook",
]  # fmt: skip

#: Names a surface re-exports from another surface, documented there.
SHOWN_ELSEWHERE = {("verify", "Fidelity")}


def _pages() -> set[str]:
    return {p.stem for p in DOCS.iterdir() if p.suffix in (".md", ".rst")} - {"index"}


def _toctree_entries() -> set[str]:
    index = (DOCS / "index.md").read_text()
    blocks = re.findall(r"```\{toctree\}\n(.*?)```", index, flags=re.S)
    return {
        line.strip() for block in blocks for line in block.splitlines()
        if line.strip() and not line.startswith(":")
    }  # fmt: skip


def test_every_page_is_in_the_toctree() -> None:
    assert _toctree_entries() == _pages()


def test_the_readme_links_to_every_page_and_only_to_files_that_exist() -> None:
    readme = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert local
    for target in local:
        assert (REPO / target).exists(), target
    linked = {Path(t).stem for t in local if t.startswith("docs/")}
    assert _pages() - {"api"} <= linked


def test_the_package_maps_name_every_package() -> None:
    packages = {p.parent.name for p in (REPO / "compactor").glob("*/__init__.py")}
    assert packages
    for page in (REPO / "README.md", DOCS / "concepts.md"):
        text = page.read_text()
        assert not {p for p in packages if f"`compactor.{p}`" not in text}, page


def test_the_options_page_keeps_its_markers() -> None:
    text = (DOCS / "options.md").read_text()
    assert text.index("<!-- options:start -->") < text.index("<!-- options:end -->")


@pytest.mark.slow
def test_the_docs_build_without_a_warning_and_show_every_surface(tmp_path: Path) -> None:
    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html"]
    done = subprocess.run(
        [*cmd, str(DOCS), str(out)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    for page in _pages() | {"index"}:
        assert (out / f"{page}.html").is_file(), page
    api = (out / "api.html").read_text()
    missing = []
    for package in SURFACES:
        module = importlib.import_module(f"compactor.{package}")
        assert f'id="module-compactor.{package}"' in api, package
        for name in module.__all__:
            value = getattr(module, name)
            shown = inspect.isclass(value) or inspect.isroutine(value)
            anchor = f'id="compactor.{package}.{name}"'
            if shown and (package, name) not in SHOWN_ELSEWHERE and anchor not in api:
                missing.append(f"compactor.{package}.{name}")
    assert not missing
