"""Verification: the checks an output passes before its original may be archived, for one-task
and chunked scenes alike (``compactor verify``, the audit of a finished destination, is the
runner's). Pixels are measured by :mod:`compactor.fidelity`.
"""

from ._chunked import SceneQuality, check_header, check_tile_crcs, decoder_margin
from ._memory import check_written, encode_verified, memory_verifiable
from ._verify import check_metadata, check_output, validate_cog

__all__ = [
    "SceneQuality",
    "check_header",
    "check_metadata",
    "check_output",
    "check_tile_crcs",
    "check_written",
    "decoder_margin",
    "encode_verified",
    "memory_verifiable",
    "validate_cog",
]
