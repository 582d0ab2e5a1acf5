"""Comparing an output's pixels with its source's, as GDAL reads both: the validity masks,
exact equality for lossless and bounded codecs, SSIM and error statistics for lossy ones,
strip by strip so memory stays bounded. Verification and the quality ladder both use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from .. import timing
from ..cog import Profile, dtype_range, graded_values
from ..errors import VerificationError
from ..gdal import RasterInfo
from ._metrics import ErrorStats, Fidelity, check_band
from ._ssim import HALO, WIN, ssim_sum, window_size

#: Pixels per strip when a whole output is compared with its source.
STRIP_PIXELS = 4_000_000

ALL_VALID = frozenset({MaskFlags.all_valid})
NODATA = frozenset({MaskFlags.nodata})
ALPHA = frozenset({MaskFlags.per_dataset, MaskFlags.alpha})


def same_nodata(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b


def kept_bands(info: RasterInfo, profile: Profile) -> list[int]:
    """1-based source bands that appear in the output, in order."""
    drop = info.alpha_index if profile.drop_alpha else None
    return [b for b in range(1, info.count + 1) if b != drop]


def mask_kind(flags: frozenset[MaskFlags]) -> str:
    if flags == ALL_VALID:
        return "none"
    if flags == NODATA:
        return "nodata"
    if flags == ALPHA:
        return "alpha"
    if MaskFlags.per_dataset in flags:
        return "per-dataset mask"
    return "per-band mask"


#: Rows of a strip compared with nodata at a time: the comparison's temporary stays small
#: instead of the size of a band.
VALIDITY_ROWS = 64


def nodata_validity(data: np.ndarray, nodata: float) -> np.ndarray:
    """Where any band of ``data`` (bands, rows, cols) differs from ``nodata`` (NaN: is a
    number), block of rows by block of rows."""
    valid = np.zeros(data.shape[1:], dtype=bool)
    rows = data.shape[1]
    for r0 in range(0, rows, VALIDITY_ROWS):
        block = valid[r0 : r0 + VALIDITY_ROWS]
        for band in data[:, r0 : r0 + VALIDITY_ROWS]:
            if math.isnan(nodata):
                block |= ~np.isnan(band)
            else:
                block |= band != np.asarray(nodata, band.dtype)
    return valid


def _strips(height: int, width: int, bands: int) -> Iterator[tuple[int, int]]:
    rows = max(64, STRIP_PIXELS // max(1, width * max(1, bands // 2)))
    for r0 in range(0, height, rows):
        yield r0, min(height, r0 + rows)


def source_validity(src: Any, info: RasterInfo, window: Any, data: np.ndarray) -> np.ndarray:
    """Boolean validity of the source pixels in ``window`` (``data``: all bands, read) as
    GDAL reports it, whatever ``info`` says: its dataset mask (``dataset_mask() > 0``: the
    internal or sidecar mask, the alpha band, or valid where any band is not its nodata),
    taken from ``data`` where GDAL's rule allows (nodata, alpha) rather than read again."""
    flags = [frozenset(f) for f in src.mask_flag_enums]
    if all(f == ALL_VALID for f in flags):
        return np.ones(data.shape[1:], dtype=bool)
    nodata = src.nodatavals[0]
    one_nodata = all(same_nodata(nodata, v) for v in src.nodatavals)
    if nodata is not None and one_nodata and all(f == NODATA for f in flags):
        return nodata_validity(data, nodata)
    if info.alpha_index and flags[0] == ALPHA and data.dtype == np.uint8:
        return np.asarray(data[info.alpha_index - 1] > 0)
    return np.asarray(src.dataset_mask(window=window) > 0)


def _check_masks(src: Any, out: Any, bands: list[int], win: Any, core: slice) -> None:
    """Exact and bounded outputs: each band's mask as GDAL reads it equals the source's,
    where pixels do not decide it already (nodata values and an alpha band are compared as
    pixels): a per-dataset mask once, per-band masks band by band."""
    seen_dataset = False
    for i, b in enumerate(bands, start=1):
        flags = frozenset(src.mask_flag_enums[b - 1])
        if flags in (ALL_VALID, NODATA, ALPHA):
            continue
        if MaskFlags.per_dataset in flags:
            if seen_dataset:
                continue
            seen_dataset = True
        s_mask = src.read_masks(b, window=win)[core] > 0
        if not np.array_equal(s_mask, out.read_masks(i, window=win)[core] > 0):
            raise VerificationError(
                f"output's mask differs from the source's ({mask_kind(flags)}, band {b})"
            )


