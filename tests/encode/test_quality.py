"""The quality asked for is the quality written: read the JPEG quantisation tables back."""

from __future__ import annotations

from pathlib import Path

import pytest
import tifffile

from compactor.cog._jpeg import ijg_table, jpeg_quality, tiff_jpeg_quality
from compactor.encode import choose_profile
from compactor.encode._write import write_cog
from compactor.gdal._info import read_info

from .. import rasters


def test_ijg_tables_known_values() -> None:
    # libjpeg's quality 50 table is the standard table itself; quality 100 is all ones.
    assert ijg_table(50)[:8] == (16, 11, 10, 16, 24, 40, 51, 61)
    assert set(ijg_table(100)) == {1}


@pytest.mark.parametrize("quality", [30, 60, 75, 90, 97])
@pytest.mark.parametrize("kind", ["gray", "rgb"])
def test_cog_jpeg_quality_is_the_quality_asked(tmp_path: Path, quality: int, kind: str) -> None:
    src = rasters.gray(tmp_path / "g.tif") if kind == "gray" else rasters.rgb(tmp_path / "c.tif")
    info = read_info(str(src))
    out = write_cog(str(src), tmp_path / "out.tif", choose_profile(info, "jpeg", quality), info)
    assert tiff_jpeg_quality(str(out)) == quality


def test_quality_estimate_rejects_non_ijg_tables() -> None:
    # A DQT segment with a table that no IJG quality produces.
    table = bytes(range(1, 65))
    stream = b"\xff\xd8\xff\xdb\x00\x43\x00" + table + b"\xff\xd9"
    assert jpeg_quality(stream) is None


def test_cog_layout_ifds_first(tmp_path: Path) -> None:
    src = rasters.rgb(tmp_path / "c.tif", size=1200)
    info = read_info(str(src))
    out = write_cog(str(src), tmp_path / "out.tif", choose_profile(info, "jpeg"), info)
    with tifffile.TiffFile(out) as tf:
        ifds = [(p.offset, p.dataoffsets[0]) for p in tf.pages]  # type: ignore[union-attr]
    # Full resolution, its mask, overviews and their masks: every IFD before any tile data.
    assert len(ifds) >= 4
    first_tile = min(tile for _, tile in ifds)
    assert max(offset for offset, _ in ifds) < first_tile
