"""SSIM exactly as ``skimage.metrics.structural_similarity`` defines it, fast.

skimage's value with its defaults (7x7 uniform window, ``K1=0.01``, ``K2=0.03``, sample
covariance, ``data_range`` given) is the mean of a local SSIM map over every pixel at least
3 pixels from the image border. For scenes with a validity mask compactor averages the same
map over the valid pixels only: nodata areas are identical in source and output by
construction, and counting them would let a mostly-nodata scene pass at any quality.

Each local value depends only on its 7x7 neighbourhood, so the mean can be accumulated over
horizontal strips (each read with 3 rows of context above and below) and over chunks of a
scene, and still equal the whole-image value.

8-bit images (what lossy codecs write) go through a compiled kernel
(:mod:`compactor.fidelity._ssim_u8`, numba: exact integer window sums, the formula in
float64, one pass, strided inputs read in place; about six times as fast as OpenCV's box
filters); other types through
OpenCV's SIMD box filters in float32 (about 25x faster than skimage). Both equal skimage's
value to better than 1e-6 (the kernel to about 1e-14; ``tests/verify/test_verify.py`` holds
every strip layout to skimage's whole-image value).

numba and LLVM add about 46 MB to every worker's process: a constant, counted in the chunk
budget's worker footprint (``compactor.encode._chunk_budget.BASELINE``).
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import cv2
import numpy as np

WIN = 7
HALO = (WIN - 1) // 2
K1, K2 = 0.01, 0.03
#: Block shape: 70 x 1030 float32 with context (about 280 KiB) per buffer, allocated once per
#: call; small enough to stay in the L2 cache.
BLOCK_ROWS = 64
BLOCK_COLS = 1024


@functools.cache
def _u8_kernel() -> ModuleType:
    """The compiled 8-bit kernel's module, imported on first use: numba and the compiled
    code cost a fraction of a second that the CLI's start and the report need not pay."""
    return importlib.import_module("._ssim_u8", __package__)


def warm() -> None:
    """Compile (or load) the 8-bit kernel now rather than in the first check."""
    _u8_kernel().warm()


def window_size(height: int, width: int) -> int:
    """skimage's default window, or the largest odd size that fits a tiny image."""
    size = min(WIN, height, width)
    return size if size % 2 else size - 1


