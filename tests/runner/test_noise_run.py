"""``--max-error noise`` through ``compactor plan`` and ``compactor run`` (issue 27): what the
plan says it would choose, what the run wrote (read back independently), and what the report
says per band."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from .. import rasters
from ..reports import scenes_of


def _scenes(src: Path) -> np.ndarray:
    rng = np.random.default_rng(27)
    yy, xx = np.mgrid[0:700, 0:650].astype(np.float64)
    surface = 1200 + 500 * np.sin(xx / 37) * np.cos(yy / 29) + 0.4 * xx
    noisy = np.rint(surface + rng.normal(0, 6, surface.shape)).astype(np.uint16)
    noisy[:, :90] = 0  # nodata collar
    rasters.write(src / "noisy.tif", noisy[None], nodata=0)
    flat = np.full((1, 700, 650), 321, np.uint16)  # synthetic: no noise to measure
    rasters.write(src / "flat.tif", flat, nodata=0)
    return noisy


def test_plan_and_run_with_noise_bound(cli: Any, tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "cogs"
    noisy = _scenes(src)
    common = ["--source", str(src), "--dest", str(dest), "--max-error", "noise"]

    plan = cli("plan", *common, "--json")
    assert plan.exit_code == 0, plan.output
    rows = {Path(r["source"]).name: r for r in map(json.loads, plan.output.splitlines())}
    assert rows["noisy.tif"]["max_error"] == [3.0]
    assert rows["noisy.tif"]["noise"].startswith("noise σ 6")
    assert rows["flat.tif"]["max_error"] is None
    assert "no measurable noise" in rows["flat.tif"]["noise"]

    run = cli("run", *common, "--overviews", "none", "--min-saving", "-1")
    assert run.exit_code == 0, run.output
    report = json.loads(next((dest / "_compactor" / "runs").glob("*/report.json")).read_text())
    by_name = {Path(s["source"]).name: s for s in scenes_of(report)}
    s = by_name["noisy.tif"]
    assert s["status"] == "compacted"
    assert s["noise_fraction"] == 0.3
    (band,) = s["band_noise"]
    assert math.isclose(band["sigma"], 6.0, rel_tol=0.05)
    assert band["bound"] == 3.0
    assert 0 < band["rmse"] <= band["max_rmse"] == 0.3 * band["sigma"]
    assert band["saving"] > 0.1
    flat = by_name["flat.tif"]
    assert flat["status"] == "compacted"
    assert flat["lossless"]
    assert flat["band_noise"][0]["sigma"] is None
    assert "no measurable noise" in flat["band_noise"][0]["reason"]

    # Read back independently: within 3 DN on every valid pixel, nodata exactly where it was,
    # RMS error within 0.3 of the noise actually added.
    with rasterio.open(dest / "noisy.tif") as out:
        back = out.read(1)
    valid = noisy != 0
    np.testing.assert_array_equal(back == 0, ~valid)
    err = back[valid].astype(np.float64) - noisy[valid]
    assert np.abs(err).max() <= 3
    assert math.sqrt(float(np.mean(err**2))) <= 0.3 * 6.0
    with rasterio.open(dest / "flat.tif") as out, rasterio.open(src / "flat.tif") as orig:
        np.testing.assert_array_equal(out.read(), orig.read())
