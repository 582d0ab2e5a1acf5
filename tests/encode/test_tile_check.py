"""The chunk tasks' lossless tile check (``_same_pixels``): a decoded tile equals the
source block only if every sample does, on the OpenCV band-plane path (integer tiles of
2-4 bands) and the direct one (other band counts, floats with NaN)."""

from __future__ import annotations

import numpy as np
import pytest

from compactor.encode._chunk_tasks import _same_pixels


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "int32", "float32"])
@pytest.mark.parametrize("bands", [1, 2, 3, 4, 5])
def test_one_wrong_sample_anywhere_fails(dtype: str, bands: int) -> None:
    rng = np.random.default_rng(bands)
    planes = rng.integers(0, 100, (bands, 600, 1100)).astype(dtype)  # a strip's band planes
    block = np.moveaxis(planes, 0, -1)[:512, 512:1024]  # a tile's view, as the writer has it
    decoded = np.ascontiguousarray(block)
    assert _same_pixels(decoded, block)
    for y, x in ((0, 0), (511, 511), (200, 17)):
        for k in range(bands):
            bad = decoded.copy()
            bad[y, x, k] += 1
            assert not _same_pixels(bad, block)
    assert not _same_pixels(decoded[:511], block)  # a short tile is not the block
    if bands > 1:
        assert not _same_pixels(decoded[..., :-1].copy(), block)


def test_nan_equals_nan_but_not_a_number() -> None:
    planes = np.zeros((3, 512, 512), np.float32)
    planes[1, 5, 5] = np.nan
    block = np.moveaxis(planes, 0, -1)
    decoded = np.ascontiguousarray(block)
    assert _same_pixels(decoded, block)
    decoded[5, 5, 1] = 0.0
    assert not _same_pixels(decoded, block)
