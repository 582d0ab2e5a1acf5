"""What a user reads (issue 23, "messages a user can act on"): reasons that say what is
wrong, a quiet stderr at default verbosity with library warnings kept in the scene log, and
a report written even when a run stops early. Real corpus files (tests/data/realworld)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..realworld_check import CORPUS

COMPACTOR = str(Path(sys.executable).with_name("compactor"))


def _copy(dest: Path, *paths: str) -> Path:
    for p in paths:
        (dest / p).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CORPUS / p, dest / p)
    return dest


def _report(dest: Path) -> dict[str, Any]:
    reports = sorted((dest / "_compactor" / "runs").glob("*/report.json"))
    assert reports, f"no report under {dest}"
    return dict(json.loads(reports[-1].read_text()))


def _scenes(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from compactor.records import read_scene_log

    return {
        Path(r.source.removeprefix("file://")).name: r.model_dump(mode="json")
        for r in read_scene_log(report["scene_log"]["location"])
    }


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMPACTOR, *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.e2e  # starts its own processes
def test_default_run_keeps_library_warnings_off_stderr_and_in_the_scene_log(
    tmp_path: Path,
) -> None:
    """A TIFF without a geotransform (rasterio's NotGeoreferencedWarning) and one whose
    GDAL_NODATA its data type cannot hold (tifffile's log line), on a local cluster the CLI
    starts: nothing reaches stderr with -q, and each scene's warnings are in the scene log."""
    src = _copy(tmp_path / "src", "mapserver/grey.tif", "gdalraster/storml_elev.tif")
    dest = tmp_path / "dest"
    proc = _run(
        ["-q", "run", "--source", str(src), "--dest", str(dest), "--workers", "1",
         "--min-saving", "-100"]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    scenes = _scenes(_report(dest))
    assert scenes["grey.tif"]["status"] == "compacted"
    assert any("NotGeoreferencedWarning" in w for w in scenes["grey.tif"]["warnings"]), scenes[
        "grey.tif"
    ]["warnings"]
    assert scenes["storml_elev.tif"]["status"] == "compacted"
    assert any("not castable" in w for w in scenes["storml_elev.tif"]["warnings"]), scenes[
        "storml_elev.tif"
    ]["warnings"]


def test_a_run_stopped_midway_still_writes_its_report(tmp_path: Path, dask_scheduler: str) -> None:
    """The client fails after the second result is recorded (a failpoint in its collection
    loop): the run exits non-zero, yet report.json exists, says the run was stopped, and
    lists the two scenes finished before the stop (their outputs in place)."""
    names = ["rasterio/byte.tif", "mapserver/grey.tif", "rasterio/float.tif",
             "gdalraster/storml_elev.tif", "rio-tiler/cog_gradient.tif"]  # fmt: skip
    src = _copy(tmp_path / "src", *names)
    dest = tmp_path / "dest"
    proc = _run(
        ["-q", "run", "--source", str(src), "--dest", str(dest), "--scheduler", dask_scheduler,
         "--min-saving", "-100"],
        env={"COMPACTOR_FAILPOINTS": "client-collected@2=raise"},
    )  # fmt: skip
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "InjectedFault" in proc.stderr
    report = _report(dest)
    assert report["interrupted"]
    assert "InjectedFault" in report["interrupted"]
    scenes = _scenes(report)
    assert len(scenes) == 2
    assert report["totals"]["scenes"] == 2
    for rec in scenes.values():
        assert rec["status"] == "compacted", rec
        assert Path(rec["output"].removeprefix("file://")).is_file()
    html = next((dest / "_compactor" / "runs").glob("*/report.html")).read_text()
    assert "Stopped early" in html


def test_a_tiff_with_a_broken_second_ifd_is_read_as_gdal_reads_it(tmp_path: Path, cli: Any) -> None:
    """GDAL opens pillow/child_ifd_jpeg.tiff (its second IFD lacks ImageLength: GDAL says
    so and reads the first image); it was failed as "not a raster GDAL can open"."""
    src = _copy(tmp_path / "src", "pillow/child_ifd_jpeg.tiff")
    dest = tmp_path / "dest"
    result = cli("run", "--source", str(src), "--dest", str(dest), "--min-saving", "-100")
    rec = _scenes(_report(dest))["child_ifd_jpeg.tiff"]
    assert result.exit_code == 0, (result.output, rec)
    assert rec["status"] == "compacted"
    assert any("ImageLength" in w for w in rec["warnings"]), rec["warnings"]


@pytest.mark.e2e  # starts its own processes
def test_ctrl_c_midway_still_writes_the_report_of_what_finished(tmp_path: Path) -> None:
    """SIGINT to a ``compactor run`` (a local cluster, one worker, each scene slowed) once
    the first batch of small scenes is in place: the CLI says it was interrupted, and
    report.json exists, says so, and lists the scenes finished before the stop and no
    others. Small scenes travel 8 to a task and their results reach the client together:
    the first batch's 8 are reported, the ninth, in flight, is not (its state record lets
    the next run take it up)."""
    import signal
    import time

    names = ["a/byte.tif", "b/grey.tif", "c/float.tif", "d/storml_elev.tif",
             "e/cog_gradient.tif", "f/float32.tif", "g/green.tif", "h/red.tif",
             "i/world.byte.tif"]  # fmt: skip
    corpus = ["rasterio/byte.tif", "mapserver/grey.tif", "rasterio/float.tif",
              "gdalraster/storml_elev.tif", "rio-tiler/cog_gradient.tif", "rasterio/float32.tif",
              "rasterio/green.tif", "rasterio/red.tif", "rasterio/world.byte.tif"]  # fmt: skip
    src = tmp_path / "src"
    for name, path in zip(names, corpus, strict=True):  # listed in this order
        (src / name).parent.mkdir(parents=True)
        shutil.copyfile(CORPUS / path, src / name)
    dest = tmp_path / "dest"
    proc = subprocess.Popen(
        [COMPACTOR, "-q", "run", "--source", str(src), "--dest", str(dest), "--workers", "1",
         "--min-saving", "-100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "COMPACTOR_FAILPOINTS": "after-discovered=sleep:3"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while len(list(dest.rglob("*.tif"))) < 8 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        time.sleep(2.0)  # the first batch's results reach the client; the ninth sleeps
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "Interrupted" in err
    report = _report(dest)
    assert report["interrupted"]
    assert "Ctrl-C" in report["interrupted"]
    scenes = _scenes(report)
    assert len(scenes) == 8, sorted(scenes)
    assert report["totals"]["scenes"] == len(scenes)
    for rec in scenes.values():
        assert rec["status"] == "compacted", rec
        assert Path(rec["output"].removeprefix("file://")).is_file()


def test_reasons_say_what_is_wrong_and_every_extension_is_listed(tmp_path: Path, cli: Any) -> None:
    """Undecodable JPEG 2000 files say so, with GDAL's word, not the VRT refusal, which only
    a file holding markup gets; a JPEG 2000 named .j2k is listed by default and compacted;
    a run without --archive says the originals stay and what the outputs add."""
    src = _copy(
        tmp_path / "src", "pillow/00r0_gray_l.jp2", "glymur/edf_c2_1178956.jp2",
        "image-tiff/colormap-shl-overflow.tiff",
    )  # fmt: skip
    shutil.copyfile(CORPUS / "pillow/comment.jp2", src / "comment.j2k")
    (src / "vrt.tif").write_text('<VRTDataset rasterXSize="1" rasterYSize="1"/>')
    dest = tmp_path / "dest"
    result = cli(
        "run", "--source", str(src), "--dest", str(dest), "--min-saving", "-100", quiet=False
    )  # fmt: skip
    scenes = _scenes(_report(dest))
    for name in ("00r0_gray_l.jp2", "edf_c2_1178956.jp2"):
        reason = scenes[name]["reason"]
        assert reason.startswith("a JPEG 2000 file GDAL's JP2OpenJPEG driver cannot decode")
        assert "VRT" not in reason
    assert "opj_read_header() failed" in scenes["edf_c2_1178956.jp2"]["reason"]
    assert scenes["colormap-shl-overflow.tiff"]["reason"].startswith(
        "a TIFF GDAL's GTiff driver cannot read: "
    )
    assert "markup" in scenes["vrt.tif"]["reason"]
    assert "VRT" in scenes["vrt.tif"]["reason"]
    assert scenes["comment.j2k"]["status"] == "compacted", scenes["comment.j2k"]
    assert "saving > -$" not in result.output
    assert "the originals stay where they are (no --archive" in result.output


def test_default_globs_cover_what_the_allowed_drivers_read() -> None:
    from rasterio.drivers import raster_driver_extensions

    from compactor.gdal import SOURCE_DRIVERS
    from compactor.settings._meta import DEFAULT_INCLUDE

    gdal_says = {e for e, d in raster_driver_extensions().items() if d in SOURCE_DRIVERS}
    assert {"tif", "tiff", "jp2", "j2k", "ntf", "img"} <= gdal_says | {"j2k"}
    assert {f"*.{e}" for e in gdal_says | {"nitf", "jpx", "gtif"}} <= set(DEFAULT_INCLUDE)


def test_a_gcp_scene_above_the_chunk_threshold_says_why_and_which_flag(
    tmp_path: Path, cli: Any
) -> None:
    src = _copy(tmp_path / "src", "georust-gdal/gcp.tif")
    dest = tmp_path / "dest"
    cli("run", "--source", str(src), "--dest", str(dest), "--chunk-threshold", "64")
    reason = _scenes(_report(dest))["gcp.tif"]["reason"]
    assert reason.startswith("this scene is georeferenced by GCPs or RPCs: GDAL's COG driver")
    assert "120 B of raw pixels, more than --chunk-threshold (64 B)" in reason
    assert "a --chunk-threshold above that lets one task take it" in reason


def test_a_webp_rgba_scene_compacts_to_a_valid_cog(tmp_path: Path, cli: Any) -> None:
    """image-tiff/usda_naip_256_webp_z3.tif (1024 x 2048, WEBP, alpha) failed as "output is
    not a valid COG: Overview of index 0 is not tiled": its 512 x 1024 overview, tiled
    512 x 512, is one column of tiles, which rio-cogeo takes for a strip and GDAL's
    reference validator does not."""
    src = _copy(tmp_path / "src", "image-tiff/usda_naip_256_webp_z3.tif")
    dest = tmp_path / "dest"
    cli("run", "--source", str(src), "--dest", str(dest), "--min-saving", "-100")
    rec = _scenes(_report(dest))["usda_naip_256_webp_z3.tif"]
    assert rec["status"] == "compacted", rec["reason"]
    from compactor.verify import validate_cog

    validate_cog(rec["output"].removeprefix("file://"))
