"""Exploratory runs: compactor.compare and compactor.preview against the real S3 server and
the session's Dask cluster, and the notebook progress display outside and inside a real
IPython kernel."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import imagecodecs
import nbformat
import numpy as np
import pandas as pd
import pytest
import rasterio
from distributed import Client
from nbclient import NotebookClient

import compactor
from compactor.errors import CompactorError, ConfigError, UnsupportedCodecError
from compactor.notebook._comparison import Comparison
from compactor.notebook._profiles import parse_spec
from compactor.records._results import SceneResult
from compactor.runner._progress import NotebookProgress, in_notebook

from .. import rasters
from ..conftest import S3

SRC = "s3://src-bucket/scenes/"


def upload_scenes(s3: S3, tmp_path: Path) -> dict[str, Path]:
    """An RGB scene with a nodata collar, a grey scene large enough to be sampled, a uint16
    scene and a paletted one, under s3://src-bucket/scenes/."""
    files = {
        "rgb.tif": rasters.rgb(tmp_path / "rgb.tif", size=600),
        "gray.tif": rasters.gray(tmp_path / "gray.tif", size=1280),
        "reflectance.tif": rasters.uint16(tmp_path / "reflectance.tif", size=320),
        "classes.tif": rasters.paletted(tmp_path / "classes.tif"),
    }
    for name, path in files.items():
        s3.put("src-bucket", f"scenes/{name}", path)
    return files


def all_keys(s3: S3) -> dict[str, dict[str, Any]]:
    return {
        bucket: {k: (o["ETag"], o["Size"]) for k, o in s3.objects(bucket).items()}
        for bucket in ("src-bucket", "dst-bucket", "arc-bucket")
    }


def scratch_entries(client: Client) -> list[str]:
    """What compactor left in the workers' scratch directories."""

    def listing(dask_worker: Any) -> list[str]:
        base = os.path.join(dask_worker.local_directory, "compactor")
        return sorted(os.listdir(base)) if os.path.isdir(base) else []

    return [e for entries in client.run(listing).values() for e in entries]


def row(df: pd.DataFrame, scene: str, profile: str) -> Any:
    hits = df[(df["scene"] == SRC + scene) & (df["profile"] == profile)]
    assert len(hits) == 1, (scene, profile, df[["scene", "profile"]])
    return hits.iloc[0]


