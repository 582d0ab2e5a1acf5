"""Both writers, every codec path: exact or within its error bound, for 16-bit, float and
the other dtypes beyond 8-bit (the paths of encode and fidelity).

Every codec, level and predictor path of both writers (compactor's tile writer and GDAL's
COG driver, which scenes georeferenced by GCPs get) is exact or within its error bound on
textured rasters of every data type that matters (uint8, uint16, int16, float32 with NaN,
infinities and a nodata value, and a Sentinel-2-like ``NBITS=15`` uint16), judged
independently of compactor's own checks (rasterio reads both rasters, tifffile reads the
TIFF tags); compactor's verification must agree with that judgement and catch outputs that
break a bound. Metadata survives exactly; overviews follow their policy (``full``,
``lossy``, ``none``) and the bytes the writer reports add up to the file tifffile reads.

Scenes are 700 x 600 pixels: partial tiles at the right and bottom edges, one overview level.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import tifffile
from rasterio.control import GroundControlPoint
from rasterio.shutil import copy as gdal_copy

from compactor.cog._layout import EncodedCog
from compactor.cog._profile import Profile
from compactor.cog._tiles import TileCodec
from compactor.demo import fractal_surface
from compactor.encode._write import encode_cog, uses_tile_writer
from compactor.errors import UnsupportedCodecError, VerificationError
from compactor.gdal._info import read_info
from compactor.verify._verify import check_metadata, check_output

from .. import rasters

WIDTH, HEIGHT = 700, 600
#: TIFF Compression tags (independent of compactor's table).
COMPRESSION = {"deflate": 8, "zstd": 50000, "lzw": 5, "lerc": 34887, "jpeg": 7}
LERC_INNER = {None: 0, "deflate": 1, "zstd": 2}


# --- scenes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A kind of scene: its data type, bands, nodata value and bit depth."""

    name: str
    dtype: str
    bands: int
    nodata: float
    nbits: int | None = None

    @property
    def floating(self) -> bool:
        return np.dtype(self.dtype).kind == "f"


KINDS = {
    k.name: k
    for k in (
        Kind("uint8", "uint8", 3, 0),
        Kind("uint16", "uint16", 3, 0),
        Kind("int16", "int16", 2, -32768),
        Kind("float32", "float32", 3, -9999.0),
        Kind("nbits15", "uint16", 2, 0, nbits=15),
    )
}


def _field(seed: int) -> np.ndarray:
    """A smooth fractal field in [0, 1], HEIGHT x WIDTH."""
    return fractal_surface(max(WIDTH, HEIGHT) + 4, seed=seed)[:HEIGHT, :WIDTH]


