"""End to end on S3: the CLI and the Python API against a real S3 server (moto_server over
HTTP, read by GDAL through /vsis3/) and real Dask scheduler and worker processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.shutil import copy as gdal_copy
from rio_cogeo.cogeo import cog_validate

import compactor
from compactor.cog._jpeg import tiff_jpeg_quality
from compactor.gdal._env import gdal_env, gdal_options

from .. import rasters
from ..conftest import FAKE_SECRET, S3
from ..reports import scenes_of

SRC = "s3://src-bucket/scenes/"
DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"


@contextmanager
def s3_gdal(s3: S3) -> Iterator[None]:
    with gdal_env(gdal_options(endpoint_url=s3.endpoint)):
        yield


def upload(s3: S3, files: dict[str, Path], prefix: str = "scenes/") -> dict[str, bytes]:
    """Upload files under src-bucket/<prefix>; returns key -> original bytes."""
    originals = {}
    for key, path in files.items():
        data = path.read_bytes()
        s3.put(
            "src-bucket",
            prefix + key,
            data,
            ContentType="image/tiff",
            Metadata={"mission": "test"},
            Tagging="team=geo",
        )
        originals[prefix + key] = data
    return originals


def load_report(s3: S3, stdout: str) -> dict[str, Any]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("report: "))
    url = line.split("report: ", 1)[1].strip()
    assert url.startswith("s3://dst-bucket/cogs/_compactor/runs/")
    assert url.endswith("/report.html")
    key = url[len("s3://dst-bucket/") : -len("report.html")] + "report.json"
    return dict(json.loads(s3.read("dst-bucket", key)))


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["source"].rsplit("/", 1)[-1]: s for s in scenes_of(report)}


def good_and_bad(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "in"
    files = {
        "gray.tif": rasters.gray(d / "gray.tif"),
        "rgb collar.tif": rasters.rgb(d / "rgb.tif"),
        "rgba.tif": rasters.rgba(d / "rgba.tif"),
        "sub/uint16.tif": rasters.uint16(d / "u16.tif"),
        "float nan.tif": rasters.float32_nan(d / "f.tif"),
        "int16.tif": rasters.int16(d / "i16.tif"),
        "ünï+code%.tif": rasters.paletted(d / "pal.tif"),
    }
    cog = d / "for-truncation.tif"
    gdal_copy(rasters.gray(d / "g2.tif", size=600), cog, driver="COG", COMPRESS="DEFLATE")
    files["truncated.tif"] = rasters.truncated(d / "trunc.tif", cog, keep=0.6)
    (d / "zero.tif").write_bytes(b"")
    files["zero.tif"] = d / "zero.tif"
    (d / "text.tif").write_text("this is not an image\n")
    files["text.tif"] = d / "text.tif"
    return files


def test_mixed_archive_end_to_end(s3: S3, cli: Any, tmp_path: Path) -> None:
    originals = upload(s3, good_and_bad(tmp_path))
    s3.put("src-bucket", "scenes/cold.tif", b"archived long ago", StorageClass="GLACIER")

    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)
    assert result.exit_code == 1, result.output  # bad inputs failed; the run went on
    report = load_report(s3, result.stdout)
    scenes = by_name(report)

    good = [
        "gray.tif",
        "rgb collar.tif",
        "rgba.tif",
        "uint16.tif",
        "float nan.tif",
        "int16.tif",
        "ünï+code%.tif",
    ]
    bad = ["truncated.tif", "zero.tif", "text.tif"]
    assert {n: scenes[n]["status"] for n in good} == dict.fromkeys(good, "compacted")
    assert {n: scenes[n]["status"] for n in bad} == dict.fromkeys(bad, "failed")
    assert scenes["cold.tif"]["status"] == "skipped"
    assert "GLACIER" in scenes["cold.tif"]["reason"]
    for n in bad:
        assert scenes[n]["reason"], n
        assert scenes[n]["output"] is None  # URLs in the report are objects that exist
        assert scenes[n]["archive"] is None
    assert "not a raster GDAL can open" in scenes["zero.tif"]["reason"]

    # auto codec choices
    assert scenes["gray.tif"]["codec"] == "jpeg"
    assert scenes["rgb collar.tif"]["codec"] == "jpeg"
    assert scenes["rgba.tif"]["codec"] == "jpeg"
    for n in ("uint16.tif", "float nan.tif", "int16.tif", "ünï+code%.tif"):
        # lossless, with the smallest encoding the search found on the scene's sample
        assert scenes[n]["codec"] in ("zstd", "deflate", "lerc", "lzw"), n
        assert scenes[n]["lossless"] is True, n
        assert scenes[n]["encoding_search"]["chosen"], n

    with s3_gdal(s3):
        for key, data in originals.items():
            rel = key[len("scenes/") :]
            name = rel.rsplit("/", 1)[-1]
            if name in good:
                # the original: gone from the source, byte-identical in GLACIER with metadata
                assert key not in s3.keys("src-bucket")
                arch_key = "orig/" + rel
                assert s3.storage_class("arc-bucket", arch_key) == "GLACIER"
                head = s3.client.head_object(Bucket="arc-bucket", Key=arch_key)
                assert head["Metadata"] == {"mission": "test"}
                assert head["ContentType"] == "image/tiff"
                assert s3.read("arc-bucket", arch_key) == data
                # the output: same relative key, a valid COG, the size the report gives
                out_key = "cogs/" + rel.rsplit(".", 1)[0] + ".tif"
                out_head = s3.client.head_object(Bucket="dst-bucket", Key=out_key)
                assert scenes[name]["bytes_out"] == out_head["ContentLength"]
                assert scenes[name]["bytes_in"] == len(data)
                assert scenes[name]["output"] == f"s3://dst-bucket/{out_key}"
                assert scenes[name]["archive"] == f"s3://arc-bucket/{arch_key}"
                valid, errors, _ = cog_validate(f"/vsis3/dst-bucket/{out_key}", quiet=True)
                assert (valid, errors) == (True, []), name
            else:
                # bad input: untouched at its source, nothing archived, no output
                assert s3.read("src-bucket", key) == data
                assert s3.storage_class("src-bucket", key) == "STANDARD"
                assert not [k for k in s3.keys("arc-bucket") if k.endswith(rel)]
                assert not [k for k in s3.keys("dst-bucket", "cogs/") if k.endswith(rel)]
    assert s3.storage_class("src-bucket", "scenes/cold.tif") == "GLACIER"

    # lossless outputs are pixel-identical; lossy ones meet the SSIM bar
    for n in good:
        s = scenes[n]
        assert s["ssim"] >= 0.95, n
        if s["lossless"]:
            assert s["ssim"] == 1.0
            assert s["psnr"] is None

    # totals add up
    t = report["totals"]
    every = scenes_of(report)
    assert t["scenes"] == len(every) == 11
    assert (t["compacted"], t["skipped"], t["failed"]) == (7, 1, 3)
    done = [s for s in every if s["status"] == "compacted"]
    assert t["bytes_in"] == sum(s["bytes_in"] for s in done)
    assert t["bytes_out"] == sum(s["bytes_out"] for s in done)
    assert report["cost"]["storage_class"] == "GLACIER"

    # no secret anywhere the user or a log reader sees
    html = s3.read(
        "dst-bucket", report["location"][len("s3://dst-bucket/") :] + "report.html"
    ).decode()
    log = json.dumps(every)
    for text in (result.output, json.dumps(report), html, log):
        assert FAKE_SECRET not in text


def test_second_identical_run_redoes_nothing(s3: S3, cli: Any, tmp_path: Path) -> None:
    d = tmp_path / "in"
    upload(s3, {"a.tif": rasters.rgb(d / "a.tif"), "b.tif": rasters.uint16(d / "b.tif")})
    args = ("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)
    first = cli(*args)
    assert first.exit_code == 0, first.output
    outputs = {
        k: (o["ETag"], o["LastModified"])
        for k, o in s3.objects("dst-bucket", "cogs/").items()
        if k.endswith(".tif") and "_compactor" not in k
    }
    archived = s3.objects("arc-bucket")

    second = cli(*args)
    assert second.exit_code == 0, second.output
    report = load_report(s3, second.stdout)
    # Counted from the finished index: no task, no request per scene.
    assert scenes_of(report) == []
    assert report["totals"]["finished_earlier"] == 2
    assert report["totals"]["compacted"] == 0
    after = {
        k: (o["ETag"], o["LastModified"])
        for k, o in s3.objects("dst-bucket", "cogs/").items()
        if k.endswith(".tif") and "_compactor" not in k
    }
    assert after == outputs  # not rewritten
    assert s3.objects("arc-bucket") == archived


@pytest.mark.parametrize(
    ("codec", "make", "compress"),
    [
        ("jpeg", rasters.rgb, "jpeg"),
        ("webp", rasters.rgb, "webp"),
        ("deflate", rasters.uint16, "deflate"),
        ("zstd", rasters.float32_nan, "zstd"),
        # LERC at zero error cannot shrink decimal floats; its float/NaN exactness is
        # covered in test_verify. Here it compacts an int16 DEM.
        ("lerc", rasters.int16, "lerc"),
    ],
)
def test_every_codec(
    s3: S3, cli: Any, tmp_path: Path, codec: str, make: Any, compress: str
) -> None:
    src = make(tmp_path / "s.tif")
    upload(s3, {"s.tif": src})
    result = cli("run", "--source", SRC, "--dest", DEST, "--codec", codec, "--min-ssim", "0.9")
    assert result.exit_code == 0, result.output
    (scene,) = scenes_of(load_report(s3, result.stdout))
    assert scene["codec"] == codec
    with (
        s3_gdal(s3),
        rasterio.open("/vsis3/dst-bucket/cogs/s.tif") as out,
        rasterio.open(src) as ref,
    ):
        assert out.compression is not None
        # LERC with an inner codec reads as LERC_DEFLATE / LERC_ZSTD
        assert out.compression.name.lower().startswith(compress)
        assert out.dtypes == ref.dtypes
        assert out.crs == ref.crs
        assert out.transform == ref.transform
        if scene["lossless"]:
            assert np.array_equal(out.read(), ref.read(), equal_nan=True)
        else:
            assert scene["ssim"] >= 0.9
            assert np.array_equal(out.dataset_mask(), ref.dataset_mask())
    # without --archive the original stays where it was
    assert s3.keys("src-bucket") == ["scenes/s.tif"]
    assert s3.keys("arc-bucket") == []


def test_nodata_and_alpha_become_exact_masks(s3: S3, cli: Any, tmp_path: Path) -> None:
    files = {
        "rgb.tif": rasters.rgb(tmp_path / "rgb.tif"),
        "rgba.tif": rasters.rgba(tmp_path / "rgba.tif"),
    }
    upload(s3, files)
    result = cli("run", "--source", SRC, "--dest", DEST)
    assert result.exit_code == 0, result.output
    with s3_gdal(s3):
        with (
            rasterio.open("/vsis3/dst-bucket/cogs/rgb.tif") as out,
            rasterio.open(files["rgb.tif"]) as ref,
        ):
            assert out.nodata == 0
            assert out.count == 3
            assert all(f[0].name == "per_dataset" for f in out.mask_flag_enums)
            assert np.array_equal(out.dataset_mask() > 0, ref.dataset_mask() > 0)
            assert (ref.dataset_mask() == 0).sum() > 10000  # there is a real collar
        with (
            rasterio.open("/vsis3/dst-bucket/cogs/rgba.tif") as out,
            rasterio.open(files["rgba.tif"]) as ref,
        ):
            assert out.count == 3  # the alpha band became the mask
            assert np.array_equal(out.dataset_mask() > 0, ref.read(4) > 0)


def test_quality_asked_is_quality_written(s3: S3, cli: Any, tmp_path: Path) -> None:
    upload(s3, {"g.tif": rasters.gray(tmp_path / "g.tif")})
    result = cli(
        "run",
        "--source",
        SRC,
        "--dest",
        DEST,
        "--codec",
        "jpeg",
        "--quality",
        "61",
        "--min-ssim",
        "0",
    )
    assert result.exit_code == 0, result.output
    assert scenes_of(load_report(s3, result.stdout))[0]["quality"] == 61
    local = tmp_path / "out.tif"
    local.write_bytes(s3.read("dst-bucket", "cogs/g.tif"))
    assert tiff_jpeg_quality(str(local)) == 61


def test_ssim_bar_raises_quality_then_goes_lossless(s3: S3, cli: Any, tmp_path: Path) -> None:
    upload(s3, {"g.tif": rasters.gray(tmp_path / "g.tif")})
    # A fixed quality climbs the ladder (tests/encode/test_auto_quality.py: what auto does).
    result = cli("run", "--source", SRC, "--dest", DEST, "--min-ssim", "0.9999", "--quality", "75")
    assert result.exit_code == 0, result.output
    (g,) = scenes_of(load_report(s3, result.stdout))
    assert [(a["codec"], a["quality"]) for a in g["attempts"]] == [
        ("jpeg", 75), ("jpeg", 85), ("jpeg", 90), ("jpeg", 95), ("zstd", None),
    ]  # fmt: skip
    assert all(a["ssim"] < 0.9999 for a in g["attempts"][:-1])
    assert [a["accepted"] for a in g["attempts"]] == [False] * 4 + [True]
    assert (g["codec"], g["lossless"], g["ssim"]) == ("zstd", True, 1.0)


def test_ssim_bar_keeps_the_first_passing_quality(s3: S3, cli: Any, tmp_path: Path) -> None:
    upload(s3, {"c.tif": rasters.rgb(tmp_path / "c.tif")})
    result = cli("run", "--source", SRC, "--dest", DEST, "--quality", "75")  # default bar 0.95
    assert result.exit_code == 0, result.output
    (c,) = scenes_of(load_report(s3, result.stdout))
    tried = [(a["quality"], a["ssim"]) for a in c["attempts"]]
    assert tried[0][0] == 75
    assert tried[0][1] < 0.95
    assert c["codec"] == "jpeg"
    assert c["quality"] > 75
    assert c["ssim"] >= 0.95
    assert all(ssim < 0.95 for _q, ssim in tried[:-1])
    assert tried[-1] == (c["quality"], c["ssim"])
    local = tmp_path / "c-out.tif"
    local.write_bytes(s3.read("dst-bucket", "cogs/c.tif"))
    assert tiff_jpeg_quality(str(local)) == c["quality"]


def test_impossible_codec_fails_that_scene_only(s3: S3, cli: Any, tmp_path: Path) -> None:
    originals = upload(
        s3,
        {"gray.tif": rasters.gray(tmp_path / "g.tif"), "rgb.tif": rasters.rgb(tmp_path / "c.tif")},
    )
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE, "--codec", "webp")
    assert result.exit_code == 1
    scenes = by_name(load_report(s3, result.stdout))
    assert scenes["gray.tif"]["status"] == "failed"
    assert "WEBP encodes 3 colour bands" in scenes["gray.tif"]["reason"]
    assert scenes["rgb.tif"]["status"] == "compacted"
    assert s3.read("src-bucket", "scenes/gray.tif") == originals["scenes/gray.tif"]
    assert s3.keys("arc-bucket") == ["orig/rgb.tif"]


def test_single_copy_keeps_tags_and_system_metadata(s3: S3, cli: Any, tmp_path: Path) -> None:
    # STANDARD_IA is readable at once, so the copy's tags can be read back (moto refuses
    # GetObjectTagging on GLACIER objects).
    data = rasters.rgb(tmp_path / "a.tif").read_bytes()
    s3.client.put_object(Bucket="src-bucket", Key="scenes/a.tif", Body=data, ContentType="image/tiff",
                         Metadata={"m": "1"}, Tagging="team=geo&x=y", CacheControl="no-cache",
                         ServerSideEncryption="AES256")  # fmt: skip
    result = cli(
        "run",
        "--source",
        SRC,
        "--dest",
        DEST,
        "--archive",
        ARCHIVE,
        "--storage-class",
        "STANDARD_IA",
    )
    assert result.exit_code == 0, result.output
    head = s3.client.head_object(Bucket="arc-bucket", Key="orig/a.tif")
    assert (head["StorageClass"], head["ContentType"], head["CacheControl"]) == (
        "STANDARD_IA",
        "image/tiff",
        "no-cache",
    )
    assert head["Metadata"] == {"m": "1"}
    assert head["ServerSideEncryption"] == "AES256"
    tags = s3.client.get_object_tagging(Bucket="arc-bucket", Key="orig/a.tif")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "geo", "x": "y"}


def test_archive_in_place(s3: S3, cli: Any, tmp_path: Path) -> None:
    originals = upload(s3, {"a.tif": rasters.rgb(tmp_path / "a.tif")})
    args = (
        "run",
        "--source",
        SRC,
        "--dest",
        DEST,
        "--archive",
        "in-place",
        "--storage-class",
        "DEEP_ARCHIVE",
    )
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert s3.storage_class("src-bucket", "scenes/a.tif") == "DEEP_ARCHIVE"
    assert s3.read("src-bucket", "scenes/a.tif") == originals["scenes/a.tif"]
    assert s3.client.head_object(Bucket="src-bucket", Key="scenes/a.tif")["Metadata"] == {
        "mission": "test"
    }
    again = cli(*args)
    assert again.exit_code == 0
    report = load_report(s3, again.stdout)
    # The original in DEEP_ARCHIVE is listed as the finished version: not run again.
    assert scenes_of(report) == []
    assert report["totals"]["finished_earlier"] == 1


def test_nitf_jp2_and_img_inputs(s3: S3, cli: Any, tmp_path: Path) -> None:
    base = rasters.rgb(tmp_path / "base.tif", nodata_collar=False)
    files = {}
    for driver, ext, opts in (
        ("NITF", "ntf", {}),
        ("JP2OpenJPEG", "jp2", {"REVERSIBLE": "YES", "QUALITY": "100"}),
        ("HFA", "img", {}),
    ):
        gdal_copy(base, tmp_path / f"s.{ext}", driver=driver, **opts)
        files[f"s.{ext}"] = tmp_path / f"s.{ext}"
    upload(s3, files)
    # A lossless JPEG 2000 may already be smaller than a JPEG COG of it; take it anyway.
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE, "--min-saving", "-1")
    assert result.exit_code == 0, result.output
    scenes = by_name(load_report(s3, result.stdout))
    # Three sources share the stem "s" and none is a .tif: each keeps its full name.
    for ext in ("ntf", "jp2", "img"):
        scene = scenes[f"s.{ext}"]
        assert (scene["status"], scene["output"]) == ("compacted", f"{DEST}s.{ext}.tif")
    assert sorted(s3.keys("arc-bucket")) == ["orig/s.img", "orig/s.jp2", "orig/s.ntf"]


def test_scene_that_would_not_shrink_is_left_as_it_is(s3: S3, cli: Any, tmp_path: Path) -> None:
    # Already a small JPEG COG at quality 40: re-encoding at 75 would only grow it. (Under
    # --quality auto it would be re-encoded at the lowest quality that holds the bar.)
    small = tmp_path / "small.tif"
    gdal_copy(
        rasters.gray(tmp_path / "g.tif", size=600), small, driver="COG", COMPRESS="JPEG", QUALITY=40
    )
    originals = upload(s3, {"small.tif": small, "big.tif": rasters.rgb(tmp_path / "big.tif")})
    args = ("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE, "--quality", "75")
    result = cli(*args)
    assert result.exit_code == 0, result.output
    scenes = by_name(load_report(s3, result.stdout))
    assert scenes["small.tif"]["status"] == "skipped"
    assert scenes["small.tif"]["reason"].startswith("left as it is")
    assert scenes["big.tif"]["status"] == "compacted"
    assert s3.read("src-bucket", "scenes/small.tif") == originals["scenes/small.tif"]
    assert "cogs/small.tif" not in s3.keys("dst-bucket")
    assert s3.keys("arc-bucket") == ["orig/big.tif"]
    again = load_report(s3, cli(*args).stdout)
    # Remembered under this policy, not encoded again: counted with the finished scenes.
    assert scenes_of(again) == []
    assert again["totals"]["finished_earlier"] == 2
    policy = cli(*args, "--min-saving", "-1")  # another policy: tried again
    assert by_name(load_report(s3, policy.stdout))["small.tif"]["status"] == "compacted"


def test_plan_touches_nothing(s3: S3, cli: Any, tmp_path: Path) -> None:
    upload(s3, {"a.tif": rasters.rgb(tmp_path / "a.tif", size=1200), "b.tif": rasters.uint16(tmp_path / "b.tif"),
                "c.tif": rasters.float32_nan(tmp_path / "c.tif")})  # fmt: skip
    (tmp_path / "bad.tif").write_text("nope")
    upload(s3, {"bad.tif": tmp_path / "bad.tif"})
    before = {
        b: {k: o["ETag"] for k, o in s3.objects(b).items()}
        for b in ("src-bucket", "dst-bucket", "arc-bucket")
    }
    result = cli("plan", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE, "--json")
    assert result.exit_code == 0, result.output
    rows = {Path(r["source"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["a.tif"]["action"] == "compact"
    assert rows["a.tif"]["codec"] == "jpeg"
    assert rows["b.tif"]["codec"] in ("zstd", "deflate", "lerc", "lzw")
    assert rows["b.tif"]["lossless"] is True
    assert rows["bad.tif"]["action"] == "fail"
    assert rows["bad.tif"]["reason"]
    assert 0 < rows["a.tif"]["est_bytes_out"] < rows["a.tif"]["raw_bytes"]
    after = {
        b: {k: o["ETag"] for k, o in s3.objects(b).items()}
        for b in ("src-bucket", "dst-bucket", "arc-bucket")
    }
    assert after == before
    table = cli("plan", "--source", SRC, "--dest", DEST)
    assert table.exit_code == 0
    assert "to compact" in table.stdout
    assert "a.tif" in table.stdout


def test_python_api(s3: S3, dask_scheduler: str, tmp_path: Path) -> None:
    upload(
        s3, {"a.tif": rasters.rgb(tmp_path / "a.tif"), "b.tif": rasters.int16(tmp_path / "b.tif")}
    )
    df = compactor.plan(source=SRC, dest=DEST, scheduler=dask_scheduler)
    assert list(df["action"]) == ["compact", "compact"]
    assert df.attrs["compact"] == 2
    assert df.attrs["est_bytes_out"] > 0
    seen: list[str] = []
    report = compactor.run(
        source=SRC,
        dest=DEST,
        archive=ARCHIVE,
        scheduler=dask_scheduler,
        progress=lambda r: seen.append(r.status),
    )
    assert isinstance(report, compactor.Report)
    assert report.ok
    assert seen == ["compacted", "compacted"]
    assert report.totals.compacted == 2
    assert "<svg" in report._repr_html_()


def test_names_are_printed_as_they_are(
    s3: S3, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys that look like Rich markup are neither interpreted nor fatal, with the progress
    bar on and in the plan table."""
    (tmp_path / "bad.tif").write_text("not a raster")
    upload(s3, {"[bold]x[/bold].tif": tmp_path / "bad.tif", "bad[/].tif": tmp_path / "bad.tif",
                "ok.tif": rasters.gray(tmp_path / "ok.tif")})  # fmt: skip
    result = cli("run", "--source", SRC, "--dest", DEST, quiet=False)
    assert result.exit_code == 1, result.output
    assert f"FAILED {SRC}[bold]x[/bold].tif: not a raster GDAL can open" in result.stdout
    assert f"FAILED {SRC}bad[/].tif: not a raster GDAL can open" in result.stdout
    assert by_name(load_report(s3, result.stdout))["ok.tif"]["status"] == "compacted"
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that the table does not fold names
    table = cli("plan", "--source", SRC, "--dest", "s3://dst-bucket/other/", quiet=False)
    assert table.exit_code == 0, table.output
    assert "[bold]x[/bold].tif" in table.stdout


