"""GDAL: its configuration as data, its errors, and what a source raster is."""

from ._drivers import restrict_drivers
from ._env import BASE_OPTIONS, cache_mb_for, gdal_env, gdal_options, scratch_dir
from ._errors import clean, gdal_errors
from ._info import (
    SOURCE_DRIVERS,
    SOURCE_FORMATS,
    RasterInfo,
    check_limits,
    is_complex,
    open_source,
    read_info,
)
from ._sidecars import group_sidecars, is_sidecar_of, is_sidecar_shaped, renamed, sidecar_names

__all__ = [
    "BASE_OPTIONS",
    "SOURCE_DRIVERS",
    "SOURCE_FORMATS",
    "RasterInfo",
    "cache_mb_for",
    "check_limits",
    "clean",
    "gdal_env",
    "gdal_errors",
    "gdal_options",
    "group_sidecars",
    "is_complex",
    "is_sidecar_of",
    "is_sidecar_shaped",
    "open_source",
    "read_info",
    "renamed",
    "restrict_drivers",
    "scratch_dir",
    "sidecar_names",
]