def _footprint() -> np.ndarray:
    """A rotated rectangle (True inside): the valid area; outside it, a nodata collar."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    a = math.radians(9)
    u = (xx - WIDTH / 2) * math.cos(a) + (yy - HEIGHT / 2) * math.sin(a)
    v = -(xx - WIDTH / 2) * math.sin(a) + (yy - HEIGHT / 2) * math.cos(a)
    return np.asarray((np.abs(u) <= 0.42 * WIDTH) & (np.abs(v) <= 0.42 * HEIGHT))


def scene_pixels(kind: Kind, seed: int = 16, ring: int | None = 1) -> np.ndarray:
    """Smooth relief plus noise, a nodata collar, and the hard case next to it: a ring of
    valid values ``ring`` to ``ring + 2`` above nodata (LERC must not round them onto it;
    None: no ring). Floats get NaN patches (one only in the last band: per-band LERC masks)
    and a few infinities."""
    rng = np.random.default_rng(seed)
    inside = _footprint()
    edge = inside & ~np.roll(inside, 3, axis=1)
    lo, span, noise = {
        "uint8": (20, 200, 4.0),
        "uint16": (300, 12000, 25.0),
        "int16": (-1500, 4000, 10.0),
        "float32": (250, 1500, 0.05),
        "nbits15": (200, 32700, 30.0),
    }[kind.name]
    bands = []
    for b in range(kind.bands):
        band = lo + span * (0.6 + 0.4 * b / kind.bands) * _field(seed + b)
        band = band + rng.normal(0, noise, band.shape)
        bands.append(band)
    data = np.stack(bands)
    if kind.floating:
        data = data.astype(kind.dtype)
        patches = _field(seed + 10) > 0.8
        data[:, patches & inside] = np.nan
        data[-1, (_field(seed + 11) > 0.85) & inside] = np.nan
        data[0, 300, 350], data[1, 301, 351] = np.inf, -np.inf
    else:
        top = (1 << kind.nbits) - 1 if kind.nbits else np.iinfo(kind.dtype).max
        data = np.clip(np.rint(data), kind.nodata + 4, top).astype(kind.dtype)
    if ring is not None:
        near = kind.nodata + ring + rng.integers(0, 3, size=(kind.bands, int(edge.sum())))
        data[:, edge] = near.astype(kind.dtype)
    data[:, ~inside] = kind.nodata
    return data


def _gcps() -> list[GroundControlPoint]:
    return [
        GroundControlPoint(row=r, col=c, x=500000 + 10 * c, y=4200000 - 10 * r)
        for r, c in ((0, 0), (0, WIDTH), (HEIGHT, 0), (HEIGHT, WIDTH))
    ]


def write_scene(
    path: Path, kind: Kind, *, gcps: bool = False, data: np.ndarray | None = None, **meta: Any
) -> Path:
    """Write a scene of ``kind`` as a striped GeoTIFF (``NBITS`` where the kind says), with a
    geotransform or, with ``gcps``, ground control points (GDAL's COG driver writes those).
    ``meta`` as :func:`write_with_metadata` takes it."""
    data = scene_pixels(kind) if data is None else data
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": WIDTH, "height": HEIGHT, "count": kind.bands,
        "dtype": kind.dtype, "crs": rasters.CRS, "nodata": kind.nodata,
    }  # fmt: skip
    if kind.nbits:
        profile["nbits"] = kind.nbits
    if gcps:
        profile["gcps"] = _gcps()
    else:
        profile["transform"] = rasters.TRANSFORM
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        _apply_metadata(dst, meta)
    return path


def _apply_metadata(dst: Any, meta: dict[str, Any]) -> None:
    if "scales" in meta:
        dst.scales = meta["scales"]
    if "offsets" in meta:
        dst.offsets = meta["offsets"]
    for i, desc in enumerate(meta.get("descriptions", ()), start=1):
        dst.set_band_description(i, desc)
    for i, unit in enumerate(meta.get("units", ()), start=1):
        dst.set_band_unit(i, unit)
    if meta.get("tags"):
        dst.update_tags(**meta["tags"])
    for ns, items in meta.get("domains", {}).items():
        dst.update_tags(ns=ns, **items)
    for i, items in enumerate(meta.get("band_tags", ()), start=1):
        dst.update_tags(i, **items)
    for i, domains in enumerate(meta.get("band_domains", ()), start=1):
        for ns, items in domains.items():
            dst.update_tags(i, ns=ns, **items)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], Path]:
    """Every kind of scene, with a geotransform and (for the GDAL writer) with GCPs. The GCP
    scenes have no valid values just above nodata: GDAL can only be given a bound for the
    whole scene, which such values make lossless (see the test of that below)."""
    base = tmp_path_factory.mktemp("scenes")
    return {
        (name, gcps): write_scene(
            base / f"{name}{'-gcps' if gcps else ''}.tif",
            kind,
            gcps=gcps,
            data=scene_pixels(kind, ring=None if gcps else 1),
        )
        for name, kind in KINDS.items()
        for gcps in (False, True)
    }


# --- independent judgement -----------------------------------------------------------------


def special(x: np.ndarray, nodata: float) -> np.ndarray:
    """Values that must come back exactly: nodata, NaN, infinities."""
    out = np.asarray(x == np.asarray(nodata, dtype=x.dtype))
    if x.dtype.kind == "f":
        out |= ~np.isfinite(x)
    return out


@dataclass
class Judged:
    max_error: tuple[float, ...]
    rmse: float


def judge(src: Path, out: Path, kind: Kind, bounds: list[float] | None) -> Judged:
    """Read both rasters with rasterio and hold the output to the source: lossless
    (``bounds`` None) equal everywhere, NaN equal NaN; bounded: nodata, NaN and infinities
    exactly where they were and nowhere else, every other value within its band's bound;
    integers under a bound below 1 exactly (liblerc floors integer bounds)."""
    with rasterio.open(src) as s, rasterio.open(out) as o:
        a, b = s.read(), o.read()
        assert (o.count, o.width, o.height, o.dtypes[0]) == (kind.bands, WIDTH, HEIGHT, kind.dtype)
    if bounds is None:
        assert np.array_equal(a, b, equal_nan=kind.floating), "lossless output differs"
        return Judged((0.0,) * kind.bands, 0.0)
    errors, sq, n = [], 0.0, 0
    for k in range(kind.bands):
        x, y = a[k], b[k]
        sx, sy = special(x, kind.nodata), special(y, kind.nodata)
        assert np.array_equal(sx, sy), f"band {k + 1}: nodata/NaN/inf positions moved"
        assert np.array_equal(x[sx], y[sx], equal_nan=True), f"band {k + 1}: specials changed"
        d = np.abs(x[~sx].astype(np.float64) - y[~sx].astype(np.float64))
        assert d.max() <= bounds[k], f"band {k + 1}: error {d.max()} > {bounds[k]}"
        if not kind.floating and bounds[k] < 1:
            assert np.array_equal(x, y), f"band {k + 1}: integer bound {bounds[k]} is not exact"
        errors.append(float(d.max()))
        sq += float(np.dot(d, d))
        n += d.size
    return Judged(tuple(errors), math.sqrt(sq / n))


def tiff_pages(path: Path) -> list[dict[str, Any]]:
    """Every IFD's codec tags, subfile type and tiles, as tifffile reads them."""
    pages = []
    with tifffile.TiffFile(path) as tf:
        for page in tf.pages:
            assert isinstance(page, tifffile.TiffPage)
            tags = {t.code: t.value for t in page.tags.values()}
            pages.append(
                {
                    "subfiletype": int(tags.get(254, 0)),
                    "compression": int(tags[259]),
                    "predictor": int(tags.get(317, 1)),
                    "photometric": int(tags[262]),
                    "lerc": tuple(tags[50674]) if 50674 in tags else None,
                    "jpegtables": 347 in tags,
                    "bits": tuple(np.atleast_1d(tags[258]).tolist()),
                    "offsets": list(page.dataoffsets),
                    "counts": list(page.databytecounts),
                    "ifd": int(page.offset),
                }
            )
    return pages


def expected_predictor(profile: Profile, kind: Kind) -> int:
    if profile.codec not in ("zstd", "deflate", "lzw"):
        return 1
    if profile.predictor is not None:
        return profile.predictor
    return 3 if kind.floating else 2


def assert_codec_tags(page: dict[str, Any], profile: Profile, kind: Kind) -> None:
    """The IFD says the profile's codec, predictor, LERC parameters and whole samples."""
    assert page["compression"] == COMPRESSION[profile.codec]
    assert page["predictor"] == expected_predictor(profile, kind)
    if profile.codec == "lerc":
        assert page["lerc"] == (4, LERC_INNER[profile.lerc_inner])  # Lerc2 v4, inner codec
    else:
        assert page["lerc"] is None
    assert set(page["bits"]) == {np.dtype(kind.dtype).itemsize * 8}  # NBITS=15 -> 16


def assert_bytes_add_up(enc: EncodedCog) -> None:
    """The writer's tile bytes by level are tifffile's TileByteCounts of the full resolution
    and of the overview IFDs; the file is the header (TIFF header, ghost area, IFDs, tile
    arrays) then every tile framed in GDAL's leader and trailer, nothing else."""
    data = enc.path.read_bytes()
    assert enc.size == len(data)
    pages = tiff_pages(enc.path)
    full = sum(sum(p["counts"]) for p in pages if not p["subfiletype"] & 1)
    overview = sum(sum(p["counts"]) for p in pages if p["subfiletype"] & 1)
    assert (enc.full_bytes, enc.overview_bytes) == (full, overview)
    tiles_ = sorted((o, c) for p in pages for o, c in zip(p["offsets"], p["counts"], strict=True))
    assert all(c > 0 for _, c in tiles_)
    header = tiles_[0][0] - 4
    assert data[8:38] == b"GDAL_STRUCTURAL_METADATA_SIZE="
    assert b"BLOCK_LEADER=SIZE_AS_UINT4" in data[8:header]
    assert all(p["ifd"] < header for p in pages)  # IFDS_BEFORE_DATA
    pos = header
    for offset, count in tiles_:
        assert offset == pos + 4, "tile data is not contiguous"
        assert struct.unpack("<I", data[offset - 4 : offset])[0] == count
        assert (
            data[offset + count : offset + count + 4] == data[offset + count - 4 : offset + count]
        )
        pos = offset + count + 4
    assert pos == len(data)
    assert header + full + overview + 8 * len(tiles_) == enc.size


# --- 1. every codec and predictor path ---------------------------------------------------------


def P(codec: str, **kw: Any) -> Profile:
    if "max_error" in kw and not isinstance(kw["max_error"], tuple):
        kw["max_error"] = (float(kw["max_error"]),)
    return Profile(codec, **kw)


#: Per-band bounds of each kind (one bound per band).
PER_BAND = {
    "uint8": (1.0, 3.0, 2.0),
    "uint16": (2.0, 7.0, 1.0),
    "int16": (1.0, 5.0),
    "float32": (0.01, 0.1, 1.0),
    "nbits15": (3.0, 1.0),
}

INTEGER_PROFILES = [
    P("zstd", level=1, predictor=1),
    P("zstd", level=12, predictor=2),
    P("zstd"),
    P("deflate", level=1, predictor=2),
    P("deflate", level=9, predictor=1),
    P("lzw", predictor=2),
    P("lzw", predictor=1),
    P("lerc"),
    P("lerc", lerc_inner="zstd", level=5),
    P("lerc", lerc_inner="deflate"),
    P("lerc", max_error=1),
    P("lerc", max_error=2, lerc_inner="zstd"),
    P("lerc", max_error=2, lerc_inner="deflate", level=9),
    P("lerc", max_error=0.4),
    "per-band",
]
FLOAT_PROFILES = [
    P("zstd", level=1, predictor=3),
    P("zstd", level=12, predictor=2),
    P("zstd", predictor=1),
    P("deflate", level=6, predictor=3),
    P("lzw", predictor=3),
    P("lzw", predictor=1),
    P("lerc"),
    P("lerc", lerc_inner="zstd", level=3),
    P("lerc", lerc_inner="deflate"),
    P("lerc", max_error=0.01),
    P("lerc", max_error=0.5, lerc_inner="zstd"),
    P("lerc", max_error=2, lerc_inner="deflate"),
    "per-band",
]


def _cases() -> list[Any]:
    out = []
    for name, kind in KINDS.items():
        for p in FLOAT_PROFILES if kind.floating else INTEGER_PROFILES:
            profile = P("lerc", max_error=PER_BAND[name]) if p == "per-band" else p
            assert isinstance(profile, Profile)
            out.append(pytest.param(name, profile, id=f"{name}-{profile.label}"))
    return out


def bounds_of(profile: Profile, kind: Kind) -> list[float] | None:
    return [profile.band_error(k) for k in range(kind.bands)] if profile.bounded else None


def write_and_judge(
    scenes: dict[tuple[str, bool], Path], tmp_path: Path, name: str, profile: Profile,
    *, gcps: bool = False,
) -> tuple[EncodedCog, Judged]:  # fmt: skip
    """Write scene ``name`` with ``profile`` (through the writer the scene gets), check it
    with compactor and independently, and check compactor reports the error found."""
    kind = KINDS[name]
    src = scenes[(name, gcps)]
    info = read_info(str(src))
    assert uses_tile_writer(profile, info) is not gcps
    enc = encode_cog(str(src), tmp_path / "out.tif", profile, info)
    fid = check_output(str(src), str(enc.path), info, profile)
    judged = judge(src, enc.path, kind, bounds_of(profile, kind))
    assert fid.max_error == judged.max_error
    assert fid.exact == (max(judged.max_error) == 0)
    if profile.bounded:
        assert fid.rmse == pytest.approx(judged.rmse, rel=1e-9, abs=1e-12)
        assert fid.ssim is None
        if not kind.floating and judged.rmse:
            mse = judged.rmse**2
            full = float(np.iinfo(kind.dtype).max - np.iinfo(kind.dtype).min)
            assert fid.psnr == pytest.approx(10 * math.log10(full**2 / mse), rel=1e-9)
    else:
        assert fid.ssim == 1.0
    pages = tiff_pages(enc.path)
    assert len(pages) == 2  # full resolution and one overview, no masks
    for page in pages:
        assert_codec_tags(page, profile, kind)
    assert_bytes_add_up(enc)
    return enc, judged


@pytest.mark.parametrize(("name", "profile"), _cases())
def test_tile_writer_is_exact_or_within_bound(
    scenes: dict[tuple[str, bool], Path], tmp_path: Path, name: str, profile: Profile
) -> None:
    _enc, judged = write_and_judge(scenes, tmp_path, name, profile)
    if profile.lossless or (not KINDS[name].floating and profile.smallest_error < 1):
        assert max(judged.max_error) == 0
    elif profile.smallest_error >= 1 or KINDS[name].floating:
        # A bound that lets LERC quantise is used, not silently replaced by lossless.
        assert max(judged.max_error) > 0


# --- 2. GDAL's COG driver --------------------------------------------------------------------


GDAL_CASES = [
    ("uint16", P("zstd", level=1)),
    ("uint16", P("zstd", level=15, predictor=2)),
    ("uint16", P("lerc", max_error=2)),
    ("uint16", P("lerc", max_error=PER_BAND["uint16"], lerc_inner="zstd")),
    ("int16", P("lerc", max_error=1, lerc_inner="deflate")),
    ("int16", P("lerc", max_error=0.4)),
    ("nbits15", P("zstd", level=3, predictor=2)),
    ("nbits15", P("lerc", max_error=2, lerc_inner="zstd", level=6)),
    ("float32", P("zstd", level=9, predictor=3)),
    ("float32", P("lerc", max_error=0.01)),
    ("float32", P("lerc", max_error=PER_BAND["float32"], lerc_inner="deflate")),
    ("uint8", P("lerc", max_error=1)),
]


@pytest.mark.parametrize(
    ("name", "profile"), [pytest.param(n, p, id=f"{n}-{p.label}") for n, p in GDAL_CASES]
)
def test_gdal_writer_is_exact_or_within_bound(
    scenes: dict[tuple[str, bool], Path], tmp_path: Path, name: str, profile: Profile
) -> None:
    """Scenes georeferenced by GCPs go through GDAL's COG driver: the same bounds hold,
    ``NBITS=15`` sources come out as whole 16-bit samples (libtiff refuses the predictor and
    LERC on 15 bits), and per-band bounds are met (GDAL is given the smallest)."""
    _enc, judged = write_and_judge(scenes, tmp_path, name, profile, gcps=True)
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.gcps[0]
        assert out.tags(1, ns="IMAGE_STRUCTURE").get("NBITS") is None
    if profile.bounded and not (profile.smallest_error < 1 and not KINDS[name].floating):
        assert max(judged.max_error) > 0


def test_levels_reach_the_codec(scenes: dict[tuple[str, bool], Path], tmp_path: Path) -> None:
    """A level is not ignored: the highest levels make smaller tiles than the lowest, in
    both writers, and the output is still exact."""
    for gcps, name, codec, low, high in [
        (False, "nbits15", "zstd", 1, 22),
        (False, "uint8", "deflate", 1, 12),
        (True, "nbits15", "zstd", 1, 19),
    ]:
        sizes = []
        for level in (low, high):
            enc, _ = write_and_judge(
                scenes, tmp_path / f"{codec}{level}{gcps}", name, P(codec, level=level), gcps=gcps
            )
            sizes.append(enc.full_bytes)
        assert sizes[1] < sizes[0], (codec, gcps, sizes)


def test_predictors_that_cannot_apply_are_refused() -> None:
    for dtype in ("uint8", "uint16", "int16"):
        with pytest.raises(UnsupportedCodecError, match="floating-point predictor"):
            TileCodec.from_profile(P("zstd", predictor=3), dtype, 2)
    with pytest.raises(UnsupportedCodecError, match="takes no predictor"):
        TileCodec.from_profile(P("lerc", predictor=2), "uint16", 2)
    with pytest.raises(UnsupportedCodecError, match="error bounds for 3 bands"):
        TileCodec.from_profile(P("lerc", max_error=(1.0, 2.0)), "uint16", 3)


# --- a broken bound is caught ----------------------------------------------------------------


def test_a_writer_that_breaks_its_bound_is_caught(
    scenes: dict[tuple[str, bool], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tile writer that encoded with four times the bound and skipped its own check
    writes an output every independent reading shows out of bounds; verification refuses it."""
    kind = KINDS["float32"]
    src = scenes[("float32", False)]
    info = read_info(str(src))
    profile = P("lerc", max_error=0.01)
    monkeypatch.setattr(TileCodec, "_lerc_steps", lambda self, tile: [4 * min(self.max_error)])
    monkeypatch.setattr(TileCodec, "within", lambda self, tile, decoded: True)
    enc = encode_cog(str(src), tmp_path / "bad.tif", profile, info)
    with pytest.raises(AssertionError, match=r"band 1: error 0\.0[1-4]\d* > 0\.01"):
        judge(src, enc.path, kind, [0.01] * kind.bands)
    with pytest.raises(VerificationError, match=r"band 1: error .* exceeds the bound 0\.01"):
        check_output(str(src), str(enc.path), info, profile)


def _rewrite_with(out: Path, dst: Path, band: int, row: int, col: int, value: Any) -> Path:
    """A copy of COG ``out`` (metadata and all, through GDAL) with one pixel changed,
    written again as a lossless COG."""
    plain = dst.with_suffix(".plain.tif")
    gdal_copy(str(out), str(plain), driver="GTiff")
    with rasterio.open(plain, "r+") as r:
        r.write(
            np.asarray([[value]], dtype=r.dtypes[0]), band, window=((row, row + 1), (col, col + 1))
        )
    gdal_copy(str(plain), str(dst), driver="COG", COMPRESS="ZSTD", BLOCKSIZE="512")
    return dst


def _edge_values(x: float, bound: float, dtype: str) -> tuple[Any, Any]:
    """The value farthest above ``x`` within ``bound`` in ``dtype``, and the next one up."""
    if np.dtype(dtype).kind != "f":
        return int(x) + int(bound), int(x) + int(bound) + 1
    t = np.dtype(dtype).type
    y = t(x + bound)
    while float(y) - x > bound:
        y = np.nextafter(y, t(-np.inf))
    while float(np.nextafter(y, t(np.inf))) - x <= bound:
        y = np.nextafter(y, t(np.inf))
    return y, np.nextafter(y, t(np.inf))


@pytest.mark.parametrize(("name", "bound"), [("uint16", 2.0), ("float32", 0.01)])
def test_bound_is_checked_exactly_and_specials_must_stay(
    scenes: dict[tuple[str, bool], Path], tmp_path: Path, name: str, bound: float
) -> None:
    """One pixel at exactly the bound passes (and is the reported max error); one step past
    it fails; a nodata pixel given a value, a valid pixel turned into nodata and a NaN
    filled in all fail, whatever the bound."""
    kind = KINDS[name]
    src = scenes[(name, False)]
    info = read_info(str(src))
    profile = P("lerc", max_error=bound)
    enc = encode_cog(str(src), tmp_path / "out.tif", profile, info)
    with rasterio.open(src) as s:
        a = s.read()
    band = 2
    ordinary = ~np.any([special(b, kind.nodata) for b in a], axis=0)
    row, col = (int(v) for v in np.argwhere(ordinary)[ordinary.sum() // 2])
    x = float(a[band - 1, row, col])
    at, past = _edge_values(x, bound, kind.dtype)

    ok = _rewrite_with(enc.path, tmp_path / "at.tif", band, row, col, at)
    fid = check_output(str(src), str(ok), info, profile)
    assert fid.max_error is not None
    assert float(at) - x <= fid.max_error[band - 1] <= bound
    if not kind.floating:
        assert fid.max_error[band - 1] == bound

    bad = _rewrite_with(enc.path, tmp_path / "past.tif", band, row, col, past)
    with pytest.raises(VerificationError, match=rf"band {band}: error .* exceeds the bound"):
        check_output(str(src), str(bad), info, profile)

    collar = _rewrite_with(enc.path, tmp_path / "collar.tif", 1, 0, 0, x)
    with pytest.raises(VerificationError, match="nodata/NaN positions differ"):
        check_output(str(src), str(collar), info, profile)
    lost = _rewrite_with(enc.path, tmp_path / "lost.tif", band, row, col, kind.nodata)
    with pytest.raises(VerificationError, match="nodata/NaN positions differ"):
        check_output(str(src), str(lost), info, profile)
    if kind.floating:
        r, c = (int(v) for v in np.argwhere(np.isnan(a[0]))[0])
        filled = _rewrite_with(enc.path, tmp_path / "nan.tif", 1, r, c, 500.0)
        with pytest.raises(VerificationError, match="nodata/NaN positions differ"):
            check_output(str(src), str(filled), info, profile)


# --- 3. metadata -------------------------------------------------------------------------------


def _stats(band: np.ndarray, nodata: float) -> dict[str, str]:
    valid = band[band != nodata].astype(np.float64)
    return {
        "STATISTICS_MINIMUM": repr(float(valid.min())),
        "STATISTICS_MAXIMUM": repr(float(valid.max())),
        "STATISTICS_MEAN": repr(float(valid.mean())),
        "STATISTICS_STDDEV": repr(float(valid.std())),
        "STATISTICS_VALID_PERCENT": f"{100 * valid.size / band.size:.6g}",
    }


def sentinel_metadata(data: np.ndarray, kind: Kind) -> dict[str, Any]:
    """Metadata as a Level-2A product carries it."""
    return {
        "scales": (0.0001, 0.0001, 0.00025)[: kind.bands],
        "offsets": (-0.1, -0.1, 0.0)[: kind.bands],
        "descriptions": ("B04 red", "B08 nir", "B11 swir")[: kind.bands],
        "units": ("reflectance", "reflectance", "W m-2 sr-1 um-1")[: kind.bands],
        "tags": {"PROCESSING_BASELINE": "05.10", "CLOUD_COVERAGE": "12.5", "AREA_OR_POINT": "Area"},
        "domains": {"SENSOR": {"PLATFORM": "Sentinel-2B", "ORBIT": "R108"}},
        "band_tags": [
            _stats(b, kind.nodata) | {"WAVELENGTH": str(665 + 177 * i)} for i, b in enumerate(data)
        ],
        "band_domains": [{"QA": {"SATURATED": str(17 * i)}} for i in range(kind.bands)],
    }


def assert_metadata_kept(path: Path, meta: dict[str, Any], kind: Kind) -> None:
    """Read with rasterio: every item of ``meta`` is in the output, exactly."""
    with rasterio.open(path) as out:
        assert out.scales == meta["scales"]
        assert out.offsets == meta["offsets"]
        assert out.descriptions == meta["descriptions"]
        assert out.units == meta["units"]
        assert out.nodata == kind.nodata
        tags = out.tags()
        assert {k: tags.get(k) for k in meta["tags"]} == meta["tags"]
        assert out.tags(ns="SENSOR") == meta["domains"]["SENSOR"]
        for i in range(kind.bands):
            band_tags = out.tags(i + 1)
            assert {k: band_tags.get(k) for k in meta["band_tags"][i]} == meta["band_tags"][i]
            assert out.tags(i + 1, ns="QA") == meta["band_domains"][i]["QA"]


@pytest.mark.parametrize(
    ("gcps", "band_items"),
    [(False, True), (True, False)],
    ids=["tile-writer", "gdal-writer-without-band-items"],
)
def test_metadata_is_kept_exactly(tmp_path: Path, gcps: bool, band_items: bool) -> None:
    """Scale/offset, descriptions, units, nodata, the default domain and a custom domain of
    the dataset, each band's default domain (``STATISTICS_*``) and a custom band domain."""
    kind = KINDS["uint16"]
    data = scene_pixels(kind, ring=None)
    meta = sentinel_metadata(data, kind)
    if not band_items:
        meta["band_tags"] = [{} for _ in range(kind.bands)]
    src = write_scene(tmp_path / "meta.tif", kind, gcps=gcps, data=data, **meta)
    info = read_info(str(src))
    profile = P("lerc", max_error=2, lerc_inner="zstd")
    assert uses_tile_writer(profile, info) is not gcps
    enc = encode_cog(str(src), tmp_path / "out.tif", profile, info)
    check_output(str(src), str(enc.path), info, profile)
    assert_metadata_kept(enc.path, meta, kind)
    with rasterio.open(enc.path) as out:
        assert float(out.tags(ns="IMAGE_STRUCTURE")["MAX_Z_ERROR"]) == 2


def test_gdal_writer_keeps_metadata_or_is_refused(tmp_path: Path) -> None:
    """GDAL copies either the bands' default domains or every other domain, not both (its
    GTiff ``CreateCopy`` under ``COPY_SRC_MDD=YES`` skips the bands' default domain): a
    scene with both keeps everything or verification refuses it, naming what was lost."""
    kind = KINDS["uint16"]
    data = scene_pixels(kind, ring=None)
    meta = sentinel_metadata(data, kind)
    src = write_scene(tmp_path / "meta.tif", kind, gcps=True, data=data, **meta)
    info = read_info(str(src))
    profile = P("zstd")
    enc = encode_cog(str(src), tmp_path / "out.tif", profile, info)
    problem = None
    try:
        check_output(str(src), str(enc.path), info, profile)
    except VerificationError as err:
        problem = str(err)
    if problem is None:
        assert_metadata_kept(enc.path, meta, kind)
        return
    assert re.search(r"domain (QA|SENSOR): items lost", problem), problem
    with rasterio.open(enc.path) as out:  # what GDAL does keep, it keeps exactly
        for i in range(kind.bands):
            assert out.tags(i + 1) | meta["band_tags"][i] == out.tags(i + 1)


def _without(meta: dict[str, Any], what: str) -> dict[str, Any]:
    """``meta`` with one item lost or changed."""
    m = {k: (list(v) if isinstance(v, tuple) else v) for k, v in meta.items()}
    if what in ("scales", "offsets", "descriptions", "units"):
        m[what][1] = {"scales": 1.0, "offsets": 0.0, "descriptions": "", "units": ""}[what]
    elif what == "tags":
        m["tags"] = {k: v for k, v in meta["tags"].items() if k != "PROCESSING_BASELINE"}
    elif what == "domain":
        m["domains"] = {"SENSOR": {"PLATFORM": "Sentinel-2B"}}
    elif what == "statistics":
        m["band_tags"] = [dict(t) for t in meta["band_tags"]]
        m["band_tags"][1]["STATISTICS_MEAN"] = "1234.5"
    elif what == "band-domain":
        m["band_domains"] = [{"QA": {"SATURATED": "0"}}, {}, {"QA": {"SATURATED": "34"}}]
    return m


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("scales", "scales/offsets"),
        ("offsets", "scales/offsets"),
        ("descriptions", "band descriptions"),
        ("units", "units"),
        ("nodata", "nodata"),
        ("tags", r"dataset default domain: items lost or changed: \['PROCESSING_BASELINE'\]"),
        ("domain", r"dataset domain SENSOR: items lost or changed: \['ORBIT'\]"),
        ("statistics", r"band 2 default domain: items lost or changed: \['STATISTICS_MEAN'\]"),
        ("band-domain", r"band 2 domain QA: items lost or changed: \['SATURATED'\]"),
    ],
)
def test_verification_fails_when_metadata_is_lost(tmp_path: Path, what: str, message: str) -> None:
    kind = KINDS["uint16"]
    data = scene_pixels(kind)
    meta = sentinel_metadata(data, kind)
    src = write_scene(tmp_path / "src.tif", kind, data=data, **meta)
    info = read_info(str(src))
    profile = P("zstd")
    changed = _without(meta, what)
    other_kind = replace(kind, nodata=65535) if what == "nodata" else kind
    other = write_scene(tmp_path / "other.tif", other_kind, data=data, **changed)
    with rasterio.open(src) as s, rasterio.open(src) as same:
        check_metadata(s, same, info, profile)  # the source itself passes
    with rasterio.open(src) as s, rasterio.open(other) as o:
        with pytest.raises(VerificationError, match=message):
            check_metadata(s, o, info, profile)


# --- 4. overviews -------------------------------------------------------------------------------


def _overview(path: Path) -> np.ndarray:
    with rasterio.open(path, OVERVIEW_LEVEL=0) as ovr:
        assert (ovr.width, ovr.height) == (WIDTH // 2, HEIGHT // 2)
        return np.asarray(ovr.read())


@pytest.mark.parametrize("gcps", [False, True], ids=["tile-writer", "gdal-writer"])
def test_overview_policies(
    scenes: dict[tuple[str, bool], Path], tmp_path: Path, gcps: bool
) -> None:
    """``full``: the overview IFD is encoded as the full resolution; ``lossy``: with the
    overview profile (uint16: LERC within its bound of the full-policy overview); ``none``:
    a single IFD, and a profile asking for overviews refuses it. (GDAL's COG driver writes
    LERC overviews under LERC only: its full resolution is lossless LERC.)"""
    name = "uint16"
    kind = KINDS[name]
    src = str(scenes[(name, gcps)])
    info = read_info(src)
    base = P("lerc", lerc_inner="zstd") if gcps else P("zstd", level=3)
    outs: dict[str, EncodedCog] = {}
    policies = {
        "full": base,
        "lossy": replace(
            base, overviews="lossy", overview=P("lerc", max_error=4, lerc_inner="zstd")
        ),
        "none": replace(base, overviews="none"),
    }
    for policy, profile in policies.items():
        enc = encode_cog(src, tmp_path / f"{policy}.tif", profile, info)
        check_output(src, str(enc.path), info, profile)
        assert judge(Path(src), enc.path, kind, None).max_error == (0.0,) * kind.bands
        assert_bytes_add_up(enc)
        outs[policy] = enc
        pages = tiff_pages(enc.path)
        assert_codec_tags(pages[0], profile, kind)
        if policy == "none":
            assert len(pages) == 1
            assert enc.overview_bytes == 0
            with rasterio.open(enc.path) as out:
                assert out.overviews(1) == []
            with pytest.raises(VerificationError, match="no overviews"):
                check_output(src, str(enc.path), info, base)
            continue
        assert len(pages) == 2
        assert pages[1]["subfiletype"] & 1
        assert enc.overview_bytes > 0
        assert_codec_tags(pages[1], profile.overview or profile, kind)
        with pytest.raises(VerificationError, match="the profile says none"):
            check_output(src, str(enc.path), info, policies["none"])
    # The lossy overview is the full-policy overview within its bound (nodata exact), and
    # smaller; the full resolution is the same bytes.
    full_ovr, lossy_ovr = _overview(outs["full"].path), _overview(outs["lossy"].path)
    for k in range(kind.bands):
        x, y = full_ovr[k], lossy_ovr[k]
        sx = special(x, kind.nodata)
        assert np.array_equal(sx, special(y, kind.nodata))
        d = np.abs(x[~sx].astype(np.int64) - y[~sx].astype(np.int64))
        assert 0 < d.max() <= 4
    assert outs["lossy"].overview_bytes < outs["full"].overview_bytes
    assert outs["lossy"].full_bytes == outs["full"].full_bytes
    assert outs["none"].full_bytes == outs["full"].full_bytes


@pytest.mark.parametrize("gcps", [False, True], ids=["tile-writer", "gdal-writer"])
def test_jpeg_overviews_of_8_bit(
    scenes: dict[tuple[str, bool], Path], tmp_path: Path, gcps: bool
) -> None:
    """uint8 RGB-like data lossless at full resolution with JPEG overviews: the overview IFD
    is JPEG with its tables, and its pixels are close to the exact overview's."""
    kind = KINDS["uint8"]
    src = str(scenes[("uint8", gcps)])
    info = read_info(src)
    full = P("deflate", level=6)
    lossy = replace(full, overviews="lossy", overview=P("jpeg", quality=90))
    exact = encode_cog(src, tmp_path / "full.tif", full, info)
    enc = encode_cog(src, tmp_path / "lossy.tif", lossy, info)
    check_output(src, str(enc.path), info, lossy)
    judge(Path(src), enc.path, kind, None)
    assert_bytes_add_up(enc)
    pages = tiff_pages(enc.path)
    assert len(pages) == 2
    assert_codec_tags(pages[0], full, kind)
    assert pages[1]["compression"] == COMPRESSION["jpeg"]
    assert pages[1]["predictor"] == 1
    if not gcps:
        assert pages[1]["jpegtables"]
        assert pages[1]["photometric"] == 6
    a, b = _overview(exact.path).astype(np.float64), _overview(enc.path).astype(np.float64)
    inside = (a != kind.nodata).all(axis=0)
    inside[:8] = inside[-8:] = False  # (JPEG blurs the collar's edge)
    mse = float(((a - b)[:, inside] ** 2).mean())
    assert mse > 0
    assert 10 * math.log10(255**2 / mse) > 35
    assert enc.overview_bytes < exact.overview_bytes


def test_gdal_writer_refuses_lerc_overviews_under_another_codec(
    scenes: dict[tuple[str, bool], Path], tmp_path: Path
) -> None:
    """GDAL 3.10's COG driver fails with "lerc_encode() failed" on them: a clear refusal."""
    src = str(scenes[("uint16", True)])
    info = read_info(src)
    profile = P("zstd", overviews="lossy", overview=P("lerc", max_error=4))
    with pytest.raises(UnsupportedCodecError, match="LERC overviews only under LERC"):
        encode_cog(src, tmp_path / "out.tif", profile, info)
    assert not (tmp_path / "out.tif").exists()


@pytest.mark.parametrize(
    ("name", "nodata", "ring", "bound", "effective"),
    [
        ("uint16", 0, 1, 2.0, 0.0),  # a valid 1 next to nodata 0: lossless
        ("uint16", 0, 3, 7.0, 2.0),  # valid values from 3: the bound is held under 3
        ("int16", -32768, 2, 5.0, 1.0),
        ("float32", -9999.0, 1, 2.0, 0.5),
        ("float32", 1000.0, None, 0.5, 0.0),  # nodata amid the valid values: lossless
    ],
)
def test_gdal_writer_keeps_nodata_exact_next_to_valid_values(
    tmp_path: Path, name: str, nodata: float, ring: int | None, bound: float, effective: float
) -> None:
    """LERC keeps a nodata value only as a block's smallest value, and rounds valid values
    within the bound onto it (GDAL gives liblerc no mask for integers or a nodata value):
    GDAL's writer is given a bound under the distance of the lowest valid value, or none."""
    kind = replace(KINDS[name], nodata=nodata)
    data = scene_pixels(kind, ring=ring)
    if ring is None:  # values above and below nodata, and some exactly at it
        data[:, 100:140, 200:300] = nodata
    src = write_scene(tmp_path / "src.tif", kind, gcps=True, data=data)
    info = read_info(str(src))
    profile = P("lerc", max_error=bound)
    enc = encode_cog(str(src), tmp_path / "out.tif", profile, info)
    fid = check_output(str(src), str(enc.path), info, profile)
    judged = judge(src, enc.path, kind, [bound] * kind.bands)
    assert fid.max_error == judged.max_error
    assert max(judged.max_error) <= effective
    assert (max(judged.max_error) > 0) == (effective > 0)
    with rasterio.open(enc.path) as out:
        assert float(out.tags(ns="IMAGE_STRUCTURE").get("MAX_Z_ERROR", 0)) <= effective
