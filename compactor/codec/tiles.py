"""Tiles: encoding and decoding them as TIFF stores them, and building overviews.

Encoders come from imagecodecs: JPEG through libjpeg-turbo (YCbCr 4:2:0 for RGB, optimised
Huffman tables), WEBP through libwebp, DEFLATE through libdeflate and ZSTD, with TIFF's
horizontal-differencing (2) or floating-point (3) predictor. Tiles are pixel-interleaved
(``PlanarConfiguration=1``), edge tiles padded to full size by repeating the last row and
column. Masks are 1-bit tiles (rows packed most significant bit first), DEFLATE-compressed.

As libtiff does for JPEG in TIFF (``JPEGTABLESMODE=1``), the quantisation tables go once into
the ``JPEGTables`` tag and each tile keeps its own Huffman tables.

Overviews are made 2x2 at a time: AVERAGE over the valid pixels for continuous data, or the
pixel GDAL's NEAREST would pick for classes; an overview pixel is valid where any of its
four is.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import cv2
import imagecodecs as ic
import numpy as np

from ..codecs import TILE_WRITER
from ..errors import UnsupportedCodecError

TILE = 512

#: Codec levels GDAL uses by default (ZLEVEL, ZSTD_LEVEL).
DEFLATE_LEVEL = 6
ZSTD_LEVEL = 9


@dataclass(frozen=True)
class TileCodec:
    """How tiles of one output are encoded."""

    codec: str
    dtype: str
    bands: int
    quality: int | None = None
    #: TIFF Predictor: 1 none, 2 horizontal differencing, 3 floating point.
    predictor: int = 1

    @property
    def ycbcr(self) -> bool:
        return self.codec == "jpeg" and self.bands == 3

    @classmethod
    def for_profile(cls, codec: str, quality: int | None, dtype: str, bands: int) -> TileCodec:
        if codec not in TILE_WRITER:
            raise UnsupportedCodecError(f"the tile writer does not encode {codec}")
        predictor = 1
        if codec in ("deflate", "zstd"):
            predictor = 3 if np.dtype(dtype).kind == "f" else 2
        return cls(codec, dtype, bands, quality, predictor)

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
        data = tile if self.bands > 1 else tile[..., 0]
        axis = -2 if self.bands > 1 else -1
        if self.predictor == 2:
            data = ic.delta_encode(data, axis=axis)
        elif self.predictor == 3:
            data = ic.floatpred_encode(data, axis=axis)
        raw = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"), copy=False)
        if self.codec == "deflate":
            return bytes(ic.deflate_encode(raw.tobytes(), level=DEFLATE_LEVEL))
        return bytes(ic.zstd_encode(raw.tobytes(), level=ZSTD_LEVEL))

    def decode(
        self, data: bytes, tables: bytes | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Inverse of :meth:`encode` (JPEG tiles take the JPEGTables back): (rows, cols, bands).
        JPEG tiles decode into ``out`` when given (a reused (TILE, TILE[, 3]) buffer)."""

        if self.codec == "jpeg":
            target = None if out is None else (out if self.ycbcr else out[..., 0])
            decoded = ic.jpeg8_decode(
                data, tables=tables, colorspace="YCBCR" if self.ycbcr else None,
                outcolorspace="RGB" if self.ycbcr else None, out=target,
            )  # fmt: skip
            return decoded if decoded.ndim == 3 else decoded[..., None]
        if self.codec == "webp":
            return np.asarray(ic.webp_decode(data))
        raw = ic.deflate_decode(data) if self.codec == "deflate" else ic.zstd_decode(data)
        shape = (TILE, TILE, self.bands) if self.bands > 1 else (TILE, TILE)
        arr = np.frombuffer(raw, dtype=np.dtype(self.dtype).newbyteorder("<")).reshape(shape)
        axis = -2 if self.bands > 1 else -1
        if self.predictor == 2:
            arr = ic.delta_decode(arr, axis=axis)
        elif self.predictor == 3:
            arr = ic.floatpred_decode(arr, axis=axis)
        arr = arr.astype(self.dtype, copy=False)
        return arr if arr.ndim == 3 else arr[..., None]


# --- JPEG streams ------------------------------------------------------------------


