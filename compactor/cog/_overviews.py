"""Overviews, made 2x2 at a time: AVERAGE over the valid pixels for continuous data, or
the pixel GDAL's NEAREST would pick for classes; an overview pixel is valid where any of
its four is.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# --- overviews ---------------------------------------------------------------------------


def halve(
    data: np.ndarray, valid: np.ndarray | None, *, nearest: bool, nodata: Any = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """One overview level down: (bands, rows, cols) -> (bands, rows // 2, cols // 2), as
    GDAL sizes COG overviews (a trailing odd row or column is not sampled; at least 1).

    AVERAGE averages the valid pixels of each 2x2 block (rounded for integers, as GDAL);
    NEAREST takes the pixel GDAL would (the lower right one of the block, clamped at the
    edge). Where no pixel is valid the result is ``nodata`` (0 if none) and invalid. A side
    of 1 pixel stays 1 (its pixel counts twice); the other side still drops its odd one."""
    _bands, rows, cols = data.shape
    out_r, out_c = max(1, rows // 2), max(1, cols // 2)
    # Each side of at least 2 is cut to an even length on its own (a 1 x 3125 strip: 1 x 3124).
    rows, cols = (2 * out_r if rows >= 2 else rows), (2 * out_c if cols >= 2 else cols)
    data = data[:, :rows, :cols]
    valid = valid[:rows, :cols] if valid is not None else None
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
    if data.dtype == np.uint8 and np.isfinite(0 if nodata is None else nodata):
        return _average_u8(data, valid, out_r, out_c, nodata)
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


#: A 2x2 sum of 8-bit values (at most 1020) and its count of valid pixels (0-4) as one
#: table index: ``count * _SUMS + sum``.
_SUMS = 1024


def _u8_table(fill: float) -> np.ndarray:
    """The 8-bit AVERAGE of every (count, sum) pair, computed as :func:`_average` computes it
    (float32 mean of the block over float32 mean of its weights, rounded half up, clipped;
    ``fill`` where no pixel is valid), so that the table's values are :func:`_average`'s."""
    sums = np.arange(_SUMS, dtype=np.float32) * np.float32(0.25)
    counts = np.arange(5, dtype=np.float32)[:, None] * np.float32(0.25)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.divide(sums[None, :], counts, dtype=np.float32)
    mean[0] = np.float32(fill)
    np.floor(mean + np.float32(0.5), out=mean)
    np.clip(mean, 0, 255, out=mean)
    table: np.ndarray = mean.astype(np.uint8).ravel()
    return table


def _average_u8(
    data: np.ndarray, valid: np.ndarray | None, out_r: int, out_c: int, nodata: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_average` for 8-bit data, in integers: OpenCV's 2x2 mean of the valid pixels
    times 4 is their exact sum ``S`` (and of the weights 4, their count ``n``); a block of 4
    valid pixels averages to ``(S + 2) >> 2``, and the few others (along nodata edges) are
    looked up by (count, sum) - the same values in fewer passes."""
    bands, _rows, cols = data.shape
    if valid is not None and valid.dtype != np.bool_:
        valid = valid != 0  # weights of 1: the counts index the table
    table = _u8_table(0 if nodata is None else nodata)
    step = max(1, (1 << 19) // max(1, cols * 2))  # output rows per block
    src = np.empty((2 * step, cols), np.uint16)
    weight = np.empty((2 * step, cols), np.uint16)
    sums = np.empty((step, out_c), np.uint16)
    count = np.empty((step, out_c), np.uint16)
    out = np.empty((bands, out_r, out_c), dtype=np.uint8)
    out_valid = None if valid is None else np.empty((out_r, out_c), dtype=bool)
    for y in range(0, out_r, step):
        n = min(step, out_r - y)
        size = (out_c, n)
        few = rows = None  # blocks of 0-3 valid pixels (of 1-3 when none averages to 0)
        if valid is not None and out_valid is not None:
            np.multiply(valid[2 * y : 2 * (y + n)], np.uint16(4), out=weight[: 2 * n])
            cv2.resize(weight[: 2 * n], size, dst=count[:n], interpolation=cv2.INTER_AREA)
            np.greater(count[:n], 0, out=out_valid[y : y + n])
            if table[0]:
                few = np.flatnonzero(count[:n] < 4)
            else:  # (n - 1) wraps around to 65535 for n = 0
                few = np.flatnonzero(count[:n] - np.uint16(1) < 3)
            rows = count[:n].reshape(-1)[few] * np.uint16(_SUMS)
        for b in range(bands):
            band = data[b, 2 * y : 2 * (y + n)]
            if valid is None:
                np.multiply(band, np.uint16(4), out=src[: 2 * n])
            else:
                np.multiply(band, weight[: 2 * n], out=src[: 2 * n])
            cv2.resize(src[: 2 * n], size, dst=sums[:n], interpolation=cv2.INTER_AREA)
            part = sums[:n].reshape(-1)[few] if few is not None else None
            np.add(sums[:n], np.uint16(2), out=sums[:n])
            block = out[b, y : y + n]
            np.right_shift(sums[:n], 2, out=block, casting="unsafe")
            if few is not None and rows is not None and part is not None and few.size:
                block.reshape(-1)[few] = table[rows + part]
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
