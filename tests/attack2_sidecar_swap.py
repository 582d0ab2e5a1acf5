"""Attack round 2: a sidecar replaced after the output was verified (between the fetch the
output was built from and the sidecar's archive copy) is archived and deleted in its new
version, and the scene is still reported compacted: the archive then holds a scene (raster +
sidecars) that GDAL reads differently from what the verified output was checked against.
The raster itself is pinned (its archive copy must hash to the bytes read); its sidecars
are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import rasterio

from compactor.gdal.env import gdal_env, gdal_options

from .conftest import S3
from .reports import scenes_of
from .sidecar_rasters import crs_in_aux_xml

COMPACTOR = str(Path(sys.executable).with_name("compactor"))
SRC = "s3://src-bucket/scenes/"
DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"


def test_sidecar_replaced_after_verify_is_what_gets_archived(s3: S3, tmp_path: Path) -> None:
    crs_in_aux_xml(tmp_path / "geo.tif")
    original_aux = (tmp_path / "geo.tif.aux.xml").read_bytes()
    for rel in ("geo.tif", "geo.tif.aux.xml"):
        s3.put("src-bucket", "scenes/" + rel, (tmp_path / rel).read_bytes())
    pid = tmp_path / "pid"
    config = tmp_path / "c.yaml"
    config.write_text("min_saving: -1\n")
    env = {**os.environ, "COMPACTOR_FAILPOINTS": f"after-verified=pidfile:{pid}+sleep:6"}
    proc = subprocess.Popen(
        [COMPACTOR, "-q", "--config", str(config), "run", "--source", SRC, "--dest", DEST,
         "--archive", ARCHIVE, "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not pid.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # the attacker (or any writer of the source folder) swaps the sidecar: another place
    forged = original_aux.replace(b"7.0,", b"-120.0,")
    assert forged != original_aux
    s3.put("src-bucket", "scenes/geo.tif.aux.xml", forged)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    runs = [k for k in s3.keys("dst-bucket", "cogs/_compactor/runs/") if k.endswith("report.json")]
    (scene,) = scenes_of(json.loads(s3.read("dst-bucket", runs[0])))
    with (
        gdal_env(gdal_options(endpoint_url=s3.endpoint)),
        rasterio.open("/vsis3/dst-bucket/cogs/geo.tif") as ds,
    ):
        assert abs(ds.transform.c - 7.0) < 1e-9  # built and verified from the first version
    archived = s3.read("arc-bucket", "orig/geo.tif.aux.xml")
    # The invariant: a scene reported compacted has, in the archive, the originals its
    # verified output was checked against.
    assert scene["status"] != "compacted" or archived == original_aux, (
        f"status {scene['status']}; archived sidecar is the swapped one: {archived == forged}; "
        f"source keys left: {s3.keys('src-bucket')}"
    )