class _SSIMSum:
    """Running mean of the local SSIM map over the rows skimage averages."""

    def __init__(self, height: int, width: int, data_range: float):
        self.height, self.width, self.range = height, width, data_range
        self.total = 0.0
        self.count = 0
        self.win = window_size(height, width)

    def add(
        self,
        a: np.ndarray,
        b: np.ndarray,
        first_row: int,
        r0: int,
        r1: int,
        valid: np.ndarray | None = None,
    ) -> None:
        """``a``/``b`` (and ``valid``) hold image rows from ``first_row`` on; count the rows
        ``r0:r1`` (only their valid pixels, when ``valid`` is given)."""
        if self.win < 3:
            return
        pad = (self.win - 1) // 2
        lo, hi = max(r0, pad), min(r1, self.height - pad)
        if hi <= lo:
            return
        # Exactly the rows lo:hi are interior to this slice (pad rows of context each side).
        sl = slice(lo - pad - first_row, hi + pad - first_row)
        total, count = ssim_sum(
            a[sl], b[sl], self.range, self.win, None if valid is None else valid[sl]
        )
        self.total += total
        self.count += count

    def value(self, exact: bool) -> float:
        if self.count == 0:
            return 1.0 if exact else 0.0
        return self.total / self.count


def _require_equal(a: np.ndarray, b: np.ndarray, bands: list[int], first_row: int) -> None:
    """Raise naming the first differing pixel unless ``a`` equals ``b`` (NaN equals NaN)."""
    floating = a.dtype.kind in "fc"
    if np.array_equal(a, b, equal_nan=floating):
        return
    differs = a != b
    if floating:
        differs &= ~(np.isnan(a) & np.isnan(b))
    band, row, col = (int(v) for v in np.argwhere(differs)[0])
    raise VerificationError(
        f"lossless output differs from the source (band {bands[band]}, "
        f"row {first_row + row}, col {col})"
    )


def _pixel_validity(
    src: Any,
    out: Any,
    info: RasterInfo,
    bands: list[int],
    win: Any,
    core: slice,
    s_all: np.ndarray,
) -> np.ndarray | None:
    """The pixels a bounded output's values are held to: the source's dataset mask as GDAL
    reports it (its per-dataset mask or alpha band; the masks checked equal first), None
    where nodata values alone say it (:func:`~compactor.fidelity._metrics.check_band`
    handles those) or every pixel is data."""
    _check_masks(src, out, bands, win, core)
    flags = [frozenset(f) for f in src.mask_flag_enums]
    if all(f in (ALL_VALID, NODATA) for f in flags):
        return None
    return source_validity(src, info, win, s_all)[core]


