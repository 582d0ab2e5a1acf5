"""The tree a newcomer reads: stage packages, each a surface over private modules, none
shadowed by a name of the package above it, no module too long to read."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import compactor

PACKAGE = Path(compactor.__file__).parent

#: The packages, in the order a scene's data flows through them, then the ones around it.
STAGES = ("sources", "scene", "encode", "verify", "archive", "pricing", "records", "report")
AROUND = ("runner", "cluster", "cli", "notebook", "demo", "fidelity", "cog", "storage", "gdal",
          "settings")  # fmt: skip


def _subpackages() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(PACKAGE)]) if m.ispkg)


def test_the_tree_is_the_stage_packages_and_the_ones_around_them() -> None:
    assert set(_subpackages()) == set(STAGES) | set(AROUND)


def test_no_package_is_shadowed_by_a_name_of_compactor() -> None:
    for name in _subpackages():
        module = importlib.import_module(f"compactor.{name}")
        assert getattr(compactor, name) is module, name


def test_every_module_of_a_package_is_private_behind_its_surface() -> None:
    public = [
        f"{pkg}.{m.name}"
        for pkg in _subpackages()
        for m in pkgutil.iter_modules([str(PACKAGE / pkg)])
        if not m.name.startswith("_")
    ]
    assert public == []


#: The longest a module may be: what a reader takes in at one sitting.
MAX_MODULE_LINES = 500


def test_no_module_is_longer_than_a_reader_takes_in() -> None:
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_the_walk_is_a_short_loop_over_one_handler_per_action() -> None:
    import inspect

    from compactor.scene import Action
    from compactor.scene._steps import STEPS
    from compactor.scene._walk import walk_scene

    assert set(STEPS) == set(Action)
    assert len(inspect.getsource(walk_scene).splitlines()) < 40


def test_the_modules_local_workers_preload_exist() -> None:
    """The fork server imports these by name, and skips one that fails without a word."""
    from compactor.cluster._forkserver import worker_preload

    for name in worker_preload(lossy=True):
        importlib.import_module(name)
