"""Verification: COG validity, metadata, exact pixels, masks, and the SSIM definition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from skimage.metrics import structural_similarity

from compactor.encode import choose_profile
from compactor.encode._write import write_cog
from compactor.errors import VerificationError
from compactor.fidelity import _compare as compare
from compactor.gdal._info import read_info
from compactor.verify import _verify as verify

from .. import rasters


# 300 px wide, 3 bands: strips of 64 rows (the floor), 100 rows, and the whole image.
@pytest.mark.parametrize("strip_pixels", [64 * 300, 100 * 300, 10**9])
def test_windowed_ssim_equals_whole_image_ssim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strip_pixels: int
) -> None:
    src = rasters.rgb(tmp_path / "c.tif", size=300)
    info = read_info(str(src))
    profile = choose_profile(info, "jpeg", 60)
    out = write_cog(str(src), tmp_path / "o.tif", profile, info)
    monkeypatch.setattr(compare, "STRIP_PIXELS", strip_pixels)
    with rasterio.open(src) as s, rasterio.open(out) as o:
        fid = compare.compare_pixels(s, o, info, profile)
        valid = s.dataset_mask() > 0
        a, b = s.read().astype(float), o.read().astype(float)
    a[:, ~valid] = 0
    b[:, ~valid] = 0
    assert not valid.all()  # a nodata collar: SSIM is the mean over valid pixels only
    expected = min(masked_reference(a[k], b[k], valid) for k in range(3))
    assert fid.ssim == pytest.approx(expected, abs=1e-6)
    # ... which is lower than skimage's mean over every pixel, collar included.
    unmasked = min(structural_similarity(a[k], b[k], data_range=255) for k in range(3))
    assert fid.ssim < unmasked - 0.005
    assert not fid.exact
    mse = ((a - b)[:, valid] ** 2).mean()
    assert fid.psnr == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-9)


def masked_reference(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    """skimage's local SSIM map, averaged over the interior pixels that are valid."""
    _, full = structural_similarity(a, b, data_range=255, full=True)
    return float(full[3:-3, 3:-3][valid[3:-3, 3:-3]].mean())


def test_a_mostly_nodata_scene_is_judged_on_its_valid_pixels(tmp_path: Path) -> None:
    """98 % nodata: counting the (identical) nodata would pass even quality 10."""
    data = np.zeros((3, 400, 400), dtype="uint8")
    texture = rasters.rgb(tmp_path / "t.tif", size=400, nodata_collar=False)
    with rasterio.open(texture) as t:
        data[:, 180:236, 180:236] = t.read()[:, 180:236, 180:236]
    src = rasters.write(tmp_path / "s.tif", data, nodata=0, photometric="RGB")
    info = read_info(str(src))
    profile = choose_profile(info, "jpeg", 10)
    out = write_cog(str(src), tmp_path / "o.tif", profile, info)
    with rasterio.open(src) as s, rasterio.open(out) as o:
        fid = compare.compare_pixels(s, o, info, profile)
        valid = s.dataset_mask() > 0
        a, b = s.read().astype(float), o.read().astype(float)
    a[:, ~valid] = 0
    b[:, ~valid] = 0
    assert valid.mean() < 0.03
    everything = min(structural_similarity(a[k], b[k], data_range=255) for k in range(3))
    assert everything > 0.95  # the old definition: the nodata carries it over the bar
    expected = min(masked_reference(a[k], b[k], valid) for k in range(3))
    assert fid.ssim == pytest.approx(expected, abs=1e-5)  # float32 sums over ~3000 pixels
    assert fid.ssim < 0.9


def _copy_with(src: Path, dst: Path, change: object) -> Path:
    with rasterio.open(src) as s:
        profile = s.profile
        data = s.read()
    changed = change(data, profile)  # type: ignore[operator]
    with rasterio.open(dst, "w", **profile) as d:
        d.write(changed if changed is not None else data)
    return dst


def test_lossless_check_names_the_first_differing_pixel(tmp_path: Path) -> None:
    src = rasters.uint16(tmp_path / "u.tif", size=200)
    info = read_info(str(src))
    profile = choose_profile(info, "zstd")
    out = write_cog(str(src), tmp_path / "o.tif", profile, info)
    verify.check_output(str(src), str(out), info, profile)  # identical: passes

    def bump(data: np.ndarray, _p: object) -> np.ndarray:
        data[2, 150, 33] += 1
        return data

    tampered = _copy_with(src, tmp_path / "t.tif", bump)
    with rasterio.open(src) as s, rasterio.open(tampered) as t:
        with pytest.raises(VerificationError, match=r"band 3, row 150, col 33"):
            compare.compare_pixels(s, t, info, profile)