def compare_pixels(
    src: Any,
    out: Any,
    info: RasterInfo,
    profile: Profile,
    *,
    ssim_only: bool = False,
    reference: dict[Any, Any] | None = None,
) -> Fidelity:
    """Compare pixels strip by strip. Lossless: raise unless every pixel is equal.
    Bounded: raise unless nodata is exact and every valid value within its band's bound;
    return the errors. Lossy: raise unless the validity masks are identical; return SSIM,
    PSNR and the errors.

    For the probes of a quality search (lossy outputs of one source): ``ssim_only``
    measures the SSIM alone (the same value; PSNR and errors are left ``None``), and
    ``reference`` (an empty dict, then the same one for every output of ``src``) keeps
    the source's strips as read and masked, so the source is read once."""

    bands = kept_bands(info, profile)
    height, width = info.height, info.width
    rng = dtype_range(info.dtype)
    ssims = [_SSIMSum(height, width, rng) for _ in bands]
    stats = ErrorStats(len(bands))
    sq_err = 0.0
    n_valid = 0
    pooled = False  # 8-bit strips pool their squared errors in ``stats``
    all_equal = True
    for r0, r1 in _strips(height, width, len(bands)):
        bottom = min(height, r1 + HALO)
        # Every window holds at least WIN rows, or skimage cannot slide its window over it
        # (a last strip of 1-3 rows); extra rows above only add context.
        top = max(0, min(r0 - HALO, bottom - WIN))
        win = Window(0, top, width, bottom - top)
        core = slice(r0 - top, r1 - top)
        known = (top, bottom, tuple(bands))
        lossy = not (profile.lossless or profile.bounded)
        if lossy and reference is not None and known in reference:
            s_valid, s_ref = reference[known]  # the source's strip, masked
            equal, uint8, sq, n = _cached_strip(
                out, win, core, s_valid, s_ref, ssims, stats, ssim_only, top, r0, r1
            )
            all_equal &= equal
            pooled |= uint8
            sq_err, n_valid = sq_err + sq, n_valid + n
            continue
        with timing.stage("verify source read"):
            s_all = src.read(window=win)
        with timing.stage("verify decode"):
            o_img = out.read(window=win)
        s_img = s_all[[b - 1 for b in bands]]
        if profile.lossless:
            _require_equal(s_img[:, core], o_img[:, core], bands, r0)
            _check_masks(src, out, bands, win, core)
            continue
        if profile.bounded:
            px = _pixel_validity(src, out, info, bands, win, core, s_all)
            _bounded_strip(s_img[:, core], o_img[:, core], px, info, profile, bands, stats, r0)
            continue
        if info.alpha_index and info.alpha_index not in bands:
            _require_binary_alpha(s_all[info.alpha_index - 1][core], r0)
        with timing.stage("verify source read"):
            s_valid = source_validity(src, info, win, s_all)
        with timing.stage("verify decode"):
            o_valid = out.dataset_mask(window=win) > 0
        _check_validity(s_valid[core], o_valid[core])
        if s_img.dtype == np.uint8 and o_img.dtype == np.uint8:
            all_equal &= _lossy_uint8(
                s_img, o_img, s_valid, core, ssims, None if ssim_only else stats, top, r0, r1
            )
            if reference is not None:
                reference[known] = (s_valid, s_img)  # masked in place
            pooled = True
            continue
        s_f = np.where(s_valid, s_img, 0).astype(np.float64)
        o_f = np.where(s_valid, o_img, 0).astype(np.float64)
        if reference is not None:
            reference[known] = (s_valid, s_f)
        sq, n, equal = _lossy_float(s_f, o_f, s_valid, core, ssims, stats, top, r0, r1, ssim_only)
        all_equal &= equal
        sq_err, n_valid = sq_err + sq, n_valid + n
    if profile.lossless:
        return Fidelity.identical(len(bands))
    if profile.bounded:
        return stats.fidelity(info.dtype, None)
    if pooled:
        sq_err, n_valid = sum(stats.sq), sum(stats.n)
    return _lossy_fidelity(ssims, stats, info.dtype, all_equal, ssim_only, sq_err, n_valid)


def _cached_strip(
    out: Any,
    win: Window,
    core: slice,
    s_valid: np.ndarray,
    s_ref: np.ndarray,
    ssims: list[_SSIMSum],
    stats: ErrorStats,
    ssim_only: bool,
    top: int,
    r0: int,
    r1: int,
) -> tuple[bool, bool, float, int]:
    """One strip of a lossy comparison against the source's strip kept from an earlier
    output (read and masked): (whether the core is identical, whether 8-bit errors were
    pooled in ``stats``, the squared errors summed and the valid pixels counted otherwise)."""
    with timing.stage("verify decode"):
        o_img = out.read(window=win)
        o_valid = out.dataset_mask(window=win) > 0
    _check_validity(s_valid[core], o_valid[core])
    if s_ref.dtype == np.uint8 and o_img.dtype == np.uint8:
        equal = _lossy_uint8(
            s_ref, o_img, s_valid, core, ssims, None if ssim_only else stats,
            top, r0, r1, masked=True,
        )  # fmt: skip
        return equal, True, 0.0, 0
    o_f = np.where(s_valid, o_img, 0).astype(np.float64)
    sq, n, equal = _lossy_float(s_ref, o_f, s_valid, core, ssims, stats, top, r0, r1,
                                ssim_only)  # fmt: skip
    return equal, False, sq, n


