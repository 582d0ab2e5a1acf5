"""Encoding profiles: how one scene is written (codec, quality, predictor, masks, overviews,
resampling), and the GDAL creation options that say the same. Which profile a scene gets is
encoding's choice (:func:`compactor.encode.choose_profile`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..codecs import (
    DEFAULT_QUALITY,
    LOSSLESS,
    LOSSY,
)
from ..gdal import is_complex

#: Rungs tried above the asked quality when the SSIM bar is missed; then lossless.


MaskSource = Literal["none", "nodata", "alpha", "dataset"]
#: How overviews are stored: ``full`` with the full resolution's encoding, ``lossy`` with a
#: lossy one (they are derived data: JPEG/WEBP for 8-bit, LERC with a relative bound for
#: the rest), ``none`` without overviews.
OverviewPolicy = Literal["full", "lossy", "none"]


@dataclass(frozen=True)
class NoiseBound:
    """``--max-error noise`` on one scene, per band: the noise σ estimated on the scene's
    sample (``None``: none could be, ``reasons`` says why), the error bound chosen from it
    (0: the band stays lossless) and the largest RMS error allowed, ``fraction``·σ, which
    verification holds every band to."""

    fraction: float
    sigma: tuple[float | None, ...]
    bounds: tuple[float, ...]
    reasons: tuple[str, ...]
    #: Each band's saving on the sample, LERC within its bound against LERC lossless
    #: (``None``: the band stays lossless).
    savings: tuple[float | None, ...] = ()

    def max_rmse(self, band: int) -> float | None:
        """The RMS error 0-based ``band`` is held to (``None``: no noise estimate; the
        band's bound is then 0, so it is exact)."""
        sigma = self.sigma[band]
        return None if sigma is None else self.fraction * sigma

    def describe(self) -> str:
        """In a few words per band: ``noise σ 3.01/2.97 → ±1/1 (RMS ≤ 0.3σ)``, and why a
        band stays lossless."""
        sig = "/".join("–" if s is None else f"{s:.3g}" for s in self.sigma)
        bounds = "/".join(f"{e:g}" for e in self.bounds)
        text = f"noise σ {sig} → ±{bounds} (RMS ≤ {self.fraction:g}σ)"
        # Bands with the same outcome and reason named once (an all-nodata 4-band scene:
        # "bands 1,2,3,4 lossless: …", not the reason four times).
        groups: dict[tuple[bool, str], list[str]] = {}
        for k, (e, r) in enumerate(zip(self.bounds, self.reasons, strict=True)):
            if r:
                groups.setdefault((e <= 0, r), []).append(str(k + 1))
        why = [
            f"{'bands' if len(ks) > 1 else 'band'} {','.join(ks)} "
            f"{'lossless' if exact else 'bound'}: {r}"
            for (exact, r), ks in groups.items()
        ]
        return "; ".join([text, *why])


@dataclass(frozen=True)
class Profile:
    """How one scene is encoded."""

    codec: str
    quality: int | None = None
    #: Where the output's internal mask comes from (lossy codecs only).
    mask: MaskSource = "none"
    #: Drop the alpha band (it becomes the mask).
    drop_alpha: bool = False
    #: Overview resampling: AVERAGE for continuous data, NEAREST for classes.
    resampling: str = "AVERAGE"
    blocksize: int = 512
    #: Write BigTIFF even when the output would fit classic TIFF.
    force_bigtiff: bool = False
    #: Compression level (DEFLATE 1-12, ZSTD 1-22, LERC's inner codec); ``None``: the
    #: codec's default (GDAL's: ZLEVEL 6, ZSTD_LEVEL 9).
    level: int | None = None
    #: TIFF predictor: 1 none, 2 horizontal differencing, 3 floating point; ``None``: the
    #: data type's (2 for integers, 3 for floats) where the codec takes one.
    predictor: int | None = None
    #: LERC: the largest error allowed on any valid pixel, in data units, one value for
    #: every band or one per band; ``0``/``None``: none (lossless). Nodata and NaN stay exact.
    max_error: tuple[float, ...] | None = None
    #: LERC's additional compression of its blobs (GDAL's LERC_ZSTD, LERC_DEFLATE).
    lerc_inner: Literal["zstd", "deflate"] | None = None
    #: LERC's blob version: 4 (GDAL's, every reader), 5 (bands delta-coded against each
    #: other; compactor's tile writer only; liblerc 2.1+ decodes it).
    lerc_blob: int = 4
    #: How overviews are stored, and their encoding under ``lossy``.
    overviews: OverviewPolicy = "full"
    overview: Profile | None = None
    #: ``--max-error noise``: the noise each band's bound was set from, and the RMS error
    #: it allows (kept on a scene that stays lossless too, for its reasons).
    noise: NoiseBound | None = None

    @property
    def lossy_overviews(self) -> bool:
        """Overviews encoded with their own (lossy) profile: ``overviews="lossy"`` on a
        lossless or bounded full resolution (a JPEG/WEBP scene's overviews are lossy already)."""
        return self.overviews == "lossy" and self.overview is not None and self.codec not in LOSSY

    @property
    def bounded(self) -> bool:
        """Lossy within an error bound (LERC with a max error above 0): verified by the
        largest error on the valid pixels, not by SSIM."""
        return self.max_error is not None and max(self.max_error) > 0

    @property
    def lossless(self) -> bool:
        """Pixel-exact: a lossless codec, LERC with no error allowed."""
        return self.codec in LOSSLESS and not self.bounded

    @property
    def smallest_error(self) -> float:
        """The tightest bound of any band (0: lossless): what one LERC blob is held to."""
        return min(self.max_error) if self.bounded and self.max_error else 0.0

    def band_error(self, band: int) -> float:
        """The error bound of 0-based ``band`` (0 where none)."""
        if not self.max_error:
            return 0.0
        return self.max_error[band] if len(self.max_error) > 1 else self.max_error[0]

    @property
    def label(self) -> str:
        text = self.codec
        if self.codec == "lerc" and self.lerc_blob != 4:
            text += f" v2.{self.lerc_blob}"
        if self.codec == "lerc" and self.lerc_inner:
            text += f"+{self.lerc_inner}"
        if self.quality is not None:
            text += f" q{self.quality}"
        if self.level is not None:
            text += f" L{self.level}"
        if self.predictor is not None and self.codec in ("deflate", "zstd", "lzw"):
            text += f" p{self.predictor}"
        if self.bounded:
            assert self.max_error is not None
            text += " ±" + "/".join(f"{e:g}" for e in self.max_error)
        if self.overviews == "none" or self.lossy_overviews:
            text += f", overviews {self.overviews}"
        return text

    def creation_options(self) -> dict[str, str]:
        """Creation options for GDAL's COG driver.

        The COG driver spells JPEG/WEBP quality ``QUALITY`` (the GTiff driver says
        ``JPEG_QUALITY``/``WEBP_LEVEL``) and every codec's level ``LEVEL`` (the GTiff driver
        says ``ZLEVEL``/``ZSTD_LEVEL``); tests read the quantisation tables back to prove the
        quality asked is the quality written. LERC takes one ``MAX_Z_ERROR`` for all bands,
        so per-band bounds give the smallest (GDAL has no per-band bound).
        """
        opts: dict[str, str] = {
            "COMPRESS": _gdal_compress(self),
            "BLOCKSIZE": str(self.blocksize),
            "OVERVIEW_RESAMPLING": self.resampling,
            "RESAMPLING": self.resampling,
            # Decide BigTIFF from the uncompressed size: safe even for incompressible data.
            "BIGTIFF": "YES" if self.force_bigtiff else "IF_SAFER",
            "NUM_THREADS": "1",
        }
        if self.codec in LOSSY:
            opts["QUALITY"] = str(self.quality or DEFAULT_QUALITY)
        if self.codec in PREDICTED:
            # None: horizontal differencing for integers, floating-point for floats.
            opts["PREDICTOR"] = _GDAL_PREDICTOR[self.predictor]
        if self.level is not None:
            opts["LEVEL"] = str(self.level)
        if self.codec == "lerc":
            # LERC with zero error is lossless.
            opts["MAX_Z_ERROR"] = f"{self.smallest_error:.17g}"
        if self.overviews == "none":
            opts["OVERVIEWS"] = "NONE"
        elif self.lossy_overviews:
            ovr = self.overview
            assert ovr is not None
            opts["OVERVIEW_COMPRESS"] = _gdal_compress(ovr)
            if ovr.codec in LOSSY:
                opts["OVERVIEW_QUALITY"] = str(ovr.quality or DEFAULT_QUALITY)
            if ovr.codec in PREDICTED:
                opts["OVERVIEW_PREDICTOR"] = _GDAL_PREDICTOR[ovr.predictor]
            if ovr.codec == "lerc":
                opts["MAX_Z_ERROR_OVERVIEW"] = f"{ovr.smallest_error:.17g}"
        return opts


#: Codecs that take a TIFF predictor.
PREDICTED = frozenset({"deflate", "zstd", "lzw"})
#: ``Profile.predictor`` as GDAL's ``PREDICTOR`` option says it (``None``: the dtype's).
_GDAL_PREDICTOR = {None: "YES", 1: "NO", 2: "STANDARD", 3: "FLOATING_POINT"}


def _gdal_compress(profile: Profile) -> str:
    """GDAL's ``COMPRESS`` value: LERC with its inner codec is ``LERC_ZSTD``/``LERC_DEFLATE``."""
    if profile.codec == "lerc" and profile.lerc_inner:
        return f"LERC_{profile.lerc_inner.upper()}"
    return profile.codec.upper()


def resolved_predictor(profile: Profile, dtype: str) -> int | None:
    """The TIFF predictor ``profile`` writes ``dtype`` data with (``None``: its codec takes
    none)."""
    if profile.codec not in PREDICTED:
        return None
    if profile.predictor is not None:
        return profile.predictor
    return 3 if np.dtype(dtype).kind == "f" else 2


def dtype_range(dtype: str) -> float:
    """The ``data_range`` of SSIM/PSNR: the full range of the data type (NaN: complex)."""
    if is_complex(dtype):
        return math.nan
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return float(info.max) - float(info.min)
    if dt.kind == "f":
        # Floats have no natural range; only lossless codecs handle them, so this is
        # used for reporting only (SSIM of identical data is 1 whatever the range).
        return 1.0
    return math.nan
