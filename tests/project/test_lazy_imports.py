"""The CLI's help and ``import compactor`` load no heavy module: a command imports its work
(the runner, Dask, GDAL, pandas) when it runs. Each check is a fresh interpreter that reports
which of those modules it holds, since this test process has them all already."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("rasterio", "dask", "distributed", "pandas", "numpy", "boto3", "compactor.runner")

PROBE = """
import json, sys
from click.testing import CliRunner
{setup}
print(json.dumps({{"loaded": [m for m in {heavy!r} if m in sys.modules], "out": out}}))
"""


def probe(setup: str) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = PROBE.format(setup=setup, heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["plan", "--help"]])
def test_help_loads_no_heavy_module(args: list[str]) -> None:
    setup = (
        "from compactor.cli import main\n"
        f"r = CliRunner().invoke(main, {args!r})\n"
        "out = r.output if r.exit_code == 0 else f'exit {r.exit_code}: {r.output}'"
    )
    result = probe(setup)
    assert result["loaded"] == []
    assert "Usage: " in str(result["out"])
    if args[0] == "run":  # the options generated from the settings are all there
        assert "--min-saving" in str(result["out"])
        assert "--workers" in str(result["out"])


def test_import_compactor_is_light_and_its_names_load_on_use() -> None:
    result = probe(
        "import compactor\n"
        "light = [m for m in sys.modules if m in {heavy!r}]\n"
        "run, report = compactor.run, compactor.Report\n"
        "out = [light, run.__module__, report.__name__]".replace("{heavy!r}", repr(HEAVY))
    )
    light, module, report = result["out"]  # type: ignore[misc]
    assert light == []
    assert module == "compactor.runner._pipeline"
    assert report == "Report"
