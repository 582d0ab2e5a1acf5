"""A scene as a lazy, dask-backed ``xarray.DataArray`` read through GDAL in windows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import dask.array
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from rasterio.windows import Window

from ..errors import ConfigError
from ..gdal import gdal_env, open_source
from ..settings import Settings
from ._settings import _context, _parse_source, _resolve


@dataclass(frozen=True)
class _Window:
    """A source as an array-like ``(band, y, x)`` whose slices are windowed reads through
    :func:`~compactor.gdal._info.open_source` with the run's GDAL options: plain data, so
    dask ships it to whichever process computes a chunk."""

    path: str
    gdal: tuple[tuple[str, str], ...]
    shape: tuple[int, int, int]
    dtype: np.dtype[Any]

    @property
    def ndim(self) -> int:
        return 3

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        bands, rows, cols = (k.indices(n) for k, n in zip(key, self.shape, strict=True))
        window = Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])
        with gdal_env(dict(self.gdal)), open_source(self.path) as src:
            data = src.read(list(range(bands[0] + 1, bands[1] + 1)), window=window)
        return np.asarray(data)


def open_scene(url: str, *, chunks: int | dict[str, int] = 512,
               settings: Settings | None = None, config_file: str | None = None,
               **arguments: Any) -> xr.DataArray:  # fmt: skip
    """A scene as a lazy, dask-backed ``xarray.DataArray`` (band, y, x) with its x/y
    coordinates (pixel centres), CRS and transform through rioxarray (``da.rio``): windowed
    range reads of ``chunks`` pixels, nothing read until computed. Every read opens the
    source as a run does (:data:`~compactor.gdal._info.SOURCE_DRIVERS`) with the run's GDAL
    options, on whichever process computes it. Settings by name resolve as for
    :func:`compactor.run`."""
    resolved = _resolve(settings, config_file, dict(arguments))
    context = _context(resolved)
    loc = _parse_source(url)
    if loc.is_http:
        raise ConfigError("open() reads s3:// objects and local files")
    with gdal_env(context.gdal_options), open_source(loc.gdal_path) as ds:
        shape = (ds.count, ds.height, ds.width)
        dtype, transform, crs, nodata = np.dtype(ds.dtypes[0]), ds.transform, ds.crs, ds.nodata
        descriptions = ds.descriptions
    size = chunks if isinstance(chunks, dict) else {"y": chunks, "x": chunks}
    lazy = dask.array.from_array(
        _Window(loc.gdal_path, context.gdal, shape, dtype),
        chunks=(shape[0], size.get("y", shape[1]), size.get("x", shape[2])),
        name=f"compactor-open-{uuid.uuid4().hex[:8]}", asarray=False, fancy=False,
    )  # fmt: skip
    da = xr.DataArray(
        lazy,
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, shape[0] + 1),
            "y": transform.f + transform.e * (np.arange(shape[1]) + 0.5),
            "x": transform.c + transform.a * (np.arange(shape[2]) + 0.5),
        },
        attrs={"long_name": descriptions, "_FillValue": nodata} if nodata is not None
        else {"long_name": descriptions},
        name=loc.name,
    )  # fmt: skip
    da = da.rio.write_transform(transform)
    located: xr.DataArray = da.rio.write_crs(crs) if crs else da
    return located
