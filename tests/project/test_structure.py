"""The structure's own contracts: the scene walk's decision table, the codec registry as the
one vocabulary, the one fan-out, and only expected errors translated (a bug in a scene task
stops the run instead of becoming a failed scene)."""

from __future__ import annotations

import operator
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import rasterio
import tifffile
from distributed import Client

from compactor.cli._options import QUALITY
from compactor.codecs import CHOICES, CODECS, LOSSLESS, LOSSY, POLICIES, parse_quality
from compactor.encode import choose_profile, write_cog
from compactor.errors import ConfigError, ObjectNotFound, StorageError
from compactor.gdal import read_info
from compactor.notebook import _profiles as explore
from compactor.records import Fingerprint, SceneState, Step, StoredObject
from compactor.runner import fan_out
from compactor.scene import Action, decide
from compactor.settings import Settings, resolve_settings
from compactor.storage import Location, ObjectInfo, S3Options, S3Store

from .. import rasters
from ..conftest import BIN, S3

# --- the decision table --------------------------------------------------------------------

LIVE = ObjectInfo(url="s3://b/k.tif", size=100, etag='"e1"', mtime="t1")
COLD = ObjectInfo(url="s3://b/k.tif", size=100, etag='"e2"', mtime="t2", storage_class="GLACIER")
MOVED = ObjectInfo(url="s3://b/k.tif", size=100, etag='"e3"', mtime="t3")


def state(step: Step, live: ObjectInfo = LIVE, **changes: Any) -> SceneState:
    return SceneState(
        source=live.url, fingerprint=Fingerprint.of(live), step=step,
        output=StoredObject(url="s3://d/k.tif", size=10 if step >= Step.ENCODED else 0),
        run_id="r", updated="t", **changes,
    )  # fmt: skip


PREFIX = {"final": Step.DELETED, "policy": "p", "in_place": False, "storage_class": "GLACIER"}
KEEP = {**PREFIX, "final": Step.VERIFIED}
IN_PLACE = {**PREFIX, "final": Step.ARCHIVED, "in_place": True}

TABLE = [
    # recorded state, live source, facts, run -> next action
    (None, None, {}, PREFIX, Action.SOURCE_GONE),
    (state(Step.ARCHIVED), None, {}, PREFIX, Action.SOURCE_GONE),
    (None, LIVE, {}, PREFIX, Action.CLAIM),
    (None, COLD, {}, PREFIX, Action.SKIP_COLD),
    (state(Step.DISCOVERED), LIVE, {}, PREFIX, Action.ENCODE),
    (
        state(Step.DISCOVERED, skip_reason="left as it is", policy="p"),
        LIVE,
        {},
        PREFIX,
        Action.SKIP_RECORDED,
    ),
    (
        state(Step.DISCOVERED, skip_reason="left as it is", policy="old"),
        LIVE,
        {},
        PREFIX,
        Action.ENCODE,
    ),
    (state(Step.ENCODED), LIVE, {}, PREFIX, Action.CONFIRM),
    (state(Step.ENCODED), LIVE, {"output_intact": False}, PREFIX, Action.REENCODE),
    (state(Step.VERIFIED), LIVE, {}, PREFIX, Action.ARCHIVE),
    (state(Step.VERIFIED), LIVE, {}, KEEP, Action.DONE),
    (state(Step.VERIFIED), LIVE, {"output_intact": False}, PREFIX, Action.REENCODE),
    (state(Step.ARCHIVED), LIVE, {}, PREFIX, Action.DELETE),
    # a record past the archive is believed only as far as the stores show: in place the
    # live original must be in the run's class; a source still there is deleted (re-checked)
    (state(Step.ARCHIVED), LIVE, {}, IN_PLACE, Action.ARCHIVE),
    (
        state(Step.ARCHIVED, COLD),
        COLD,
        {},
        {**IN_PLACE, "storage_class": "DEEP_ARCHIVE"},
        Action.ARCHIVE,
    ),
    (state(Step.DELETED), LIVE, {}, IN_PLACE, Action.ARCHIVE),
    (state(Step.DELETED), LIVE, {}, PREFIX, Action.DELETE),
    (state(Step.DELETED, COLD), COLD, {}, PREFIX, Action.DELETE),
    (state(Step.DELETED), LIVE, {}, KEEP, Action.DONE),
    (state(Step.ARCHIVED, COLD, pending_version="v0"), COLD, {}, IN_PLACE, Action.DELETE),
    # the source changed since it was recorded: the same bytes (a class change) or not
    (state(Step.VERIFIED), MOVED, {"same_bytes": True}, PREFIX, Action.ADOPT),
    (state(Step.VERIFIED), MOVED, {}, PREFIX, Action.RESTART),
    # archived originals: finished, resumable in place, or lost outputs that cannot be redone
    (state(Step.ARCHIVED, COLD), COLD, {}, IN_PLACE, Action.DONE),
    (state(Step.VERIFIED, COLD), COLD, {}, IN_PLACE, Action.ARCHIVE),
    (state(Step.VERIFIED, COLD), COLD, {}, PREFIX, Action.SKIP_COLD),
    (state(Step.ARCHIVED, COLD), COLD, {"output_intact": False}, IN_PLACE, Action.OUTPUT_LOST),
]


