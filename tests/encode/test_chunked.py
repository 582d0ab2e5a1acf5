"""The chunked path: scenes split into chunk tasks on real Dask workers, one COG out,
on S3 (multipart upload) and local disk, checked against GDAL's reading and GDAL's COG
driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import rasterio
import tifffile
from rasterio.shutil import copy as gdal_copy
from rio_cogeo.cogeo import cog_validate

from compactor.encode import choose_profile
from compactor.encode._chunk_budget import BASELINE, HEADROOM, Budget, memory_threshold
from compactor.encode._chunk_plan import MEMORY_FACTOR, plan_chunks
from compactor.gdal._env import gdal_env, gdal_options
from compactor.gdal._info import RasterInfo, read_info
from compactor.verify._verify import check_output

from .. import rasters
from ..conftest import S3
from ..reports import scenes_of
from ..runner.test_run_s3 import ARCHIVE, DEST, SRC, by_name, load_report, upload

#: Threshold low enough that every test scene is chunked.
#: The chunked path at a fixed quality: the quality search's probes encode samples with the
#: same tile code (and would meet its failpoints first); tests/encode/test_auto_quality.py covers
#: the search on the chunked path.
CHUNKED = ("--chunk-threshold", "1KiB", "--quality", "75")


def scenes(tmp: Path) -> dict[str, Path]:
    """Sizes that are not multiples of the tile, several chunks each."""
    return {
        "rgb.tif": rasters.rgb(tmp / "rgb.tif", size=1700),  # nodata collar -> mask
        "rgba.tif": rasters.rgba(tmp / "rgba.tif", size=1300),  # alpha -> mask
        "gray.tif": rasters.gray(tmp / "gray.tif", size=1100),
        "u16.tif": rasters.uint16(tmp / "u16.tif", size=1250),
        "f32.tif": rasters.float32_nan(tmp / "f32.tif", size=1150),
    }


def gdal_fidelity(src: Path, out: str, codec: str, quality: int | None = None) -> Any:
    info = read_info(str(src))
    return check_output(str(src), out, info, choose_profile(info, codec, quality))


@pytest.mark.parametrize(
    ("codec", "names"),
    [
        ("auto", ["rgb.tif", "rgba.tif", "gray.tif", "u16.tif", "f32.tif"]),
        ("webp", ["rgb.tif", "rgba.tif"]),
        ("deflate", ["gray.tif", "u16.tif", "f32.tif"]),
        ("zstd", ["rgb.tif", "u16.tif"]),
    ],
)
def test_chunked_on_s3_for_every_codec(
    s3: S3, cli: Any, tmp_path: Path, codec: str, names: list[str]
) -> None:
    files = {n: p for n, p in scenes(tmp_path).items() if n in names}
    originals = upload(s3, files)
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE, "--codec", codec,
                 "--min-saving", "-1", *CHUNKED)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = by_name(load_report(s3, result.stdout))
    with gdal_env(gdal_options(endpoint_url=s3.endpoint)):
        for name, src in files.items():
            scene = report[name]
            assert scene["status"] == "compacted", (name, scene["reason"])
            assert scene["chunked"] is True
            assert scene["chunks"] >= 3
            out = f"/vsis3/dst-bucket/cogs/{name}"
            valid, errors, _ = cog_validate(out, quiet=True)
            assert (valid, errors) == (True, []), name
            # GDAL reads back what the chunks verified: exact, or at the SSIM reported
            fid = gdal_fidelity(src, out, scene["codec"], scene["quality"])
            if scene["lossless"]:
                assert fid.exact, name
            else:
                assert fid.ssim >= 0.95, name
                assert abs(fid.ssim - scene["ssim"]) < 2e-3, name
            assert s3.read("arc-bucket", f"orig/{name}") == originals[f"scenes/{name}"]
    for bucket in ("dst-bucket", "arc-bucket"):
        assert s3.client.list_multipart_uploads(Bucket=bucket).get("Uploads") is None


def test_chunked_masks_are_exact(s3: S3, cli: Any, tmp_path: Path) -> None:
    files = {n: p for n, p in scenes(tmp_path).items() if n in ("rgb.tif", "rgba.tif")}
    upload(s3, files)
    result = cli("run", "--source", SRC, "--dest", DEST, *CHUNKED)
    assert result.exit_code == 0, result.output
    with gdal_env(gdal_options(endpoint_url=s3.endpoint)):
        with (
            rasterio.open("/vsis3/dst-bucket/cogs/rgb.tif") as out,
            rasterio.open(files["rgb.tif"]) as ref,
        ):
            assert out.nodata == 0
            assert np.array_equal(out.dataset_mask() > 0, ref.dataset_mask() > 0)
            assert len(out.overviews(1)) == 2
            # overview masks: a pixel is valid where any of its source pixels is
            ovr = out.dataset_mask(out_shape=(out.height // 4 + 1, out.width // 4 + 1))
            assert ovr.any()
        with (
            rasterio.open("/vsis3/dst-bucket/cogs/rgba.tif") as out,
            rasterio.open(files["rgba.tif"]) as ref,
        ):
            assert out.count == 3
            assert np.array_equal(out.dataset_mask() > 0, ref.read(4) > 0)


def test_chunked_lossless_equals_per_scene_and_gdal(s3: S3, cli: Any, tmp_path: Path) -> None:
    """Lossless outputs of the chunked path and of the one-task path are the same pixels at
    every level. Against GDAL's COG driver: full resolution identical, the same overview
    sizes, and overviews identical wherever the level above has even size (a 2x2 mean is
    then exactly GDAL's AVERAGE); below an odd-sized level GDAL weights fractional pixels,
    a 2x2 reducer cannot, and the values differ by that sub-pixel phase."""
    src = rasters.uint16(tmp_path / "u16.tif", size=2300)  # levels 1150, 575, then 287
    local = tmp_path / "src"
    local.mkdir()
    (local / "u16.tif").write_bytes(src.read_bytes())
    chunked = cli(
        "run",
        "--source",
        str(local),
        "--dest",
        str(tmp_path / "chunked"),
        "--codec",
        "zstd",
        "--overviews",
        "full",
        *CHUNKED,
    )
    single = cli(
        "run", "--source", str(local), "--dest", str(tmp_path / "single"), "--codec", "zstd",
        "--overviews", "full",
    )  # fmt: skip
    assert chunked.exit_code == 0, chunked.output
    assert single.exit_code == 0, single.output
    reference = tmp_path / "gdal.tif"
    gdal_copy(
        src,
        reference,
        driver="COG",
        COMPRESS="ZSTD",
        PREDICTOR="YES",
        OVERVIEW_RESAMPLING="AVERAGE",
    )
    a_path, b_path = tmp_path / "chunked" / "u16.tif", tmp_path / "single" / "u16.tif"
    with rasterio.open(a_path) as a, rasterio.open(reference) as g:
        assert np.array_equal(a.read(), g.read())
        nlevels = len(a.overviews(1))
        assert nlevels == len(g.overviews(1)) == 3
    previous = (2300, 2300)
    above = None
    for level in range(nlevels):
        with rasterio.open(a_path, OVERVIEW_LEVEL=level) as a, rasterio.open(b_path, OVERVIEW_LEVEL=level) as b, \
                rasterio.open(reference, OVERVIEW_LEVEL=level) as g:  # fmt: skip
            assert a.shape == b.shape == g.shape
            oa, ob, og = a.read(), b.read(), g.read()
            assert np.array_equal(oa, ob), level
            valid = g.dataset_mask() > 0
            if previous[0] % 2 == 0 and previous[1] % 2 == 0:
                assert np.array_equal(oa[:, valid], og[:, valid]), level
            else:
                # the 2x2 mean of the level above, computed independently, nodata skipped
                assert above is not None
                h, w = a.shape
                blocks = (
                    above[:, : 2 * h, : 2 * w].reshape(above.shape[0], h, 2, w, 2).astype(float)
                )
                weight = (blocks > 0).sum(axis=(2, 4))
                mean = np.floor(blocks.sum(axis=(2, 4)) / np.maximum(weight, 1) + 0.5)
                assert np.array_equal(oa[:, weight[0] > 0], mean[:, weight[0] > 0]), level
                assert abs(oa[:, valid].mean() / og[:, valid].mean() - 1) < 0.01, level
            previous = a.shape
            above = oa
    assert abs(a_path.stat().st_size / reference.stat().st_size - 1) < 0.02


def test_chunked_local_destination(cli: Any, tmp_path: Path) -> None:
    files = scenes(tmp_path / "src")
    result = cli("run", "--source", str(tmp_path / "src"), "--dest", str(tmp_path / "out"),
                 "--min-saving", "-1", *CHUNKED)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(
        next((tmp_path / "out" / "_compactor" / "runs").glob("*/report.json")).read_text()
    )
    for scene in scenes_of(report):
        assert scene["chunked"] is True
        name = Path(scene["source"]).name
        out = tmp_path / "out" / name
        valid, errors, _ = cog_validate(str(out), quiet=True)
        assert (valid, errors) == (True, []), name
        fid = gdal_fidelity(files[name], str(out), scene["codec"], scene["quality"])
        assert fid.exact if scene["lossless"] else fid.ssim >= 0.95
        # Where the chunk tasks' time went: every task reads, encodes and checks its tiles;
        # the lossy ones decode again for the SSIM. The scene waited for them.
        tasks = scene["task_stages"]
        assert {"read", "encode", "tile checks"} <= set(tasks), tasks
        assert ("SSIM" in tasks and "verification decode" in tasks) == (not scene["lossless"])
        assert scene["stages"]["chunk tasks"] > 0
    # no part files or temporaries left next to the outputs
    assert not [p for p in (tmp_path / "out").rglob(".*") if p.name != "_compactor"]


@pytest.mark.parametrize("how", ["config", "flag"])
def test_chunked_bigtiff_forced(s3: S3, cli: Any, tmp_path: Path, how: str) -> None:
    src = rasters.gray(tmp_path / "g.tif", size=1100)
    upload(s3, {"g.tif": src})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("bigtiff: 'yes'\n" if how == "config" else "bigtiff: auto\n")
    flag = ["--bigtiff", "yes"] if how == "flag" else []
    result = cli("--config", str(cfg), "run", "--source", SRC, "--dest", DEST, *CHUNKED, *flag)
    assert result.exit_code == 0, result.output
    data = s3.read("dst-bucket", "cogs/g.tif")
    assert data[:4] == b"II+\x00"  # BigTIFF magic 43
    with gdal_env(gdal_options(endpoint_url=s3.endpoint)):
        valid, errors, _ = cog_validate("/vsis3/dst-bucket/cogs/g.tif", quiet=True)
        assert (valid, errors) == (True, [])
        assert gdal_fidelity(src, "/vsis3/dst-bucket/cogs/g.tif", "jpeg").ssim >= 0.95


def _cli_subprocess(args: list[str], failpoints: str) -> subprocess.CompletedProcess[str]:
    """A run with its own LocalCluster, so its worker processes see the failpoints."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("compactor")), "-q", "run", *args, "--workers", "2"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "COMPACTOR_FAILPOINTS": failpoints},
    )  # fmt: skip


