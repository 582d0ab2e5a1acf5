"""Codec choice: what a scene is, and which encoding profile it gets.

``--codec auto`` gives 8-bit imagery with 1 or 3 colour bands (plus an optional
alpha band) JPEG, YCbCr for RGB, with the alpha band or nodata value turned into an
internal mask so nodata areas stay exact; everything else (16-bit, float, many bands,
palettes) is stored losslessly with ZSTD and the predictor that suits the data type.
Explicit codecs are checked against the raster and refused with a clear reason
when they cannot encode it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .errors import SceneTooLargeError, UnsupportedCodecError

LOSSY = frozenset({"jpeg", "webp"})
LOSSLESS = frozenset({"deflate", "zstd", "lerc"})
#: Lossy quality when none is given (the AWS pattern's 75; the SSIM bar raises it if needed).
DEFAULT_QUALITY = 75
#: Rungs tried above the asked quality when the SSIM bar is missed; then lossless.
QUALITY_LADDER = (85, 90, 95)
#: Lossless codec used by ``auto`` and as the last resort for lossy scenes.
AUTO_LOSSLESS = "zstd"

MaskSource = Literal["none", "nodata", "alpha", "dataset"]


@dataclass(frozen=True)
class RasterInfo:
    """What compactor needs to know about a source raster (read once on the worker)."""

    driver: str
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    colorinterp: tuple[str, ...]
    descriptions: tuple[str | None, ...]
    block_shape: tuple[int, int]
    has_colormap: bool
    #: True when GDAL reports a per-dataset mask (an internal or sidecar mask band).
    has_dataset_mask: bool
    tags: dict[str, str] = field(default_factory=dict)
    #: Georeferenced by ground control points or RPCs rather than a geotransform.
    has_gcps_or_rpcs: bool = False

    @property
    def alpha_index(self) -> int | None:
        """1-based index of the alpha band, if any."""
        for i, ci in enumerate(self.colorinterp, start=1):
            if ci == "alpha":
                return i
        return None

    @property
    def colour_bands(self) -> int:
        return self.count - (1 if self.alpha_index else 0)

    @property
    def raw_bytes(self) -> int:
        import numpy as np

        return self.width * self.height * self.count * np.dtype(self.dtype).itemsize

    @classmethod
    def from_dataset(cls, ds: Any) -> RasterInfo:
        from rasterio.enums import MaskFlags

        flags = ds.mask_flag_enums
        has_colormap = False
        if ds.count >= 1:
            try:
                has_colormap = bool(ds.colormap(1))
            except ValueError:
                has_colormap = False
        block = ds.block_shapes[0] if ds.block_shapes else (ds.height, ds.width)
        return cls(
            driver=ds.driver,
            width=ds.width,
            height=ds.height,
            count=ds.count,
            dtype=ds.dtypes[0],
            nodata=ds.nodata,
            colorinterp=tuple(ci.name for ci in ds.colorinterp),
            descriptions=tuple(ds.descriptions),
            block_shape=(int(block[0]), int(block[1])),
            has_colormap=has_colormap,
            has_dataset_mask=bool(flags) and all(MaskFlags.per_dataset in f for f in flags),
            tags={k: v for k, v in ds.tags().items()},
            has_gcps_or_rpcs=bool(ds.gcps[0]) or ds.rpcs is not None,
        )

    def describe(self) -> str:
        return f"{self.dtype} with {self.count} band{'s' if self.count != 1 else ''}"


@dataclass(frozen=True)
class SizeLimits:
    """What a scene's header may declare (``--max-pixels``, ``--max-bands``,
    ``--max-raw-size``)."""

    max_pixels: int = 10_000_000_000
    max_bands: int = 1000
    max_raw_size: int = 256 * 1024**3

    def check(self, info: RasterInfo) -> None:
        """Raise :class:`SceneTooLargeError` naming the first limit ``info`` exceeds."""
        pixels = info.width * info.height
        for over, what, flag in (
            (pixels > self.max_pixels,
             f"{info.width} x {info.height} = {pixels:,} pixels, more than {self.max_pixels:,}",
             "--max-pixels"),
            (info.count > self.max_bands, f"{info.count} bands, more than {self.max_bands}",
             "--max-bands"),
            (info.raw_bytes > self.max_raw_size,
             f"{_gib(info.raw_bytes)} of raw pixels, more than {_gib(self.max_raw_size)}",
             "--max-raw-size"),
        ):  # fmt: skip
            if over:
                raise SceneTooLargeError(
                    f"refused before reading: the header declares {what} ({flag} raises it)"
                )


def _gib(n: int) -> str:
    return f"{n / 1024**3:,.1f} GiB"


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

    @property
    def lossless(self) -> bool:
        return self.codec in LOSSLESS

    @property
    def label(self) -> str:
        return f"{self.codec}" + (f" q{self.quality}" if self.quality is not None else "")

    def creation_options(self) -> dict[str, str]:
        """Creation options for GDAL's COG driver.

        The COG driver spells JPEG/WEBP quality ``QUALITY`` (the GTiff driver says
        ``JPEG_QUALITY``/``WEBP_LEVEL``); tests read the quantisation tables back to
        prove the quality asked is the quality written.
        """
        opts: dict[str, str] = {
            "COMPRESS": self.codec.upper(),
            "BLOCKSIZE": str(self.blocksize),
            "OVERVIEW_RESAMPLING": self.resampling,
            "RESAMPLING": self.resampling,
            # Decide BigTIFF from the uncompressed size: safe even for incompressible data.
            "BIGTIFF": "YES" if self.force_bigtiff else "IF_SAFER",
            "NUM_THREADS": "1",
        }
        if self.codec in LOSSY:
            opts["QUALITY"] = str(self.quality or DEFAULT_QUALITY)
        if self.codec in ("deflate", "zstd"):
            # Horizontal differencing for integers, floating-point predictor for floats.
            opts["PREDICTOR"] = "YES"
        if self.codec == "lerc":
            opts["MAX_Z_ERROR"] = "0"  # LERC with zero error is lossless
        return opts


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


def lossy_problem(codec: str, info: RasterInfo) -> str | None:
    """Why ``codec`` cannot encode this raster, or ``None`` if it can."""
    if info.dtype != "uint8":
        return f"{codec.upper()} encodes 8-bit data only; this scene is {info.describe()}"
    if info.has_colormap:
        return f"{codec.upper()} would blur palette indices; this scene has a colour table"
    if info.alpha_index and info.alpha_index != info.count:
        return f"{codec.upper()} needs the alpha band last"
    if codec == "jpeg" and info.colour_bands not in (1, 3):
        return f"JPEG encodes 1 or 3 colour bands (+alpha); this scene is {info.describe()}"
    if codec == "webp" and info.colour_bands != 3:
        return f"WEBP encodes 3 colour bands (+alpha); this scene is {info.describe()}"
    return None


def lossless_problem(codec: str, info: RasterInfo) -> str | None:
    if info.dtype.startswith("complex"):
        return f"{codec.upper()} does not encode complex data; this scene is {info.describe()}"
    return None


def choose_profile(
    info: RasterInfo, codec: str = "auto", quality: int | str | None = None
) -> Profile:
    """The profile for ``info`` under ``--codec``/``--quality`` (``auto-lossy`` starts as
    ``auto`` does; :mod:`compactor.quality` may then pick WEBP; an ``"auto"`` quality
    starts at the default and is searched there).

    Raises :class:`UnsupportedCodecError` for an impossible combination.
    """
    if not isinstance(quality, int):
        quality = None
    if codec in ("auto", "auto-lossy"):
        codec = "jpeg" if lossy_problem("jpeg", info) is None else AUTO_LOSSLESS
    if codec in LOSSY:
        problem = lossy_problem(codec, info)
        if problem:
            raise UnsupportedCodecError(problem)
        mask = _mask_source(info)
        return Profile(
            codec=codec,
            quality=quality or DEFAULT_QUALITY,
            mask=mask,
            drop_alpha=mask == "alpha",
            resampling=_resampling(info),
        )
    if codec in LOSSLESS:
        problem = lossless_problem(codec, info)
        if problem:
            raise UnsupportedCodecError(problem)
        return Profile(codec=codec, resampling=_resampling(info))
    raise UnsupportedCodecError(f"unknown codec {codec!r}")


def fallback_profiles(profile: Profile, info: RasterInfo) -> list[Profile]:
    """What to try, in order, when ``profile`` misses the SSIM bar: higher qualities of
    the same codec, then lossless as the last resort."""
    if profile.lossless:
        return []
    q = profile.quality or DEFAULT_QUALITY
    rungs = [replace(profile, quality=r) for r in QUALITY_LADDER if r > q]
    rungs.append(
        Profile(
            codec=AUTO_LOSSLESS,
            resampling=profile.resampling,
            force_bigtiff=profile.force_bigtiff,
        )
    )
    return rungs


def dtype_range(dtype: str) -> float:
    """The ``data_range`` of SSIM/PSNR: the full range of the data type."""
    import numpy as np

    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return float(info.max) - float(info.min)
    if dt.kind == "f":
        # Floats have no natural range; only lossless codecs handle them, so this is
        # used for reporting only (SSIM of identical data is 1 whatever the range).
        return 1.0
    return math.nan
