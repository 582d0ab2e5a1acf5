"""Alpha bands: whether one may become a 1-bit mask.

A lossy (JPEG/WEBP) output carries an alpha band as its internal 1-bit mask. That keeps the
alpha exactly only when it is **binary**: every value 0 (transparent) or the data type's
largest (opaque, 255 for 8-bit). A **graded** alpha (partly transparent pixels, any other
value) would be flattened to opaque/transparent, so such a scene keeps its alpha as a band
and is written losslessly (see :func:`~compactor.encode.choose_profile`). A header
cannot tell the two apart: :func:`alpha_is_graded` reads the alpha band, strip by strip,
and stops at the first graded value.
"""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window

from ..gdal import RasterInfo, open_source

#: Pixels of the alpha band read at once while scanning it.
SCAN_PIXELS = 16_000_000


def opaque_value(dtype: str | np.dtype[np.generic]) -> float:
    """The alpha value of an opaque pixel: the data type's largest (255 for 8-bit)."""
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        return float(np.iinfo(dt).max)
    return 1.0


def graded_values(alpha: np.ndarray) -> int:
    """How many values of ``alpha`` are neither 0 nor opaque (partly transparent)."""
    top = np.asarray(opaque_value(alpha.dtype)).astype(alpha.dtype)
    return int(np.count_nonzero((alpha != 0) & (alpha != top)))


def alpha_is_graded(src_path: str, info: RasterInfo) -> bool:
    """Whether the alpha band of ``src_path`` holds any value other than 0 and opaque
    (``False`` without an alpha band). Reads the alpha band whole, a strip of rows at a
    time. Call inside :func:`~compactor.gdal._env.gdal_env`."""
    band = info.alpha_index
    if not band:
        return False
    rows = max(1, SCAN_PIXELS // max(1, info.width))
    with open_source(src_path) as src:
        for r0 in range(0, info.height, rows):
            win = Window(0, r0, info.width, min(rows, info.height - r0))
            if graded_values(src.read(band, window=win)):
                return True
    return False
