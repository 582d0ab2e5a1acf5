"""Attack round 2: a sidecar is read whole into the worker's scratch whatever its size.
--chunk-threshold bounds what a scene's raster puts in scratch (a larger one is read in
chunks through /vsis3/); a sidecar beside a small raster (``x.tif.aux.xml``, ``x.tif.ovr``,
anything of a sidecar's name, which anyone who can write one source object can upload) is
fetched with no bound at all, so one object can fill a worker's scratch (its size limit
evicts the pod, failing every scene on it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import rasterio
from rasterio.crs import CRS

from . import rasters
from .conftest import S3

COMPACTOR = str(Path(sys.executable).with_name("compactor"))
THRESHOLD = 64 * 1024


def test_sidecar_over_chunk_threshold_is_not_read_whole(s3: S3, tmp_path: Path) -> None:
    rasters.gray(tmp_path / "geo.tif", size=64, crs=None, transform=rasterio.Affine.identity())
    wkt = CRS.from_epsg(4326).to_wkt()
    padding = "<!--" + "x" * (4 * 1024 * 1024) + "-->\n"  # 4 MiB, 64 times the threshold
    aux = (
        f'<PAMDataset>\n{padding}  <SRS dataAxisToSRSAxisMapping="2,1">{wkt}</SRS>\n'
        "  <GeoTransform>7.0, 1.0e-3, 0.0, 46.0, 0.0, -1.0e-3</GeoTransform>\n</PAMDataset>\n"
    ).encode()
    s3.put("src-bucket", "scenes/geo.tif", (tmp_path / "geo.tif").read_bytes())
    s3.put("src-bucket", "scenes/geo.tif.aux.xml", aux)
    assert (tmp_path / "geo.tif").stat().st_size < THRESHOLD
    scratch, pid = tmp_path / "dask", tmp_path / "pid"
    config = tmp_path / "c.yaml"
    config.write_text("min_saving: -1\n")
    env = {
        **os.environ,
        "DASK_TEMPORARY_DIRECTORY": str(scratch),
        "COMPACTOR_FAILPOINTS": f"after-encode=pidfile:{pid}+sleep:5",
    }
    proc = subprocess.Popen(
        [COMPACTOR, "-q", "--config", str(config), "run", "--source", "s3://src-bucket/scenes/",
         "--dest", "s3://dst-bucket/cogs/", "--archive", "s3://arc-bucket/orig/",
         "--workers", "1", "--chunk-threshold", "64KiB"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not pid.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    in_scratch = {p.name: p.stat().st_size for p in scratch.rglob("source*") if p.is_file()}
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert in_scratch, "no scratch files seen"
    assert sum(in_scratch.values()) <= THRESHOLD, in_scratch