def split_jpeg(stream: bytes) -> tuple[bytes, bytes]:
    """Split a JPEG stream into (its DQT segments, the stream without APPn and DQT).

    The tile keeps SOI, SOF, its own DHT, SOS, the data and EOI; the quantisation tables,
    equal for every tile of a level at one quality, go to the JPEGTables tag."""
    if stream[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream")
    tables = bytearray()
    out = bytearray(b"\xff\xd8")
    i = 2
    while i < len(stream):
        if stream[i] != 0xFF:
            raise ValueError("corrupt JPEG marker sequence")
        marker = stream[i + 1]
        if marker == 0xDA:  # SOS: the rest is entropy-coded data and EOI
            out += stream[i:]
            break
        (length,) = struct.unpack(">H", stream[i + 2 : i + 4])
        segment = stream[i : i + 2 + length]
        if marker == 0xDB:
            tables += segment
        elif not 0xE0 <= marker <= 0xEF:  # drop APPn (JFIF): TIFF carries the colour model
            out += segment
        i += 2 + length
    return bytes(tables), bytes(out)


def jpeg_tables(dqt: bytes) -> bytes:
    """The JPEGTables tag value: an abbreviated stream holding the quantisation tables."""
    return b"\xff\xd8" + dqt + b"\xff\xd9"


# --- masks ---------------------------------------------------------------------------


def encode_mask(valid: np.ndarray) -> bytes:
    """A 1-bit mask tile (``valid``: bool (rows, cols), full tile size), DEFLATE."""

    packed = np.packbits(valid.astype(np.uint8), axis=1)  # rows padded to whole bytes
    return bytes(ic.deflate_encode(packed.tobytes(), level=DEFLATE_LEVEL))


def decode_mask(data: bytes, rows: int = TILE, cols: int = TILE) -> np.ndarray:

    raw = np.frombuffer(ic.deflate_decode(data), np.uint8).reshape(rows, -1)
    return np.unpackbits(raw, axis=1)[:, :cols].astype(bool)


# --- tiles of an array -------------------------------------------------------------------


def pad_tile(block: np.ndarray, size: int = TILE) -> np.ndarray:
    """Pad (rows, cols, ...) to a full tile by repeating the last row and column."""
    rows, cols = block.shape[:2]
    if rows == size and cols == size:
        return np.ascontiguousarray(block)
    pad = [(0, size - rows), (0, size - cols)] + [(0, 0)] * (block.ndim - 2)
    return np.ascontiguousarray(np.pad(block, pad, mode="edge"))


# --- overviews ---------------------------------------------------------------------------


def halve(
    data: np.ndarray, valid: np.ndarray | None, *, nearest: bool, nodata: Any = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """One overview level down: (bands, rows, cols) -> (bands, rows // 2, cols // 2), as
    GDAL sizes COG overviews (a trailing odd row or column is not sampled; at least 1).

    AVERAGE averages the valid pixels of each 2x2 block (rounded for integers, as GDAL);
    NEAREST takes the pixel GDAL would (the lower right one of the block, clamped at the
    edge). Where no pixel is valid the result is ``nodata`` (0 if none) and invalid."""
    _bands, rows, cols = data.shape
    out_r, out_c = max(1, rows // 2), max(1, cols // 2)
    if rows >= 2 and cols >= 2:
        data = data[:, : 2 * out_r, : 2 * out_c]
        valid = valid[: 2 * out_r, : 2 * out_c] if valid is not None else None
        rows, cols = 2 * out_r, 2 * out_c
    if nearest:
        ri = np.minimum(np.arange(out_r) * 2 + 1, rows - 1)
        ci = np.minimum(np.arange(out_c) * 2 + 1, cols - 1)
        small = data[:, ri][:, :, ci]
        if valid is None:
            return np.ascontiguousarray(small), None
        v4: np.ndarray = np.asarray(
            _blocks(valid[None].astype(np.uint8), out_r, out_c).any(axis=(-1, -3))
        )
        return np.ascontiguousarray(small), v4[0]
    if data.dtype.name not in _CV_TYPES or rows < 2 or cols < 2:
        return _average_numpy(data, valid, out_r, out_c, nodata)
    return _average(data, valid, out_r, out_c, nodata)


#: dtypes OpenCV resizes (INTER_AREA on an exact 2x reduction is the 2x2 mean, SIMD).
_CV_TYPES = {"uint8", "uint16", "int16", "float32", "float64"}


def _average(
    data: np.ndarray, valid: np.ndarray | None, out_r: int, out_c: int, nodata: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    """2x2 means with OpenCV, in row blocks through buffers allocated once (pairs of rows
    are independent; reused buffers spare the kernel mapping fresh memory per block)."""

    bands, _rows, cols = data.shape
    # float32 holds sums of four 8- or 16-bit integers exactly; wider types need float64.
    work = np.float32 if data.dtype.itemsize <= 2 else np.float64
    step = max(1, (1 << 19) // max(1, cols * np.dtype(work).itemsize))  # output rows per block
    src = np.empty((2 * step, cols), work)
    weight = np.empty((2 * step, cols), work)
    total = np.empty((step, out_c), work)
    count = np.empty((step, out_c), work)
    out = np.empty((bands, out_r, out_c), dtype=data.dtype)
    out_valid = None if valid is None else np.empty((out_r, out_c), dtype=bool)
    fill = 0 if nodata is None else nodata
    integer = data.dtype.kind in "ui"
    lo, hi = (np.iinfo(data.dtype).min, np.iinfo(data.dtype).max) if integer else (0, 0)
    for y in range(0, out_r, step):
        n = min(step, out_r - y)
        size = (out_c, n)
        ok = None
        if valid is not None and out_valid is not None:
            np.copyto(weight[: 2 * n], valid[2 * y : 2 * (y + n)], casting="unsafe")
            cv2.resize(weight[: 2 * n], size, dst=count[:n], interpolation=cv2.INTER_AREA)
            ok = count[:n] > 0
            out_valid[y : y + n] = ok
        for b in range(bands):
            if valid is None:
                np.copyto(src[: 2 * n], data[b, 2 * y : 2 * (y + n)], casting="unsafe")
            else:
                np.multiply(data[b, 2 * y : 2 * (y + n)], weight[: 2 * n], out=src[: 2 * n])
            mean = total[:n]
            cv2.resize(src[: 2 * n], size, dst=mean, interpolation=cv2.INTER_AREA)
            if ok is not None:
                np.divide(mean, count[:n], out=mean, where=ok)
                mean[~ok] = fill
            if integer:
                np.floor(mean + 0.5, out=mean)
                np.clip(mean, lo, hi, out=mean)
            out[b, y : y + n] = mean
    return out, out_valid


def _average_numpy(
    data: np.ndarray, valid: np.ndarray | None, out_r: int, out_c: int, nodata: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    # float32 holds sums of four 8- or 16-bit integers exactly; wider types need float64.
    work = np.float32 if data.dtype.kind in "ui" and data.dtype.itemsize <= 2 else np.float64
    blocks = _blocks(data, out_r, out_c)  # (bands, out_r, 2, out_c, 2)
    if valid is None:
        mean = blocks.astype(work).sum(axis=(2, 4)) / 4
        return _cast(mean, data.dtype), None
    w = _blocks(valid[None].astype(work), out_r, out_c)[0]  # (out_r, 2, out_c, 2)
    count = w.sum(axis=(1, 3))
    total = (blocks.astype(work) * w[None]).sum(axis=(2, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count[None]
    out_valid = count > 0
    fill = 0 if nodata is None else nodata
    mean = np.where(out_valid[None], mean, fill)
    return _cast(mean, data.dtype), out_valid


def _blocks(a: np.ndarray, out_r: int, out_c: int) -> np.ndarray:
    """(bands, rows, cols) edge-padded to even size, viewed as (bands, out_r, 2, out_c, 2)."""
    bands, rows, cols = a.shape
    if rows % 2 or cols % 2:
        a = np.pad(a, [(0, 0), (0, rows % 2), (0, cols % 2)], mode="edge")
    return a.reshape(bands, out_r, 2, out_c, 2)


def _cast(values: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        values = np.clip(np.floor(values + 0.5), info.min, info.max)
    return np.ascontiguousarray(values.astype(dtype))
