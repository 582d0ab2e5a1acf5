"""Which encoding profile a scene gets (:class:`~compactor.cog.Profile` says how it is written).

``--codec auto`` gives 8-bit greyscale and RGB imagery (plus an optional alpha band for RGB)
JPEG, YCbCr for RGB, with the nodata value, the per-dataset mask or a **binary** alpha band
(only 0 and 255) turned into an internal mask so nodata areas stay exact; everything else
(16-bit, float, many bands, palettes, grey + alpha, a **graded** alpha band, an alpha band
together with a nodata value or a mask, complex data) is stored losslessly with ZSTD and the
predictor that suits the data type, every band kept. Explicit codecs are checked against the
raster (:data:`~compactor.codecs.CODECS`) and refused with a clear reason when they
cannot encode it.

Why a graded alpha makes the whole scene lossless rather than JPEG colour plus a lossless
alpha band: a TIFF holds one compression per image, JPEG has no alpha channel, and a 1-bit
mask keeps only transparent/opaque. Lossless keeps the alpha and the colour under it exactly,
and verification compares them exactly; it is the simplest option that loses nothing.

**Grey + alpha** (2 bands) is kept lossless whatever its alpha holds. JPEG keeps an alpha
band only as the output's 1-bit mask (alpha > 0; GDAL's COG driver turns the alpha of a
2-band JPEG into the same mask). Grey + alpha is how graded transparency usually ships
(anti-aliased edges of scanned maps, rendered overlays), so its alpha stays a band and every
value of it is verified.

**Complex data** (GDAL's CInt16, CInt32, CFloat32, CFloat64) is stored with ZSTD, DEFLATE or
LZW (:data:`~compactor.codecs.COMPLEX`) without a predictor, through GDAL's COG driver, and
verified exactly; no other codec takes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from ..codecs import (
    AUTO_LOSSLESS,
    CODECS,
    COMPLEX,
    DEFAULT_QUALITY,
    LOSSLESS,
    LOSSY,
    OVERVIEW_ERROR,
    OVERVIEW_QUALITY,
    ErrorBound,
)
from ..cog import MaskSource, NoiseBound, OverviewPolicy, Profile
from ..errors import UnsupportedCodecError
from ..fidelity import FLOAT_MARGIN, noise_bound
from ..gdal import RasterInfo, is_complex
from ._sample import SampleRanges

QUALITY_LADDER = (85, 90, 95)
_DTYPE_WORDS = {"uint8": "8-bit"}


def _mask_source(info: RasterInfo) -> MaskSource:
    if info.alpha_index:
        return "alpha"
    if info.has_dataset_mask:
        return "dataset"
    if info.nodata is not None:
        return "nodata"
    return "none"


def _resampling(info: RasterInfo) -> str:
    return "NEAREST" if info.has_colormap else "AVERAGE"


def lossy_problem(codec: str, info: RasterInfo, *, graded_alpha: bool = False) -> str | None:
    """Why lossy ``codec`` cannot encode this raster, or ``None`` if it can. A lossy output
    carries an alpha band as its 1-bit mask: not when the alpha is graded (``graded_alpha``,
    :func:`~compactor.cog._alpha.alpha_is_graded`), nor when the scene also has a nodata
    value or a mask of its own (one mask cannot hold both)."""
    spec = CODECS[codec]
    name = codec.upper()
    if spec.dtypes is not None and info.dtype not in spec.dtypes:
        kinds = " or ".join(_DTYPE_WORDS.get(d, d) for d in sorted(spec.dtypes))
        return f"{name} encodes {kinds} data only; this scene is {info.describe()}"
    if info.has_colormap:
        return f"{name} would blur palette indices; this scene has a colour table"
    if info.alpha_index and info.alpha_index != info.count:
        return f"{name} needs the alpha band last"
    if info.alpha_index and info.colour_bands == 1:
        return f"{name} would keep the alpha band of a grey + alpha scene only as a 1-bit mask"
    if info.alpha_index and graded_alpha:
        return (
            f"{name} would flatten the graded alpha band (partly transparent pixels) into a "
            "1-bit mask; it is kept exactly only by a lossless codec"
        )
    if info.alpha_index and (info.nodata is not None or info.has_dataset_mask):
        what = "a nodata value" if info.nodata is not None else "a mask"
        return f"{name} keeps an alpha band only as the mask; this scene also has {what}"
    if spec.colour_bands is not None and info.colour_bands not in spec.colour_bands:
        bands = " or ".join(str(n) for n in sorted(spec.colour_bands))
        return f"{name} encodes {bands} colour bands (+alpha); this scene is {info.describe()}"
    return None


def lossless_problem(codec: str, info: RasterInfo) -> str | None:
    if is_complex(info.dtype):
        if codec in COMPLEX:
            return None
        return f"{codec.upper()} does not encode complex data; this scene is {info.describe()}"
    spec = CODECS[codec]
    if spec.dtypes is not None and info.dtype not in spec.dtypes:
        return f"{codec.upper()} does not encode {info.dtype} data; this scene is {info.describe()}"
    return None


#: A band's valid range on the scene's sample: (smallest, largest) valid value.
BandRange = tuple[float, float]


def resolve_bound(
    bound: ErrorBound, info: RasterInfo, ranges: Sequence[BandRange] | None
) -> tuple[float, ...] | None:
    """``--max-error`` in data units for each band of ``info`` (``None``: lossless).

    A relative bound is a fraction of each band's valid range on the scene's sample
    (``ranges``). Integer data cannot hold an error below 1: a bound under 0.5 is lossless,
    and LERC uses the whole part of any other (``floor(E)``), which is what it is held to."""
    n = info.count
    values = bound.values
    if len(values) not in (1, n):
        raise UnsupportedCodecError(
            f"--max-error gives {len(values)} bounds for {n} bands: give one, or one per band"
        )
    per_band = list(values) * (n if len(values) == 1 else 1)
    if bound.relative:
        if ranges is None or len(ranges) != n:
            raise ValueError("a relative error bound needs each band's valid range")
        per_band = [f * max(0.0, hi - lo) for f, (lo, hi) in zip(per_band, ranges, strict=True)]
    if np.dtype(info.dtype).kind in "ui":
        per_band = [float(math.floor(e)) if e >= 0.5 else 0.0 for e in per_band]
        per_band = [max(e, 1.0) if e > 0 else 0.0 for e in per_band]
    if max(per_band) <= 0:
        return None
    return tuple(per_band)


def bound_applies(info: RasterInfo, codec: str) -> bool:
    """Whether ``--max-error`` governs this scene under ``--codec``: LERC asked for, or
    ``auto`` on a scene that is not 8-bit imagery for JPEG (those keep the SSIM bar) and
    has no colour table (palette indices must stay exact)."""
    if info.has_colormap or info.dtype not in (CODECS["lerc"].dtypes or ()):
        return False
    if codec == "lerc":
        return True
    return codec in ("auto", "auto-lossy") and lossy_problem("jpeg", info) is not None


def needs_ranges(
    info: RasterInfo, codec: str, max_error: ErrorBound | None, overviews: OverviewPolicy
) -> bool:
    """Whether :func:`choose_profile` needs the bands' valid ranges on the sample: a
    relative error bound, or lossy overviews held to a relative bound on a scene that
    starts lossless (a JPEG or WEBP scene's overviews are lossy already: it reads no sample
    for them, and its lossless fallback, if it comes to that, keeps full overviews)."""
    from_sample = max_error is not None and (max_error.relative or max_error.noise)
    relative = from_sample and bound_applies(info, codec)
    return relative or (
        overviews == "lossy" and _overview_kind(info) == "lerc" and not _starts_lossy(info, codec)
    )


def resolve_noise(
    fraction: float, info: RasterInfo, ranges: Sequence[BandRange] | None
) -> NoiseBound:
    """``--max-error noise:fraction`` for each band of ``info``: the largest bound whose
    added RMS error is at most ``fraction``·σ of the band's noise on the scene's sample
    (:func:`~compactor.fidelity.noise_bound`); 0, with the reason, where there is none.
    Both writers encode all bands of a tile in one LERC blob held to the smallest bound:
    the bound of every band is its own (verified per band), the error written at most the
    smallest, and one band kept exact keeps them all exact."""
    if not isinstance(ranges, SampleRanges) or len(ranges) != info.count:
        raise ValueError("a noise bound needs each band's noise on the scene's sample")
    integer = np.dtype(info.dtype).kind in "ui"
    sigma, bounds, reasons = [], [], []
    for est in ranges.noise():
        bound = noise_bound(est.sigma, fraction, integer)
        reason = est.reason
        if est.sigma is not None and bound <= 0:
            reason = (
                f"noise σ {est.sigma:.3g}: no whole bound ≥ 1 keeps the added RMS error "
                f"within {fraction:g}σ"
            )
        sigma.append(est.sigma)
        bounds.append(bound)
        reasons.append(reason)
    # One LERC blob holds every band of a tile, at the smallest bound of any band (both
    # writers): a band that must stay exact keeps the whole scene lossless.
    if min(bounds) <= 0 < max(bounds):
        held = next(k for k, e in enumerate(bounds) if e <= 0)
        for k, e in enumerate(bounds):
            if e > 0:
                reasons[k] = f"band {held + 1} stays exact, and LERC holds every band to it"
        bounds = [0.0] * len(bounds)
    bounds = _fit_on_sample(ranges, sigma, bounds, reasons, fraction, integer)
    effective = min(bounds)
    savings = tuple(ranges.savings((effective,) * len(bounds))) if effective > 0 else ()
    return NoiseBound(fraction, tuple(sigma), tuple(bounds), tuple(reasons), savings)


#: Times a noise bound is lowered on the sample before the scene stays lossless.
_FIT_TRIES = 6


def _fit_on_sample(
    ranges: SampleRanges,
    sigma: list[float | None],
    bounds: list[float],
    reasons: list[str],
    fraction: float,
    integer: bool,
) -> list[float]:
    """``bounds`` lowered until LERC within the smallest (what the writers use) adds at most
    ``fraction``·σ of RMS error to every band of the sample: the error model holds on dense
    values, not on data on a coarser lattice (scaled integers, floats near their
    precision), which would fail verification. ``reasons`` says which band lowered it."""
    for _ in range(_FIT_TRIES):
        effective = min(bounds)
        if effective <= 0:
            return bounds
        over = [
            (k, m)
            for k, (m, s) in enumerate(zip(ranges.lerc_rms(effective), sigma, strict=True))
            if m is not None and s is not None and m > fraction * s
        ]
        if not over:
            return bounds
        worst = min(fraction * (sigma[k] or 0.0) / m for k, m in over)
        lower = math.floor(effective) - 1.0 if integer else effective * worst * FLOAT_MARGIN
        for k, m in over:
            reasons[k] = (
                f"±{effective:g} added RMS {m:.3g} > {fraction:g}σ on the sample (values on "
                f"a coarser lattice than the error model's): lowered to ±{max(lower, 0):g}"
            )
        bounds = [min(e, max(lower, 0.0)) for e in bounds]
    if min(bounds) > 0:  # still lowering: keep it exact
        reasons[:] = [r or "no bound fitted on the sample" for r in reasons]
        bounds = [0.0] * len(bounds)
    return bounds


def _starts_lossy(info: RasterInfo, codec: str) -> bool:
    """Whether ``codec`` gives this scene a lossy (JPEG/WEBP) starting profile."""
    if codec in ("auto", "auto-lossy"):
        return lossy_problem("jpeg", info) is None
    return codec in LOSSY


def _overview_kind(info: RasterInfo) -> Literal["jpeg", "lerc"] | None:
    """The lossy encoding of this scene's overviews under ``--overviews lossy`` when its full
    resolution is lossless: JPEG for 8-bit greyscale or RGB without nodata or alpha (a JPEG
    overview would move the edges of nodata areas), LERC within a relative bound for the
    rest; none for palette scenes (averaged indices mean nothing; they are taken NEAREST
    and kept exact)."""
    if info.has_colormap:
        return None
    plain = info.nodata is None and not info.alpha_index and not info.has_dataset_mask
    if info.dtype == "uint8" and plain and info.count in (1, 3):
        return "jpeg"
    if info.dtype in (CODECS["lerc"].dtypes or ()):
        return "lerc"
    return None


def overview_profile(
    info: RasterInfo, full_error: tuple[float, ...] | None, ranges: Sequence[BandRange] | None
) -> Profile | None:
    """The overviews' profile under ``--overviews lossy`` (``None``: they stay as the full
    resolution is). LERC's bound is :data:`~compactor.codecs.OVERVIEW_ERROR` of each band's
    valid range on the sample, and never tighter than the full resolution's own bound."""
    kind = _overview_kind(info)
    if kind == "jpeg":
        return Profile(codec="jpeg", quality=OVERVIEW_QUALITY)
    if kind is None:
        return None
    relative = resolve_bound(ErrorBound((OVERVIEW_ERROR,), relative=True), info, ranges)
    if relative is None:
        return None
    if full_error is not None:
        relative = tuple(max(a, b) for a, b in zip(relative, full_error, strict=True))
    return Profile(codec="lerc", max_error=relative, lerc_inner="zstd")


