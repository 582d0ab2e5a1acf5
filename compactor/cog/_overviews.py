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
