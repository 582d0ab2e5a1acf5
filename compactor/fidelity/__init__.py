"""How close an output is to its source: pixel comparison as GDAL reads both, SSIM
(skimage's definition, fast) and error statistics; verification and encoding's quality
search both measure with it.
"""

from ._compare import (
    ALL_VALID,
    ALPHA,
    NODATA,
    STRIP_PIXELS,
    compare_pixels,
    kept_bands,
    mask_kind,
    nodata_validity,
    same_nodata,
    source_validity,
)
from ._metrics import ErrorStats, Fidelity, check_band
from ._ssim import HALO, WIN, ssim, ssim_map, ssim_sum, window_size

__all__ = [
    "ALL_VALID",
    "ALPHA",
    "HALO",
    "NODATA",
    "STRIP_PIXELS",
    "WIN",
    "ErrorStats",
    "Fidelity",
    "check_band",
    "compare_pixels",
    "kept_bands",
    "mask_kind",
    "nodata_validity",
    "same_nodata",
    "source_validity",
    "ssim",
    "ssim_map",
    "ssim_sum",
    "window_size",
]
