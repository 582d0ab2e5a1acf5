"""Every open of a source is restricted: one function (``open_source``), four drivers, in a
GDAL that has no driver able to read other files or URLs (in the client and in every Dask
worker process); GDAL's COG writer is handed that opened dataset, never the source's path
nor a VRT naming it; a NITF whose header text is markup another GDAL format would read is
refused; a dataset whose files GDAL cannot list is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from distributed import Client
from rasterio.rpc import RPC
from rasterio.shutil import copy as gdal_copy

from compactor.encode import choose_profile
from compactor.encode._write import encode_cog, uses_tile_writer
from compactor.errors import UnreadableSceneError
from compactor.gdal._env import gdal_env, gdal_options
from compactor.gdal._info import open_source, read_info
from compactor.verify._verify import check_output

from .. import rasters
from ..conftest import S3
from ..runner.test_hostile import http_server
from ..runner.test_run_s3 import by_name, load_report

SRC = "s3://src-bucket/scenes/"
DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"

RPCS = RPC(
    height_off=100, height_scale=500, lat_off=40, lat_scale=0.05, long_off=15,
    long_scale=0.05, line_off=32, line_scale=32, samp_off=32, samp_scale=32,
    line_num_coeff=[0, 0, -1] + [0] * 17, line_den_coeff=[1] + [0] * 19,
    samp_num_coeff=[0, 1] + [0] * 18, samp_den_coeff=[1] + [0] * 19,
)  # fmt: skip


def with_rpcs(path: Path) -> Path:
    """``path`` georeferenced by RPCs too: GDAL's COG driver writes it."""
    with rasterio.open(path, "r+") as dst:
        dst.rpcs = RPCS
    return path


def nitf_vrt_polyglot(path: Path, url: str, secret: Path) -> Path:
    """A NITF with RPCs whose header is also a GDAL VRT: its title opens ``<VRTDataset>``
    and a comment, its image comment closes the comment and holds two bands, one reading
    ``url``, one reading ``secret`` as raw bytes. GDAL writes these fields upper-case, so
    they are written as placeholders and replaced in the bytes (and the binary background
    colour, whose zeros would end the text GDAL's VRT driver parses, is blanked)."""
    head = '<VRTDataset rasterXSize="64" rasterYSize="64"><!--'
    body = (
        '--><VRTRasterBand dataType="Byte" band="1"><SimpleSource><SourceFilename>'
        f"/vsicurl/{url}</SourceFilename><SourceBand>1</SourceBand></SimpleSource>"
        '</VRTRasterBand><VRTRasterBand dataType="Byte" band="2" subClass="VRTRawRasterBand">'
        f"<SourceFilename>{secret}</SourceFilename></VRTRasterBand></VRTDataset>"
    )
    base = rasters.write(path.with_suffix(".base.tif"), np.full((1, 64, 64), 9, "uint8"))
    with_rpcs(base)
    with rasterio.open(base) as src:
        gdal_copy(src, path, driver="NITF", FTITLE="Q" * len(head), ICOM="J" * len(body))
    raw = path.read_bytes()
    raw = raw.replace(b"Q" * len(head), head.encode()).replace(b"J" * len(body), body.encode())
    at = raw.index(b"\0\0\0")  # FBKGC
    path.write_bytes(raw[:at] + b"   " + raw[at + 3 :])
    path.with_suffix(".ntf.aux.xml").unlink(missing_ok=True)
    return path


def test_a_nitf_that_is_also_a_vrt_is_refused_and_reads_nothing(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "worker-secret.txt"
    secret.write_bytes(b"TOKEN=worker-only-" + b"x" * 5000)
    with http_server("127.0.0.1", {}) as (origin, seen):
        url = f"{origin}/latest/meta-data/iam/security-credentials/"
        hostile = nitf_vrt_polyglot(tmp_path / "scene.ntf", url, secret)
        with rasterio.open(hostile, driver="NITF") as ds:  # what compactor opens it as
            assert ds.rpcs is not None
        s3.put("src-bucket", "scenes/scene.ntf", hostile.read_bytes())
        good = with_rpcs(rasters.gray(tmp_path / "good.tif", size=256))
        s3.put("src-bucket", "scenes/good.tif", good.read_bytes())

        result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)

    assert seen == [], "GDAL requested what the polyglot names"
    scenes = by_name(load_report(s3, result.stdout))
    assert scenes["good.tif"]["status"] == "compacted", scenes["good.tif"]["reason"]
    scene = scenes["scene.ntf"]
    assert scene["status"] == "failed"
    reason = scene["reason"]
    assert "refused: the NITF header" in reason, reason
    assert "markup" in reason, reason
    for echoed in ("404", "VRTDataset", "HTTP", "vsicurl", "security-credentials"):
        assert echoed not in reason, reason
    assert s3.read("src-bucket", "scenes/scene.ntf") == hostile.read_bytes()
    assert [k for k in s3.keys("dst-bucket") if "scene.ntf" in k and "_compactor" not in k] == []
    assert s3.keys("arc-bucket") == ["orig/good.tif"]
    written = b"".join(s3.read("dst-bucket", k) for k in s3.keys("dst-bucket"))
    assert b"worker-only-" not in written


