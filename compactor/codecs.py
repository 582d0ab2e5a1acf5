"""Every codec compactor writes, defined once (rio-cogeo's ``cog_profiles`` idea): its name,
whether it is lossy, what it can encode, whether it takes a quality, its TIFF compression
tag and which writer makes it. The CLI's choices, the settings' validation, the notebook's
profiles and the per-scene codec choice all derive from this table.

Pure data: importing it costs nothing and pulls in no GDAL or codec library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Writer = Literal["tiles", "gdal"]

#: Data types LERC encodes (liblerc's: no 64-bit integers, no complex numbers).
LERC_DTYPES = frozenset(
    {"int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64"}
)


@dataclass(frozen=True)
class Codec:
    """One codec an output can be written with."""

    name: str
    lossy: bool
    #: TIFF ``Compression`` tag value.
    tiff: int
    #: ``tiles``: compactor's tile writer (one pass, chunkable); ``gdal``: GDAL's COG driver.
    writer: Writer
    #: What it is, in a few words (``--help``, error messages).
    summary: str
    #: Data types it encodes; ``None``: every non-complex type (complex: :data:`COMPLEX`).
    dtypes: frozenset[str] | None = None
    #: Numbers of colour bands (alpha excluded) it encodes; ``None``: any.
    colour_bands: frozenset[int] | None = None


CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("jpeg", True, 7, "tiles", "JPEG (libjpeg-turbo), YCbCr for RGB",
              frozenset({"uint8"}), frozenset({1, 3})),
        Codec("webp", True, 50001, "tiles", "WEBP (libwebp), RGB",
              frozenset({"uint8"}), frozenset({3})),
        Codec("deflate", False, 8, "tiles", "DEFLATE (libdeflate) with the dtype's predictor"),
        Codec("zstd", False, 50000, "tiles", "ZSTD with the dtype's predictor"),
        Codec("lzw", False, 5, "tiles", "LZW with the dtype's predictor"),
        Codec("lerc", False, 34887, "tiles",
              "LERC, lossless or within --max-error (ZSTD or DEFLATE inside)", LERC_DTYPES),
    )
}  # fmt: skip

#: Codec choices that pick a codec per scene.
POLICIES: dict[str, str] = {
    "auto": "JPEG for 8-bit greyscale or RGB(A), lossless ZSTD for the rest",
    "auto-lossy": "as auto, but per scene JPEG or WEBP, whichever is smaller at the SSIM bar "
    "(WEBP only with --allow-webp)",
    "lossless": "every scene lossless, in the encoding the --effort search finds (ZSTD, "
    "DEFLATE, LZW or LERC, with their levels and predictors)",
}
#: Everything ``--codec`` accepts.
CHOICES: tuple[str, ...] = (*POLICIES, *CODECS)

LOSSY = frozenset(name for name, c in CODECS.items() if c.lossy)
LOSSLESS = frozenset(name for name, c in CODECS.items() if not c.lossy)
#: Codecs compactor's tile writer encodes (the rest go through GDAL's COG driver).
TILE_WRITER = frozenset(name for name, c in CODECS.items() if c.writer == "tiles")
#: Codecs that encode complex data (GDAL's CInt16, CInt32, CFloat32, CFloat64), without a
#: predictor and through GDAL's COG driver: numpy has no complex integer type, so the tile
#: writer takes no complex samples; LERC, JPEG and WEBP encode no complex numbers at all.
COMPLEX = frozenset({"deflate", "zstd", "lzw"})
#: TIFF ``Compression`` tag of each codec.
COMPRESSION: dict[str, int] = {name: c.tiff for name, c in CODECS.items()}


def may_be_lossy(codec: str) -> bool:
    """Whether a run with ``--codec codec`` may write a scene lossy (held to an SSIM bar):
    a lossy codec, or a policy that picks one for 8-bit imagery."""
    return codec in LOSSY or codec in ("auto", "auto-lossy")


#: Lossless codec of ``auto``, and the last resort of a lossy scene that misses its bar.
AUTO_LOSSLESS = "zstd"
#: A lossy codec's quality when none is given (the AWS Lambda pattern's 75).
DEFAULT_QUALITY = 75
#: ``--overviews lossy``: JPEG quality of 8-bit overviews, and LERC's bound on the others'
#: as a fraction of each band's valid range (overviews are averages made for display: an
#: error of 0.2 % of the range is far below what a screen shows).
OVERVIEW_QUALITY = 75
OVERVIEW_ERROR = 0.005
QUALITY_MIN, QUALITY_MAX = 1, 100


def parse_quality(value: object) -> int | Literal["auto"]:
    """A quality as the user gives it (``75``, ``"75"``, ``"auto"``): the one check of it.
    Raises ``ValueError`` with a message that says what is accepted."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if not text.lstrip("-").isdigit():
            raise ValueError(f"{value!r} is neither auto nor a whole number from 1 to 100")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is neither auto nor a whole number from 1 to 100")
    if not QUALITY_MIN <= value <= QUALITY_MAX:
        raise ValueError(f"quality {value} is not between {QUALITY_MIN} and {QUALITY_MAX}")
    return value