def test_compare_measures_every_scene_and_profile(
    s3: S3, dask_scheduler: str, tmp_path: Path
) -> None:
    files = upload_scenes(s3, tmp_path)
    before = all_keys(s3)
    scenes = [SRC + name for name in files]
    profiles = ["jpeg:40", "jpeg:90", "zstd"]
    with Client(dask_scheduler) as client:
        result = compactor.compare(scenes, profiles, client=client)
        assert not [e for e in scratch_entries(client) if e.startswith("compare-")]
    df = result.df
    assert isinstance(result, Comparison)
    assert len(df) == len(scenes) * len(profiles)
    assert set(zip(df["scene"], df["profile"], strict=True)) == {
        (s, p) for s in scenes for p in profiles
    }

    # Lower JPEG quality: smaller and less faithful, on the same scene.
    for scene in ("rgb.tif", "gray.tif"):
        low, high = row(df, scene, "jpeg:40"), row(df, scene, "jpeg:90")
        assert pd.isna(low["error"])
        assert pd.isna(high["error"])
        assert (low["codec"], low["quality"], high["quality"]) == ("jpeg", 40, 90)
        assert low["bytes"] < high["bytes"]
        assert low["ssim"] < high["ssim"] < 1.0
        assert low["psnr"] < high["psnr"]
        assert low["ratio"] == pytest.approx(low["raw_bytes"] / low["bytes"])
        assert low["encode_s"] > 0

    # Lossless: identical pixels, so SSIM 1 and no PSNR.
    for scene in files:
        z = row(df, scene, "zstd")
        assert pd.isna(z["error"])
        assert bool(z["lossless"]) is True
        assert z["ssim"] == 1.0
        assert pd.isna(z["psnr"])
        assert z["bytes"] > 0

    # Impossible profiles are rows with a reason, not exceptions.
    for profile in ("jpeg:40", "jpeg:90"):
        bad = row(df, "reflectance.tif", profile)
        assert "8-bit" in bad["error"]
        assert "uint16" in bad["error"]
        assert pd.isna(bad["bytes"])
        assert pd.isna(bad["ssim"])
        # The profile comes from the scene (which has a colour table), not from its sample.
        assert "colour table" in row(df, "classes.tif", profile)["error"]

    # Small scenes are their own sample; the large one is sampled and scaled up.
    rgb = row(df, "rgb.tif", "zstd")
    assert not rgb["sample"]
    assert rgb["raw_bytes"] == 600 * 600 * 3
    assert rgb["est_bytes"] == rgb["bytes"]
    assert rgb["bytes_in"] == files["rgb.tif"].stat().st_size
    gray = row(df, "gray.tif", "jpeg:40")
    assert gray["sample"]
    assert gray["raw_bytes"] == 4 * 512 * 512
    assert gray["est_bytes"] == round(1280 * 1280 * gray["bytes"] / gray["raw_bytes"])

    # The chart: one mark per row with an SSIM, the bar dashed, a legend entry per profile.
    svg = result.plot()
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert svg.count('class="mark"') == int(df["ssim"].notna().sum()) == 8
    assert svg.count('class="key"') == len(profiles)
    assert re.search(r'class="ssim-bar"[^>]*stroke-dasharray', svg)
    assert "SSIM bar 0.95" in svg
    assert result.plot("bytes").count('class="mark"') == 8

    summary = result.summary().set_index("profile")
    assert list(summary.index) == profiles
    assert summary.loc["zstd", "scenes"] == 4
    assert summary.loc["zstd", "passing"] == 4
    assert summary.loc["jpeg:40", "errors"] == 2
    assert summary.loc["jpeg:40", "bytes"] == int(
        df[(df["profile"] == "jpeg:40") & df["error"].isna()]["bytes"].sum()
    )
    assert summary.loc["jpeg:40", "ssim_min"] == pytest.approx(
        min(row(df, s, "jpeg:40")["ssim"] for s in ("rgb.tif", "gray.tif"))
    )

    page = result._repr_html_()
    assert "<svg" in page
    assert "<table" in page
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)="(https?:)?//', page)

    # Nothing was written anywhere.
    assert all_keys(s3) == before


def test_compare_takes_a_plan_or_a_prefix(s3: S3, dask_scheduler: str, tmp_path: Path) -> None:
    upload_scenes(s3, tmp_path)
    before = all_keys(s3)
    with Client(dask_scheduler) as client:
        plan = compactor.plan(source=SRC, dest="s3://dst-bucket/cogs/", client=client)
        assert set(plan["action"]) == {"compact"}
        # Only the rows a run would compact are compared.
        plan.loc[plan["source"] == SRC + "classes.tif", "action"] = "skip"
        from_plan = compactor.compare(plan, "webp:80", client=client)
        listed = compactor.compare(SRC, ["jpeg:75"], client=client, exclude="classes*")
        whole = compactor.compare([SRC + "gray.tif"], ["jpeg:75"], client=client, whole=True)
        guarded = compactor.compare(
            [SRC + "gray.tif"], ["jpeg:75"], client=client, whole=True, chunk_threshold="1MiB"
        )
    expected = {SRC + n for n in ("rgb.tif", "gray.tif", "reflectance.tif")}
    assert set(from_plan.df["scene"]) == expected
    webp = from_plan.df.set_index("scene")
    assert webp.loc[SRC + "rgb.tif", "ssim"] > 0.8
    assert "3 colour bands" in webp.loc[SRC + "gray.tif", "error"]
    assert set(listed.df["scene"]) == expected
    assert listed.df.set_index("scene").loc[SRC + "gray.tif", "ssim"] > 0.8
    # The whole scene instead of a sample, unless it is too large to hold in memory.
    entire = whole.df.iloc[0]
    assert not entire["sample"]
    assert entire["raw_bytes"] == 1280 * 1280
    assert entire["est_bytes"] == entire["bytes"]
    assert entire["ssim"] > 0.8
    assert "whole=True" in guarded.df.iloc[0]["error"]
    assert all_keys(s3) == before


