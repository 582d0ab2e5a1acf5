"""How close an output is to its source: SSIM (skimage's definition, fast), the checks an
output must pass, samples of a scene, and the automatic quality search."""

from .quality import Ladder, QualityPolicy, candidates, compare_fixed
from .sample import Sample, write_sample
from .ssim import ssim, ssim_sum
from .verify import Fidelity, check_metadata, check_output, validate_cog

__all__ = [
    "Fidelity",
    "Ladder",
    "QualityPolicy",
    "Sample",
    "candidates",
    "check_metadata",
    "check_output",
    "compare_fixed",
    "ssim",
    "ssim_sum",
    "validate_cog",
    "write_sample",
]
