"""Which writer a scene gets, and writing it."""

from __future__ import annotations

from pathlib import Path

from ..codecs import TILE_WRITER
from ..errors import EncodeError
from ..gdal.errors import clean, gdal_errors
from ..gdal.info import RasterInfo
from .gdal_writer import write_cog_gdal
from .profile import Profile
from .tile_writer import write_local


def uses_tile_writer(profile: Profile, info: RasterInfo) -> bool:
    """compactor's tile writer (libjpeg-turbo, libwebp, libdeflate, zstd; one pass) where it
    can; GDAL's COG driver for its other codecs and for GCP- or RPC-georeferenced scenes."""
    return profile.codec in TILE_WRITER and not info.has_gcps_or_rpcs


def write_cog(src_path: str, dst: Path, profile: Profile, info: RasterInfo) -> Path:
    """Encode ``src_path`` (a GDAL path) as a COG at local path ``dst`` (in this process)."""
    if uses_tile_writer(profile, info):
        try:
            return write_local(src_path, dst, profile, info)
        except gdal_errors() as err:
            dst.unlink(missing_ok=True)
            raise EncodeError(
                f"GDAL could not read the scene ({profile.label}): {clean(err)}"
            ) from err
    return write_cog_gdal(src_path, dst, profile, info)
