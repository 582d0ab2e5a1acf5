"""The 8-bit AVERAGE in integers (:func:`compactor.cog._overviews._average_u8`) gives the
values of the float path (:func:`~compactor.cog._overviews._average`) for every 2x2 block:
every count of valid pixels, every sum, edge columns OpenCV's SIMD leaves to scalar code,
and nodata fills."""

from __future__ import annotations

import numpy as np
import pytest

from compactor.cog import halve
from compactor.cog._overviews import _average, _average_u8


def _pair(
    shape: tuple[int, int, int], seed: int, valid_p: float | None
) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, shape, dtype=np.uint8)
    data[:, ::7] = 255  # sums at the top of the range
    data[:, 1::11] = 0
    valid = None if valid_p is None else rng.random(shape[1:]) < valid_p
    return data, valid


@pytest.mark.parametrize("shape", [(3, 2, 2), (3, 64, 70), (1, 130, 1030), (4, 1026, 518)])
@pytest.mark.parametrize("valid_p", [None, 0.5, 0.9, 0.0])
@pytest.mark.parametrize("nodata", [None, 0, 255, 17.6, -3])
def test_integer_average_is_the_float_average(
    shape: tuple[int, int, int], valid_p: float | None, nodata: float | None
) -> None:
    data, valid = _pair(shape, sum(shape), valid_p)
    out_r, out_c = shape[1] // 2, shape[2] // 2
    got, got_valid = _average_u8(data, valid, out_r, out_c, nodata)
    want, want_valid = _average(data, valid, out_r, out_c, nodata)
    assert got.dtype == want.dtype == np.uint8
    assert np.array_equal(got, want)
    if valid is None:
        assert got_valid is None
        assert want_valid is None
    else:
        assert got_valid is not None
        assert want_valid is not None
        assert np.array_equal(got_valid, want_valid)


def test_every_count_and_sum() -> None:
    """Each 2x2 block with each count of valid pixels (0-4) and sums over the whole range."""
    rng = np.random.default_rng(7)
    blocks = 5 * 4096
    data = rng.integers(0, 256, (2, 2 * 64, 2 * blocks // 64), dtype=np.uint8)
    valid = np.zeros(data.shape[1:], bool)
    counts = np.arange(blocks).reshape(64, -1) % 5
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        valid[dy::2, dx::2] = counts > k
    got = _average_u8(data, valid, 64, blocks // 64, 0)
    want = _average(data, valid, 64, blocks // 64, 0)
    assert np.array_equal(got[0], want[0])
    assert got[1] is not None
    assert want[1] is not None
    assert np.array_equal(got[1], want[1])


def test_halve_takes_the_integer_path_for_odd_sides() -> None:
    data, valid = _pair((3, 101, 57), 3, 0.7)
    got, _ = halve(data, valid, nearest=False, nodata=0)
    want, _ = _average(data[:, :100, :56], valid[:100, :56], 50, 28, 0)
    assert got.shape == (3, 50, 28)
    assert np.array_equal(got, want)


def test_a_validity_of_bytes_averages_as_the_boolean_one() -> None:
    """A validity of 0/255 bytes (not booleans) means what the boolean one means, as on the
    float path (whose weights cancel): the integer path's counts assume weights of 1."""
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, (3, 64, 96), dtype=np.uint8)
    valid = rng.random((64, 96)) > 0.4
    expected = halve(data, valid, nearest=False, nodata=9)
    got = halve(data, valid.astype(np.uint8) * 255, nearest=False, nodata=9)
    assert np.array_equal(got[0], expected[0])
    assert got[1] is not None
    assert expected[1] is not None
    assert np.array_equal(got[1], expected[1])
