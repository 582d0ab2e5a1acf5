"""How far an output is from its source: the :class:`Fidelity` every check returns, the
running error statistics behind it, and the check of one band against an error bound.

Shared by the whole-output checks (:mod:`compactor.verify._verify`, GDAL reading the
output) and the chunk tasks (:mod:`compactor.encode._chunk_tasks`, their own decoding of each
tile), so both hold an output to the same definition:

* A pixel is **valid** where the source's mask says so (its dataset mask, or its alpha band),
  and in a band where its value is not that band's nodata value, NaN or infinite.
* **Nodata, NaN and infinities** must come back exactly where they were, and nowhere else: a
  valid pixel that comes back as nodata changes what the data says, whatever the bound.
* Every valid value must be within the band's bound, ``|a − b| ≤ E``, computed exactly (the
  difference of two float32 or integer values in float64). No tolerance is added: the writers
  encode floats with ``E`` less one ULP of their largest magnitude (see
  :mod:`compactor.cog._tiles`) so that liblerc's rounding stays inside ``E``.
* **PSNR** of a band: integers on the data type's range, floats on the range of the band's
  valid source values. The output's PSNR pools every band's squared error for integers (the
  definition of the lossy codecs, on the data type's range) and is the lowest band PSNR for
  floats (bands of floats have no common range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..cog import dtype_range
from ..errors import VerificationError


@dataclass(frozen=True)
class Fidelity:
    """How close an output is to its source."""

    exact: bool
    #: SSIM of lossy codecs (minimum over bands); 1.0 for exact outputs; None for bounded
    #: outputs, which are held to their error bound instead.
    ssim: float | None
    #: PSNR in dB (None: no error, or not measured).
    psnr: float | None
    #: Largest ``|source − output|`` over each output band's valid pixels, in data units.
    max_error: tuple[float, ...] | None = None
    #: Root mean square error over the valid pixels of every band, and of each band.
    rmse: float | None = None
    band_rmse: tuple[float, ...] | None = None
    #: PSNR of each band (None where the band has no error).
    band_psnr: tuple[float | None, ...] | None = None

    @classmethod
    def identical(cls, bands: int) -> Fidelity:
        """An output equal to its source in every pixel."""
        zeros = (0.0,) * bands
        return cls(True, 1.0, None, zeros, 0.0, zeros, (None,) * bands)


def psnr(data_range: float, mse: float) -> float | None:
    """``10 log10(range² / MSE)``; None without error or without a range."""
    if mse <= 0 or not data_range > 0 or not math.isfinite(data_range):
        return None
    return 10 * math.log10(data_range**2 / mse)


@dataclass
class ErrorStats:
    """Error statistics of each band over its valid pixels, accumulated strip by strip or
    chunk by chunk (and merged: the result does not depend on the order)."""

    bands: int
    max_error: list[float] = field(default_factory=list)
    sq: list[float] = field(default_factory=list)
    n: list[int] = field(default_factory=list)
    #: Smallest and largest valid source value of each band (the range of float PSNR).
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.n:
            self.max_error = [0.0] * self.bands
            self.sq = [0.0] * self.bands
            self.n = [0] * self.bands
            self.lo = [math.inf] * self.bands
            self.hi = [-math.inf] * self.bands

    def add(self, band: int, a: np.ndarray, b: np.ndarray) -> None:
        """Count valid values ``a`` (source) and ``b`` (output) of ``band`` (float64, 1-D)."""
        if not a.size:
            return
        d = np.abs(a - b)
        self.max_error[band] = max(self.max_error[band], float(d.max()))
        self.sq[band] += float(np.dot(d, d))
        self.n[band] += int(d.size)
        self.lo[band] = min(self.lo[band], float(a.min()))
        self.hi[band] = max(self.hi[band], float(a.max()))

    def add_uint8(self, band: int, a: np.ndarray, b: np.ndarray, valid: np.ndarray | None) -> None:
        """:meth:`add` for 8-bit rasters, without copies: the pixels of ``a`` (source) and
        ``b`` (output), 2-D, where ``valid`` (boolean, same shape; None: everywhere) is True.
        The same statistics exactly (integer sums, in one OpenCV pass each)."""
        mask = None if valid is None else valid.view(np.uint8)
        n = a.size if mask is None else int(cv2.countNonZero(mask))
        if not n:
            return
        diff = cv2.absdiff(a, b)
        worst = cv2.minMaxLoc(diff, mask)[1]
        lo, hi = cv2.minMaxLoc(a, mask)[:2]
        self.max_error[band] = max(self.max_error[band], float(worst))
        # OpenCV sums squares of integers in double: round off its last-bit error.
        self.sq[band] += float(round(cv2.norm(a, b, cv2.NORM_L2SQR, mask=mask)))
        self.n[band] += n
        self.lo[band] = min(self.lo[band], float(lo))
        self.hi[band] = max(self.hi[band], float(hi))

    def merge(self, other: ErrorStats) -> None:
        for k in range(self.bands):
            self.max_error[k] = max(self.max_error[k], other.max_error[k])
            self.sq[k] += other.sq[k]
            self.n[k] += other.n[k]
            self.lo[k] = min(self.lo[k], other.lo[k])
            self.hi[k] = max(self.hi[k], other.hi[k])

    @property
    def exact(self) -> bool:
        return all(s == 0 for s in self.sq)

    def fidelity(self, dtype: str, ssim: float | None) -> Fidelity:
        """The :class:`Fidelity` these statistics describe (module docstring: PSNR)."""
        floating = np.dtype(dtype).kind == "f"
        band_rmse = tuple(
            math.sqrt(s / n) if n else 0.0 for s, n in zip(self.sq, self.n, strict=True)
        )
        ranges = [
            (hi - lo if hi >= lo else 0.0) if floating else dtype_range(dtype)
            for lo, hi in zip(self.lo, self.hi, strict=True)
        ]
        band_psnr = tuple(psnr(r, e * e) for r, e in zip(ranges, band_rmse, strict=True))
        total_n = sum(self.n)
        mse = sum(self.sq) / total_n if total_n else 0.0
        if floating:
            found = [p for p in band_psnr if p is not None]
            overall = min(found) if found else None
        else:
            overall = psnr(dtype_range(dtype), mse)
        return Fidelity(
            exact=self.exact,
            ssim=ssim,
            psnr=overall,
            max_error=tuple(self.max_error),
            rmse=math.sqrt(mse),
            band_rmse=band_rmse,
            band_psnr=band_psnr,
        )


def special_values(x: np.ndarray, nodata: float | None) -> np.ndarray:
    """Where ``x`` holds nodata, NaN or an infinity: values that must come back exactly."""
    out = ~np.isfinite(x) if x.dtype.kind == "f" else np.zeros(x.shape, dtype=bool)
    if nodata is not None and not math.isnan(nodata):
        out |= x == np.asarray(nodata).astype(x.dtype)
    return out


def check_band(
    a: np.ndarray,
    b: np.ndarray,
    valid: np.ndarray | None,
    nodata: float | None,
    bound: float,
    label: str,
    first_row: int = 0,
    first_col: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Hold output band ``b`` to source band ``a`` (2-D, same shape) within ``bound`` on the
    pixels ``valid`` (None: every pixel) says are data: nodata, NaN and infinities exactly
    where they were and nowhere else, every other value within the bound. Raises
    :class:`VerificationError` naming the band (``label``) and the first offending pixel
    (rows from ``first_row``, columns from ``first_col``); returns the valid values of source
    and output as float64 for :class:`ErrorStats`."""
    sa, sb = special_values(a, nodata), special_values(b, nodata)
    differs = sa != sb
    if valid is not None:
        differs &= valid
    if differs.any():
        r, c = (int(v) for v in np.argwhere(differs)[0])
        raise VerificationError(
            f"{label}: nodata/NaN positions differ from the source in "
            f"{int(np.count_nonzero(differs))} pixels (first at row {first_row + r}, "
            f"col {first_col + c}: {a[r, c]} became {b[r, c]})"
        )
    keep = sa if valid is None else sa & valid
    if keep.any() and not np.array_equal(a[keep], b[keep], equal_nan=a.dtype.kind == "f"):
        raise VerificationError(f"{label}: nodata, NaN or infinite values changed")
    ok = ~sa if valid is None else valid & ~sa
    av = a[ok].astype(np.float64)
    bv = b[ok].astype(np.float64)
    if av.size:
        d = np.abs(av - bv)
        worst = int(np.argmax(d))
        if d[worst] > bound:
            r, c = (int(v) for v in np.argwhere(ok)[worst])
            raise VerificationError(
                f"{label}: error {d[worst]:.9g} at row {first_row + r}, col {first_col + c} "
                f"exceeds the bound {bound:g}"
            )
    return av, bv