def ssim_sum(
    x: np.ndarray,
    y: np.ndarray,
    data_range: float,
    win: int = WIN,
    valid: np.ndarray | None = None,
) -> tuple[float, int]:
    """(sum, count) of the local SSIM values over the interior of ``x`` vs ``y`` (2-D, same
    shape): every pixel at least ``win // 2`` from each edge of the given arrays. Callers pass
    strips with that much context around the rows they want counted. With ``valid`` (a
    boolean array of the same shape), only windows centred on a valid pixel count.

    Every buffer is allocated once per call and reused for each block of rows: large
    temporaries allocated and freed per block would each be mapped and zeroed by the
    kernel again (Dask workers return freed memory to the OS eagerly)."""

    cv2.setNumThreads(1)  # parallelism comes from Dask tasks
    h, w = x.shape
    pad = (win - 1) // 2
    if h < win or w < win:
        return 0.0, 0
    n = win * win
    cov = n / (n - 1.0)
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    if x.dtype == np.uint8 and y.dtype == np.uint8:
        total, count = _u8_kernel().ssim_sum_u8(x, y, valid, win, c1, c2, cov)
        return float(total), int(count)
    rows_in = min(h, BLOCK_ROWS + 2 * pad)
    cols_in = min(w, BLOCK_COLS + 2 * pad)
    f32 = np.float32
    # Means of x, y, x^2 + y^2 and xy over each window, and the inputs as the filters take them.
    ux, uy, uss, uxy, prod = (np.empty((rows_in, cols_in), f32) for _ in range(5))
    xb, yb = np.empty((rows_in, cols_in), f32), np.empty((rows_in, cols_in), f32)
    t1, t2, t3 = (np.empty((rows_in - 2 * pad, cols_in - 2 * pad), f32) for _ in range(3))

    def box(src: np.ndarray, dst: np.ndarray, square: bool = False) -> np.ndarray:
        # OpenCV writes into ``dst`` when it can (a full block) and returns a new array when
        # it cannot (a strided edge view): use what it returns.
        fn = cv2.sqrBoxFilter if square else cv2.boxFilter
        return np.asarray(
            fn(src, cv2.CV_32F, (win, win), dst=dst, normalize=True, borderType=cv2.BORDER_REFLECT)
        )

    total = 0.0
    count = 0
    for r0 in range(pad, h - pad, BLOCK_ROWS):
        r1 = min(h - pad, r0 + BLOCK_ROWS)
        k = r1 - r0 + 2 * pad
        for col0 in range(pad, w - pad, BLOCK_COLS):
            col1 = min(w - pad, col0 + BLOCK_COLS)
            j = col1 - col0 + 2 * pad
            rows, cols = slice(r0 - pad, r1 + pad), slice(col0 - pad, col1 + pad)
            S = uss[:k, :j]
            X, Y, P = xb[:k, :j], yb[:k, :j], prod[:k, :j]
            np.copyto(X, x[rows, cols], casting="unsafe")
            np.copyto(Y, y[rows, cols], casting="unsafe")
            BX, BY = box(X, ux[:k, :j]), box(Y, uy[:k, :j])
            np.multiply(X, X, out=P)
            np.multiply(Y, Y, out=S)
            np.add(S, P, out=P)
            S = box(P, S)
            np.multiply(X, Y, out=P)
            BXY = box(P, uxy[:k, :j])
            core = (slice(pad, k - pad), slice(pad, j - pad))
            UX, UY, USS, UXY = BX[core], BY[core], S[core], BXY[core]
            m, q = k - 2 * pad, j - 2 * pad
            A, B, C = t1[:m, :q], t2[:m, :q], t3[:m, :q]
            # numerator: (2 ux uy + c1) (2 cov (uxy - ux uy) + c2)
            cv2.multiply(UX, UY, dst=A)
            cv2.addWeighted(UXY, 2 * cov, A, -2 * cov, c2, dst=B)
            cv2.addWeighted(A, 2.0, A, 0.0, c1, dst=A)
            cv2.multiply(A, B, dst=A)
            # denominator: (ux^2 + uy^2 + c1) (cov (uxx + uyy - ux^2 - uy^2) + c2)
            cv2.multiply(UX, UX, dst=B)
            cv2.multiply(UY, UY, dst=C)
            cv2.add(B, C, dst=B)
            cv2.addWeighted(USS, cov, B, -cov, c2, dst=C)
            np.add(B, c1, out=B)
            cv2.multiply(B, C, dst=B)
            cv2.divide(A, B, dst=A)
            # Windows centred on valid pixels only: OpenCV's masked mean (double sums) times
            # the count, with no copy of the selected values.
            centres = None if valid is None else valid[r0:r1, col0:col1].view(np.uint8)
            n = A.size if centres is None else cv2.countNonZero(centres)
            if n == A.size:
                total += cv2.sumElems(A)[0]
            elif n:
                total += cv2.mean(A, mask=centres)[0] * n
            count += n
    return total, count


def ssim(x: np.ndarray, y: np.ndarray, data_range: float, valid: np.ndarray | None = None) -> float:
    """SSIM of two whole 2-D images (skimage's definition; with ``valid``, the mean over
    windows centred on valid pixels)."""
    win = window_size(*x.shape)
    if win < 3:
        return 1.0 if np.array_equal(x, y) else 0.0
    total, count = ssim_sum(x, y, data_range, win, valid)
    return total / count if count else 1.0


def ssim_map(x: np.ndarray, y: np.ndarray, data_range: float, win: int = WIN) -> np.ndarray:
    """The local SSIM map of two 2-D images (skimage's ``structural_similarity(...,
    full=True)``, same window and constants), float32, NaN within ``win // 2`` of the edges
    where skimage's mean does not look. For showing where a codec loses: whole arrays at
    once, so meant for crops, not scenes."""
    win = window_size(*x.shape) if min(x.shape) < win else win
    out = np.full(x.shape, np.nan, dtype=np.float32)
    if win < 3:
        return out
    pad = (win - 1) // 2
    n = win * win
    cov = n / (n - 1.0)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    xf, yf = x.astype(np.float64), y.astype(np.float64)

    def mean(a: np.ndarray) -> np.ndarray:
        return np.asarray(
            cv2.boxFilter(a, cv2.CV_64F, (win, win), normalize=True, borderType=cv2.BORDER_REFLECT)
        )

    ux, uy = mean(xf), mean(yf)
    vx = cov * (mean(xf * xf) - ux * ux)
    vy = cov * (mean(yf * yf) - uy * uy)
    vxy = cov * (mean(xf * yf) - ux * uy)
    local = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    core = (slice(pad, x.shape[0] - pad), slice(pad, x.shape[1] - pad))
    out[core] = local[core]
    return out
