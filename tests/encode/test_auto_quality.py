"""``--quality auto``: per scene, the lowest quality that meets the SSIM bar.

The brute-force tables here encode each generated scene at every quality from 10 to 95
with the same writer and the same SSIM as a run, so "the smallest passing quality" is
measured, not assumed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import rasterio

from compactor.encode import choose_profile, write_cog
from compactor.encode._quality import QUALITY_MAX, QUALITY_MIN, compare_fixed, confirm_ladder
from compactor.errors import ConfigError
from compactor.gdal import read_info
from compactor.records import QualitySearch, SceneResult
from compactor.settings import resolve_settings
from compactor.verify import check_output

from .. import rasters
from ..reports import scenes_of

BAR = 0.95


def brute_force(path: Path, tmp: Path, codec: str = "jpeg") -> dict[int, tuple[int, float]]:
    """quality -> (bytes, SSIM) of the whole scene's COG, for every quality searched."""
    info = read_info(str(path))
    base = choose_profile(info, codec, None)
    table = {}
    for q in range(QUALITY_MIN, QUALITY_MAX + 1):
        profile = replace(base, quality=q)
        out = write_cog(str(path), tmp / f"{path.stem}-{codec}-{q}.tif", profile, info)
        fidelity = check_output(str(path), str(out), info, profile)
        assert fidelity.ssim is not None
        table[q] = (out.stat().st_size, fidelity.ssim)
        out.unlink()
    return table


def lowest_passing(table: dict[int, tuple[int, float]]) -> int:
    return min(q for q, (_, s) in table.items() if s >= BAR)


def upset(table: dict[int, tuple[int, float]]) -> bool:
    """The passing qualities are exactly those from the lowest passing one up to 95."""
    passing = [q for q in sorted(table) if table[q][1] >= BAR]
    return bool(passing) and passing == list(range(passing[0], QUALITY_MAX + 1))


