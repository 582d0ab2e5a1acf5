"""The 8-bit SSIM kernel reads strided inputs where they lie: a band of a pixel-interleaved
block, a column slice of a band-first block, odd and negative strides, a strided mask; each
gives skimage's mean of the local SSIM map, and the sums of a contiguous copy."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from compactor.fidelity import ssim_sum

H, W = 40, 1100  # two kernel column blocks (1024 + the rest)


def _pair(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(np.cumsum(rng.normal(size=shape), axis=0), axis=1)
    a = np.clip(128 + smooth / np.abs(smooth).max() * 120, 0, 255).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-12, 13, shape), 0, 255).astype(np.uint8)
    return a, b


def _mask(shape: tuple[int, int]) -> np.ndarray:
    valid = np.ones(shape, bool)
    valid[:, : shape[1] // 5] = False
    valid[shape[0] // 3 : shape[0] // 2, 300:700] = False
    return valid


def _skimage(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None) -> tuple[float, int]:
    _, full = structural_similarity(a.astype(float), b.astype(float), data_range=255, full=True)
    interior = full[3:-3, 3:-3]
    if valid is not None:
        interior = interior[valid[3:-3, 3:-3]]
    return float(interior.mean()), int(interior.size)


def _check(x: np.ndarray, y: np.ndarray, valid: np.ndarray | None) -> None:
    """``x``/``y``/``valid`` (views of any strides) give the sums of their contiguous copies
    (to rounding: a strided loop may add a row's values in another order), and skimage's
    mean and count."""
    copy = None if valid is None else np.ascontiguousarray(valid)
    total, count = ssim_sum(x, y, 255.0, valid=valid)
    expected = ssim_sum(np.ascontiguousarray(x), np.ascontiguousarray(y), 255.0, valid=copy)
    assert count == expected[1]
    assert total == pytest.approx(expected[0], rel=1e-14)
    mean, n = _skimage(np.asarray(x), np.asarray(y), copy)
    assert count == n
    assert total / count == pytest.approx(mean, abs=1e-9)


@pytest.mark.parametrize("masked", [False, True])
def test_bands_of_a_pixel_interleaved_block(masked: bool) -> None:
    a, b = _pair((H, W), 1)
    c, d = _pair((H, W), 2)
    x = np.stack([a, c, b], axis=-1)  # (rows, cols, 3): column stride 3
    y = np.stack([b, d, a], axis=-1)
    valid = _mask((H, W)) if masked else None
    for band in range(3):
        assert x[:, :, band].strides == (3 * W, 3)
        _check(x[:, :, band], y[:, :, band], valid)


@pytest.mark.parametrize("masked", [False, True])
def test_column_slices_of_a_band_first_block(masked: bool) -> None:
    a, b = _pair((H, W + 300), 3)
    x = np.stack([a, b])  # (bands, rows, cols), sliced as the chunk tasks do
    y = np.stack([b, a])
    valid = _mask((H, W + 300)) if masked else None
    cols = slice(137, 137 + W)
    for band in range(2):
        xs, ys = x[band][:, cols], y[band][:, cols]
        assert xs.strides == (W + 300, 1)
        _check(xs, ys, None if valid is None else valid[:, cols])


def test_odd_negative_and_mixed_strides() -> None:
    a, b = _pair((3 * H, 2 * W + 1), 4)
    valid = _mask(a.shape)
    _check(a[::3, ::2], b[::3, ::2], valid[::3, ::2])  # row stride 3 rows, column stride 2
    for step in (4, 5):  # RGBA's column stride and one LLVM only knows at run time
        _check(a[:, ::step], b[:, ::step], valid[:, ::step])
    _check(a[::-1, ::-1], b[::-1, ::-1], valid[::-1])  # negative: copied first
    _check(a[:H, :W], np.asfortranarray(b[:H, :W]), None)  # contiguous against Fortran order
    interleaved = np.stack([b[:H, :W], a[:H, :W]], axis=-1)
    _check(a[:H, :W], interleaved[:, :, 0], valid[:H, :W].T.copy().T)  # and a strided mask
    as_bytes = valid[:H, :W].astype(np.uint8) * 255  # a mask of 0/255 bytes counts as a bool one
    assert ssim_sum(a[:H, :W], b[:H, :W], 255.0, valid=as_bytes) == ssim_sum(
        a[:H, :W], b[:H, :W], 255.0, valid=valid[:H, :W]
    )


def test_small_windows_of_a_strided_tiny_image() -> None:
    """Images under 7 pixels a side take a smaller odd window (the tap-buffer path)."""
    from compactor.fidelity import ssim

    a, b = _pair((5, 30), 5)
    x, y = np.stack([a, b], axis=-1), np.stack([b, a], axis=-1)
    value = ssim(x[:, :, 0], y[:, :, 0], 255.0)
    expected = structural_similarity(a.astype(float), b.astype(float), data_range=255, win_size=5)
    assert value == pytest.approx(expected, abs=1e-9)
    assert value == ssim(a, b, 255.0)


def test_extreme_values_do_not_overflow_the_integer_sums() -> None:
    """All-255 windows (the largest x and y sums, int16) and 0/255 noise (the largest
    x^2 + y^2 and xy sums, int32) against skimage."""
    rng = np.random.default_rng(6)
    full = np.full((H, W), 255, np.uint8)
    noise = (rng.integers(0, 2, (H, W)) * 255).astype(np.uint8)
    for a, b in ((full, full), (full, noise), (noise, noise), (noise, 255 - noise)):
        _check(a, b, None)
        _check(np.stack([a, b], axis=-1)[:, :, 0], np.stack([b, a], axis=-1)[:, :, 0], None)