def _bounded_strip(
    s_core: np.ndarray,
    o_core: np.ndarray,
    px: np.ndarray | None,
    info: RasterInfo,
    profile: Profile,
    bands: list[int],
    stats: ErrorStats,
    r0: int,
) -> None:
    """One strip of a bounded comparison: every band within its bound (raises), its
    errors added to ``stats``."""
    for k, b in enumerate(bands):
        # An alpha band is exact: partly transparent pixels keep their transparency.
        bound = 0.0 if b == info.alpha_index else profile.band_error(k)
        a_v, b_v = check_band(
            s_core[k], o_core[k], px, info.nodata, bound, f"band {b}", r0,
        )  # fmt: skip
        stats.add(k, a_v, b_v)


def _lossy_fidelity(
    ssims: list[_SSIMSum],
    stats: ErrorStats,
    dtype: str,
    all_equal: bool,
    ssim_only: bool,
    sq_err: float,
    n_valid: int,
) -> Fidelity:
    """A lossy comparison's result: the lowest band SSIM and, unless ``ssim_only``, the
    PSNR of the squared errors summed and the errors."""
    ssim = min(s.value(all_equal) for s in ssims) if ssims else 1.0
    if ssim_only:
        return Fidelity(exact=all_equal, ssim=ssim, psnr=None)
    rng = dtype_range(dtype)
    psnr = None if sq_err == 0 or n_valid == 0 else 10 * math.log10(rng**2 / (sq_err / n_valid))
    measured = stats.fidelity(dtype, ssim)
    return replace(measured, exact=all_equal, psnr=psnr)


def _lossy_uint8(
    s_img: np.ndarray,
    o_img: np.ndarray,
    s_valid: np.ndarray,
    core: slice,
    ssims: list[_SSIMSum],
    stats: ErrorStats | None,
    top: int,
    r0: int,
    r1: int,
    *,
    masked: bool = False,
) -> bool:
    """One strip of an 8-bit lossy comparison, in place on the arrays just read (no float
    copies): invalid pixels set to 0 in both (``masked``: the source's already are), SSIM
    on OpenCV's integer box sums, the errors of the valid pixels summed exactly (not with
    ``stats=None``). Whether the strip's core is identical."""
    with timing.stage("compare"):
        if not masked:
            np.multiply(s_img, s_valid, out=s_img, casting="unsafe")
        np.multiply(o_img, s_valid, out=o_img, casting="unsafe")
        equal = bool(np.array_equal(s_img[:, core], o_img[:, core]))
    with timing.stage("SSIM"):
        for k, acc in enumerate(ssims):
            acc.add(s_img[k], o_img[k], top, r0, r1, s_valid)
    if stats is not None:
        with timing.stage("compare"):
            core_valid = s_valid[core]
            for k in range(len(ssims)):
                stats.add_uint8(k, s_img[k, core], o_img[k, core], core_valid)
    return equal


def _lossy_float(
    s_f: np.ndarray,
    o_f: np.ndarray,
    s_valid: np.ndarray,
    core: slice,
    ssims: list[_SSIMSum],
    stats: ErrorStats,
    top: int,
    r0: int,
    r1: int,
    ssim_only: bool,
) -> tuple[float, int, bool]:
    """One strip of a lossy comparison in float64 (invalid pixels 0 in both): the squared
    error and count of its valid pixels (none with ``ssim_only``), and whether its core is
    identical."""
    equal = bool(np.array_equal(s_f[:, core], o_f[:, core]))
    with timing.stage("SSIM"):
        for k in range(len(ssims)):
            ssims[k].add(s_f[k], o_f[k], top, r0, r1, s_valid)
    if ssim_only:
        return 0.0, 0, equal
    core_valid = s_valid[core]
    for k in range(len(ssims)):
        stats.add(k, s_f[k, core][core_valid], o_f[k, core][core_valid])
    err = (s_f[:, core] - o_f[:, core])[:, core_valid]
    return float(np.square(err).sum()), int(err.size), equal


def _require_binary_alpha(alpha: np.ndarray, first_row: int) -> None:
    """An alpha band that became the output's 1-bit mask must hold only 0 and opaque."""
    graded = graded_values(alpha)
    if graded:
        raise VerificationError(
            f"the source's alpha band has {graded} partly transparent pixels (from row "
            f"{first_row}) that the output's 1-bit mask loses"
        )


def _check_validity(source: np.ndarray, output: np.ndarray) -> None:
    if not np.array_equal(source, output):
        bad = int(np.count_nonzero(source != output))
        raise VerificationError(f"output validity mask differs from the source in {bad} pixels")