def test_compare_auto_profile_finds_the_lowest_passing_quality(
    s3: S3, dask_scheduler: str, tmp_path: Path
) -> None:
    """``jpeg:auto`` is the run's search on the sample: the quality it names meets the bar
    and one quality lower does not (both measured by compare itself)."""
    s3.put("src-bucket", "scenes/gray.tif", rasters.gray(tmp_path / "gray.tif", size=384))
    s3.put("src-bucket", "scenes/u16.tif", rasters.uint16(tmp_path / "u16.tif", size=200))
    with Client(dask_scheduler) as client:
        found = compactor.compare(SRC, ["jpeg:auto", "zstd"], client=client, min_ssim=0.95)
        q = int(row(found.df, "gray.tif", "jpeg:auto")["quality"])
        check = compactor.compare([SRC + "gray.tif"], [f"jpeg:{q}", f"jpeg:{q - 1}"], client=client)
        strict = compactor.compare([SRC + "gray.tif"], ["jpeg:auto"], client=client,
                                   min_ssim=0.999)  # fmt: skip
    auto = row(found.df, "gray.tif", "jpeg:auto")
    assert 10 <= q <= 95
    assert auto["ssim"] >= 0.95
    assert row(check.df, "gray.tif", f"jpeg:{q}")["ssim"] == pytest.approx(auto["ssim"])
    assert row(check.df, "gray.tif", f"jpeg:{q - 1}")["ssim"] < 0.95
    assert "8-bit" in row(found.df, "u16.tif", "jpeg:auto")["error"]
    # No JPEG quality reaches 0.999 on it (q95 gives about 0.9987): a row that says so.
    assert "misses SSIM 0.999" in row(strict.df, "gray.tif", "jpeg:auto")["error"]
    with pytest.raises(ConfigError, match="searched per scene"):
        compactor.preview(SRC + "gray.tif", "jpeg:auto")


def test_profile_strings_are_checked_before_any_work() -> None:
    assert parse_spec(" JPEG:75 ").text == "jpeg:75"
    assert parse_spec("zstd").quality is None
    for bad, words in (
        ("png", "unknown codec"),
        ("jpeg:0", "between 1 and 100"),
        ("jpeg:high", "whole number"),
        ("lzw:9", "takes no level"),
    ):
        with pytest.raises(ConfigError, match=words):
            compactor.compare(["s3://src-bucket/a.tif"], [bad])
    with pytest.raises(ConfigError, match="no scenes"):
        compactor.compare([], ["zstd"])


def test_preview_of_a_crop(s3: S3, dask_scheduler: str, tmp_path: Path) -> None:
    files = upload_scenes(s3, tmp_path)
    before = all_keys(s3)
    jpeg = compactor.preview(SRC + "rgb.tif", "jpeg:30")
    assert jpeg.window == (108, 108, 384, 384)
    for image in (jpeg.original, jpeg.compressed):
        assert image.shape == (384, 384, 3)
        assert image.dtype == np.uint8
    assert jpeg.difference.shape == (384, 384)
    assert jpeg.difference.dtype == np.uint8
    with rasterio.open(files["rgb.tif"]) as src:
        crop = src.read(window=((108, 492), (108, 492)))
    valid = (crop != 0).any(axis=0)
    assert np.array_equal(jpeg.original, np.where(valid, crop, 0).transpose(1, 2, 0))
    assert not jpeg.exact
    assert jpeg.difference.max() > 0
    assert 0.5 < jpeg.ssim < 0.99
    assert jpeg.psnr is not None
    assert 0 < jpeg.bytes < jpeg.raw_bytes == 384 * 384 * 3
    assert np.all(jpeg.difference[~valid] == 0)  # the mask is exact

    page = jpeg._repr_html_()
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3
    import base64

    decoded = [imagecodecs.png_decode(base64.b64decode(i)) for i in images]
    assert np.array_equal(decoded[0], jpeg.original)
    assert np.array_equal(decoded[1], jpeg.compressed)
    assert np.array_equal(decoded[2], jpeg.difference)
    assert "jpeg q30" in page
    assert "difference &#215;8" in page
    assert "SSIM 0." in page

    lossless = compactor.preview(SRC + "rgb.tif", "zstd", window=(10, 20, 100, 50))
    assert lossless.original.shape == (50, 100, 3)
    assert lossless.exact
    assert lossless.ssim == 1.0
    assert lossless.psnr is None
    assert not lossless.difference.any()
    assert np.array_equal(lossless.original, lossless.compressed)

    # 16-bit: shown with a percentile stretch; lossy codecs are refused.
    refl = compactor.preview(SRC + "reflectance.tif", "zstd", size=128)
    assert refl.stretched
    assert refl.original.dtype == np.uint8
    assert refl.original.shape == (128, 128, 3)
    assert refl.original.max() == 255
    assert not refl.difference.any()
    with pytest.raises(UnsupportedCodecError, match="8-bit"):
        compactor.preview(SRC + "reflectance.tif", "jpeg:75")
    with pytest.raises(ConfigError, match="not inside"):
        compactor.preview(SRC + "rgb.tif", "zstd", window=(500, 500, 200, 200))
    with pytest.raises(CompactorError, match="not found: The specified key does not exist"):
        compactor.preview(SRC + "missing.tif", "zstd")

    # On the cluster: the same crop, the same bytes.
    with Client(dask_scheduler) as client:
        remote = compactor.preview(SRC + "rgb.tif", "jpeg:30", client=client)
        assert not [e for e in scratch_entries(client) if e.startswith("preview-")]
    assert np.array_equal(remote.compressed, jpeg.compressed)
    assert remote.bytes == jpeg.bytes
    assert all_keys(s3) == before