def test_nan_equals_nan_in_lossless_checks(tmp_path: Path) -> None:
    src = rasters.float32_nan(tmp_path / "f.tif")
    info = read_info(str(src))
    profile = choose_profile(info, "lerc")
    out = write_cog(str(src), tmp_path / "o.tif", profile, info)
    fid = verify.check_output(str(src), str(out), info, profile)
    assert fid.exact


def test_lossy_mask_must_match_exactly(tmp_path: Path) -> None:
    src = rasters.rgb(tmp_path / "c.tif", size=256)
    info = read_info(str(src))
    profile = choose_profile(info, "jpeg", 90)
    good = write_cog(str(src), tmp_path / "o.tif", profile, info)
    verify.check_output(str(src), str(good), info, profile)

    # The same pixels without a mask: GDAL then derives validity from nodata=0, which
    # JPEG does not keep, so the validity masks differ.
    with rasterio.open(good) as g:
        prof = g.profile | {"driver": "GTiff", "compress": "jpeg", "photometric": "ycbcr"}
        data = g.read()
    with rasterio.open(tmp_path / "nomask.tif", "w", **prof) as d:
        d.write(data)
    with rasterio.open(src) as s, rasterio.open(tmp_path / "nomask.tif") as n:
        with pytest.raises(VerificationError, match="validity mask"):
            compare.compare_pixels(s, n, info, profile)


def test_metadata_differences_are_listed(tmp_path: Path) -> None:
    src = rasters.uint16(tmp_path / "u.tif", size=128)
    info = read_info(str(src))
    profile = choose_profile(info, "zstd")

    def lose(data: np.ndarray, p: dict) -> None:  # type: ignore[type-arg]
        p.update(nodata=None, crs="EPSG:4326")

    other = _copy_with(src, tmp_path / "o.tif", lose)
    with rasterio.open(src) as s, rasterio.open(other) as o:
        with pytest.raises(VerificationError) as err:
            verify.check_metadata(s, o, info, profile)
    assert "nodata" in str(err.value)
    assert "CRS" in str(err.value)
    assert "band descriptions" in str(err.value)


def test_not_a_cog_is_rejected(tmp_path: Path) -> None:
    plain = rasters.gray(tmp_path / "g.tif", size=1100)  # striped GeoTIFF, no overviews
    with pytest.raises(VerificationError, match="not a valid COG"):
        verify.validate_cog(str(plain))


@pytest.mark.parametrize("height", [65, 66, 67, 69, 70, 130])
def test_windowed_ssim_with_a_short_last_strip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, height: int
) -> None:
    """64-row strips over 65-70 rows leave a last strip of 1-6 rows."""
    base = rasters.fractal_surface(256, seed=4)[:height, :200]
    data = (base * 250 + 3).astype("uint8")[None]
    src = rasters.write(tmp_path / "s.tif", data)
    info = read_info(str(src))
    profile = choose_profile(info, "jpeg", 50)
    out = write_cog(str(src), tmp_path / "o.tif", profile, info)
    monkeypatch.setattr(compare, "STRIP_PIXELS", 1)
    monkeypatch.setattr(verify, "STRIP_PIXELS", 1)
    with rasterio.open(src) as s, rasterio.open(out) as o:
        fid = compare.compare_pixels(s, o, info, profile)
        expected = structural_similarity(
            s.read(1).astype(float), o.read(1).astype(float), data_range=255
        )
    assert fid.ssim == pytest.approx(expected, abs=1e-6)


