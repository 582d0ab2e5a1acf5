"""Alpha bands and masks as GDAL sees them (issue 23): a binary alpha becomes the mask, a
graded one stays a band exactly; verification compares the source's masks, alpha, CRS and
computes SSIM over exactly the pixels GDAL says are valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from skimage.metrics import structural_similarity

from compactor.cog import Profile
from compactor.encode import choose_profile
from compactor.errors import VerificationError
from compactor.gdal import read_info
from compactor.verify import check_output

from .. import rasters
from ..reports import scenes_of

RGBA = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]


def graded_rgba(path: Path, size: int = 384) -> tuple[Path, np.ndarray]:
    """An RGBA scene whose alpha has 65 levels (0, 4, 8, ..., 252 and 255, as MapServer's
    ``rgba.tif``): a transparent left edge, a ramp of partly transparent pixels, opaque."""
    rasters.rgb(path, size, seed=3, nodata_collar=False)
    with rasterio.open(path) as src:
        colour = src.read()
    cols = np.arange(size)
    levels = np.minimum(cols * 2, 256)
    levels = np.where(levels >= 256, 255, levels // 4 * 4).astype("uint8")
    alpha = np.broadcast_to(levels, (size, size)).copy()
    assert len(np.unique(alpha)) == 65
    data = np.concatenate([colour, alpha[None]])
    return rasters.write(path, data, colorinterp=RGBA), alpha


def binary_rgba(path: Path, size: int = 384) -> tuple[Path, np.ndarray]:
    rasters.rgba(path, size)
    with rasterio.open(path) as src:
        return path, src.read(4)


def masked_rgb(path: Path, size: int = 384) -> tuple[Path, np.ndarray]:
    """An RGB scene with an internal per-dataset mask (``GDAL_TIFF_INTERNAL_MASK``) whose
    masked collar holds noise, not a nodata value (rasterio's ``RGB2.byte.tif`` + mask)."""
    rasters.rgb(path, size, seed=2, nodata_collar=False)
    with rasterio.open(path) as src:
        data = src.read()
    valid = rasters._footprint(size)
    noise = np.random.default_rng(7).integers(0, 256, data.shape, dtype=np.uint8)
    data[:, ~valid] = noise[:, ~valid]
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        rasters.write(path, data, photometric="RGB")
        with rasterio.open(path, "r+") as dst:
            dst.write_mask(valid.astype("uint8") * 255)
    with rasterio.open(path) as src:
        assert src.files == [str(path)]  # internal, not a sidecar
        assert np.array_equal(src.dataset_mask() > 0, valid)
    return path, valid


def run(cli: Any, src: Path, dest: Path, *extra: str) -> dict[str, dict[str, Any]]:
    result = cli("run", "--source", str(src), "--dest", str(dest), *extra)
    assert result.exit_code == 0, result.output
    report = json.loads(next((dest / "_compactor" / "runs").glob("*/report.json")).read_text())
    return {Path(s["source"]).name: s for s in scenes_of(report)}


# --- end to end ---------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["one task", "chunked"])
def test_graded_alpha_is_kept_exactly(cli: Any, tmp_path: Path, chunked: bool) -> None:
    """65 alpha levels, thousands of partly transparent pixels: the output keeps 4 bands
    and the alpha band exactly (at e4f1f84 it became a 1-bit mask, 3 bands, and passed)."""
    src = tmp_path / "src"
    path, alpha = graded_rgba(src / "rgba.tif")
    partly = int(np.count_nonzero((alpha > 0) & (alpha < 255)))
    assert partly > 3969
    with rasterio.open(path) as s:
        colour = s.read([1, 2, 3])
    extra = ("--chunk-threshold", "1KiB") if chunked else ()
    scenes = run(cli, src, tmp_path / "out", *extra)
    assert scenes["rgba.tif"]["status"] == "compacted", scenes["rgba.tif"]
    with rasterio.open(tmp_path / "out" / "rgba.tif") as out:
        assert out.count == 4
        assert out.colorinterp[3] == ColorInterp.alpha
        assert np.array_equal(out.read(4), alpha)
        assert np.array_equal(out.read([1, 2, 3]), colour)  # lossless: the colour too
    assert scenes["rgba.tif"]["lossless"] is True


@pytest.mark.parametrize("chunked", [False, True], ids=["one task", "chunked"])
def test_binary_alpha_becomes_an_equal_mask(cli: Any, tmp_path: Path, chunked: bool) -> None:
    src = tmp_path / "src"
    _, alpha = binary_rgba(src / "rgba.tif")
    extra = ("--chunk-threshold", "1KiB") if chunked else ()
    scenes = run(cli, src, tmp_path / "out", "--quality", "90", *extra)
    assert scenes["rgba.tif"]["codec"] == "jpeg"
    with rasterio.open(tmp_path / "out" / "rgba.tif") as out:
        assert out.count == 3
        assert all(f == [rasterio.enums.MaskFlags.per_dataset] for f in out.mask_flag_enums)
        assert np.array_equal(out.dataset_mask() > 0, alpha > 0)
        assert np.array_equal(out.dataset_mask(), alpha)  # 0 and 255 exactly


def test_ssim_is_over_the_valid_pixels_of_an_internal_mask(cli: Any, tmp_path: Path) -> None:
    """An internal mask over a noisy collar: the output keeps the mask, and the SSIM
    reported is skimage's local SSIM averaged over the valid pixels only (the collar's
    noise left out), not over the collar too."""
    src = tmp_path / "src"
    path, valid = masked_rgb(src / "m.tif")
    scenes = run(cli, src, tmp_path / "out", "--quality", "75", "--min-ssim", "0")
    scene = scenes["m.tif"]
    assert scene["codec"] == "jpeg"
    with rasterio.open(path) as s, rasterio.open(tmp_path / "out" / "m.tif") as o:
        assert np.array_equal(o.dataset_mask() > 0, valid)
        a, b = s.read(), o.read()
    a[:, ~valid] = 0
    b[:, ~valid] = 0
    inner = valid[3:-3, 3:-3]
    expected = min(
        float(structural_similarity(a[k], b[k], data_range=255, full=True)[1][3:-3, 3:-3][inner].mean())
        for k in range(3)
    )  # fmt: skip
    assert scene["ssim"] == pytest.approx(expected, abs=1e-4)


# --- check_output on outputs written by hand -----------------------------------------------


def _write_like(path: Path, src: Path, data: np.ndarray, **change: Any) -> Path:
    """A GeoTIFF with ``src``'s georeferencing and ``data``, as a valid COG (GDAL's COG
    driver, lossless), with ``change`` applied to the profile (``mask``: an internal mask)."""
    mask = change.pop("mask", None)
    colorinterp = change.pop("colorinterp", None)
    with rasterio.open(src) as s:
        profile = {"crs": s.crs, "transform": s.transform, "nodata": s.nodata}
    profile.update(change)
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        rasters.write(tmp, data, colorinterp=colorinterp, **profile)
        if mask is not None:
            with rasterio.open(tmp, "r+") as dst:
                dst.write_mask(mask)
        with rasterio.open(tmp) as t:
            rasterio.shutil.copy(t, path, driver="COG", COMPRESS="DEFLATE")
    tmp.unlink()
    return path


def test_check_output_refuses_a_graded_alpha_flattened_into_a_mask(tmp_path: Path) -> None:
    src, alpha = graded_rgba(tmp_path / "src.tif", size=256)
    info = read_info(str(src))
    profile = choose_profile(info, "jpeg", 90)  # the header alone: alpha -> mask
    assert profile.drop_alpha
    with rasterio.open(src) as s:
        colour = s.read([1, 2, 3])
    out = _write_like(
        tmp_path / "out.tif", src, colour, photometric="RGB", mask=(alpha > 0).astype("uint8") * 255
    )
    with pytest.raises(VerificationError, match="partly transparent"):
        check_output(str(src), str(out), info, profile)


def test_check_output_refuses_a_lost_alpha_band(tmp_path: Path) -> None:
    """A lossless output without the alpha band fails naming the mask it lost."""
    src, _ = graded_rgba(tmp_path / "src.tif", size=256)
    info = read_info(str(src))
    with rasterio.open(src) as s:
        data = s.read()
    out = _write_like(tmp_path / "out.tif", src, data, photometric="RGB")  # 4th band: no alpha
    with pytest.raises(VerificationError, match="mask none != the source's alpha"):
        check_output(str(src), str(out), info, Profile(codec="zstd"))


def test_check_output_refuses_a_lost_mask(tmp_path: Path) -> None:
    """A lossless output with every pixel but no mask: the source's internal mask is lost.
    Caught whatever the scene's ``RasterInfo`` said (here: no mask, as a sidecar the info
    was read without would say)."""
    src, _ = masked_rgb(tmp_path / "src.tif", size=256)
    with rasterio.open(src) as s:
        data = s.read()
    out = _write_like(tmp_path / "out.tif", src, data, photometric="RGB")
    unaware = read_info(str(out))  # the header of a scene without its mask
    assert not unaware.has_dataset_mask
    with pytest.raises(VerificationError, match="per-dataset mask"):
        check_output(str(src), str(out), unaware, Profile(codec="zstd"))


def test_check_output_ssim_uses_gdals_mask_not_the_info(tmp_path: Path) -> None:
    """A lossy output with the source's mask, its valid pixels equal and its collar
    different: measured over GDAL's valid pixels of the source it is exact (SSIM 1), even
    where the info given says the scene has no mask (at e4f1f84 every pixel counted as
    valid, and the output's mask was refused for differing from "none")."""
    src, valid = masked_rgb(tmp_path / "src.tif", size=256)
    with rasterio.open(src) as s:
        data = s.read()
    data[:, ~valid] = 0  # the collar is not data: the output may hold anything there
    mask = valid.astype("uint8") * 255
    out = _write_like(tmp_path / "out.tif", src, data, photometric="RGB", mask=mask)
    unaware = read_info(str(rasters.rgb(tmp_path / "plain.tif", 256, nodata_collar=False)))
    assert not unaware.has_dataset_mask
    fid = check_output(str(src), str(out), unaware, Profile(codec="jpeg", quality=90))
    assert fid.ssim == 1.0
    assert fid.exact


def test_check_output_refuses_a_lost_crs(tmp_path: Path) -> None:
    src = rasters.gray(tmp_path / "src.tif", size=256, nodata=0)
    info = read_info(str(src))
    with rasterio.open(src) as s:
        data = s.read()
    out = _write_like(tmp_path / "out.tif", src, data, crs=None)
    with pytest.raises(VerificationError, match="CRS"):
        check_output(str(src), str(out), info, Profile(codec="zstd"))


def _with_gcps(path: Path, source: Path) -> Path:
    """``source``'s bands, colour interpretation and pixels, georeferenced by GCPs (so GDAL's
    COG driver writes it, not the tile writer)."""
    from rasterio.control import GroundControlPoint

    with rasterio.open(source) as s:
        data, ci, crs = s.read(), s.colorinterp, s.crs
    size = data.shape[1]
    gcps = [
        GroundControlPoint(row=r, col=c, x=500000 + 10 * c, y=4200000 - 10 * r)
        for r, c in ((0, 0), (0, size), (size, 0), (size, size))
    ]
    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=data.shape[0],
        dtype="uint8", gcps=gcps, crs=crs,
    ) as dst:  # fmt: skip
        dst.write(data)
        dst.colorinterp = ci
    return path


