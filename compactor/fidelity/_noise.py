"""A band's sensor noise, estimated from its own pixels, and the error bound it allows
(``--max-error noise``, issue 27).

**The estimate** (Immerkær's operator, with a robust scale): the image is convolved with
Immerkær's 3x3 kernel ``[[1,-2,1],[-2,4,-2],[1,-2,1]]``, the difference of two Laplacians,
which cancels any plane and most smooth texture, and turns white noise of standard deviation
σ into a residual of standard deviation 6σ (the kernel's squared weights sum to 36). Only
3x3 windows whose nine pixels are all valid count (nodata, NaN, infinities and masked
pixels, and the seams between them, are left out). Immerkær takes the mean absolute
residual, which edges and texture inflate; here σ is the median absolute residual
(1.4826 x MAD / 6, about its median), which they do not move unless they cover half the
band. Integer data gives integer residuals, whose plain median is a whole number (12 %
off at σ = 1); the median is interpolated inside its unit bin, as for grouped data.

A band with too few valid 3x3 windows, or with no measurable noise (flat, synthetic or
already quantised data: the median residual is 0), has no estimate and stays lossless,
with the reason.

**The bound**: the error LERC adds is uniform within ±E (it quantises with step 2E): RMS
E/√3 for floats. On integers with integer E the step is 2E and the error takes the 2E
values ``-E+1 … E``: RMS √((2E²+1)/6) (0.71 at E = 1, not 0.58). Measured on the writer
(:mod:`tests.fidelity.test_noise`). The bound is the largest E whose RMS is at most
``F·σ``; integers with no E ≥ 1 within it stay lossless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..cog import NoiseBound
from ..errors import VerificationError
from ._metrics import Fidelity

#: Floats: the bound's share of √3·F·σ (its RMS at most 99 % of what is allowed).
FLOAT_MARGIN = 0.99
#: Fewest valid 3x3 windows an estimate is made from.
MIN_WINDOWS = 1000

_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
#: 1 / Φ⁻¹(3/4): the standard deviation of a normal variable per unit of its MAD.
_MAD_SIGMA = 1.482602218505602


@dataclass(frozen=True)
class NoiseEstimate:
    """One band's noise: ``sigma`` in data units, or ``None`` with the ``reason``."""

    sigma: float | None
    windows: int
    reason: str = ""


def _interpolated_median(values: np.ndarray) -> float:
    """The median of non-negative integer-valued ``values``, interpolated in its unit bin
    (value k stands for [k − ½, k + ½)); 0 when half of them or more are 0 exactly: flat or
    synthetic data, or noise far below one unit, which no integer bound could use."""
    counts = np.bincount(values.astype(np.int64))
    half = values.size / 2
    cum = np.cumsum(counts)
    k = int(np.searchsorted(cum, half, side="left"))
    if k == 0:
        return 0.0
    return k - 0.5 + (half - float(cum[k - 1])) / float(counts[k])


def estimate_noise(band: np.ndarray, valid: np.ndarray | None = None) -> NoiseEstimate:
    """The noise σ of 2-D ``band`` on its ``valid`` pixels (None: every finite pixel;
    NaN and infinities never count)."""
    ok = np.ones(band.shape, bool) if valid is None else valid.astype(bool, copy=True)
    if band.dtype.kind == "f":
        ok &= np.isfinite(band)
    if band.shape[0] < 3 or band.shape[1] < 3:
        return NoiseEstimate(None, 0, "band smaller than 3x3 pixels")
    # Windows whose nine pixels are valid (the band's edge counts as invalid).
    inner = cv2.erode(ok.view(np.uint8), np.ones((3, 3), np.uint8), borderValue=0) > 0
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    n = int(np.count_nonzero(inner))
    if n < MIN_WINDOWS:
        return NoiseEstimate(None, n, f"{n} valid 3x3 windows, fewer than {MIN_WINDOWS}")
    x = np.where(ok, band, 0).astype(np.float64)
    residual = cv2.filter2D(x, cv2.CV_64F, _KERNEL, borderType=cv2.BORDER_CONSTANT)[inner]
    integer = band.dtype.kind in "uib"
    if integer:
        dev = np.abs(residual - np.median(residual))
        mad = _interpolated_median(np.rint(dev))
    else:
        mad = float(np.median(np.abs(residual - np.median(residual))))
    sigma = _MAD_SIGMA * mad / 6.0
    if not sigma > 0 or not math.isfinite(sigma):
        return NoiseEstimate(None, n, "no measurable noise (flat or synthetic band)")
    return NoiseEstimate(sigma, n)


def error_rms(bound: float, integer: bool) -> float:
    """RMS of the error LERC adds within ±``bound`` (module docstring)."""
    if bound <= 0:
        return 0.0
    if integer:
        e = math.floor(bound)
        return math.sqrt((2 * e * e + 1) / 6)
    return bound / math.sqrt(3)


def noise_bound(sigma: float | None, fraction: float, integer: bool) -> float:
    """The largest error bound whose added RMS is at most ``fraction·sigma`` (0: lossless)."""
    if sigma is None or not sigma > 0 or not fraction > 0:
        return 0.0
    target = fraction * sigma
    if not integer:
        # 1 % under E/√3 = target: the float writers' rounding, and blocks that quantise
        # unevenly, stay inside the RMS bound.
        return FLOAT_MARGIN * target * math.sqrt(3)
    # (2E² + 1) / 6 <= target²  <=>  E <= sqrt((6 target² - 1) / 2)
    inside = (6 * target * target - 1) / 2
    if inside < 1:
        return 0.0
    e = math.floor(math.sqrt(inside))
    while e >= 1 and error_rms(e, True) > target:  # floating-point edge
        e -= 1
    return float(e)


def check_noise_rmse(fidelity: Fidelity, noise: NoiseBound | None) -> None:
    """Hold each band's measured RMS error to ``fraction``·σ of its noise (``--max-error
    noise``), besides every pixel within the band's bound (:func:`check_band`). Raises
    :class:`VerificationError` naming the band."""
    if noise is None or fidelity.exact:
        return
    rmse = fidelity.band_rmse
    if rmse is None:
        raise VerificationError("no RMS error measured: the noise bound cannot be checked")
    for band, measured in enumerate(rmse):
        allowed = noise.max_rmse(band) if band < len(noise.sigma) else None
        if allowed is None:
            if measured > 0:
                raise VerificationError(
                    f"band {band + 1}: RMS error {measured:.6g} on a band kept lossless "
                    f"({noise.reasons[band] or 'no noise estimate'})"
                )
        elif measured > allowed:
            raise VerificationError(
                f"band {band + 1}: RMS error {measured:.6g} exceeds {noise.fraction:g} of its "
                f"noise σ {noise.sigma[band]:.6g} ({allowed:.6g})"
            )