def test_failed_chunk_task_is_retried(s3: S3, tmp_path: Path) -> None:
    upload(s3, {"rgb.tif": rasters.rgb(tmp_path / "rgb.tif", size=1700)})
    fired = tmp_path / "fired"
    proc = _cli_subprocess(
        ["--source", SRC, "--dest", DEST, *CHUNKED], f"chunk-encode@1=pidfile:{fired}+raise"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert fired.exists()  # a chunk task really failed once
    with gdal_env(gdal_options(endpoint_url=s3.endpoint)):
        valid, errors, _ = cog_validate("/vsis3/dst-bucket/cogs/rgb.tif", quiet=True)
    assert (valid, errors) == (True, [])


def test_chunk_failing_for_good_aborts_and_leaves_nothing(s3: S3, tmp_path: Path) -> None:
    originals = upload(s3, {"rgb.tif": rasters.rgb(tmp_path / "rgb.tif", size=1700)})
    proc = _cli_subprocess(
        ["--source", SRC, "--dest", DEST, "--archive", ARCHIVE, *CHUNKED], "chunk-encode=raise"
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "injected fault" in proc.stdout
    assert "cogs/rgb.tif" not in s3.keys("dst-bucket")
    assert s3.client.list_multipart_uploads(Bucket="dst-bucket").get("Uploads") is None
    assert s3.keys("arc-bucket") == []
    assert s3.read("src-bucket", "scenes/rgb.tif") == originals["scenes/rgb.tif"]
    # and on local disk, no part files
    local = tmp_path / "src"
    local.mkdir()
    rasters.rgb(local / "a.tif", size=1300)
    proc = _cli_subprocess(
        ["--source", str(local), "--dest", str(tmp_path / "out"), *CHUNKED], "chunk-encode=raise"
    )
    assert proc.returncode == 1
    leftovers = [p for p in (tmp_path / "out").rglob("*") if "_compactor" not in p.parts]
    assert leftovers == []


def test_chunk_budget_stays_below_the_pause_threshold() -> None:
    """The budget is the room between a worker's memory now and Dask's pause threshold,
    less the margin: chunks planned with it keep the worker below the threshold."""
    mb = 10**6
    with dask.config.set({"distributed.worker.memory.pause": 0.8}):
        budget = Budget(limit=450 * mb, threshold=memory_threshold(), baseline=150 * mb,
                        threads_per_worker=1)  # fmt: skip
        assert budget.per_task == int((450 * 0.8 - 150) * mb * HEADROOM)
    with dask.config.set(
        {"distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": 0.95}
    ):
        assert memory_threshold() == 0.95
    # Two threads share the room; a worker already past its threshold has none.
    assert (
        Budget(450 * mb, 0.8, 150 * mb, 2).per_task
        == Budget(450 * mb, 0.8, 150 * mb, 1).per_task // 2
    )
    assert Budget(450 * mb, 0.8, 400 * mb, 1).per_task == 0
    # make bench's scene (24521 pixels of RGB across) at its 450 MB limit, with the measured
    # footprint of a worker: one tile row per chunk, within the budget of the plan's model.
    budget = Budget(450 * mb, 0.8, BASELINE, 1)
    info = RasterInfo(
        driver="GTiff", width=24521, height=25130, count=3, dtype="uint8", nodata=0.0,
        colorinterp=("red", "green", "blue"), descriptions=(None,) * 3, block_shape=(512, 512),
        has_colormap=False, has_dataset_mask=False,
    )  # fmt: skip
    plan = plan_chunks(info, budget=budget.per_task, threads=2)
    rows = plan.rows(1)
    assert rows[1] - rows[0] == 512
    assert budget.per_task >= 512 * 24521 * 3 * MEMORY_FACTOR


def test_chunked_ssim_over_column_blocks_is_the_whole_image_value(tmp_path: Path) -> None:
    """A scene wider than a block of tile columns (the chunk tasks decode and measure a
    block at a time) and several strips tall: the SSIM and the error statistics the chunks
    report are those of the whole decoded image, every window counted once."""
    from compactor.cog._tiles import TILE
    from compactor.encode._chunk_tasks import BLOCK_TILES
    from compactor.fidelity._ssim import ssim
    from compactor.scene._chunked import compact_chunked
    from compactor.storage._location import Location
    from compactor.storage._s3client import S3Options

    size = BLOCK_TILES * TILE + 700  # two blocks, the second narrower than a block
    src = rasters.rgb(tmp_path / "wide.tif", size=size)
    out = tmp_path / "out" / "wide.tif"
    out.parent.mkdir()
    opts = gdal_options()
    with gdal_env(opts):
        info = read_info(str(src))
        profile = choose_profile(info, "jpeg", 75)
        result = compact_chunked(
            str(src), Location.parse(str(out)), info, profile, gdal=opts, s3=S3Options(),
            client=None, budget=64 * 2**20, threads=2, scratch=tmp_path,
        )  # fmt: skip
        result.finish()
        with rasterio.open(src) as a:
            x, valid = a.read(), a.read_masks(1) > 0
    # The output's pixels as the chunk tasks decode them (libjpeg-turbo through
    # imagecodecs; GDAL's own JPEG decoder may differ by a level here and there).
    y = np.moveaxis(tifffile.imread(out, level=0), -1, 0)
    assert result.chunks >= 3
    x[:, ~valid] = 0
    y[:, ~valid] = 0
    whole = min(ssim(x[k], y[k], 255.0, valid) for k in range(3))
    assert result.fidelity_ssim == pytest.approx(whole, abs=1e-9)
    assert result.fidelity is not None
    worst = max(int(np.abs(x[k][valid].astype(int) - y[k][valid]).max()) for k in range(3))
    assert max(result.fidelity.max_error or [0]) == worst


@pytest.mark.parametrize("codec", ["jpeg", "deflate"])
def test_a_chunk_without_a_result_fails_the_scene(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    """If a chunk's result never reaches the scene's checks (lost, cancelled), the scene
    fails verification instead of being judged on the other chunks, lossy or lossless."""
    from compactor.errors import VerificationError
    from compactor.scene import _chunked as assemble
    from compactor.scene._chunked import compact_chunked
    from compactor.storage._location import Location
    from compactor.storage._s3client import S3Options

    real = assemble.run_tasks

    def losing_the_first(job: Any, client: Any, on_chunk: Any) -> Any:
        return real(job, client, lambda c: None if c.chunk == 0 else on_chunk(c))

    monkeypatch.setattr(assemble, "run_tasks", losing_the_first)
    src = rasters.rgb(tmp_path / "rgb.tif", size=1300)
    out = tmp_path / "out" / "rgb.tif"
    out.parent.mkdir()
    opts = gdal_options()
    with gdal_env(opts):
        info = read_info(str(src))
        profile = choose_profile(info, codec, 75 if codec == "jpeg" else None)
        with pytest.raises(VerificationError, match=r"no result from chunks \[0\]"):
            compact_chunked(
                str(src), Location.parse(str(out)), info, profile, gdal=opts,
                s3=S3Options(), client=None, budget=16 * 2**20, threads=2, scratch=tmp_path,
            )  # fmt: skip
    assert not out.exists()
    assert not [p for p in out.parent.iterdir()]