def report_of(dest: Path) -> dict[str, Any]:
    (path,) = (dest / "_compactor" / "runs").glob("*/report.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[int, Any]]]:
    """Three small scenes that need different qualities, and their brute-force tables."""
    src = tmp_path_factory.mktemp("auto-src")
    work = tmp_path_factory.mktemp("auto-brute")
    paths = [
        rasters.gray(src / "hills.tif", size=384, seed=1),
        rasters.gray_collar(src / "island.tif", size=352, seed=3),
        rasters.smooth_rgb(src / "fields.tif", size=320, seed=6),
    ]
    return src, {p.name: brute_force(p, work) for p in paths}


@pytest.mark.slow
def test_auto_lands_on_the_smallest_passing_quality(
    cli: Any, tmp_path: Path, scenes: tuple[Path, dict[str, dict[int, Any]]]
) -> None:
    src, tables = scenes
    for name, table in tables.items():
        # Known behaviour of these scenes: every quality from the lowest passing one up
        # passes (a single threshold), and scenes need different ones.
        assert upset(table), name
        assert table[QUALITY_MAX][1] >= BAR > table[QUALITY_MIN][1], name
    assert len({lowest_passing(t) for t in tables.values()}) == len(tables)

    dest = tmp_path / "out"
    result = cli("run", "--source", str(src), "--dest", str(dest), "--quality", "auto")
    assert result.exit_code == 0, result.output
    report = report_of(dest)
    assert report["totals"]["compacted"] == len(tables)
    scenes = scenes_of(report)
    for scene in scenes:
        name = Path(scene["source"]).name
        table = tables[name]
        expected = lowest_passing(table)
        assert (scene["codec"], scene["quality"]) == ("jpeg", expected), name
        assert scene["ssim"] == pytest.approx(table[expected][1], abs=1e-9)
        assert scene["ssim"] >= BAR
        assert table[expected - 1][1] < BAR  # one quality lower misses the bar
        # The output is the brute-force encoding at that quality, byte for byte in size.
        assert scene["bytes_out"] == table[expected][0]
        search = scene["search"]
        assert search["sample_whole"] is True
        assert search["quality"] == expected
        assert len(search["probes"]) <= 8  # bisection, not a scan
        assert [a["accepted"] for a in scene["attempts"]] == [True]

    # Done when: smaller than every single fixed quality that keeps every scene at the bar.
    auto_total = sum(s["bytes_out"] for s in scenes)
    holding = [
        q
        for q in range(QUALITY_MIN, QUALITY_MAX + 1)
        if all(t[q][1] >= BAR for t in tables.values())
    ]
    assert holding, "some fixed quality must hold the bar for the comparison to mean anything"
    for q in holding:
        fixed_total = sum(t[q][0] for t in tables.values())
        assert auto_total < fixed_total, q
    # The report's comparison names the lowest fixed quality that holds on every scene.
    assert report["quality"]["fixed_quality"] == min(holding)
    best_fixed = sum(t[min(holding)][0] for t in tables.values())
    assert report["quality"]["bytes_auto"] == auto_total
    assert report["quality"]["bytes_fixed"] == pytest.approx(best_fixed, rel=0.03)
    assert report["quality"]["saving"] == pytest.approx(1 - auto_total / best_fixed, abs=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [False, True], ids=["one-task", "chunked"])
def test_a_sampled_scene_that_misses_on_the_whole_is_raised(
    cli: Any, tmp_path: Path, chunked: bool
) -> None:
    """The sample is smooth, the rest grainy: the searched quality misses on the whole output,
    so the run steps up until the whole output meets the bar (one task, or chunk tasks)."""
    src = tmp_path / "src"
    rasters.patchy(src / "patchy.tif")
    dest = tmp_path / "out"
    extra = ["--chunk-threshold", "1MiB"] if chunked else []
    result = cli("run", "--source", str(src), "--dest", str(dest), *extra)  # auto: the default
    assert result.exit_code == 0, result.output
    (scene,) = scenes_of(report_of(dest))
    assert scene["status"] == "compacted"
    assert scene["chunked"] is chunked
    search = scene["search"]
    assert search["sample_whole"] is False
    attempts = scene["attempts"]
    assert attempts[0]["quality"] == search["quality"]
    assert attempts[0]["ssim"] < BAR
    assert not attempts[0]["accepted"]
    assert attempts[-1]["accepted"]
    assert scene["ssim"] >= BAR
    # Kept where the attempts say, and never below the searched quality.
    assert (scene["codec"], scene["quality"]) == (attempts[-1]["codec"], attempts[-1]["quality"])
    assert scene["quality"] is None or scene["quality"] > search["quality"]


@pytest.mark.slow
def test_auto_lossy_picks_webp_only_when_allowed_and_smaller(cli: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    path = rasters.smooth_rgb(src / "coast.tif", size=320, seed=5)
    webp = brute_force(path, tmp_path, codec="webp")
    jpeg = brute_force(path, tmp_path, codec="jpeg")
    assert upset(jpeg)  # JPEG's threshold is single; WEBP's SSIM wiggles with quality
    q_jpeg = lowest_passing(jpeg)
    assert lowest_passing(webp) < q_jpeg
    assert webp[lowest_passing(webp)][0] < jpeg[q_jpeg][0]  # WEBP is smaller at the bar here

    plain = tmp_path / "plain"
    result = cli("run", "--source", str(src), "--dest", str(plain), "--codec", "auto-lossy")
    assert result.exit_code == 0, result.output
    (scene,) = scenes_of(report_of(plain))
    assert (scene["codec"], scene["quality"]) == ("jpeg", q_jpeg)
    assert {p["codec"] for p in scene["search"]["probes"]} == {"jpeg"}

    allowed = tmp_path / "allowed"
    result = cli(
        "run", "--source", str(src), "--dest", str(allowed),
        "--codec", "auto-lossy", "--allow-webp",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (scene,) = scenes_of(report_of(allowed))
    q_webp = scene["quality"]
    assert scene["codec"] == "webp"
    # Bisection's guarantee: the quality kept passes on the whole scene, the one below fails.
    assert webp[q_webp][1] >= BAR > webp[q_webp - 1][1]
    assert scene["bytes_out"] == webp[q_webp][0] < jpeg[q_jpeg][0]
    assert scene["ssim"] == pytest.approx(webp[q_webp][1], abs=1e-9)
    assert {p["codec"] for p in scene["search"]["probes"]} == {"jpeg", "webp"}
    with rasterio.open(allowed / "coast.tif") as out:
        assert out.compression is not None
        assert out.compression.name.upper() == "WEBP"


def test_quality_settings() -> None:
    assert resolve_settings({}, environ={}).quality_mode == "auto"
    assert resolve_settings({"min_ssim": 0}, environ={}).quality_mode is None
    assert resolve_settings({"quality": 80}, environ={}).quality_mode == 80
    assert resolve_settings({}, environ={"COMPACTOR_QUALITY": "AUTO"}).quality == "auto"
    assert resolve_settings({}, environ={"COMPACTOR_QUALITY": "60"}).quality == 60
    assert resolve_settings({}, environ={"COMPACTOR_ALLOW_WEBP": "1"}).allow_webp is True
    with pytest.raises(ConfigError, match="min_ssim > 0"):
        resolve_settings({"quality": "auto", "min_ssim": 0}, environ={})
    with pytest.raises(ConfigError, match="between 1 and 100"):
        resolve_settings({"quality": 101}, environ={})


def test_quality_flag_is_checked(cli: Any, tmp_path: Path) -> None:
    for bad, message in (("101", "not between 1 and 100"), ("best", "neither auto nor")):
        result = cli("plan", "--source", str(tmp_path), "--dest", str(tmp_path / "o"),
                     "--quality", bad, scheduler=False)  # fmt: skip
        assert result.exit_code == 2
        assert message in result.output
    help_text = cli("run", "--help").output
    assert "auto-lossy" in help_text
    assert "--allow-webp" in help_text


def test_confirm_ladder_steps_up_then_lossless() -> None:
    from compactor.cog import Profile

    ladder = confirm_ladder(Profile(codec="jpeg", quality=60))
    assert [(p.codec, p.quality) for p in ladder] == [
        ("jpeg", 62), ("jpeg", 65), ("jpeg", 70), ("zstd", None),
    ]  # fmt: skip
    top = confirm_ladder(Profile(codec="webp", quality=93))
    assert [(p.codec, p.quality) for p in top] == [("webp", 95), ("zstd", None)]
    assert confirm_ladder(Profile(codec="zstd")) == []


def test_fixed_comparison_arithmetic() -> None:
    def scene(q: int, out: int, curve: list[int], codec: str = "jpeg") -> SceneResult:
        return SceneResult(
            source=f"s3://b/{q}.tif", status="compacted", codec=codec, quality=q,
            lossless=False, bytes_out=out,
            search=QualitySearch(min_ssim=BAR, sample_whole=True, sample_pixels=1, codec=codec,
                                 quality=q, jpeg_quality=q, jpeg_bytes=curve,
                                 chosen_bytes=curve[0]),
        )  # fmt: skip

    a = scene(50, 1000, [100 + i for i in range(46)])  # 100 bytes at q50 ... 140 at q90
    b = scene(90, 4000, [400, 410, 420, 430, 440, 450])  # its own quality is the fixed one
    lossless = SceneResult(source="s3://b/x.tif", status="compacted", codec="zstd",
                           lossless=True, bytes_out=5000)  # fmt: skip
    cmp = compare_fixed([a, b, lossless], BAR)
    assert cmp is not None
    assert cmp.fixed_quality == 90
    assert cmp.scenes == 2
    assert cmp.bytes_auto == 5000
    assert cmp.bytes_fixed == 1000 * 140 // 100 + 4000
    assert cmp.saving == pytest.approx(1 - 5000 / 5400)
    assert cmp.chosen == {"jpeg q50": 1, "jpeg q90": 1}
    assert compare_fixed([lossless], BAR) is None


@pytest.mark.slow
def test_chunked_rgb_output_holds_the_bar_as_gdal_reads_it(cli: Any, tmp_path: Path) -> None:
    """The chunk tasks decode RGB JPEG tiles with libjpeg-turbo, GDAL with libtiff's JPEG:
    at the low qualities auto reaches their SSIMs differ by up to 0.01. What is kept must
    meet the bar as GDAL reads the visible output."""
    src = tmp_path / "src"
    path = rasters.rgb(src / "rgb.tif", size=1600)
    dest = tmp_path / "out"
    result = cli("run", "--source", str(src), "--dest", str(dest), "--chunk-threshold", "1KiB")
    assert result.exit_code == 0, result.output
    (scene,) = scenes_of(report_of(dest))
    assert scene["chunked"]
    assert scene["codec"] == "jpeg"
    info = read_info(str(path))
    kept = choose_profile(info, scene["codec"], scene["quality"])
    gdal = check_output(str(path), str(dest / "rgb.tif"), info, kept)
    assert gdal.ssim is not None
    assert gdal.ssim >= BAR
    assert scene["ssim"] >= gdal.ssim  # the chunk tasks' decoder reads it a little better


def test_samples_of_wide_short_scenes_hold_only_scene_pixels(tmp_path: Path) -> None:
    """3000x400: two windows side by side, no filler rows that would count as pixels."""
    import numpy as np

    from compactor.encode import write_sample

    data = (rasters.terrain(3000, seed=3)[:400] % 250).astype("uint8")[None]
    path = rasters.write(tmp_path / "wide.tif", data)
    sample = write_sample(str(path), read_info(str(path)), tmp_path / "s")
    assert (sample.info.width, sample.info.height) == (1024, 400)
    assert sample.raw_bytes == 1024 * 400
    with rasterio.open(sample.path) as s:
        pixels = s.read(1)
    (c0, _, w, _), (c1, _, _, _) = sample.windows
    assert np.array_equal(pixels[:, :w], data[0, :, c0 : c0 + w])
    assert np.array_equal(pixels[:, w:], data[0, :, c1 : c1 + w])