def test_rpcs_compare_as_gdal_stores_them() -> None:
    """GDAL writes RPC coefficients with 15 significant digits (its own COG driver too): an
    RPC model read from a .RPB with 17 digits is the same model; any real change is not."""
    from rasterio.rpc import RPC

    from compactor.verify._verify import same_rpcs

    coeffs = [1.0, 0.0001288248348598096, -0.2236921251351129] + [1.146312542835972e-14] * 17
    model = {
        "height_off": 1046.8700801726143, "height_scale": 962.0000000000239,
        "lat_off": 39.81995259980312, "lat_scale": 0.076441044582353,
        "long_off": 46.78512432108022, "long_scale": 0.088548703456659,
        "line_off": 2295.0, "line_scale": 3540.0, "samp_off": 2792.0, "samp_scale": 2950.0,
        "line_num_coeff": coeffs, "line_den_coeff": coeffs, "samp_num_coeff": coeffs,
        "samp_den_coeff": coeffs, "err_bias": 1.0, "err_rand": None,
    }  # fmt: skip
    as_gdal_writes = {
        k: [float(f"{x:.15g}") for x in v] if isinstance(v, list) else
        (v if v is None else float(f"{v:.15g}"))
        for k, v in model.items()
    }  # fmt: skip
    assert same_rpcs(RPC(**model), RPC(**as_gdal_writes))
    assert same_rpcs(RPC(**model), RPC(**dict(model, err_rand=-1.0)))  # GDAL's "unknown"
    assert not same_rpcs(RPC(**model), RPC(**dict(model, err_rand=0.5)))
    moved = dict(model, lat_off=39.81995259980312 * (1 + 1e-10))
    assert not same_rpcs(RPC(**model), RPC(**moved))
    other = dict(model, line_num_coeff=[*coeffs[:-1], 2e-14])
    assert not same_rpcs(RPC(**model), RPC(**other))


GOODE = (
    'PROJCS["Interrupted_Goode_Homolosine",GEOGCS["GCS_unnamed_ellipse",DATUM["unknown",'
    'SPHEROID["Unknown",6378137,298.257223563]],PRIMEM["Greenwich",0],'
    'UNIT["Degree",0.0174532925199433]],PROJECTION["Interrupted_Goode_Homolosine"],'
    'PARAMETER["central_meridian",{lon}],PARAMETER["false_easting",0],'
    'PARAMETER["false_northing",0],UNIT["metre",1,AUTHORITY["EPSG","9001"]],'
    'AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)


def test_a_crs_is_the_same_as_geotiff_keys_hold_it() -> None:
    """The Interrupted Goode CRS of MapServer's tileSG-000-019_3-3.tif comes back from GeoTIFF
    keys (GDAL's own COG too) with its ESRI name's underscore a space and its default
    parameters gone: the same CRS. A changed parameter is not."""
    from rasterio.crs import CRS

    from compactor.verify._verify import same_crs

    src = CRS.from_wkt(GOODE.format(lon=0))
    keys = CRS.from_wkt(
        GOODE.format(lon=0)
        .replace("GCS_unnamed_ellipse", "GCS_unnamed ellipse")
        .replace('PARAMETER["central_meridian",0],PARAMETER["false_easting",0],'
                 'PARAMETER["false_northing",0],', "")
    )  # fmt: skip
    assert src != keys  # rasterio's equality says no...
    assert same_crs(src, keys)  # ...the definitions are one
    assert not same_crs(src, CRS.from_wkt(GOODE.format(lon=10)))
    assert not same_crs(src, None)
    assert same_crs(CRS.from_epsg(4326), CRS.from_epsg(4326))


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_ssim_sums_equal_skimage_across_kernel_blocks(dtype: str) -> None:
    """The compiled 8-bit kernel (column blocks of 1024 with context, exact integer sums)
    and the OpenCV path for other types give skimage's mean of the local SSIM map, over all
    interior windows and over those centred on valid pixels."""
    from compactor.fidelity import ssim_sum

    rng = np.random.default_rng(7)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(130, 2300)), axis=0), axis=1)
    a = np.clip(128 + smooth / np.abs(smooth).max() * 120, 0, 255).astype(dtype)
    b = np.clip(a.astype(float) + rng.integers(-9, 10, a.shape), 0, 255).astype(dtype)
    _, full = structural_similarity(a.astype(float), b.astype(float), data_range=255, full=True)
    interior = full[3:-3, 3:-3]
    valid = np.zeros(a.shape, bool)
    valid[10:120, 500:2100] = True
    valid[50:60, 700:705] = False
    total, count = ssim_sum(a, b, 255.0)
    assert count == interior.size
    assert total / count == pytest.approx(interior.mean(), abs=1e-9 if dtype == "uint8" else 1e-6)
    total, count = ssim_sum(a, b, 255.0, valid=valid)
    assert count == int(valid[3:-3, 3:-3].sum())
    expected = interior[valid[3:-3, 3:-3]].mean()
    assert total / count == pytest.approx(expected, abs=1e-9 if dtype == "uint8" else 1e-6)