def test_plan_follows_the_ssim_ladder_and_the_saving_rule(s3: S3, cli: Any, tmp_path: Path) -> None:
    small = tmp_path / "small.tif"
    gdal_copy(
        rasters.gray(tmp_path / "g.tif", size=600), small, driver="COG", COMPRESS="JPEG", QUALITY=40
    )
    upload(s3, {"g.tif": rasters.gray(tmp_path / "g2.tif"), "small.tif": small})
    result = cli("plan", "--source", SRC, "--dest", DEST, "--min-ssim", "0.9999", "--json")
    assert result.exit_code == 0, result.output
    rows = {Path(r["source"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert (rows["g.tif"]["codec"], rows["g.tif"]["lossless"]) == ("zstd", True)  # bar unreachable
    assert rows["small.tif"]["action"] == "skip"
    assert rows["small.tif"]["reason"].startswith("left as it is")
    default = cli("plan", "--source", SRC, "--dest", DEST, "--json")
    rows = {Path(r["source"]).name: r for r in map(json.loads, default.stdout.splitlines())}
    assert isinstance(rows["g.tif"]["quality"], int)
    assert rows["g.tif"]["est_ssim"] >= 0.95


def test_missing_destination_bucket_is_a_usage_error(s3: S3, cli: Any, tmp_path: Path) -> None:
    upload(s3, {"a.tif": rasters.gray(tmp_path / "a.tif")})
    result = cli("run", "--source", SRC, "--dest", "s3://no-such-bucket/cogs/")
    assert result.exit_code == 2
    assert "the destination bucket s3://no-such-bucket does not exist" in result.output
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", "s3://no-archive-here/x/")
    assert result.exit_code == 2
    assert "archive bucket" in result.output
    assert s3.keys("src-bucket") == ["scenes/a.tif"]


def test_usage_errors_exit_2(s3: S3, cli: Any) -> None:
    missing = cli("run", "--source", SRC)
    assert missing.exit_code == 2
    assert "destination is required" in missing.output
    empty = cli("run", "--source", "s3://src-bucket/none/", "--dest", DEST)
    assert empty.exit_code == 2
    assert "no scenes under s3://src-bucket/none/" in empty.output
    bad_flag = cli("run", "--source", SRC, "--dest", DEST, "--quality", "101")
    assert bad_flag.exit_code == 2
