"""Which profile a scene gets (the lossless search, --max-error, the overview
policy), and what a run writes and reports with it, on local folders through a real Dask
cluster. The codec paths themselves (every codec and predictor exact or within its bound)
are tests/encode/test_writers_exact_or_bounded.py's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import tifffile

import compactor
from compactor.codecs import ErrorBound, parse_max_error
from compactor.encode import encode_cog, write_sample
from compactor.encode._choose import choose_profile, resolve_bound
from compactor.encode._lossless import (
    CATALOG,
    EFFORT_WORTH,
    Candidate,
    candidates_for,
    choose_encoding,
    pick,
)
from compactor.errors import ConfigError, UnsupportedCodecError
from compactor.gdal import RasterInfo, read_info
from compactor.notebook._profiles import parse_spec
from compactor.records import SceneResult
from compactor.settings import Encoding
from compactor.verify import check_output

from .. import rasters


def _info(**changes: Any) -> RasterInfo:
    """A RasterInfo like a 4-band uint16 reflectance scene, with ``changes``."""
    fields: dict[str, Any] = {
        "driver": "GTiff", "width": 2048, "height": 2048, "count": 4, "dtype": "uint16",
        "nodata": 0.0, "colorinterp": ("gray",) * 4, "descriptions": (None,) * 4,
        "block_shape": (512, 512), "has_colormap": False, "has_dataset_mask": False,
    }  # fmt: skip
    fields.update(changes)
    n = fields["count"]
    if len(fields["colorinterp"]) != n:
        fields["colorinterp"] = ("gray",) * n
    fields["descriptions"] = (None,) * n
    return RasterInfo(**fields)


RANGES4 = [(100.0, 4100.0)] * 4


@pytest.mark.parametrize(
    ("bound", "dtype", "ranges", "expected"),
    [
        ("2", "uint16", None, (2.0,) * 4),
        ("0.4", "uint16", None, None),  # an integer bound below 0.5 is lossless
        ("1.7", "uint16", None, (1.0,) * 4),  # LERC uses floor(E) on integers
        ("2,2,1,0", "uint16", None, (2.0, 2.0, 1.0, 0.0)),
        ("0.5", "float32", None, (0.5,) * 4),
        ("0.1%", "uint16", RANGES4, (4.0,) * 4),  # 0.1 % of a 4000 DN range
        ("1%", "float32", [(0.0, 10.0)] * 4, (0.1,) * 4),
    ],
)
def test_bounds_resolve_per_band(
    bound: str, dtype: str, ranges: Any, expected: tuple[float, ...] | None
) -> None:
    parsed = parse_max_error(bound)
    assert parsed is not None
    got = resolve_bound(parsed, _info(dtype=dtype), ranges)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert got == pytest.approx(expected)


def test_a_bound_for_the_wrong_number_of_bands_is_refused() -> None:
    with pytest.raises(UnsupportedCodecError, match="3 bounds for 4 bands"):
        resolve_bound(ErrorBound((1.0, 1.0, 1.0)), _info(), None)


@pytest.mark.parametrize(
    ("changes", "codec", "bound", "overviews", "expected"),
    [
        # 16-bit: lossless unless bounded; overviews in LERC within 0.5 % of the range.
        ({}, "auto", None, "lossy", ("zstd", False, "lerc", 20.0)),
        ({}, "auto", "2", "lossy", ("lerc", True, "lerc", 20.0)),
        ({}, "auto", "0.3", "lossy", ("zstd", False, "lerc", 20.0)),
        ({}, "auto", "40", "lossy", ("lerc", True, "lerc", 40.0)),  # never tighter than full
        ({}, "auto", None, "full", ("zstd", False, None, None)),
        # 8-bit RGB keeps JPEG and the SSIM bar whatever --max-error says.
        ({"count": 3, "dtype": "uint8", "nodata": None, "colorinterp": ("red", "green", "blue")},
         "auto", "2", "lossy", ("jpeg", False, None, None)),
        # Plain 8-bit greyscale written losslessly: JPEG overviews.
        ({"count": 1, "dtype": "uint8", "nodata": None}, "zstd", None, "lossy",
         ("zstd", False, "jpeg", None)),
        # Palette indices: never bounded, never lossy overviews.
        ({"count": 1, "dtype": "uint8", "nodata": None, "has_colormap": True}, "auto", "2",
         "lossy", ("zstd", False, None, None)),
        # An explicit LERC with a bound on 8-bit data is bounded.
        ({"count": 1, "dtype": "uint8", "nodata": None}, "lerc", "3", "full",
         ("lerc", True, None, None)),
    ],
)  # fmt: skip
def test_choose_profile(
    changes: dict[str, Any], codec: str, bound: str | None, overviews: Any, expected: Any
) -> None:
    info = _info(**changes)
    ranges = [(100.0, 4100.0)] * info.count
    p = choose_profile(
        info, codec, max_error=parse_max_error(bound), overviews=overviews, ranges=ranges
    )
    want_codec, bounded, ovr_codec, ovr_error = expected
    assert (p.codec, p.bounded) == (want_codec, bounded)
    got_ovr = p.overview.codec if p.lossy_overviews and p.overview else None
    assert got_ovr == ovr_codec
    if ovr_error is not None:
        assert p.overview is not None
        assert p.overview.max_error is not None
        assert min(p.overview.max_error) == pytest.approx(ovr_error)


def test_efforts_and_the_codec_named_bound_the_candidates() -> None:
    lossless = choose_profile(_info(), "auto")
    bounded = choose_profile(_info(), "auto", max_error=ErrorBound((2.0,)))
    assert candidates_for(lossless, "fast", "uint16", None) == []
    default = candidates_for(lossless, "default", "uint16", None)
    full = candidates_for(lossless, "max", "uint16", None)
    assert {c.codec for c in default} == {"zstd", "deflate", "lerc", "lzw"}
    assert all(c.speed >= 40 for c in default)
    assert len(full) > len(default)
    assert {c.codec for c in candidates_for(lossless, "max", "uint16", "zstd")} == {"zstd"}
    # A bounded scene may also end lossless, where that is smaller; --codec lerc keeps LERC.
    assert {c.codec for c in candidates_for(bounded, "max", "uint16", None)} == {
        "zstd",
        "deflate",
        "lerc",
        "lzw",
    }
    assert {c.codec for c in candidates_for(bounded, "max", "uint16", "lerc")} == {"lerc"}
    assert all(c.codec != "lerc" for c in candidates_for(lossless, "max", "complex64", None))


def test_max_error_with_a_lossless_or_lossy_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="use codec auto or lerc"):
        compactor.Settings(source="/tmp/a/", dest="/tmp/b/", codec="zstd", max_error=2)
    with pytest.raises(ValueError, match="lossy"):
        compactor.Settings(source="/tmp/a/", dest="/tmp/b/", codec="jpeg", max_error=2)


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("zstd:19", "level", 19), ("deflate:12", "level", 12), ("lerc:1", "max_error", 1.0),
        ("lerc:0.25", "max_error", 0.25), ("lossless:auto", "auto", True),
        ("lossless", "auto", True), ("zstd:auto", "auto", True),
    ],
)  # fmt: skip
def test_profile_strings_of_the_science_modes(text: str, field: str, value: Any) -> None:
    assert getattr(parse_spec(text), field) == value


@pytest.mark.parametrize(
    ("text", "words"),
    [("zstd:23", "1 to 22"), ("deflate:0", "1 to 12"), ("lzw:3", "takes no level"),
     ("lerc:-1", "negative"), ("lerc:1%", "data units"), ("lossless:fast", "only 'auto'")],
)  # fmt: skip
def test_bad_science_profile_strings(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_spec(text)


# --- on real texture ------------------------------------------------------------------


def landsat_like(path: Path, shared: Path, size: int = 768) -> Path:
    """A 4-band uint16 scene as Landsat Collection 2 ships: a 12-bit signal from real
    imagery plus ~3 DN of sensor noise, a nodata collar, DEFLATE + predictor 2, tiled 512."""
    from rasterio.enums import Resampling

    with rasterio.open(shared / "RGB.byte.tif") as src:
        rgb = src.read(out_shape=(3, size, size), resampling=Resampling.bilinear).astype("f4")
    rng = np.random.default_rng(16)
    signal = np.concatenate([rgb, rgb.mean(axis=0, keepdims=True)])
    data = np.clip(signal * 16 + 300 + rng.normal(0, 3, signal.shape), 1, 4095).astype("uint16")
    data[:, (rgb == 0).all(axis=0)] = 0
    return rasters.write(
        path, data, nodata=0, tiled=True, blockxsize=512, blockysize=512, compress="deflate",
        predictor=2,
    )  # fmt: skip


def _encoding(**changes: Any) -> Encoding:
    return compactor.Settings(source="/tmp/a/", dest="/tmp/b/", **changes).encoding


def test_the_search_keeps_the_smallest_and_it_is_exact(tmp_path: Path, shared_data: Path) -> None:
    src = landsat_like(tmp_path / "in" / "scene.tif", shared_data, size=512)
    info = read_info(str(src))
    with rasterio.Env():
        choice = choose_encoding(str(src), info, _encoding(), tmp_path / "scratch")
    search = choice.search
    assert search is not None
    assert len(search.probes) >= 5
    best = min(search.probes, key=lambda p: p.bytes)
    assert search.chosen == best.label
    assert choice.profile.lossless
    out = tmp_path / "out.tif"
    cog = encode_cog(str(src), out, choice.profile, info)
    # The full-resolution tiles of the whole scene are what the sample measured (the
    # scene is its own sample), byte for byte.
    assert cog.full_bytes == best.bytes
    fidelity = check_output(str(src), str(out), info, choice.profile)
    assert fidelity.exact
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert np.array_equal(a.read(), b.read())


def _run(src_dir: Path, dest: Path, scheduler: str, **settings: Any) -> list[SceneResult]:
    seen: list[SceneResult] = []
    report = compactor.run(
        source=f"{src_dir}/", dest=f"{dest}/", scheduler=scheduler, progress=seen.append,
        **settings,
    )  # fmt: skip
    assert report.totals.failed == 0, [r.reason for r in seen]
    return seen


def _tile_bytes(path: Path) -> tuple[int, int]:
    """(full resolution, overview) tile bytes of a TIFF read with tifffile."""
    full = ovr = 0
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            n = sum(page.databytecounts)  # type: ignore[union-attr]
            if page.subfiletype & 1:  # type: ignore[union-attr]
                ovr += n
            else:
                full += n
    return full, ovr


def test_a_landsat_like_scene_is_compacted_exactly_by_default(
    tmp_path: Path, shared_data: Path, dask_scheduler: str
) -> None:
    """A uint16 DEFLATE-tiled scene is not "left as it is": the encoding search finds a
    smaller lossless encoding, pixel-exact; the report names it and splits its bytes."""
    src = landsat_like(tmp_path / "src" / "scene.tif", shared_data)
    [r] = _run(tmp_path / "src", tmp_path / "dst", dask_scheduler)
    assert r.status == "compacted", r.reason
    assert r.lossless
    assert r.bytes_out is not None
    assert r.bytes_in is not None
    assert r.bytes_out < r.bytes_in
    assert r.encoding_search is not None
    assert r.encoding_search.chosen
    assert r.codec in ("zstd", "deflate", "lerc", "lzw")
    out = tmp_path / "dst" / "scene.tif"
    full, ovr = _tile_bytes(out)
    assert (r.bytes_full, r.bytes_overviews) == (full, ovr)
    assert full + ovr < r.bytes_out < full + ovr + 64 * 1024  # the rest is the header
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert np.array_equal(a.read(), b.read())
        assert b.descriptions == a.descriptions
        assert b.nodata == a.nodata


def test_max_error_keeps_every_valid_pixel_within_the_bound(
    tmp_path: Path, shared_data: Path, dask_scheduler: str
) -> None:
    src = landsat_like(tmp_path / "src" / "scene.tif", shared_data)
    [lossless] = _run(tmp_path / "src", tmp_path / "d0", dask_scheduler, overviews="none")
    [r] = _run(tmp_path / "src", tmp_path / "d2", dask_scheduler, max_error=2, overviews="none")
    assert r.status == "compacted"
    assert r.codec == "lerc"
    assert not r.lossless
    assert r.max_error == [2.0] * 4
    assert r.bytes_overviews == 0
    assert r.bytes_out is not None
    assert lossless.bytes_out is not None
    assert r.bytes_out < lossless.bytes_out
    with rasterio.open(src) as a, rasterio.open(tmp_path / "d2" / "scene.tif") as b:
        x, y = a.read().astype("f8"), b.read().astype("f8")
        assert not b.overviews(1)
    nodata = x == 0
    assert np.array_equal(y[nodata], x[nodata])
    assert not (y[~nodata] == 0).any()
    worst = np.abs(x - y)[~nodata].max()
    assert worst <= 2
    assert r.error_max is not None
    assert max(r.error_max) == worst
    rmse = math.sqrt(float(np.mean(np.square((x - y)[~nodata]))))
    assert r.rmse == pytest.approx(rmse, rel=1e-6)


def test_float_scene_within_a_relative_bound(tmp_path: Path, dask_scheduler: str) -> None:
    src = rasters.float32_nan(tmp_path / "src" / "dem.tif", size=600)
    [r] = _run(tmp_path / "src", tmp_path / "dst", dask_scheduler, max_error="0.1%")
    assert r.status == "compacted"
    assert r.codec == "lerc"
    with rasterio.open(src) as a, rasterio.open(tmp_path / "dst" / "dem.tif") as b:
        x, y = a.read(1).astype("f8"), b.read(1).astype("f8")
        assert b.overviews(1)  # lossy overviews
    nan = np.isnan(x)
    assert np.array_equal(nan, np.isnan(y))
    valid = x[~nan]
    bound = 0.001 * (valid.max() - valid.min())
    assert r.max_error is not None
    assert r.max_error[0] <= bound * 1.0001
    assert np.abs(x - y)[~nan].max() <= r.max_error[0]


def test_sample_ranges_leave_out_nodata(tmp_path: Path) -> None:
    from compactor.encode import valid_ranges

    src = rasters.uint16(tmp_path / "u.tif", size=300)
    info = read_info(str(src))
    with rasterio.Env():
        sample = write_sample(str(src), info, tmp_path / "s")
    ranges = valid_ranges(sample)
    with rasterio.open(src) as ds:
        data = ds.read()
    for (lo, hi), band in zip(ranges, data, strict=True):
        assert lo == band[band > 0].min()
        assert hi == band.max()


def test_lossy_overviews_are_dropped_where_they_alone_would_leave_a_scene(
    tmp_path: Path, dask_scheduler: str
) -> None:
    """A float DEM shipped as DEFLATE + floating-point predictor without overviews: with
    its (lossy) overviews the COG would be larger than the original, without them smaller;
    under the default policy it is written without, and the result says so."""
    base = rasters.float32_nan(tmp_path / "base.tif", size=1024)
    with rasterio.open(base) as src:
        data, profile = src.read(), src.profile
    profile.update(
        tiled=True, blockxsize=512, blockysize=512, compress="deflate", predictor=3, zlevel=9
    )
    source = tmp_path / "src" / "dem.tif"
    source.parent.mkdir()
    with rasterio.open(source, "w", **profile) as dst:
        dst.write(data)
    [r] = _run(tmp_path / "src", tmp_path / "dst", dask_scheduler)
    assert r.status == "compacted", r.reason
    assert r.overviews == "none"
    assert r.bytes_overviews == 0
    assert [a.accepted for a in r.attempts] == [False, True]
    assert r.attempts[0].bytes >= source.stat().st_size > r.attempts[1].bytes
    with rasterio.open(source) as a, rasterio.open(tmp_path / "dst" / "dem.tif") as b:
        assert not b.overviews(1)
        assert np.array_equal(a.read(), b.read(), equal_nan=True)


def test_only_scenes_that_start_lossless_need_ranges_for_their_overviews() -> None:
    from compactor.encode import needs_ranges

    rgb_collar = _info(count=3, dtype="uint8", colorinterp=("red", "green", "blue"))
    assert not needs_ranges(rgb_collar, "auto", None, "lossy")  # JPEG: overviews lossy anyway
    assert needs_ranges(rgb_collar, "zstd", None, "lossy")  # lossless: LERC overviews
    assert needs_ranges(_info(), "auto", None, "lossy")  # uint16
    assert not needs_ranges(_info(), "auto", None, "full")
    assert needs_ranges(_info(), "auto", ErrorBound((0.001,), relative=True), "full")
    jpeg = choose_profile(rgb_collar, "auto", overviews="lossy")  # no ranges, no error
    assert jpeg.codec == "jpeg"
    assert not jpeg.lossy_overviews


def _cand(codec: str, level: int) -> Candidate:
    return next(c for c in CATALOG if (c.codec, c.level, c.predictor) == (codec, level, "dtype"))


@pytest.mark.parametrize(
    ("effort", "sizes", "kept"),
    [
        # DEFLATE 9 a fraction of a percent smaller than 6 is not worth half the speed...
        ("default", {6: 1000, 9: 997, 12: 996}, 6),
        # ... one percent smaller is.
        ("default", {6: 1000, 9: 990, 12: 985}, 9),
        # max effort takes the smallest at any speed; equal sizes keep the faster.
        ("max", {6: 1000, 9: 997, 12: 996}, 12),
        ("max", {6: 1000, 9: 1000, 12: 1000}, 6),
        # a faster candidate that is smaller always wins.
        ("default", {6: 990, 9: 1000, 12: 1000}, 6),
    ],
)
def test_a_slower_encoding_must_be_worth_its_time(
    effort: str, sizes: dict[int, int], kept: int
) -> None:
    probes = [(size, _cand("deflate", level)) for level, size in sizes.items()]
    assert pick(probes[::-1], EFFORT_WORTH[effort]) == _cand("deflate", kept)


@pytest.mark.parametrize(("zstd9", "kept"), [(980, 1), (960, 9)])
def test_the_price_of_speed_grows_with_each_halving(zstd9: int, kept: int) -> None:
    """ZSTD 9 encodes about 9x (3.2 halvings) slower than ZSTD 1: 2 % smaller does not
    buy that under the default effort, 4 % does."""
    probes = [(1000, _cand("zstd", 1)), (zstd9, _cand("zstd", 9))]
    assert pick(probes, EFFORT_WORTH["default"]) == _cand("zstd", kept)


def test_codec_lossless_makes_8_bit_imagery_lossless_with_a_search() -> None:
    """``--codec lossless``: RGB that ``auto`` would give JPEG starts lossless and is
    searched over every lossless codec (none named, so none is the only one)."""
    from compactor.encode._lossless import candidates_for

    rgb = _info(count=3, dtype="uint8", colorinterp=("red", "green", "blue"))
    profile = choose_profile(rgb, "lossless")
    assert profile.lossless
    assert profile.codec == "zstd"
    codecs = {c.codec for c in candidates_for(profile, "default", "uint8", None)}
    assert {"zstd", "deflate", "lzw"} <= codecs
