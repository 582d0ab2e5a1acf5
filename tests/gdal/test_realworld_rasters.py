"""Shapes of real archives that once aborted a whole run (issue 23), each through
``compactor run`` on local folders: a compacted scene whose output holds every pixel, band,
alpha value and colour table of the source, or a failed scene with a reason to act on."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from .. import rasters
from ..reports import scenes_of

Make = Callable[[Path], Path]


def run_folder(cli: Any, tmp_path: Path, make: Make, *extra: str) -> dict[str, Any]:
    """Make one scene in a source folder, compact it with an archive folder; what happened:
    the CLI result, the report, the scene's record, the original's bytes and folders."""
    src = tmp_path / "src"
    scene = make(src)
    original = scene.read_bytes()
    dest, arch = tmp_path / "cogs", tmp_path / "archive"
    result = cli("run", "--source", str(src), "--dest", str(dest), "--archive", str(arch), *extra)
    reports = list((dest / "_compactor" / "runs").glob("*/report.json"))
    assert len(reports) == 1, result.output
    report = json.loads(reports[0].read_text())
    (record,) = scenes_of(report)
    return {
        "result": result, "report": report, "scene": record, "name": scene.name,
        "original": original, "src": src, "dest": dest, "archive": arch,
    }  # fmt: skip


def compacted(run: dict[str, Any]) -> tuple[Path, Path]:
    """Assert the scene was compacted and its original archived byte for byte; (the archived
    original, the output)."""
    assert run["result"].exit_code == 0, run["result"].output
    assert run["scene"]["status"] == "compacted", run["scene"]["reason"]
    archived = run["archive"] / run["name"]
    assert archived.read_bytes() == run["original"]
    assert not (run["src"] / run["name"]).exists()
    out = run["dest"] / Path(run["name"]).with_suffix(".tif")
    valid, errors, _ = cog_validate(str(out), quiet=True)
    assert valid or all(e.startswith("Invalid Decimation") for e in errors), errors
    return archived, out


def assert_same_pixels(source: Path, output: Path, colormap: bool = False) -> None:
    """Every band of the output equals the source's, with the same types, colour
    interpretation and masks; the colour table keeps every entry of the source's."""
    with rasterio.open(source) as s, rasterio.open(output) as o:
        assert (o.width, o.height, o.count) == (s.width, s.height, s.count)
        assert o.dtypes == s.dtypes
        assert o.colorinterp == s.colorinterp
        a, b = s.read(), o.read()
        assert a.dtype == b.dtype
        assert np.array_equal(a, b)
        assert np.array_equal(s.dataset_mask(), o.dataset_mask())
        if colormap:
            theirs, ours = s.colormap(1), o.colormap(1)
            assert {k: ours[k] for k in theirs} == theirs


def test_complex_int16_is_kept_exactly(cli: Any, tmp_path: Path) -> None:
    """CInt16 (rio-cogeo's slc.tif): once ``data type 'complex_int16' not understood``."""
    run = run_folder(cli, tmp_path, lambda d: rasters.complex_int16(d / "slc.tif"))
    source, out = compacted(run)
    assert run["scene"]["lossless"]
    assert run["scene"]["codec"] in ("zstd", "deflate", "lzw")
    assert_same_pixels(source, out)
    with rasterio.open(out) as o:
        assert o.dtypes == ("complex_int16",)
        assert np.iscomplexobj(o.read())
        assert np.abs(o.read().imag).max() > 0


def test_complex_int16_refused_by_a_codec_that_cannot(cli: Any, tmp_path: Path) -> None:
    """LERC takes no complex data: a failed scene saying so, the original where it was."""
    run = run_folder(
        cli, tmp_path, lambda d: rasters.complex_int16(d / "slc.tif"), "--codec", "lerc"
    )
    assert run["result"].exit_code == 1
    assert run["scene"]["status"] == "failed"
    assert "does not encode complex data" in run["scene"]["reason"]
    assert (run["src"] / "slc.tif").read_bytes() == run["original"]