def test_markup_in_any_nitf_text_field_is_refused(tmp_path: Path) -> None:
    base = with_rpcs(rasters.gray(tmp_path / "g.tif", size=64))
    plain = tmp_path / "plain.ntf"
    with rasterio.open(base) as src:
        gdal_copy(src, plain, driver="NITF", FTITLE="A TITLE", ICOM="A COMMENT")
        for field in ("FTITLE", "ICOM", "ONAME", "IID2"):
            hostile = tmp_path / f"{field}.ntf"
            gdal_copy(src, hostile, driver="NITF", **{field: "<GDAL_WMS>"})
            with pytest.raises(UnreadableSceneError, match=r"NITF header field \w+ holds markup"):
                open_source(str(hostile))
    assert read_info(str(plain)).driver == "NITF"


def test_a_dataset_whose_files_cannot_be_listed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = rasters.gray(tmp_path / "g.tif", size=64)
    assert read_info(str(src)).width == 64

    def fails(self: Any) -> list[str]:
        raise rasterio.errors.RasterioIOError("cannot list")

    monkeypatch.setattr(rasterio.io.DatasetReader, "files", property(fails))
    with pytest.raises(UnreadableSceneError, match="cannot list the files"):
        open_source(str(src))


def test_no_worker_process_can_open_a_vrt(dask_scheduler: str, tmp_path: Path) -> None:
    tif = rasters.gray(tmp_path / "g.tif", size=64)
    vrt = tmp_path / "g.vrt"
    vrt.write_text(
        '<VRTDataset rasterXSize="64" rasterYSize="64"><VRTRasterBand dataType="Byte" band="1">'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{tif}</SourceFilename>'
        "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>"
    )

    def open_vrt(path: str, options: dict[str, str]) -> str:
        """A Dask task (a closure: it travels by value, the workers cannot import tests):
        open a plain .vrt with rasterio, with no driver given."""
        with gdal_env(options):
            try:
                with rasterio.open(path) as ds:
                    return f"opened as {ds.driver}"
            except rasterio.errors.RasterioIOError as err:
                return f"refused: {err}"

    with Client(dask_scheduler) as client:
        workers = list(client.scheduler_info()["workers"])
        # Each worker opens a GeoTIFF first, without compactor's environment (its GDAL
        # registers every driver), then the VRT under it.
        client.run(lambda: rasterio.open(str(tif)).close())
        answers = [
            client.submit(open_vrt, str(vrt), gdal_options(), workers=[w], pure=False).result()
            for w in workers
        ]
    assert len(answers) == 2, answers
    assert all(a.startswith("refused") for a in answers), answers
    assert all("not recognized as being in a supported file format" in a for a in answers)


@pytest.mark.parametrize("kind", ["nodata", "alpha", "dataset mask"])
def test_gdal_writer_masks_from_the_opened_source_without_a_vrt(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GCP/RPC scenes with a mask go through GDAL's COG driver: the mask is exact, the
    output verifies, and the source is opened only through ``open_source``."""
    if kind == "nodata":
        src = rasters.rgb(tmp_path / "s.tif", size=600)
    elif kind == "alpha":
        src = rasters.rgba(tmp_path / "s.tif", size=600)
    else:
        src = rasters.rgb(tmp_path / "s.tif", size=600, nodata_collar=False)
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(src, "r+") as dst:
            dst.write_mask(np.where(rasters._footprint(600), 255, 0).astype("uint8"))
    with_rpcs(src)
    info = read_info(str(src))
    profile = choose_profile(info, "jpeg", 90)
    assert not uses_tile_writer(profile, info)
    assert profile.mask == {"nodata": "nodata", "alpha": "alpha", "dataset mask": "dataset"}[kind]
    opened: list[tuple[str, Any]] = []
    real_open = rasterio.open

    def spy(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append((str(path), kwargs.get("driver")))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", spy)
    with gdal_env(gdal_options()):
        enc = encode_cog(str(src), tmp_path / "out" / "s.tif", profile, info)
    monkeypatch.undo()
    assert all(path != str(src) for path, _ in opened), opened
    assert all(driver == "GTiff" for _, driver in opened), opened
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s.tif"]
    fid = check_output(str(src), str(enc.path), info, profile)
    assert fid.ssim is not None
    assert fid.ssim > 0.9
    with rasterio.open(src) as s, rasterio.open(enc.path) as o:
        assert o.count == 3
        assert o.rpcs is not None
        assert o.rpcs.to_dict() == s.rpcs.to_dict()
        assert np.array_equal(o.dataset_mask() > 0, rasters._footprint(600))