@dataclass(frozen=True)
class ErrorBound:
    """``--max-error``: the largest error allowed on any valid pixel of a non-8-bit scene,
    one value for every band or one per band, in data units; or ``relative``: a fraction
    of each band's valid range on the scene's sample (``"0.1%"``); or ``noise``: set per
    band from the noise σ estimated on the scene's sample, so that the added error's RMS is
    at most ``values[0]``·σ (``"noise"``, ``"noise:0.3"``;
    :func:`compactor.fidelity.noise_bound`)."""

    values: tuple[float, ...]
    relative: bool = False
    noise: bool = False

    def text(self) -> str:
        if self.noise:
            return f"noise:{self.values[0]:g}"
        if self.relative:
            return "/".join(f"{100 * v:g}%" for v in self.values)
        return "/".join(f"{v:g}" for v in self.values)


def parse_max_error(value: object) -> ErrorBound | None:
    """``--max-error`` as given (``2``, ``"2"``, ``"2,2,1,1"``, ``[2, 1]``, ``"0.1%"``,
    ``"noise"``, ``"noise:0.3"``): the one check of it. ``None``/``0`` means none (lossless)."""
    if value is None or isinstance(value, ErrorBound):
        return value
    if isinstance(value, str) and value.strip().lower().partition(":")[0] == "noise":
        return _parse_noise(value)
    if isinstance(value, bool):
        raise ValueError(f"max error {value!r} is not a number")
    items: list[object]
    if isinstance(value, str):
        items = [p for p in value.replace(";", ",").split(",") if p.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [value]
    relative = all(isinstance(i, str) and i.strip().endswith("%") for i in items) and bool(items)
    numbers = []
    for item in items:
        text = str(item).strip().removesuffix("%") if relative else str(item).strip()
        try:
            number = float(text)
        except ValueError as err:
            raise ValueError(
                f"max error {value!r}: give a number, one per band (2,2,1,1) or a percentage "
                "of each band's range (0.1%)"
            ) from err
        if not number >= 0:
            raise ValueError(f"max error {value!r} must not be negative")
        numbers.append(number / 100 if relative else number)
    if not numbers or max(numbers) == 0:
        return None
    return ErrorBound(tuple(numbers), relative)


#: ``--max-error noise``: the added error's RMS as a fraction of the noise σ.
NOISE_FRACTION = 0.3


def _parse_noise(value: str) -> ErrorBound:
    _, sep, rest = value.strip().lower().partition(":")
    fraction = NOISE_FRACTION
    if sep:
        try:
            fraction = float(rest)
        except ValueError as err:
            raise ValueError(
                f"max error {value!r}: noise takes a fraction of the noise σ (noise:0.3)"
            ) from err
    if not 0 < fraction <= 10:
        raise ValueError(f"max error {value!r}: the fraction must be above 0 and at most 10")
    return ErrorBound((fraction,), noise=True)


def codec_help() -> str:
    """The codecs and policies, one per line, for ``--help``."""
    return "; ".join(
        [f"{name}: {text}" for name, text in POLICIES.items()]
        + [f"{c.name}: {c.summary}" for c in CODECS.values()]
    )
