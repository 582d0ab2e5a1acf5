"""GDAL: its configuration as data, its errors, and what a source raster is."""

from .env import BASE_OPTIONS, gdal_env, gdal_options, scratch_dir
from .errors import clean, gdal_errors
from .info import SOURCE_DRIVERS, SOURCE_FORMATS, RasterInfo, check_limits, open_source, read_info

__all__ = [
    "BASE_OPTIONS",
    "SOURCE_DRIVERS",
    "SOURCE_FORMATS",
    "RasterInfo",
    "check_limits",
    "clean",
    "gdal_env",
    "gdal_errors",
    "gdal_options",
    "open_source",
    "read_info",
    "scratch_dir",
]