@pytest.mark.parametrize(("recorded", "live", "facts", "run", "expected"), TABLE)
def test_decide_is_a_table(
    recorded: SceneState | None, live: ObjectInfo | None, facts: dict[str, bool],
    run: dict[str, Any], expected: Action,
) -> None:  # fmt: skip
    assert decide(recorded, live, **run, **facts) is expected


def test_every_action_but_one_is_in_the_table() -> None:
    seen = {row[-1] for row in TABLE}
    assert set(Action) == seen


# --- the codec vocabulary, defined once --------------------------------------------------------


def test_the_registry_is_the_one_vocabulary() -> None:
    assert (*POLICIES, *CODECS) == CHOICES
    assert set(CODECS) == LOSSY | LOSSLESS
    assert not LOSSY & LOSSLESS
    # the CLI offers exactly the registry's choices ...
    from compactor.cli._run import run as run_command

    (codec_option,) = [p for p in run_command.params if p.name == "codec"]
    assert tuple(codec_option.type.choices) == CHOICES  # type: ignore[attr-defined]
    # ... the settings accept exactly them ...
    for choice in CHOICES:
        assert resolve_settings({"codec": choice}, environ={}).codec == choice
    with pytest.raises(ConfigError, match=r"unknown codec 'png'.*jpeg"):
        resolve_settings({"codec": "png"}, environ={})
    # ... and so do the notebook's profiles.
    assert ("auto", "lossless", *CODECS) == explore.CODECS
    assert explore.parse_spec("zstd").codec == "zstd"


@pytest.mark.parametrize(
    ("given", "expected"), [("auto", "auto"), (" AUTO ", "auto"), ("75", 75), (1, 1), (100, 100)]
)
def test_one_quality_check_for_settings_cli_and_profiles(given: Any, expected: Any) -> None:
    assert parse_quality(given) == expected
    assert QUALITY.convert(given, None, None) == expected
    assert Settings(quality=given).quality == expected
    if expected != "auto":
        assert explore.parse_spec(f"jpeg:{given}").quality == expected


@pytest.mark.parametrize("bad", ["0", 101, "high", "7.5", True])
def test_bad_qualities_are_refused_everywhere_alike(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"1 (and|to) 100"):
        parse_quality(bad)
    with pytest.raises(ConfigError):
        resolve_settings({"quality": bad}, environ={})
    with pytest.raises(ConfigError):
        explore.parse_spec(f"jpeg:{bad}")


