"""The real CC0 rasters in ../shared/data/rasterio-cc0 (skipped when the folder is absent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from ..conftest import S3, SHARED_DATA
from ..runner.test_run_s3 import ARCHIVE, DEST, SRC, by_name, load_report, s3_gdal, upload

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is not present")

NAMES = [
    "RGB.byte.tif",
    "shade.tif",
    "RGBA.byte.tif",
    "RGBA.uint16.tif",
    "float_nan.tif",
    "corrupt.tif",
]


def test_real_rasters(shared_data: Path, s3: S3, cli: Any) -> None:
    originals = upload(s3, {n: shared_data / n for n in NAMES})
    # float_nan.tif is 600 bytes: any COG of it is larger, so accept growth here.
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE, "--min-saving", "-1")
    assert result.exit_code == 1, result.output  # corrupt.tif
    scenes = by_name(load_report(s3, result.stdout))

    # corrupt.tif: its header opens, its pixel reads fail -> failed, untouched, not archived
    assert scenes["corrupt.tif"]["status"] == "failed"
    assert "IReadBlock failed" in scenes["corrupt.tif"]["reason"]
    assert s3.read("src-bucket", "scenes/corrupt.tif") == originals["scenes/corrupt.tif"]
    assert "orig/corrupt.tif" not in s3.keys("arc-bucket")

    for name in NAMES[:-1]:
        s = scenes[name]
        assert s["status"] == "compacted", (name, s["reason"])
        assert s3.read("arc-bucket", f"orig/{name}") == originals[f"scenes/{name}"]
        assert s["ssim"] >= 0.95

    # Landsat RGB: quality 75 gives SSIM about 0.92 by the project's definition, so the
    # quality search (the default) settles well above it, at the lowest quality that holds:
    # the scene is its own sample, so one quality lower was probed and missed.
    rgb = scenes["RGB.byte.tif"]
    assert rgb["codec"] == "jpeg"
    assert rgb["quality"] >= 80
    probes = {p["quality"]: p["ssim"] for p in rgb["search"]["probes"]}
    assert rgb["search"]["sample_whole"]
    assert probes[rgb["quality"]] == pytest.approx(rgb["ssim"], abs=1e-9)
    assert probes[rgb["quality"] - 1] < 0.95
    assert [a["accepted"] for a in rgb["attempts"]] == [True]
    assert rgb["bytes_out"] * 4 < rgb["bytes_in"]
    assert scenes["RGBA.byte.tif"]["codec"] == "jpeg"
    assert scenes["RGBA.uint16.tif"]["lossless"]
    assert scenes["float_nan.tif"]["lossless"]
    with s3_gdal(s3), rasterio.open("/vsis3/dst-bucket/cogs/float_nan.tif") as out:
        with rasterio.open(shared_data / "float_nan.tif") as ref:
            a, b = out.read(), ref.read()
            assert np.isnan(b).any()
            assert np.array_equal(a, b, equal_nan=True)