def test_grey_alpha_keeps_its_graded_alpha(cli: Any, tmp_path: Path) -> None:
    """Grey + graded alpha (rio-tiler's clp.tif): once a JPEG encoder crash; the alpha
    stays a band, every grade of it exact."""
    run = run_folder(cli, tmp_path, lambda d: rasters.grey_alpha(d / "clp.tif"))
    source, out = compacted(run)
    assert run["scene"]["lossless"]
    with rasterio.open(source) as s:
        grades = np.unique(s.read(2))
    assert len(grades) > 100  # really graded
    assert_same_pixels(source, out)


def test_palette_alpha_keeps_colour_table_and_alpha(cli: Any, tmp_path: Path) -> None:
    """Palette + alpha (Pillow's rdf.tif): once ``NULL color table`` in verification."""
    run = run_folder(cli, tmp_path, lambda d: rasters.palette_alpha(d / "rdf.tif"))
    source, out = compacted(run)
    assert run["scene"]["lossless"]
    assert_same_pixels(source, out, colormap=True)
    with rasterio.open(out) as o:
        assert [ci.name for ci in o.colorinterp] == ["palette", "alpha"]


# The extreme shapes are stored in 512 x 512 tiles (GDAL's COG layout), mostly padding: the
# output may be larger than the original, so --min-saving lets it be kept and checked.
EXTREME = ("--min-saving", "-100")


@pytest.mark.parametrize("chunked", [False, True])
def test_one_bit_one_pixel_wide(cli: Any, tmp_path: Path, chunked: bool) -> None:
    """1 x 65537 bilevel CCITT G4 (image-tiff's big_g4.tif): once ``KeyError: (5, 4)``
    (a last strip of one row had a merge node of its own), in one task and in chunks."""
    extra = [*EXTREME, *(("--chunk-threshold", "1KiB") if chunked else ())]
    run = run_folder(cli, tmp_path, lambda d: rasters.one_bit(d / "g4.tif", 1, 65537), *extra)
    source, out = compacted(run)
    assert run["scene"]["chunked"] is chunked
    assert run["scene"]["lossless"]
    assert_same_pixels(source, out, colormap=True)
    with rasterio.open(out) as o:
        assert len(o.overviews(1)) > 0
        assert set(np.unique(o.read())) == {0, 1}


@pytest.mark.parametrize(("width", "height"), [(100000, 1), (1, 100000)])
def test_one_pixel_strip(cli: Any, tmp_path: Path, width: int, height: int) -> None:
    """100000 x 1 (node-gdal's sample_bigtiff.tif): once ``cannot reshape array`` making
    overviews of a 1-row strip; and its transpose."""
    run = run_folder(
        cli, tmp_path, lambda d: rasters.strip(d / "line.tif", width, height), "--codec", "zstd",
        *EXTREME,
    )  # fmt: skip
    source, out = compacted(run)
    assert_same_pixels(source, out)
    with rasterio.open(out) as o:
        assert len(o.overviews(1)) > 0
        for level in range(len(o.overviews(1))):
            with rasterio.open(out, OVERVIEW_LEVEL=level) as ovr:
                assert min(ovr.width, ovr.height) == 1
                ovr.read()


def test_nitf_without_an_image_fails_with_a_reason(cli: Any, tmp_path: Path) -> None:
    """A NITF with no image segment (nitro's test_blank.ntf): once an IndexError."""
    run = run_folder(cli, tmp_path, lambda d: rasters.nitf_without_image(d / "blank.ntf"))
    assert run["result"].exit_code == 1, run["result"].output
    assert run["scene"]["status"] == "failed"
    assert run["scene"]["reason"].startswith("no raster in this NITF: it has no image segment")
    assert (run["src"] / "blank.ntf").read_bytes() == run["original"]
    assert not run["archive"].exists() or not any(run["archive"].iterdir())
