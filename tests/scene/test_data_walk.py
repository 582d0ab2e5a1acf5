"""The data's walk through the house: one real scene (a local folder, archived to a local
prefix, so it goes as far as the delete of its original) is traced from
:func:`compactor.scene.process_scene` with :func:`sys.setprofile`, and the stage packages it
enters are read off the trace: each entered in flow order, and (where the house already
keeps it so) none entered more than twice.

A package is *entered* when one of its functions is called while no frame of that package is
on the stack: a call back from inside a package (the quality ladder runs each attempt the
scene gives it) does not leave it. The stages are the packages a scene's data goes through;
``records`` (the domain model: results, state records, digests) is vocabulary every stage
speaks, as ``storage`` and ``gdal`` are, not a stage. ``scene`` is the orchestrator: the
calls back into it are dropped, and consecutive repeats are collapsed."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from compactor.scene import RunContext, SceneSpec, process_scene
from compactor.settings import resolve_settings
from compactor.storage import Location

from .. import rasters
from ..conftest import S3

#: The packages a scene's data goes through, in flow order (``scene`` orchestrates).
STAGES = ("sources", "scene", "encode", "verify", "fidelity", "archive", "pricing", "report")


def _stage(frame: FrameType) -> str | None:
    name = str(frame.f_globals.get("__name__", ""))
    parts = name.split(".")
    if parts[0] != "compactor" or len(parts) < 2 or parts[1] not in STAGES:
        return None
    return parts[1]


def _trace(spec: SceneSpec, ctx: RunContext) -> tuple[Any, list[str]]:
    """The scene's result and the stage packages entered, in order, as they were entered."""
    entered: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event != "call":
            return
        stage = _stage(frame)
        if stage is None:
            return
        up = frame.f_back
        while up is not None and _stage(up) != stage:
            up = up.f_back
        if up is None:  # no frame of this package below: the call enters it
            entered.append(stage)

    sys.setprofile(profile)
    try:
        result = process_scene(spec, ctx)
    finally:
        sys.setprofile(None)
    return result, entered


def _collapsed(entered: list[str], *, drop: tuple[str, ...] = ("scene",)) -> list[str]:
    """The trace without the calls back into ``drop``, consecutive repeats collapsed."""
    flow: list[str] = []
    for stage in entered:
        if stage not in drop and (not flow or flow[-1] != stage):
            flow.append(stage)
    return flow


def _local(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str, str]:
    src, dest, arc = tmp_path / "src", tmp_path / "dest", tmp_path / "arc"
    rasters.gray(src / "a.tif", size=128, seed=3)
    dest.mkdir()
    arc.mkdir()
    return f"{src}/", f"{dest}/", f"{arc}/"


def _s3(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """On S3 the walk also asks pricing whether the archive copy pays back."""
    s3: S3 = request.getfixturevalue("s3")
    s3.put("src-bucket", "scenes/a.tif", rasters.gray(tmp_path / "a.tif", size=128, seed=3))
    return "s3://src-bucket/scenes/", "s3://dst-bucket/cogs/", "s3://arc-bucket/archive/"


@pytest.fixture(params=[_local, pytest.param(_s3, marks=pytest.mark.e2e)], ids=["local", "s3"])
def traced(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Any, list[str], str]:
    src, dest, arc = request.param(tmp_path, request)
    args = {"source": src, "dest": dest, "archive": arc, "min_saving": -1.0}
    ctx = RunContext.from_settings(resolve_settings(args), "r1")
    spec = SceneSpec(
        source=Location.parse(src).join("a.tif").url, relative="a.tif",
        output=Location.parse(dest).join("a.tif").url,
        archive=Location.parse(arc).join("a.tif").url,
    )  # fmt: skip
    result, entered = _trace(spec, ctx)
    assert result.status == "compacted", result.reason
    assert result.step == "deleted"  # the walk went as far as the delete of the original
    assert result.archive == spec.archive
    return result, entered, src


def test_a_scene_enters_its_stages_in_flow_order(traced: tuple[Any, list[str], str]) -> None:
    _, entered, _ = traced
    flow = _collapsed(entered)
    first = {stage: flow.index(stage) for stage in ("encode", "verify", "archive")}
    assert first["encode"] < first["verify"] < first["archive"], flow
    # Nothing is encoded or checked once the original is being archived and deleted.
    after = flow[first["archive"] :]
    assert not {"encode", "verify", "fidelity"} & set(after), flow
    assert entered[0] == "scene"
    if traced[2].startswith("s3://"):
        assert "pricing" in flow[: first["archive"]], flow  # asked before archiving


def test_no_stage_is_entered_more_than_twice(traced: tuple[Any, list[str], str]) -> None:
    _, entered, _ = traced
    flow = _collapsed(entered)
    over = {stage: n for stage, n in Counter(flow).items() if n > 2}
    assert not over, flow
