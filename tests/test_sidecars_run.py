"""A scene is a raster and its sidecars: GDAL's ``.aux.xml``, ``.RPB``, ``.msk``... are read
with the raster (the output carries their CRS, RPCs, mask), archived and deleted with it,
and brought back with it; a sidecar without its raster is never a scene. Local folders and
S3 (moto), through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import rasterio

from . import rasters
from .reports import scenes_of
from .sidecar_rasters import crs_in_aux_xml, mask_in_msk, rpcs_in_rpb

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
