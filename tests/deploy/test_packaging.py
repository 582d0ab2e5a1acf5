"""pyproject.toml and environment.yml list the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"]}
    for extra in ("demo", "test"):
        pip_names |= {_name(r) for r in project["optional-dependencies"][extra]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda_names = {
        _name(d)
        for d in env["dependencies"]
        if isinstance(d, str) and not d.startswith(("python", "pip"))
    }
    # moto[server]'s extra is spelled out on conda as its server packages; OpenCV's
    # headless wheel is conda-forge's py-opencv.
    conda_names -= {"flask", "flask-cors"}
    conda_names = {"opencv-python-headless" if n == "py-opencv" else n for n in conda_names}
    assert conda_names == pip_names


def test_environment_yml_pins_match_pyproject_lower_bounds() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {_name(r): r.split(">=")[1] for r in project["dependencies"] if ">=" in r}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    for dep in env["dependencies"]:
        dep = dep.replace("py-opencv", "opencv-python-headless") if isinstance(dep, str) else dep
        if isinstance(dep, str) and ">=" in dep and _name(dep) in pins:
            assert dep.split(">=")[1].split()[0] == pins[_name(dep)], dep