@pytest.mark.parametrize("codec", list(CODECS))
def test_the_registry_tags_are_what_gdal_reads(codec: str, tmp_path: Path) -> None:
    """Each codec's TIFF Compression tag in the registry is the one GDAL reads back."""
    src = rasters.rgb(tmp_path / "rgb.tif", size=256, nodata_collar=False)
    info = read_info(str(src))
    out = write_cog(str(src), tmp_path / f"{codec}.tif", choose_profile(info, codec), info)
    with rasterio.open(out) as ds:
        gdal_name = ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"].lower()

    with tifffile.TiffFile(out) as tf:
        tag = tf.pages[0].tags["Compression"].value  # type: ignore[union-attr]
    assert int(tag) == CODECS[codec].tiff
    assert gdal_name.split()[-1].startswith(codec)  # "ycbcr jpeg" for RGB JPEG


# --- the one fan-out ----------------------------------------------------------------------------


#: What a task of a worker lost for good raises (run by ``exec``: the workers cannot import
#: the tests, so tasks here are built from the standard library).
DIE = (
    "import types; from distributed.scheduler import KilledWorker; "
    "raise KilledWorker('task', types.SimpleNamespace(address='tcp://lost'), 1)"
)


def test_the_fan_out_keeps_order_and_lets_bugs_through(dask_scheduler: str) -> None:
    settings = Settings(dest="/tmp/x/")
    seen: list[int] = []
    from compactor.runner._fanout import Progress

    with Client(dask_scheduler) as client:
        results = fan_out(
            [5, 1, 4, 2], lambda c, i, x: c.submit(operator.mul, x, x, pure=False),
            settings=settings, client=client, progress=Progress(advance=seen.append),
        )  # fmt: skip
        assert results == [25, 1, 16, 4]
        assert sorted(seen) == [1, 4, 16, 25]
        # A worker lost for good is a result; any other exception is a bug and propagates.
        died = fan_out(
            [7], lambda c, i, x: c.submit(exec, DIE, pure=False), settings=settings,
            client=client, task_died=lambda x, err: -x,
        )  # fmt: skip
        assert died == [-7]
        with pytest.raises(ZeroDivisionError):  # a bug in a task
            fan_out(
                [1, 0], lambda c, i, x: c.submit(operator.truediv, 1, x, pure=False),
                settings=settings, client=client, task_died=lambda x, err: -x,
            )  # fmt: skip


# --- only expected errors are translated -----------------------------------------------------


def test_s3_calls_translate_s3_errors_and_nothing_else(s3: S3) -> None:
    store = S3Store(S3Options(endpoint_url=s3.endpoint))
    with pytest.raises(ObjectNotFound):
        store.read_bytes(Location.parse("s3://src-bucket/none.tif"))

    def bug(**kwargs: Any) -> None:
        raise TypeError("a programming error")

    with pytest.raises(TypeError, match="a programming error"):
        store._call("HEAD", "s3://src-bucket/x", bug)
    with pytest.raises(StorageError):  # a real S3 error: a bucket that does not exist
        store._call("HEAD", "s3://nope/x", store.client.head_object, Bucket="nope", Key="x")


def test_a_bug_in_a_scene_task_fails_that_scene_and_the_run_goes_on(s3: S3, tmp_path: Path) -> None:
    """An unexpected exception (here a failpoint's error after encoding) is that scene's
    failure, with its type and message as the one-line reason and its traceback in the
    scene log: the run goes on, writes its report, and nothing is lost."""
    original = rasters.gray(tmp_path / "a.tif", size=256).read_bytes()
    s3.put("src-bucket", "scenes/a.tif", original)
    env = {**os.environ, "COMPACTOR_FAILPOINTS": "after-encode=raise"}
    proc = subprocess.run(
        [str(BIN / "compactor"), "-q", "run", "--source", "s3://src-bucket/scenes/",
         "--dest", "s3://dst-bucket/cogs/", "--archive", "s3://arc-bucket/orig/",
         "--workers", "1"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert (
        "FAILED s3://src-bucket/scenes/a.tif: InjectedFault: injected fault at after-encode"
        in proc.stdout
    )
    assert "Traceback" not in proc.stderr
    assert s3.read("src-bucket", "scenes/a.tif") == original
    assert s3.keys("arc-bucket") == []
    assert [k for k in s3.keys("dst-bucket") if k.endswith("report.json")]
