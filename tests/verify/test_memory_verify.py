"""A one-task scene verified from memory (:func:`compactor.verify.encode_verified`): its
figures are those of reading the output back with GDAL (:func:`check_output`), the
in-memory decode is GDAL's, and a file whose bytes differ from the ones checked fails."""

from __future__ import annotations

import contextlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tifffile

from compactor.capture import capturing
from compactor.codecs import ErrorBound
from compactor.cog import Profile
from compactor.encode import choose_profile, write_checked
from compactor.encode._gdal_decode import gdal_decode, gdal_read_tiles
from compactor.errors import VerificationError
from compactor.gdal import open_source
from compactor.gdal._info import read_info
from compactor.verify import check_output, check_written, encode_verified, memory_verifiable

from .. import rasters


def _scene(tmp_path: Path, kind: str) -> Path:
    """Generated rasters; 1100 px scenes have 3 strips, edge tiles and 3 overview levels."""
    path = tmp_path / f"{kind}.tif"
    if kind == "rgb":
        return rasters.rgb(path, size=1100)
    if kind == "rgb-clear":
        return rasters.rgb(path, size=700, nodata_collar=False)
    if kind == "rgba":
        return rasters.rgba(path, size=1100)
    if kind == "gray":
        return rasters.gray(path, size=600)
    if kind == "rgb-tiny":
        return rasters.rgb(path, size=9)
    if kind == "rgb-odd":  # a last strip of 1 row, overviews of odd sizes
        return rasters.rgb(path, size=1025)
    if kind == "uint16":
        return rasters.uint16(path, size=700)
    assert kind == "float-nan"
    return rasters.float32_nan(path, size=600)


CASES = [
    ("rgb", "jpeg", 75, None),
    ("rgb", "jpeg", 15, None),
    ("rgb-clear", "jpeg", 90, None),
    ("rgb-tiny", "jpeg", 75, None),
    ("rgb-odd", "jpeg", 75, None),
    ("rgb-odd", "webp", 75, None),
    ("rgb", "webp", 80, None),
    ("rgba", "jpeg", 80, None),
    ("rgba", "zstd", None, None),
    ("gray", "jpeg", 60, None),
    ("uint16", "deflate", None, None),
    ("uint16", "lerc", None, 3.0),
    ("float-nan", "zstd", None, None),
    ("float-nan", "lerc", None, 0.05),
]


def _profile(src: Path, codec: str, quality: int | None, bound: float | None) -> Profile:
    info = read_info(str(src))
    if bound is not None:
        return choose_profile(info, codec, max_error=ErrorBound((bound,)))
    return choose_profile(info, codec, quality)


def _same_figures(path: Path, src: Path, tmp_path: Path, codec: str, q: int | None,
                  bound: float | None) -> None:  # fmt: skip
    info = read_info(str(src))
    profile = _profile(src, codec, q, bound)
    with open_source(str(src)) as ds:
        assert memory_verifiable(ds, info, profile)
    cog, new = encode_verified(str(src), path, info, profile)
    old = check_output(str(src), str(cog.path), info, profile)  # reads the same file back
    assert new.exact == old.exact
    if old.ssim is None:
        assert new.ssim is None
    else:
        assert new.ssim == pytest.approx(old.ssim, rel=1e-12, abs=1e-12)
    if old.psnr is None:
        assert new.psnr is None
    else:
        assert new.psnr == pytest.approx(old.psnr, rel=1e-12)
    assert new.max_error == old.max_error
    if old.rmse is None:
        assert new.rmse is None
    else:
        assert new.rmse == pytest.approx(old.rmse, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("kind", "codec", "quality", "bound"), CASES)
def test_figures_equal_reading_back(
    tmp_path: Path, kind: str, codec: str, quality: int | None, bound: float | None
) -> None:
    src = _scene(tmp_path, kind)
    _same_figures(tmp_path / "out.tif", src, tmp_path, codec, quality, bound)


