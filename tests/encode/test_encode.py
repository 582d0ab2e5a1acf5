"""Codec choice and the combinations that cannot work."""

from __future__ import annotations

import dataclasses

import imagecodecs as ic
import numpy as np
import pytest

from compactor.cog._tiles import TileCodec
from compactor.encode import choose_profile, fallback_profiles
from compactor.errors import UnsupportedCodecError, VerificationError
from compactor.gdal._info import RasterInfo


def info(dtype: str = "uint8", count: int = 3, **kw: object) -> RasterInfo:
    ci = kw.pop(
        "colorinterp",
        ("red", "green", "blue", "alpha", "undefined")[:count]
        if count in (3, 4)
        else ("gray",) * count,
    )
    base = RasterInfo(
        driver="GTiff", width=100, height=100, count=count, dtype=dtype, nodata=None,
        colorinterp=tuple(ci),  # type: ignore[arg-type]
        descriptions=(None,) * count, block_shape=(256, 256), has_colormap=False,
        has_dataset_mask=False,
    )  # fmt: skip
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raster", "codec", "mask", "drop_alpha"),
    [
        (info(count=1), "jpeg", "none", False),
        (info(count=3), "jpeg", "none", False),
        (info(count=3, nodata=0.0), "jpeg", "nodata", False),
        (info(count=4), "jpeg", "alpha", True),
        (info(count=1, has_dataset_mask=True), "jpeg", "dataset", False),
        (info(dtype="uint16", count=4), "zstd", "none", False),
        (info(dtype="float32", count=1), "zstd", "none", False),
        (info(dtype="int16", count=1), "zstd", "none", False),
        (info(count=2), "zstd", "none", False),
        (info(count=6), "zstd", "none", False),
        (info(count=1, has_colormap=True), "zstd", "none", False),
        (info(count=2, colorinterp=("gray", "alpha")), "zstd", "none", False),
        (info(dtype="complex_int16", count=1), "zstd", "none", False),
    ],
)
def test_auto_codec(raster: RasterInfo, codec: str, mask: str, drop_alpha: bool) -> None:
    p = choose_profile(raster, "auto")
    assert (p.codec, p.mask, p.drop_alpha) == (codec, mask, drop_alpha)
    assert p.lossless == (codec == "zstd")


def test_paletted_rasters_use_nearest_overviews() -> None:
    assert choose_profile(info(count=1, has_colormap=True)).resampling == "NEAREST"
    assert choose_profile(info(count=3)).resampling == "AVERAGE"


@pytest.mark.parametrize(
    ("raster", "codec", "message"),
    [
        (info(dtype="float32", count=1), "jpeg", "8-bit"),
        (info(dtype="uint16", count=3), "webp", "8-bit"),
        (info(count=1), "webp", "3 colour bands"),
        (info(count=2), "jpeg", "1 or 3 colour bands"),
        (info(count=1, has_colormap=True), "jpeg", "palette"),
        (info(dtype="complex64", count=1), "lerc", "complex"),
        (info(dtype="complex_int16", count=1), "jpeg", "8-bit"),
        (info(count=2, colorinterp=("gray", "alpha")), "jpeg", "1-bit mask"),
    ],
)
def test_impossible_combinations_are_scene_errors(
    raster: RasterInfo, codec: str, message: str
) -> None:
    with pytest.raises(UnsupportedCodecError, match=message):
        choose_profile(raster, codec)


def test_quality_and_creation_options() -> None:
    p = choose_profile(info(count=3), "webp", quality=60)
    opts = p.creation_options()
    assert opts["COMPRESS"] == "WEBP"
    assert opts["QUALITY"] == "60"
    z = choose_profile(info(dtype="float32", count=1), "zstd").creation_options()
    assert z["PREDICTOR"] == "YES"
    lerc = choose_profile(info(dtype="float32", count=1), "lerc").creation_options()
    assert lerc["MAX_Z_ERROR"] == "0"


def test_fallback_ladder_climbs_then_goes_lossless() -> None:
    p = choose_profile(info(count=3), "jpeg", quality=75)
    ladder = fallback_profiles(p, info(count=3))
    assert [(f.codec, f.quality) for f in ladder] == [
        ("jpeg", 85),
        ("jpeg", 90),
        ("jpeg", 95),
        ("zstd", None),
    ]
    high = choose_profile(info(count=3), "jpeg", quality=92)
    assert [(f.codec, f.quality) for f in fallback_profiles(high, info(count=3))] == [
        ("jpeg", 95),
        ("zstd", None),
    ]
    assert (
        fallback_profiles(choose_profile(info(dtype="uint16"), "auto"), info(dtype="uint16")) == []
    )


@pytest.mark.parametrize("codec", ["deflate", "zstd", "lzw"])
def test_a_short_lossless_tile_is_refused_not_compared(codec: str) -> None:
    """A tile stream that decodes to fewer bytes than a tile (LZW stops short without an
    error) must fail its check: the rest of the buffer is never compared as if decoded,
    even where it would happen to equal the source (here: a nodata collar of zeros)."""
    tile_codec = TileCodec.for_profile(codec, None, "uint8", 3, level=None, predictor=2)
    tile = np.zeros((512, 512, 3), np.uint8)
    tile[:100] = np.random.default_rng(0).integers(0, 200, (100, 512, 3), dtype=np.uint8)
    assert np.array_equal(tile_codec.decode(tile_codec.encode(tile)), tile)
    first_rows = ic.delta_encode(tile, axis=-2)[:100].tobytes()
    encode = {"deflate": ic.deflate_encode, "zstd": ic.zstd_encode, "lzw": ic.lzw_encode}[codec]
    with pytest.raises(VerificationError, match="decodes to 153600 bytes"):
        tile_codec.decode(bytes(encode(first_rows)))


@pytest.mark.parametrize("dtype", ["complex_int16", "complex64", "complex128"])
def test_complex_data_is_lossless_without_a_predictor_through_gdal(dtype: str) -> None:
    from compactor.encode._write import uses_tile_writer

    raster = info(dtype=dtype, count=1)
    for codec in ("auto", "zstd", "deflate", "lzw"):
        p = choose_profile(raster, codec)
        assert p.lossless
        assert p.predictor == 1
        assert p.creation_options()["PREDICTOR"] == "NO"
        assert not uses_tile_writer(p, raster)


@pytest.mark.parametrize(
    ("dtype", "predictor"),
    [("uint16", 2), ("int16", 2), ("int32", 2), ("float32", 2), ("float64", 2), ("float32", 3)],
)
@pytest.mark.parametrize("bands", [1, 3])
def test_predictor_tiles_are_the_same_whatever_the_arrays_layout(
    dtype: str, predictor: int, bands: int
) -> None:
    """The predictors work on the samples' values: a big-endian, a band-strided
    and a Fortran-ordered tile encode to the bytes of their native C-contiguous copy, and
    decode back to the same samples."""
    rng = np.random.default_rng(3)
    wide = (rng.normal(0, 3e4, (512, 512, 2 * bands))).astype(dtype)
    native = np.ascontiguousarray(wide[..., ::2])
    codec = TileCodec.for_profile("zstd", None, dtype, bands, level=None, predictor=predictor)
    expected = codec.encode(native)
    for tile in (native.astype(native.dtype.newbyteorder(">")), wide[..., ::2],
                 np.asfortranarray(native)):  # fmt: skip
        assert codec.encode(tile) == expected
        assert np.array_equal(codec.decode(codec.encode(tile)).reshape(native.shape), native)