def _policy_codec(codec: str, info: RasterInfo, graded_alpha: bool) -> str:
    """The codec a scene starts with under ``--codec`` (a policy resolved, a codec as is):
    ``auto`` JPEG where it can, else ZSTD; ``lossless`` ZSTD, which the encoding search
    then weighs against every lossless codec."""
    if codec in ("auto", "auto-lossy"):
        lossy_ok = lossy_problem("jpeg", info, graded_alpha=graded_alpha) is None
        return "jpeg" if lossy_ok else AUTO_LOSSLESS
    if codec == "lossless":
        return AUTO_LOSSLESS
    return codec


def choose_profile(
    info: RasterInfo,
    codec: str = "auto",
    quality: int | str | None = None,
    *,
    max_error: ErrorBound | None = None,
    overviews: OverviewPolicy = "full",
    ranges: Sequence[BandRange] | None = None,
    graded_alpha: bool = False,
) -> Profile:
    """The profile for ``info`` under ``--codec``/``--quality``/``--max-error``/
    ``--overviews`` (``auto-lossy`` starts as ``auto`` does; :mod:`compactor.encode._quality`
    may then pick WEBP; an ``"auto"`` quality starts at the default and is searched there;
    the lossless codec, level and predictor are then searched on the sample by
    :mod:`compactor.encode._lossless`). ``ranges``: each band's valid range on the sample,
    where :func:`needs_ranges` says so. ``graded_alpha``: the alpha band holds values other
    than 0 and opaque (:func:`~compactor.cog._alpha.alpha_is_graded`): it stays a band,
    and the scene lossless (a lossy codec asked for is refused).

    Raises :class:`UnsupportedCodecError` for an impossible combination.
    """
    if not isinstance(quality, int):
        quality = None
    asked = codec
    codec = _policy_codec(codec, info, graded_alpha)
    resampling = _resampling(info)
    ovr = None
    if overviews == "lossy" and (ranges is not None or _overview_kind(info) != "lerc"):
        ovr = overview_profile(info, None, ranges)
    if codec in LOSSY:
        problem = lossy_problem(codec, info, graded_alpha=graded_alpha)
        if problem:
            raise UnsupportedCodecError(problem)
        mask = _mask_source(info)
        return Profile(
            codec=codec,
            quality=quality or DEFAULT_QUALITY,
            mask=mask,
            drop_alpha=mask == "alpha",
            resampling=resampling,
            overviews=overviews,
            overview=ovr,
        )
    if codec not in LOSSLESS:
        raise UnsupportedCodecError(f"unknown codec {codec!r}")
    noise = None
    if max_error is not None and bound_applies(info, asked):
        bound, noise = _scene_bound(max_error, info, ranges)
        if bound is not None:
            if overviews == "lossy":
                ovr = overview_profile(info, bound, ranges)
            return Profile(
                codec="lerc", max_error=bound, lerc_inner="zstd", resampling=resampling,
                overviews=overviews, overview=ovr, noise=noise,
            )  # fmt: skip
        if asked != "lerc":  # an integer bound below 0.5: lossless, searched like any
            codec = AUTO_LOSSLESS
    problem = lossless_problem(codec, info)
    if problem:
        raise UnsupportedCodecError(problem)
    # Complex samples take no TIFF predictor (libtiff's floating-point one wants real floats).
    predictor = 1 if is_complex(info.dtype) else None
    return Profile(
        codec=codec, resampling=resampling, overviews=overviews, overview=ovr,
        predictor=predictor, noise=noise,
    )  # fmt: skip


