"""Tiles: encoding and decoding them as TIFF stores them, and building overviews.

Encoders come from imagecodecs: JPEG through libjpeg-turbo (YCbCr 4:2:0 for RGB, optimised
Huffman tables), WEBP through libwebp, DEFLATE through libdeflate, ZSTD, LZW (TIFF's
variant), each with TIFF's horizontal-differencing (2) or floating-point (3) predictor, and
LERC (liblerc, Lerc2 version 4 as GDAL writes it, optionally ZSTD- or DEFLATE-compressed
as GDAL's ``LERC_ZSTD``/``LERC_DEFLATE``). Tiles are pixel-interleaved
(``PlanarConfiguration=1``), edge tiles padded to full size by repeating the last row and
column. Masks are 1-bit tiles (rows packed most significant bit first), DEFLATE-compressed.

As libtiff does for JPEG in TIFF (``JPEGTABLESMODE=1``), the quantisation tables go once into
the ``JPEGTables`` tag and each tile keeps its own Huffman tables.

**LERC as GDAL reads it** (libtiff's ``tif_lerc.c``): one blob per tile, all bands
interleaved (``nDim`` = bands) with a single ``MAX_Z_ERROR``; a LERC mask is honoured only
for floating-point data, where GDAL returns NaN for masked pixels (one mask for all bands,
or one per band in a multi-band blob when NaN positions differ between bands). For
integers GDAL ignores a LERC mask (masked pixels would read back as whatever its buffer
held), so integer tiles carry no mask and their nodata pixels are encoded as values. Hence:

* NaN is a LERC mask and comes back NaN; every other value is data.
* One error for every band: a per-band bound is met by encoding with the smallest
  (liblerc takes one ``maxZErr`` per blob, and GDAL reads one blob per tile).
* liblerc floors an integer bound (``max(0.5, floor(E))``: below 1 it is lossless) and
  rounds a float result to the data type after dequantising, which can exceed ``E`` by half
  an ULP; float tiles are encoded with ``E`` less one ULP of their largest magnitude, so the
  bound holds exactly.
* Each bounded tile is decoded again and kept only if every value is within its band's
  bound, nodata and NaN pixels come back exactly, no valid pixel comes back as nodata
  (LERC rounds values within ``E`` of a nodata value at a block's edge onto it) and an
  alpha band comes back exactly; else it is encoded again tighter (``E/4``, then lossless).

Overviews are made 2x2 at a time: AVERAGE over the valid pixels for continuous data, or the
pixel GDAL's NEAREST would pick for classes; an overview pixel is valid where any of its
four is.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, cast

import imagecodecs as ic
import numpy as np

from ..codecs import CODECS, TILE_WRITER
from ..errors import UnsupportedCodecError, VerificationError

log = logging.getLogger(__name__)

TILE = 512

#: Codec levels GDAL uses by default (ZLEVEL, ZSTD_LEVEL).
DEFLATE_LEVEL = 6
ZSTD_LEVEL = 9
#: The levels each codec takes (DEFLATE through libdeflate: up to 12).
LEVELS: dict[str, tuple[int, int]] = {"deflate": (1, 12), "zstd": (1, 22)}
#: Codecs whose tiles take a TIFF predictor.
PREDICTED = frozenset({"deflate", "zstd", "lzw"})
#: The ``LercParameters`` tag's first value: the LERC API version of the TIFF codec
#: (libtiff's ``LERC_VERSION_2_4``, the only value readers accept). The blob inside is
#: self-describing: Lerc2 v4 by default (what GDAL writes), v5 where a profile asks for it.
LERC_VERSION = 4
#: Lerc2 blob versions the tile writer writes: v4 (GDAL's own; every LERC reader), v5 (adds
#: delta coding of each band against the previous one, pixel-interleaved: about 10 % smaller
#: on multi-band reflectance; liblerc 2.1, 2019, and later decode it).
LERC_BLOBS = (4, 5)
#: ``LercParameters``' second value: the inner codec.
LERC_INNER = {None: 0, "deflate": 1, "zstd": 2}


@dataclass(frozen=True)
class TileCodec:
    """How tiles of one output (or of its overviews) are encoded."""

    codec: str
    dtype: str
    bands: int
    quality: int | None = None
    #: TIFF Predictor: 1 none, 2 horizontal differencing, 3 floating point.
    predictor: int = 1
    #: DEFLATE (1-12) or ZSTD (1-22) level, also of LERC's inner codec; None: GDAL's.
    level: int | None = None
    #: LERC: the largest error allowed in each band, in data units; () lossless.
    max_error: tuple[float, ...] = field(default=())
    #: LERC's inner codec ("zstd", "deflate") or None.
    lerc_inner: str | None = None
    #: The Lerc2 blob version (:data:`LERC_BLOBS`).
    lerc_blob: int = 4
    #: The value of nodata pixels: a LERC tile gives them back exactly and no other pixel
    #: becomes it.
    nodata: float | None = None
    #: 0-based band holding alpha: a LERC tile gives it back exactly.
    alpha: int | None = None

    @property
    def ycbcr(self) -> bool:
        return self.codec == "jpeg" and self.bands == 3

    @property
    def bounded(self) -> bool:
        """LERC with an error allowed: tiles are not pixel-exact, but within bounds."""
        return self.codec == "lerc" and bool(self.max_error) and max(self.max_error) > 0

    @property
    def lerc_parameters(self) -> tuple[int, int] | None:
        """The ``LercParameters`` tag: (Lerc2 version, inner codec), for LERC only."""
        if self.codec != "lerc":
            return None
        return LERC_VERSION, LERC_INNER[self.lerc_inner]

    @classmethod
    def for_profile(
        cls,
        codec: str,
        quality: int | None,
        dtype: str,
        bands: int,
        *,
        level: int | None = None,
        predictor: int | None = None,
        max_error: tuple[float, ...] | None = None,
        lerc_inner: str | None = None,
        nodata: float | None = None,
        alpha: int | None = None,
        lerc_blob: int | None = None,
    ) -> TileCodec:
        """The tile codec of a profile's settings; raises :class:`UnsupportedCodecError`
        for a combination the tile writer (or a TIFF reader) cannot take. ``predictor``
        ``None``: the data type's (2 for integers, 3 for floats) where the codec takes one;
        ``max_error``: one bound for every band or one per band."""
        if codec not in TILE_WRITER:
            raise UnsupportedCodecError(f"the tile writer does not encode {codec}")
        floating = np.dtype(dtype).kind == "f"
        name = codec.upper()
        predictor = _predictor(codec, dtype, floating, predictor)
        inner = lerc_inner if codec == "lerc" else None
        if lerc_inner is not None and codec != "lerc":
            raise UnsupportedCodecError(f"{name} has no inner codec ({lerc_inner})")
        if level is not None:
            _check_level(codec, inner, level)
        errors = _error_bounds(codec, dtype, bands, max_error)
        blob = lerc_blob or 4
        if blob not in LERC_BLOBS or (blob != 4 and codec != "lerc"):
            raise UnsupportedCodecError(f"{name} has no Lerc2 blob version {blob}")
        return cls(
            codec, dtype, bands, quality, predictor, level, errors, inner, blob, nodata, alpha
        )

    @classmethod
    def from_profile(
        cls,
        profile: Any,
        dtype: str,
        bands: int,
        *,
        nodata: float | None = None,
        alpha: int | None = None,
    ) -> TileCodec:
        """:meth:`for_profile` with the settings of ``profile`` (a
        :class:`~compactor.cog._profile.Profile`)."""
        return cls.for_profile(
            profile.codec, profile.quality, dtype, bands, level=profile.level,
            predictor=profile.predictor, max_error=profile.max_error,
            lerc_inner=profile.lerc_inner, nodata=nodata, alpha=alpha,
            lerc_blob=profile.lerc_blob,
        )  # fmt: skip

    # -- encoding ----------------------------------------------------------------

    def encode(self, tile: np.ndarray) -> bytes:
        """``tile``: (rows, cols, bands), full tile size."""

        if self.codec == "jpeg":
            if self.bands == 3:
                return bytes(
                    ic.jpeg8_encode(
                        tile, level=self.quality, colorspace="RGB", outcolorspace="YCBCR",
                        subsampling="420", optimize=True,
                    )
                )  # fmt: skip
            return bytes(ic.jpeg8_encode(tile[..., 0], level=self.quality, optimize=True))
        if self.codec == "webp":
            return bytes(ic.webp_encode(tile, level=self.quality, lossless=False))
        if self.codec == "lerc":
            return self._encode_lerc(tile)
        data = tile if self.bands > 1 else tile[..., 0]
        data = data.astype(data.dtype.newbyteorder("<"), copy=False)  # the file's byte order
        axis = -2 if self.bands > 1 else -1
        if self.predictor == 2:
            data = _differenced(_as_uint(data))
        elif self.predictor == 3:
            data = ic.floatpred_encode(data, axis=axis)
        # The codecs read the array's buffer: no copy into bytes first.
        arr = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"), copy=False)
        raw = cast(bytes, arr)  # imagecodecs takes any buffer (its stubs say bytes)
        if self.codec == "deflate":
            return bytes(ic.deflate_encode(raw, level=self.level or DEFLATE_LEVEL))
        if self.codec == "lzw":
            return bytes(ic.lzw_encode(raw))
        return bytes(ic.zstd_encode(raw, level=self.level or ZSTD_LEVEL))

    def decode(
        self, data: bytes, tables: bytes | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Inverse of :meth:`encode` (JPEG tiles take the JPEGTables back): (rows, cols, bands).
        JPEG tiles decode into ``out`` when given (a reused (TILE, TILE[, 3]) buffer); LERC
        tiles give NaN where their mask says no data, as GDAL does."""

        if self.codec == "jpeg":
            target = None if out is None else (out if self.ycbcr else out[..., 0])
            decoded = ic.jpeg8_decode(
                data, tables=tables, colorspace="YCBCR" if self.ycbcr else None,
                outcolorspace="RGB" if self.ycbcr else None, out=target,
            )  # fmt: skip
            return decoded if decoded.ndim == 3 else decoded[..., None]
        if self.codec == "webp":
            return np.asarray(ic.webp_decode(data))
        if self.codec == "lerc":
            return self._decode_lerc(data)
        shape = (TILE, TILE, self.bands) if self.bands > 1 else (TILE, TILE)
        little = np.dtype(self.dtype).newbyteorder("<")
        # Into a buffer of the known size: libdeflate and LZW otherwise guess the size and
        # retry (decoding 2-3x slower); the predictor is then undone in place. One byte
        # more than a tile: a stream decoding to any other length (LZW stops short or cuts
        # a long one without an error) is refused, never compared with stale bytes.
        size = math.prod(shape) * little.itemsize
        buf = np.empty(size + 1, np.uint8)
        if self.codec == "deflate":
            got = len(ic.deflate_decode(data, out=buf.data))
        elif self.codec == "lzw":
            got = len(ic.lzw_decode(data, out=buf.data))
        else:
            got = len(ic.zstd_decode(data, out=buf.data))
        if got != size:
            raise VerificationError(
                f"a {self.codec.upper()} tile decodes to {got} bytes, not the tile's {size}"
            )
        arr = buf[:size].view(little).reshape(shape)
        axis = -2 if self.bands > 1 else -1
        if self.predictor == 2:
            as_uint = _as_uint(arr)
            ic.delta_decode(as_uint, axis=axis, out=as_uint)
        elif self.predictor == 3:
            arr = ic.floatpred_decode(arr, axis=axis)
        arr = arr.astype(self.dtype, copy=False)
        return arr if arr.ndim == 3 else arr[..., None]

    # -- LERC ---------------------------------------------------------------------------

    def _encode_lerc(self, tile: np.ndarray) -> bytes:
        floating = tile.dtype.kind == "f"
        masks: np.ndarray | None = None
        planar = False
        data = tile
        if floating:
            nan = np.isnan(tile)
            if nan.any():
                if self.bands == 1 or bool((nan == nan[..., :1]).all()):
                    masks = ~nan[..., 0]
                else:  # NaN differs between bands: one mask per band, bands one by one
                    planar = True
                    masks = ~np.moveaxis(nan, -1, 0)
                data = np.where(nan, 0, tile).astype(tile.dtype, copy=False)
        steps = self._lerc_steps(tile)
        for error in steps:
            blob = self._lerc_blob(data, error, masks, planar)
            if error == 0 or self.within(tile, self._decode_lerc(blob)):
                if error != steps[0]:
                    log.debug("LERC tile encoded at %g instead of %g", error, steps[0])
                return blob
        raise AssertionError("unreachable: lossless LERC is always kept")

    def _lerc_steps(self, tile: np.ndarray) -> list[float]:
        """The errors a tile is tried at, loosest first, ending lossless (0)."""
        bound = min(self.max_error) if self.bounded else 0.0
        if bound <= 0:
            return [0.0]
        if tile.dtype.kind == "f":
            finite = np.abs(tile[np.isfinite(tile)])
            top = float(finite.max()) if finite.size else 0.0
            # liblerc rounds its dequantised value to the data type: keep one ULP in hand.
            bound -= float(np.spacing(np.asarray(top + bound, dtype=tile.dtype)))
            steps = [bound, bound / 4] if bound > 0 else []
        else:  # liblerc uses floor(E) for integers (lossless below 1)
            steps = [e for e in (math.floor(bound), math.floor(bound / 4)) if e >= 1]
        return [*dict.fromkeys(steps), 0.0]

    def _lerc_blob(
        self, data: np.ndarray, error: float, masks: np.ndarray | None, planar: bool
    ) -> bytes:
        if planar:
            arr = np.ascontiguousarray(np.moveaxis(data, -1, 0))
        else:
            arr = np.ascontiguousarray(data if self.bands > 1 else data[..., 0])
        blob = ic.lerc_encode(
            arr, level=error, masks=masks, version=self.lerc_blob, planar=planar or None
        )
        if self.lerc_inner == "zstd":
            return bytes(ic.zstd_encode(blob, level=self.level or ZSTD_LEVEL))
        if self.lerc_inner == "deflate":
            return bytes(ic.deflate_encode(blob, level=self.level or DEFLATE_LEVEL))
        return bytes(blob)

    def _decode_lerc(self, data: bytes) -> np.ndarray:
        blob: bytes | bytearray = data
        if self.lerc_inner == "zstd":
            blob = ic.zstd_decode(data)
        elif self.lerc_inner == "deflate":
            blob = ic.deflate_decode(data)
        arr, masks = ic.lerc_decode(blob, masks=True)
        arr = np.asarray(arr)
        if arr.ndim == 2:
            arr = arr[..., None]
        elif arr.shape[-1] != self.bands:  # one band after the other (per-band masks)
            arr = np.moveaxis(arr, 0, -1)
            if masks is not None and np.ndim(masks) == 3:
                masks = np.moveaxis(masks, 0, -1)
        arr = arr.astype(self.dtype, copy=False)
        if masks is not None and arr.dtype.kind == "f":
            invalid = ~np.asarray(masks, dtype=bool)
            if invalid.any():
                arr = arr.copy()
                arr[invalid] = np.nan  # a 2-D mask covers every band of its pixels
        return arr

    def within(self, tile: np.ndarray, decoded: np.ndarray) -> bool:
        """Whether ``decoded`` keeps ``tile`` (both (rows, cols, bands)) within this codec's
        bounds: every value within its band's error, NaN, infinities and nodata exactly
        where they were and nowhere else, an alpha band exactly (:meth:`band_error`)."""
        nodata = self.nodata
        for b in range(self.bands):
            x, d = tile[..., b], decoded[..., b]
            special_x = ~np.isfinite(x) if x.dtype.kind == "f" else np.zeros(x.shape, bool)
            special_d = ~np.isfinite(d) if d.dtype.kind == "f" else np.zeros(d.shape, bool)
            if nodata is not None and not math.isnan(nodata):
                special_x |= x == nodata
                special_d |= d == nodata
            if not np.array_equal(special_x, special_d):
                return False
            if special_x.any() and not np.array_equal(
                x[special_x], d[special_x], equal_nan=x.dtype.kind == "f"
            ):
                return False
            ok = ~special_x
            err = np.abs(d[ok].astype(np.float64) - x[ok].astype(np.float64))
            if err.size and float(err.max()) > self.band_error(b):
                return False
        return True

    @property
    def pad_value(self) -> float | None:
        """What pads an edge tile beyond the image: repeated edge pixels (``None``) keep
        JPEG and the predictors cheap; LERC codes 8x8 blocks by their value range, so a
        constant (nodata, else 0) costs it almost nothing there, where repeated noisy edges
        cost as much as image (3x a LERC edge tile's size, measured)."""
        if self.codec != "lerc":
            return None
        if self.nodata is not None and math.isfinite(self.nodata):
            return self.nodata
        return 0

    def band_error(self, band: int) -> float:
        """The bound of 0-based ``band`` (0: exact). An alpha band is always exact: a
        partly transparent pixel must keep its transparency."""
        if band == self.alpha:
            return 0.0
        return self.max_error[band] if self.max_error else 0.0