@pytest.mark.parametrize(
    ("name", "codec", "quality"),
    [("RGB.byte.tif", "jpeg", 75), ("RGBA.byte.tif", "jpeg", 60), ("float_nan.tif", "zstd", None)],
)
def test_figures_equal_reading_back_shared(
    tmp_path: Path, shared_data: Path, name: str, codec: str, quality: int | None
) -> None:
    src = tmp_path / name
    shutil.copy(shared_data / name, src)
    _same_figures(tmp_path / "out.tif", src, tmp_path, codec, quality, None)


def test_gdal_decode_is_what_gdal_reads_back(tmp_path: Path) -> None:
    """Each YCbCr JPEG tile decoded in memory equals GDAL's read of the written COG (where
    libjpeg-turbo's decode differs by many levels)."""
    src = rasters.rgb(tmp_path / "rgb.tif", size=700)
    info = read_info(str(src))
    written = write_checked(str(src), tmp_path / "o.tif", choose_profile(info, "jpeg", 50), info)
    codec, tables = written.job.codec, written.job.tables
    turbo_differs = False
    with tifffile.TiffFile(written.cog.path) as tf, rasterio.open(written.cog.path) as out:
        page = tf.pages[0]
        assert isinstance(page, tifffile.TiffPage)
        fh = tf.filehandle
        across = -(-out.width // 512)
        for t, (off, size) in enumerate(zip(page.dataoffsets, page.databytecounts, strict=True)):
            fh.seek(off)
            data = fh.read(size)
            r, c = divmod(t, across)
            h, w = min(512, out.height - r * 512), min(512, out.width - c * 512)
            ref = np.moveaxis(
                out.read(window=((r * 512, r * 512 + h), (c * 512, c * 512 + w))), 0, -1
            )
            assert np.array_equal(gdal_decode(codec, data, tables)[:h, :w], ref)
            turbo_differs |= not np.array_equal(codec.decode(data, tables)[:h, :w], ref)
    assert turbo_differs  # the reason GDAL decodes them


def test_gdal_read_tiles_is_what_gdal_reads_back(tmp_path: Path) -> None:
    """A band of full-resolution tiles read through one GeoTIFF of their own (the in-memory
    decode of a one-task scene) equals GDAL's read of the written COG: the whole image,
    a band of the last tile row alone (edge tiles) and a window of columns."""
    src = rasters.rgb(tmp_path / "rgb.tif", size=1100)
    info = read_info(str(src))
    written = write_checked(str(src), tmp_path / "o.tif", choose_profile(info, "jpeg", 50), info)
    spec = written.job.gdal_decode
    assert spec is not None
    with tifffile.TiffFile(written.cog.path) as tf, rasterio.open(written.cog.path) as out:
        page = tf.pages[0]
        assert isinstance(page, tifffile.TiffPage)
        tiles = []
        for off, size in zip(page.dataoffsets, page.databytecounts, strict=True):
            tf.filehandle.seek(off)
            tiles.append(tf.filehandle.read(size))
        ref = out.read()
    across = 3  # 1100 px: 3 x 3 tiles, the last row and column 76 px

    def band(first: int, last: int) -> tuple[bytes, list[int], list[int]]:
        picked = tiles[first * across : last * across]
        starts = [sum(len(t) + 8 for t in picked[:i]) + 4 for i in range(len(picked))]
        data = b"".join(b"\0" * 4 + t + b"\0" * 4 for t in picked)
        return data, starts, [len(t) for t in picked]

    data, starts, sizes = band(0, 3)
    assert np.array_equal(gdal_read_tiles(spec, 1100, data, starts, sizes, 0, 1100), ref)
    data, starts, sizes = band(2, 3)
    got = gdal_read_tiles(spec, 76, data, starts, sizes, 512, 588)
    assert np.array_equal(got, ref[:, 1024:, 512:])
    with pytest.raises(VerificationError, match="tiles for a band"):
        gdal_read_tiles(spec, 600, data, starts, sizes, 0, 512)


def test_gdal_read_tiles_fails_on_a_damaged_or_empty_tile(tmp_path: Path) -> None:
    """A tile GDAL cannot decode is a verification error of the output (not a read error
    blamed on the source), and a zero-length tile, which GDAL reads as a sparse tile of
    zeros without decoding anything, is one too."""
    src = rasters.rgb(tmp_path / "rgb.tif", size=1100)
    info = read_info(str(src))
    written = write_checked(str(src), tmp_path / "o.tif", choose_profile(info, "jpeg", 50), info)
    spec = written.job.gdal_decode
    assert spec is not None
    with tifffile.TiffFile(written.cog.path) as tf:
        page = tf.pages[0]
        assert isinstance(page, tifffile.TiffPage)
        tiles = []
        for off, size in list(zip(page.dataoffsets, page.databytecounts, strict=True))[:3]:
            tf.filehandle.seek(off)
            tiles.append(tf.filehandle.read(size))
    for middle, reason in [(bytes(len(tiles[1])), "could not decode"), (b"", "empty")]:
        picked = [tiles[0], middle, tiles[2]]
        starts = [sum(len(t) + 8 for t in picked[:i]) + 4 for i in range(3)]
        data = b"".join(b"\0" * 4 + t + b"\0" * 4 for t in picked)
        with pytest.raises(VerificationError, match=reason):
            gdal_read_tiles(spec, 512, data, starts, [len(t) for t in picked], 0, 1100)


def _flip_byte(path: Path, mask: bool, level: int = 0) -> None:
    with tifffile.TiffFile(path) as tf:
        pages = [p for p in tf.pages if isinstance(p, tifffile.TiffPage)]
        kinds = (4, 5) if mask else (0, 1)
        page = [p for p in pages if p.subfiletype in kinds][level]
        off = int(page.dataoffsets[-1]) + int(page.databytecounts[-1]) // 2
    with open(path, "r+b") as fh:
        fh.seek(off)
        byte = fh.read(1)
        fh.seek(off)
        fh.write(bytes([byte[0] ^ 0x5A]))


@pytest.mark.parametrize(
    ("codec", "mask", "level"), [("jpeg", False, 0), ("jpeg", True, 0), ("jpeg", False, 1),
                                 ("zstd", False, 0)],
)  # fmt: skip
def test_bytes_altered_after_the_check_fail(
    tmp_path: Path, codec: str, mask: bool, level: int
) -> None:
    """Corruption between the in-memory check and the file: a tile's bytes on disk (image
    or mask, full resolution or overview) no longer those checked."""
    src = rasters.rgb(tmp_path / "rgb.tif", size=1100)
    info = read_info(str(src))
    profile = choose_profile(info, codec, 75 if codec == "jpeg" else None)
    written = write_checked(str(src), tmp_path / "o.tif", profile, info)
    check_written(str(src), written, info, profile)  # intact: passes
    _flip_byte(written.cog.path, mask, level)
    with pytest.raises(VerificationError, match="not the bytes encoded"):
        check_written(str(src), written, info, profile)


def test_other_views_are_read_back(tmp_path: Path, shared_data: Path) -> None:
    """A 16-bit alpha band: GDAL's mask of it is not "alpha > 0", so the scene is verified
    by reading it back, and still verified."""
    src = tmp_path / "RGBA.uint16.tif"
    shutil.copy(shared_data / "RGBA.uint16.tif", src)
    info = read_info(str(src))
    profile = choose_profile(info, "zstd")
    with open_source(str(src)) as ds:
        assert not memory_verifiable(ds, info, profile)
    cog, fid = encode_verified(str(src), tmp_path / "o.tif", info, profile)
    assert fid.exact
    assert cog.path.exists()


def test_decoding_in_memory_says_nothing_of_the_scene(tmp_path: Path) -> None:
    """A tile decoded by GDAL alone has no geotransform: that is not a warning of the
    scene's (the scene's warnings are what its thread logs or warns)."""
    src = rasters.rgb(tmp_path / "rgb.tif", size=600)
    info = read_info(str(src))
    said: list[str] = []
    with capturing(said):
        encode_verified(str(src), tmp_path / "o.tif", info, choose_profile(info, "jpeg", 75))
    assert said == []


def _drop_last_tile(path: Path, mask: bool, level: int) -> None:
    """The IFD's TileOffsets and TileByteCounts counts one less: the last tile is not in
    the file (GDAL fails to read it), every tile listed is still the bytes encoded."""
    with tifffile.TiffFile(path) as tf:
        kinds = (4, 5) if mask else (0, 1)
        pages = [p for p in tf.pages if isinstance(p, tifffile.TiffPage)]
        page = [p for p in pages if p.subfiletype in kinds][level]
        fmt = tf.byteorder + ("Q" if tf.is_bigtiff else "I")
        counts = [(page.tags[c].offset + 4, page.tags[c].count) for c in (324, 325)]
    with open(path, "r+b") as fh:
        for at, n in counts:
            fh.seek(at)
            fh.write(struct.pack(fmt, n - 1))


@pytest.mark.parametrize(("mask", "level"), [(False, 0), (False, 1), (True, 0)])
def test_tile_missing_from_an_ifd_fails(tmp_path: Path, mask: bool, level: int) -> None:
    """An IFD listing fewer tiles than were encoded and checked: every listed tile's CRC
    matches, but a tile checked in memory is not in the file."""
    src = rasters.rgb(tmp_path / "rgb.tif", size=1100)
    info = read_info(str(src))
    profile = choose_profile(info, "jpeg", 75)
    written = write_checked(str(src), tmp_path / "o.tif", profile, info)
    check_written(str(src), written, info, profile)  # intact: passes
    _drop_last_tile(written.cog.path, mask, level)
    with pytest.raises(VerificationError, match="is not in the file"):
        check_written(str(src), written, info, profile)


def _set_short(path: Path, code: int, value: int, level: int = 0) -> None:
    """Overwrite a one-SHORT tag of an image IFD in place."""
    with tifffile.TiffFile(path) as tf:
        pages = [p for p in tf.pages if isinstance(p, tifffile.TiffPage)]
        tag = [p for p in pages if p.subfiletype in (0, 1)][level].tags[code]
        at = tag.offset + (12 if tf.is_bigtiff else 8)
        order = tf.byteorder
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(struct.pack(order + "H", value))


@pytest.mark.parametrize(
    ("kind", "codec", "code", "value", "level"),
    [("uint16", "deflate", 317, 1, 0), ("float-nan", "zstd", 317, 1, 0),
     ("rgb", "jpeg", 262, 2, 0), ("uint16", "deflate", 256, 349, 1)],
)  # fmt: skip
def test_ifd_decoding_other_pixels_fails(
    tmp_path: Path, kind: str, codec: str, code: int, value: int, level: int
) -> None:
    """Every tile's bytes the ones checked, but the IFD tells GDAL to decode them otherwise
    (no predictor; YCbCr read as RGB; an overview a column short): the output fails."""
    src = _scene(tmp_path, kind)
    info = read_info(str(src))
    profile = _profile(src, codec, 75 if codec == "jpeg" else None, None)
    written = write_checked(str(src), tmp_path / "o.tif", profile, info)
    check_written(str(src), written, info, profile)  # intact: passes
    _set_short(written.cog.path, code, value, level)
    with rasterio.open(written.cog.path) as out, rasterio.open(src) as ref:
        with contextlib.suppress(rasterio.errors.RasterioIOError):  # (or none at all)
            assert level or not np.array_equal(out.read(), ref.read())  # other pixels
    with pytest.raises(VerificationError, match=f"tag {code} is"):
        check_written(str(src), written, info, profile)