def _scene_bound(
    max_error: ErrorBound, info: RasterInfo, ranges: Sequence[BandRange] | None
) -> tuple[tuple[float, ...] | None, NoiseBound | None]:
    """Each band's bound in data units (``None``: lossless), and the noise it was set from
    under ``--max-error noise``."""
    if not max_error.noise:
        return resolve_bound(max_error, info, ranges), None
    noise = resolve_noise(max_error.values[0], info, ranges)
    return (noise.bounds if max(noise.bounds) > 0 else None), noise


def lossless_fallback(profile: Profile) -> Profile:
    """The last resort of a lossy scene that misses its bar: lossless, with the scene's
    overview policy."""
    return Profile(
        codec=AUTO_LOSSLESS,
        resampling=profile.resampling,
        force_bigtiff=profile.force_bigtiff,
        overviews=profile.overviews,
        overview=profile.overview,
    )


def fallback_profiles(profile: Profile, info: RasterInfo) -> list[Profile]:
    """What to try, in order, when ``profile`` misses the SSIM bar: higher qualities of
    the same codec, then lossless as the last resort."""
    if profile.lossless:
        return []
    q = profile.quality or DEFAULT_QUALITY
    rungs = [replace(profile, quality=r) for r in QUALITY_LADDER if r > q]
    rungs.append(lossless_fallback(profile))
    return rungs