def test_notebook_progress_outside_a_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    assert in_notebook() is False
    with NotebookProgress("compactor run", min_interval=60) as bar:
        bar.start(4)
        bar.dashboard('http://127.0.0.1:8787/status?a=1&b="x"')
        for status in ("compacted", "compacted", "skipped"):
            bar.advance(SceneResult(source="s3://b/k.tif", status=status))
        assert bar.text() == "3/4 scenes — 2 compacted, 1 skipped, 0 failed"
        updates = bar.updates
        bar.advance(SceneResult(source="s3://b/k.tif", status="failed"))
        assert bar.updates == updates + 1  # the last scene is always drawn
    assert bar.handle is None  # nothing displayed outside a kernel
    page = bar.html()
    assert '<progress value="4" max="4"' in page
    assert "4/4 scenes &#8212; 2 compacted, 1 skipped, 1 failed" in page
    assert 'href="http://127.0.0.1:8787/status?a=1&amp;b=&quot;x&quot;"' in page
    assert "finished" in page
    assert capsys.readouterr() == ("", "")

    # Throttled: a burst of results is drawn a few times, not once per scene.
    plan = NotebookProgress("compactor plan", min_interval=0.2)
    plan.start(500)
    for i in range(499):
        plan.advance({"source": f"s3://b/{i}.tif", "action": ("compact", "skip")[i % 2]})
    assert plan.updates < 10
    plan.advance({"source": "s3://b/last.tif", "action": "fail"})
    assert plan.text() == "500/500 scenes — 250 to compact, 249 to skip, 1 failed"

    stopped = NotebookProgress()
    stopped.start(2)
    with pytest.raises(RuntimeError), stopped:
        raise RuntimeError("cancelled")
    assert "stopped" in stopped.html()


def test_in_notebook_is_false_in_python_and_ipython_and_lazy() -> None:
    code = (
        "import sys\n"
        "import compactor\n"
        "from compactor.runner._progress import in_notebook\n"
        "print(in_notebook(), 'IPython' in sys.modules)\n"
        "from IPython.terminal.interactiveshell import TerminalInteractiveShell\n"
        "TerminalInteractiveShell.instance()\n"
        "print(in_notebook())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split("\n")
    assert out[:2] == ["False False", "False"]


@pytest.mark.e2e  # starts its own processes
def test_notebook_progress_in_a_kernel(tmp_path: Path) -> None:
    """In a real IPython kernel: in_notebook() is True and the bar is one display, updated
    in place (nbclient applies the updates to the output)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from compactor.records._results import SceneResult\n"
            "from compactor.runner._progress import NotebookProgress, in_notebook\n"
            "print(in_notebook())\n"
            "with NotebookProgress('compactor run') as bar:\n"
            "    bar.start(3)\n"
            "    bar.dashboard('http://127.0.0.1:8787/status')\n"
            "    for status in ('compacted', 'skipped', 'failed'):\n"
            "        bar.advance(SceneResult(source='s3://b/k.tif', status=status))\n"
        )
    ]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["stream", "display_data"]
    assert outputs[0].text == "True\n"
    page = outputs[1].data["text/html"]
    assert '<progress value="3" max="3"' in page
    assert "3/3 scenes &#8212; 1 compacted, 1 skipped, 1 failed" in page
    assert '<a href="http://127.0.0.1:8787/status"' in page
    assert "finished" in page
