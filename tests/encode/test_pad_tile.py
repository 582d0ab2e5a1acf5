"""pad_tile fills a partial tile by slices: the same array as ``np.pad`` (edge or
constant), which the tile bytes of every output depend on."""

from __future__ import annotations

import numpy as np
import pytest

from compactor.cog import pad_tile


@pytest.mark.parametrize("shape", [(64, 64, 3), (1, 1), (511, 3, 2), (3, 512), (100, 200)])
@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
@pytest.mark.parametrize("fill", [None, 0, 7, float("nan")])
def test_pad_tile_is_np_pad(shape: tuple[int, ...], dtype: str, fill: float | None) -> None:
    if fill is not None and np.isnan(fill) and dtype != "float32":
        pytest.skip("NaN fills float data only")
    block = (np.random.default_rng(1).random(shape) * 100).astype(dtype)
    pad = [(0, 512 - shape[0]), (0, 512 - shape[1])] + [(0, 0)] * (len(shape) - 2)
    if fill is None:
        expected = np.pad(block, pad, mode="edge")
    else:
        expected = np.pad(block, pad, mode="constant", constant_values=fill)
    got = pad_tile(block, 512, fill)
    assert got.dtype == expected.dtype
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
