"""A scene's sidecars are objects anyone who can write the source may upload or replace:
one is read into scratch only within its listed size and --chunk-threshold, and the version
archived and deleted is exactly the one the verified output was built from (else the scene
fails with nothing deleted). S3 (moto) and local folders, through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rasterio
from rasterio.crs import CRS

from compactor.errors import SceneTooLargeError
from compactor.gdal._env import gdal_env, gdal_options
from compactor.scene._sidecars import Member, fetch_sidecars
from compactor.storage import Location, S3Options, S3Store

from .. import rasters
from ..conftest import S3
from ..reports import scenes_of
from ..sidecar_rasters import crs_in_aux_xml

COMPACTOR = str(Path(sys.executable).with_name("compactor"))
SRC = "s3://src-bucket/scenes/"
DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"
THRESHOLD = 64 * 1024
BIG = 4 * 1024 * 1024


def big_aux_xml() -> bytes:
    """A valid PAM file padded to over 4 MiB (64 times the threshold)."""
    wkt = CRS.from_epsg(4326).to_wkt()
    padding = "<!--" + "x" * BIG + "-->\n"
    return (
        f'<PAMDataset>\n{padding}  <SRS dataAxisToSRSAxisMapping="2,1">{wkt}</SRS>\n'
        "  <GeoTransform>7.0, 1.0e-3, 0.0, 46.0, 0.0, -1.0e-3</GeoTransform>\n</PAMDataset>\n"
    ).encode()


def s3_report(s3: S3) -> dict[str, object]:
    runs = [k for k in s3.keys("dst-bucket", "cogs/_compactor/runs/") if k.endswith("report.json")]
    report: dict[str, object] = json.loads(s3.read("dst-bucket", runs[0]))
    return report


# --- finding 2: a sidecar's size -----------------------------------------------------------


def test_sidecar_over_chunk_threshold_fails_its_scene(s3: S3, tmp_path: Path) -> None:
    """A 4 KiB raster beside a 4 MiB ``.aux.xml`` under --chunk-threshold 64KiB: the scene
    fails naming the sidecar and its size; nothing is archived or deleted."""
    rasters.gray(tmp_path / "geo.tif", size=64, crs=None, transform=rasterio.Affine.identity())
    aux = big_aux_xml()
    s3.put("src-bucket", "scenes/geo.tif", (tmp_path / "geo.tif").read_bytes())
    s3.put("src-bucket", "scenes/geo.tif.aux.xml", aux)
    assert (tmp_path / "geo.tif").stat().st_size < THRESHOLD
    config = tmp_path / "c.yaml"
    config.write_text("min_saving: -1\n")
    proc = subprocess.run(
        [COMPACTOR, "-q", "--config", str(config), "run", "--source", SRC, "--dest", DEST,
         "--archive", ARCHIVE, "--workers", "1", "--chunk-threshold", "64KiB"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (scene,) = scenes_of(s3_report(s3))
    assert scene["status"] == "failed", proc.stdout + proc.stderr
    assert "geo.tif.aux.xml" in scene["reason"]
    assert f"{len(aux):,} bytes" in scene["reason"]
    assert "\n" not in scene["reason"]
    assert s3.keys("src-bucket") == ["scenes/geo.tif", "scenes/geo.tif.aux.xml"]
    assert s3.keys("arc-bucket") == []


@pytest.mark.parametrize("listed", [BIG + 500, 100], ids=["listed-large", "grew-after-listing"])
def test_sidecar_fetch_reads_at_most_its_bound(s3: S3, tmp_path: Path, listed: int) -> None:
    """A sidecar listed over the threshold is not read at all; one listed small that has
    grown since is cut off one byte past its listed size: scratch never holds it whole."""
    s3.put("src-bucket", "scenes/geo.tif.aux.xml", big_aux_xml())
    store = S3Store(S3Options(endpoint_url=s3.endpoint))
    side = Member(Location.parse(SRC + "geo.tif.aux.xml"), None, size=listed)
    copy = tmp_path / "source.tif"
    with pytest.raises(SceneTooLargeError, match=r"geo\.tif\.aux\.xml"):
        fetch_sidecars(store, [side], "geo.tif", copy, THRESHOLD)
    written = tmp_path / "source.tif.aux.xml"
    assert not written.exists() or written.stat().st_size <= min(listed, THRESHOLD) + 1


# --- finding 1: the version archived is the version read ------------------------------------


def run_and_swap(
    args: list[str], tmp_path: Path, swap: object, failpoint: str = "after-verified"
) -> str:
    """Run compactor, calling ``swap()`` while the walk sleeps at ``failpoint``."""
    pid = tmp_path / "pid"
    config = tmp_path / "c.yaml"
    config.write_text("min_saving: -1\n")
    env = {**os.environ, "COMPACTOR_FAILPOINTS": f"{failpoint}=pidfile:{pid}+sleep:6"}
    proc = subprocess.Popen(
        [COMPACTOR, "-q", "--config", str(config), "run", *args, "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not pid.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert callable(swap)
    swap()
    out, _ = proc.communicate(timeout=240)
    return out


@pytest.mark.parametrize("threshold", ["256MiB", "64KiB"], ids=["read-whole", "chunked"])
def test_sidecar_replaced_after_verify_fails_with_nothing_deleted(
    s3: S3, tmp_path: Path, threshold: str
) -> None:
    """An ``.aux.xml`` replaced between the verified output and the archive copy: the scene
    fails ("changed since it was read"), nothing is archived or deleted, whether the scene
    was read whole (fetched sidecar) or in chunks (GDAL read it over /vsis3/)."""
    crs_in_aux_xml(tmp_path / "geo.tif")
    original_aux = (tmp_path / "geo.tif.aux.xml").read_bytes()
    for rel in ("geo.tif", "geo.tif.aux.xml"):
        s3.put("src-bucket", "scenes/" + rel, (tmp_path / rel).read_bytes())
    forged = original_aux.replace(b"7.0,", b"-120.0,")
    assert forged != original_aux

    def swap() -> None:
        s3.put("src-bucket", "scenes/geo.tif.aux.xml", forged)

    args = ["--source", SRC, "--dest", DEST, "--archive", ARCHIVE, "--chunk-threshold", threshold]
    out = run_and_swap(args, tmp_path, swap)
    (scene,) = scenes_of(s3_report(s3))
    assert scene.get("chunked", False) == (threshold == "64KiB"), scene
    with (
        gdal_env(gdal_options(endpoint_url=s3.endpoint)),
        rasterio.open("/vsis3/dst-bucket/cogs/geo.tif") as ds,
    ):
        assert abs(ds.transform.c - 7.0) < 1e-9  # built and verified from the first version
    assert scene["status"] == "failed", out
    assert "geo.tif.aux.xml changed since it was read; nothing deleted" in scene["reason"]
    assert s3.keys("src-bucket") == ["scenes/geo.tif", "scenes/geo.tif.aux.xml"]
    assert "orig/geo.tif.aux.xml" not in s3.keys("arc-bucket")


@pytest.mark.e2e  # starts its own processes
def test_local_sidecar_replaced_after_verify_fails_with_nothing_deleted(tmp_path: Path) -> None:
    """The same in a local folder (a file's version is its size and mtime)."""
    src, dest, arc = tmp_path / "src", tmp_path / "dest", tmp_path / "arc"
    crs_in_aux_xml(src / "geo.tif")
    aux = src / "geo.tif.aux.xml"
    original_aux = aux.read_bytes()
    forged = original_aux.replace(b"7.0,", b"-120.0,")

    def swap() -> None:
        aux.write_bytes(forged)

    out = run_and_swap(
        ["--source", str(src), "--dest", str(dest), "--archive", str(arc)], tmp_path, swap
    )
    reports = list((dest / "_compactor" / "runs").rglob("report.json"))
    (scene,) = scenes_of(json.loads(reports[0].read_text()))
    assert scene["status"] == "failed", out
    assert "geo.tif.aux.xml changed since it was read; nothing deleted" in scene["reason"]
    assert sorted(p.name for p in src.iterdir()) == ["geo.tif", "geo.tif.aux.xml"]
    assert not (arc / "geo.tif.aux.xml").exists()
