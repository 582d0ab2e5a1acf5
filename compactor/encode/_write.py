"""Which writer a scene gets, and writing it."""

from __future__ import annotations

from pathlib import Path

from ..codecs import TILE_WRITER
from ..cog import EncodedCog, Profile, tile_bytes
from ..errors import EncodeError
from ..gdal import RasterInfo, clean, gdal_errors, is_complex
from ._gdal_writer import write_cog_gdal
from ._tile_writer import write_local


def uses_tile_writer(profile: Profile, info: RasterInfo) -> bool:
    """compactor's tile writer (libjpeg-turbo, libwebp, libdeflate, zstd, LZW, LERC; one
    pass) where it can; GDAL's COG driver for scenes georeferenced by GCPs or RPCs, complex
    data (:data:`~compactor.codecs.COMPLEX`), and any codec the tile writer lacks."""
    return profile.codec in TILE_WRITER and not info.has_gcps_or_rpcs and not is_complex(info.dtype)


def gdal_writer_reason(profile: Profile, info: RasterInfo) -> str:
    """Why a scene is written by GDAL's COG driver, not the tile writer, in a few words
    (``georeferenced by GCPs or RPCs``, ``complex data (complex64)``, ``encoded as lerc``)."""
    if info.has_gcps_or_rpcs:
        return "georeferenced by GCPs or RPCs"
    if is_complex(info.dtype):
        return f"complex data ({info.dtype})"
    return f"encoded as {profile.codec}, which only GDAL writes"


def encode_cog(src_path: str, dst: Path, profile: Profile, info: RasterInfo) -> EncodedCog:
    """Encode ``src_path`` (a GDAL path) as a COG at local path ``dst`` (in this process);
    the result says its size and its tile bytes at full resolution and in overviews."""
    if uses_tile_writer(profile, info):
        try:
            return write_local(src_path, dst, profile, info)
        except gdal_errors() as err:
            dst.unlink(missing_ok=True)
            raise EncodeError(
                f"GDAL could not read the scene ({profile.label}): {clean(err)}"
            ) from err
    write_cog_gdal(src_path, dst, profile, info)
    tiles = tile_bytes(dst)
    return EncodedCog(dst, dst.stat().st_size, tiles.full, tiles.overview)


def write_cog(src_path: str, dst: Path, profile: Profile, info: RasterInfo) -> Path:
    """:func:`encode_cog`, returning only the path."""
    return encode_cog(src_path, dst, profile, info).path
