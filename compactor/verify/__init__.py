"""Verification: the checks an output passes before its original may be archived, for one-task
and chunked scenes alike.
"""

from ._chunked import SceneQuality, check_header, check_tile_crcs, decoder_margin
from ._verify import Fidelity, check_metadata, check_output, compare_pixels, validate_cog

__all__ = [
    "Fidelity",
    "SceneQuality",
    "check_header",
    "check_metadata",
    "check_output",
    "check_tile_crcs",
    "compare_pixels",
    "decoder_margin",
    "validate_cog",
]