def _predictor(codec: str, dtype: str, floating: bool, predictor: int | None) -> int:
    """The TIFF predictor of a tile codec: ``None`` is the data type's (2 for integers, 3
    for floats) where the codec takes one, else 1 (none)."""
    if codec in PREDICTED:
        if predictor is None:
            predictor = 3 if floating else 2
        if predictor not in (1, 2, 3):
            raise UnsupportedCodecError(f"TIFF has no predictor {predictor}")
        if predictor == 3 and not floating:
            raise UnsupportedCodecError(
                f"the floating-point predictor (3) needs float data; this is {dtype}"
            )
        return predictor
    if predictor not in (None, 1):
        raise UnsupportedCodecError(f"{codec.upper()} takes no predictor (asked {predictor})")
    return 1


def _check_level(codec: str, inner: str | None, level: int) -> None:
    """Refuse a compression level the codec (LERC's inner codec, for LERC) does not take."""
    levels = LEVELS.get(inner or codec)
    if levels is None:
        raise UnsupportedCodecError(f"{codec.upper()} takes no compression level")
    lo, hi = levels
    if not lo <= level <= hi:
        raise UnsupportedCodecError(
            f"{(inner or codec).upper()} levels are {lo} to {hi}, not {level}"
        )


def _error_bounds(
    codec: str, dtype: str, bands: int, max_error: tuple[float, ...] | None
) -> tuple[float, ...]:
    """One error bound per band (LERC only; ``()``: lossless), from one for every band or
    one per band."""
    errors: tuple[float, ...] = ()
    if max_error and codec != "lerc":
        raise UnsupportedCodecError(f"{codec.upper()} takes no error bound (only LERC does)")
    if codec == "lerc":
        spec = CODECS["lerc"]
        if spec.dtypes is not None and dtype not in spec.dtypes:
            raise UnsupportedCodecError(f"LERC does not encode {dtype} data")
        if max_error:
            if len(max_error) not in (1, bands):
                raise UnsupportedCodecError(
                    f"{len(max_error)} error bounds for {bands} bands: give one or {bands}"
                )
            if any(not math.isfinite(e) or e < 0 for e in max_error):
                raise UnsupportedCodecError(f"error bounds must be >= 0, not {max_error}")
            if max(max_error) > 0:
                errors = tuple(float(e) for e in max_error) * (bands if len(max_error) == 1 else 1)
    return errors


