"""The Cloud-Optimized GeoTIFF format both encoding and verification speak: encoding
profiles (how a scene is written), tiles as TIFF stores them, GDAL's COG layout, JPEG
tables and alpha. The codecs themselves are :mod:`compactor.codecs`, the registry.
"""

from ._alpha import alpha_is_graded, graded_values
from ._layout import (
    COG_MEDIA_TYPE,
    CogSpec,
    EncodedCog,
    IfdCodec,
    TileBytes,
    carried_domains,
    copy_metadata,
    frame,
    needs_bigtiff,
    pyramid,
    template_tags,
    tile_bytes,
)
from ._overviews import halve
from ._profile import (
    MaskSource,
    NoiseBound,
    OverviewPolicy,
    Profile,
    dtype_range,
    resolved_predictor,
)
from ._streams import decode_mask, encode_mask, jpeg_tables, split_jpeg
from ._tiles import LEVELS, TILE, TileCodec, pad_tile

__all__ = [
    "COG_MEDIA_TYPE",
    "LEVELS",
    "TILE",
    "CogSpec",
    "EncodedCog",
    "IfdCodec",
    "MaskSource",
    "NoiseBound",
    "OverviewPolicy",
    "Profile",
    "TileBytes",
    "TileCodec",
    "alpha_is_graded",
    "carried_domains",
    "copy_metadata",
    "decode_mask",
    "dtype_range",
    "encode_mask",
    "frame",
    "graded_values",
    "halve",
    "jpeg_tables",
    "needs_bigtiff",
    "pad_tile",
    "pyramid",
    "resolved_predictor",
    "split_jpeg",
    "template_tags",
    "tile_bytes",
]
