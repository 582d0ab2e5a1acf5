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
from ._noise import (
    FLOAT_MARGIN,
    NoiseEstimate,
    check_noise_rmse,
    error_rms,
    estimate_noise,
    noise_bound,
)
from ._ssim import HALO, WIN, ssim, ssim_map, ssim_sum, window_size

__all__ = [
    "ALL_VALID",
    "ALPHA",
    "FLOAT_MARGIN",
    "HALO",
    "NODATA",
    "STRIP_PIXELS",
    "WIN",
    "ErrorStats",
    "Fidelity",
    "NoiseEstimate",
    "check_band",
    "check_noise_rmse",
    "compare_pixels",
    "error_rms",
    "estimate_noise",
    "kept_bands",
    "mask_kind",
    "nodata_validity",
    "noise_bound",
    "same_nodata",
    "source_validity",
    "ssim",
    "ssim_map",
    "ssim_sum",
    "window_size",
]