def _differenced(a: np.ndarray) -> np.ndarray:
    """TIFF's horizontal differencing (Predictor 2) of unsigned samples ``a`` (rows, cols
    [, bands]): each sample minus the one to its left in the same band, modulo the sample
    size (numpy's unsigned subtraction wraps), the first column kept. One vectorised
    subtraction, 3-4x faster than ``imagecodecs.delta_encode`` along a middle axis; the
    tile checks undo it with ``imagecodecs.delta_decode``, an independent implementation."""
    out = np.empty(a.shape, a.dtype)
    out[:, :1] = a[:, :1]
    np.subtract(a[:, 1:], a[:, :-1], out=out[:, 1:])
    return out


def _as_uint(a: np.ndarray) -> np.ndarray:
    """The same samples as unsigned integers of their size (what libtiff's horizontal
    differencing works on, for floats too), in the array's byte order: a big-endian array's
    samples are not read byte-swapped."""
    if a.dtype.kind == "u":
        return a
    return a.view(np.dtype(f"u{a.dtype.itemsize}").newbyteorder(a.dtype.byteorder))


# --- tiles of an array -------------------------------------------------------------------


def pad_tile(block: np.ndarray, size: int = TILE, fill: float | None = None) -> np.ndarray:
    """Pad (rows, cols, ...) to a full tile by repeating the last row and column, or with
    ``fill`` (:attr:`TileCodec.pad_value`)."""
    rows, cols = block.shape[:2]
    if rows == size and cols == size:
        return np.ascontiguousarray(block)
    # As np.pad's "edge" and "constant" modes, by slices (np.pad costs ~0.4 ms a tile).
    out = np.empty((size, size, *block.shape[2:]), dtype=block.dtype)
    out[:rows, :cols] = block
    if fill is None:
        out[:rows, cols:] = out[:rows, cols - 1 : cols]
        out[rows:] = out[rows - 1 : rows]
    else:
        out[:rows, cols:] = fill
        out[rows:] = fill
    return out
