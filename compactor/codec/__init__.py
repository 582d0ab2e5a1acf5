"""Codecs and writers: the codec registry, encoding profiles, tiles, GDAL's COG layout,
compactor's tile writer and GDAL's COG driver."""

from ..codecs import (
    AUTO_LOSSLESS,
    CHOICES,
    CODECS,
    DEFAULT_QUALITY,
    LOSSLESS,
    LOSSY,
    POLICIES,
    Codec,
    parse_quality,
)
from .layout import CogSpec, pyramid
from .profile import Profile, choose_profile, dtype_range, fallback_profiles, lossy_problem
from .tiles import TILE, TileCodec
from .write import uses_tile_writer, write_cog

__all__ = [
    "AUTO_LOSSLESS",
    "CHOICES",
    "CODECS",
    "DEFAULT_QUALITY",
    "LOSSLESS",
    "LOSSY",
    "POLICIES",
    "TILE",
    "Codec",
    "CogSpec",
    "Profile",
    "TileCodec",
    "choose_profile",
    "dtype_range",
    "fallback_profiles",
    "lossy_problem",
    "parse_quality",
    "pyramid",
    "uses_tile_writer",
    "write_cog",
]
