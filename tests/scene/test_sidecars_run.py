"""A scene is a raster and its sidecars: GDAL's ``.aux.xml``, ``.RPB``, ``.msk``... are read
with the raster (the output carries their CRS, RPCs, mask), archived and deleted with it,
and brought back with it; a sidecar without its raster is never a scene. Local folders and
S3 (moto), through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import rasterio

from compactor.gdal._env import gdal_env, gdal_options

from .. import rasters
from ..conftest import S3
from ..reports import scenes_of
from ..sidecar_rasters import crs_in_aux_xml, mask_in_msk, rpcs_in_rpb

COMPACTOR = str(Path(sys.executable).with_name("compactor"))

# --- local folders, end to end ----------------------------------------------------------------


def make_scenes(src: Path) -> dict[str, bytes]:
    """Three rasters with sidecars, and two sidecars without their raster."""
    crs_in_aux_xml(src / "geo.tif")
    rpcs_in_rpb(src / "sat.tif")
    mask_in_msk(src / "sub" / "masked.tif")
    (src / "gone.tif.aux.xml").write_text("<PAMDataset></PAMDataset>\n")
    shutil.copy(rasters.gray(src / "tmp.tif", size=64), src / "alone.tif.ovr")
    (src / "tmp.tif").unlink()
    return {str(p.relative_to(src)): p.read_bytes() for p in src.rglob("*") if p.is_file()}


GROUPED = ["geo.tif", "geo.tif.aux.xml", "sat.tif", "sat.RPB", "sub/masked.tif",
           "sub/masked.tif.msk"]  # fmt: skip
LONE = ["gone.tif.aux.xml", "alone.tif.ovr"]


def check_outputs(open_output: Any) -> None:
    """The outputs carry what GDAL read from the sidecars."""
    with open_output("geo.tif") as ds:
        assert ds.crs == "EPSG:4326"
        assert ds.transform.c == pytest.approx(7.0)
    with open_output("sat.tif") as ds:
        assert ds.rpcs is not None
        assert ds.rpcs.lat_off == pytest.approx(46.0)
    with open_output("sub/masked.tif") as ds:
        assert all(rasterio.enums.MaskFlags.per_dataset in f for f in ds.mask_flag_enums)
        mask = ds.dataset_mask()
        assert (mask[: ds.height // 2, : ds.width // 2] == 0).all()
        assert (mask[ds.height // 2 :, :] == 255).all()


def test_local_sidecars_read_archived_deleted_restored(cli: Any, tmp_path: Path) -> None:
    src, dest, arch = tmp_path / "src", tmp_path / "cogs", tmp_path / "archive"
    originals = make_scenes(src)
    result = cli("run", "--source", str(src), "--dest", str(dest), "--archive", str(arch))
    assert result.exit_code == 0, result.output
    report = json.loads(next((dest / "_compactor" / "runs").glob("*/report.json")).read_text())
    assert sorted(Path(s["source"]).name for s in scenes_of(report)) == [
        "geo.tif", "masked.tif", "sat.tif"
    ]  # fmt: skip
    assert {s["status"] for s in scenes_of(report)} == {"compacted"}
    check_outputs(lambda rel: rasterio.open(dest / rel))
    for rel in GROUPED:  # moved together, byte for byte
        assert not (src / rel).exists(), rel
        assert (arch / rel).read_bytes() == originals[rel], rel
    for rel in LONE:  # never scenes, never moved
        assert (src / rel).read_bytes() == originals[rel]
        assert not (arch / rel).exists()
    assert not (dest / "gone.tif").exists()
    assert not (dest / "alone.tif.tif").exists()

    back = tmp_path / "back"
    restored = cli("restore", "--archive", str(arch), "--to", str(back))
    assert restored.exit_code == 0, restored.output
    for rel in GROUPED:
        assert (back / rel).read_bytes() == originals[rel], rel


# --- S3, end to end ---------------------------------------------------------------------------

SRC = "s3://src-bucket/scenes/"
DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"


def upload_scenes(s3: S3, tmp_path: Path) -> dict[str, bytes]:
    originals = make_scenes(tmp_path / "in")
    for rel, data in originals.items():
        s3.put("src-bucket", "scenes/" + rel, data)
    return originals


def s3_outputs(s3: S3) -> Any:
    @contextmanager
    def open_output(rel: str) -> Iterator[Any]:
        with (
            gdal_env(gdal_options(endpoint_url=s3.endpoint)),
            rasterio.open(f"/vsis3/dst-bucket/cogs/{rel}") as ds,
        ):
            yield ds

    return open_output


def test_s3_sidecars_read_archived_deleted_restored(s3: S3, cli: Any, tmp_path: Path) -> None:
    originals = upload_scenes(s3, tmp_path)
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)
    assert result.exit_code == 0, result.output
    check_outputs(s3_outputs(s3))
    assert s3.keys("src-bucket") == sorted("scenes/" + rel for rel in LONE)
    for rel in GROUPED:
        assert s3.storage_class("arc-bucket", "orig/" + rel) == "GLACIER"
        assert s3.read("arc-bucket", "orig/" + rel) == originals[rel], rel
    for rel in LONE:
        assert s3.read("src-bucket", "scenes/" + rel) == originals[rel]
    runs = [k for k in s3.keys("dst-bucket", "cogs/_compactor/runs/") if k.endswith("report.json")]
    report = json.loads(s3.read("dst-bucket", runs[0]))
    assert sorted(s["source"].rsplit("/", 1)[-1] for s in scenes_of(report)) == [
        "geo.tif",
        "masked.tif",
        "sat.tif",
    ]
    # one run's originals, from its report: each comes back with its sidecars
    args = ("restore", "--archive", ARCHIVE, "--to", "s3://src-bucket/back/",
            "--report", "s3://dst-bucket/" + runs[0])  # fmt: skip
    restored = cli(*args)
    if restored.exit_code == 3:  # restores requested (the reads above restored most)
        restored = cli(*args)
    assert restored.exit_code == 0, restored.output
    for rel in GROUPED:
        assert s3.read("src-bucket", "back/" + rel) == originals[rel], rel


def test_s3_chunked_scene_reads_its_sidecars(s3: S3, cli: Any, tmp_path: Path) -> None:
    """A scene over --chunk-threshold is read through /vsis3/ by the chunk tasks: GDAL
    finds its sidecars there."""
    crs_in_aux_xml(tmp_path / "geo.tif")
    mask_in_msk(tmp_path / "sub" / "masked.tif")
    for rel in ("geo.tif", "geo.tif.aux.xml", "sub/masked.tif", "sub/masked.tif.msk"):
        s3.put("src-bucket", "scenes/" + rel, (tmp_path / rel).read_bytes())
    result = cli(
        "run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE,
        "--chunk-threshold", "64KiB",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    runs = [k for k in s3.keys("dst-bucket", "cogs/_compactor/runs/") if k.endswith("report.json")]
    report = json.loads(s3.read("dst-bucket", runs[0]))
    assert [s.get("chunked") for s in scenes_of(report)] == [True, True]
    with s3_outputs(s3)("geo.tif") as ds:
        assert ds.crs == "EPSG:4326"
    with s3_outputs(s3)("sub/masked.tif") as ds:
        mask = ds.dataset_mask()
        assert (mask[: ds.height // 2, : ds.width // 2] == 0).all()
        assert (mask[ds.height // 2 :, :] == 255).all()
    assert s3.keys("src-bucket") == []


@pytest.mark.parametrize(
    "point", ["after-archive-copy@1", "after-archive-copy@2", "after-delete@1"]
)
def test_crash_between_members_loses_none(s3: S3, tmp_path: Path, point: str) -> None:
    """Killed after the first sidecar's copy, after the sidecars' and before the raster's,
    after the first delete: every member is at its source or verified in the archive,
    and a rerun moves the rest."""
    rpcs_in_rpb(tmp_path / "sat.tif")
    Path(f"{tmp_path / 'sat.tif'}.aux.xml").write_text(
        '<PAMDataset><Metadata><MDI key="MISSION">test</MDI></Metadata></PAMDataset>\n'
    )
    group = ["sat.RPB", "sat.tif", "sat.tif.aux.xml"]
    originals = {rel: (tmp_path / rel).read_bytes() for rel in group}
    for rel, data in originals.items():
        s3.put("src-bucket", "scenes/" + rel, data)
    config = tmp_path / "c.yaml"
    config.write_text("lease_ttl: 3\nmin_saving: -1\n")

    def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COMPACTOR, "-q", "--config", str(config), "run", "--source", SRC, "--dest", DEST,
             "--archive", ARCHIVE, "--workers", "1"],
            capture_output=True, text=True, timeout=300, start_new_session=True,
            env={**os.environ, **env},
        )  # fmt: skip

    killed = run({"COMPACTOR_FAILPOINTS": f"{point}=kill"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    at_source = set(s3.keys("src-bucket"))
    for rel, data in originals.items():
        if "scenes/" + rel in at_source:
            assert s3.read("src-bucket", "scenes/" + rel) == data, rel
        else:
            assert s3.read("arc-bucket", "orig/" + rel) == data, f"{rel} lost"
    done = run({})
    assert done.returncode == 0, done.stdout + done.stderr
    assert s3.keys("src-bucket") == []
    for rel, data in originals.items():
        assert s3.read("arc-bucket", "orig/" + rel) == data, rel
    with s3_outputs(s3)("sat.tif") as ds:
        assert ds.rpcs is not None
        assert ds.tags()["MISSION"] == "test"
