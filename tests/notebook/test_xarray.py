"""The Jupyter user's xarray: ``compactor.open`` as a lazy dask-backed DataArray, the
preview's Dataset on the scene's coordinates, and the local SSIM map it carries (held
equal to skimage's)."""

from __future__ import annotations

from pathlib import Path

import dask.array
import matplotlib
import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.windows import Window
from skimage.metrics import structural_similarity

import compactor
from compactor.errors import UnreadableSceneError
from compactor.fidelity._ssim import ssim_map

from .. import rasters
from ..conftest import S3

matplotlib.use("Agg")


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_the_local_ssim_map_is_skimages(dtype: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = (rasters.terrain(96, seed=2) * 10).astype(dtype)
    y = (x + rng.normal(0, 20, x.shape)).clip(0, None).astype(dtype)
    data_range = 65535.0 if dtype == "uint16" else 255.0 if dtype == "uint8" else 20000.0
    # skimage computes float32 images in float32 (variances of large values lose digits);
    # the reference gets float64 copies, as compactor computes.
    ref = (x, y) if dtype != "float32" else (x.astype("float64"), y.astype("float64"))
    mean, full = structural_similarity(*ref, data_range=data_range, full=True)
    ours = ssim_map(x, y, data_range)
    core = (slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(ours[core], full[core], atol=1e-6)
    assert np.isnan(ours[:3]).all() and np.isnan(ours[:, -3:]).all()  # noqa: PT018
    assert float(np.nanmean(ours)) == pytest.approx(mean, abs=1e-6)


def test_open_is_lazy_windowed_and_checked(s3: S3, tmp_path: Path) -> None:
    path = rasters.uint16(tmp_path / "u16.tif", size=640, bands=2)
    s3.put("src-bucket", "scenes/u16.tif", path)
    da = compactor.open("s3://src-bucket/scenes/u16.tif", chunks=256)
    assert isinstance(da, xr.DataArray)
    assert isinstance(da.data, dask.array.Array)  # nothing read yet
    assert da.shape == (2, 640, 640)
    assert da.data.chunksize == (2, 256, 256)
    with rasterio.open(path) as src:
        window = src.read(window=Window(100, 200, 50, 30))
        assert da.rio.crs == src.crs
        assert da.rio.transform() == src.transform
    np.testing.assert_array_equal(da[:, 200:230, 100:150].values, window)
    # The same door as a run's: a VRT named .tif is refused before anything is read.
    s3.put("src-bucket", "scenes/vrt.tif", b'<VRTDataset rasterXSize="1" rasterYSize="1"/>')
    with pytest.raises(UnreadableSceneError, match="VRT"):
        compactor.open("s3://src-bucket/scenes/vrt.tif")


def test_the_preview_is_a_dataset_on_the_scenes_coordinates(s3: S3, tmp_path: Path) -> None:
    path = rasters.rgb(tmp_path / "rgb.tif", size=400)
    s3.put("src-bucket", "scenes/rgb.tif", path)
    p = compactor.preview("s3://src-bucket/scenes/rgb.tif", "jpeg:40", size=256)
    ds = p.data
    assert ds is not None
    assert set(ds.data_vars) == {"original", "compressed", "difference", "ssim"}
    assert ds.original.dims == ("band", "y", "x")
    assert list(ds.band.values) == [1, 2, 3]
    col, row, w, h = p.window
    with rasterio.open(path) as src:
        crop = src.read(window=Window(col, row, w, h))
        x0, y0 = src.transform * (col + 0.5, row + 0.5)
    assert float(ds.x[0]) == pytest.approx(x0)
    assert float(ds.y[0]) == pytest.approx(y0)
    valid = (crop != 0).any(axis=0)
    np.testing.assert_array_equal(ds.original.values[:, valid], crop[:, valid])
    assert np.isnan(ds.original.values[:, ~valid]).all()  # nodata is NaN, not 0
    np.testing.assert_array_equal(
        ds.difference.values[:, valid], (ds.compressed - ds.original).values[:, valid]
    )
    assert np.abs(ds.difference).max() > 0  # JPEG q40 loses something
    # The map's mean over valid pixels is the SSIM verification measures (worst band).
    per_band = [float(ds.ssim.sel(band=b).mean()) for b in (1, 2, 3)]
    assert min(per_band) == pytest.approx(p.ssim, abs=2e-3)
    # .plot() works on it (matplotlib).
    mesh = ds.difference.sel(band=1).plot()
    assert mesh.axes.get_xlabel().startswith("x")