@pytest.mark.parametrize("graded", [True, False], ids=["graded", "binary"])
def test_gdal_writer_keeps_alpha(tmp_path: Path, graded: bool) -> None:
    """Scenes georeferenced by GCPs go through GDAL's COG driver: a graded alpha stays an
    identical band (the scene lossless), a binary one becomes an equal mask."""
    from compactor.encode import choose_encoding, uses_tile_writer, write_cog
    from compactor.gdal import gdal_env
    from compactor.settings import Encoding

    make = graded_rgba if graded else binary_rgba
    plain, alpha = make(tmp_path / "plain.tif", 256)
    src = _with_gcps(tmp_path / "src.tif", plain)
    info = read_info(str(src))
    assert info.alpha_index == 4
    with gdal_env({}):
        encoding = Encoding(
            codec="auto", quality=90, min_ssim=0.0, allow_webp=False, min_saving=0.0,
            chunk_threshold=1 << 30, bigtiff="auto", overviews="full",
        )  # fmt: skip
        choice = choose_encoding(str(src), info, encoding, tmp_path / "scratch")
    profile = choice.profile
    assert not uses_tile_writer(profile, info)
    assert profile.lossless == graded
    out = write_cog(str(src), tmp_path / "out.tif", profile, info)
    fid = check_output(str(src), str(out), info, profile)
    with rasterio.open(out) as o:
        if graded:
            assert fid.exact
            assert o.count == 4
            assert np.array_equal(o.read(4), alpha)
        else:
            assert o.count == 3
            assert np.array_equal(o.dataset_mask(), alpha)
