"""Small scenes several to a task (:mod:`compactor.runner._batches`, issue 26): each scene
of a batch keeps its own result, state record and scene-log entry, and one scene that fails
is that scene's failure only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compactor.records import SceneResult
from compactor.runner._batches import SCENES_PER_TASK, batched, is_small, unbatched
from compactor.scene import RunContext, SceneSpec, process_scenes
from compactor.settings import resolve_settings
from compactor.storage import Location, ObjectInfo

from .. import rasters
from ..reports import scenes_of


def _spec(name: str, size: int | None) -> SceneSpec:
    listed = ObjectInfo(url=f"/src/{name}", size=size, etag="e") if size is not None else None
    return SceneSpec(
        source=f"/src/{name}", relative=name, output=f"/out/{name}", archive=None, listed=listed
    )


def test_small_scenes_are_grouped_and_the_rest_pass_alone_in_order() -> None:
    small = [_spec(f"s{i}.tif", 10_000) for i in range(SCENES_PER_TASK + 3)]
    big = _spec("big.tif", 2**30)
    unlisted = _spec("state-only.tif", None)
    done = SceneResult(source="/src/done.tif", status="skipped", reason="finished earlier")
    items = [*small[:2], big, done, *small[2:], unlisted]
    out = list(batched(items))
    assert big in out
    assert done in out
    assert unlisted in out
    batches = [i for i in out if isinstance(i, tuple)]
    assert [len(b) for b in batches] == [SCENES_PER_TASK, 3]
    flat = [s for b in batches for s in b]
    assert flat == small  # every small scene once, in order
    assert not any(is_small(x) for x in (big, unlisted, done))
    # a lone small scene left at the end is a task of its own, not a batch of one
    assert list(batched([small[0]])) == [small[0]]


def test_a_batch_result_unpacks_scene_by_scene() -> None:
    a, b = _spec("a.tif", 1), _spec("b.tif", 1)
    ra = SceneResult(source=a.source, status="compacted")
    rb = SceneResult(source=b.source, status="failed", reason="bad")
    assert list(unbatched((a, b), [ra, rb])) == [(a, ra), (b, rb)]
    assert list(unbatched(a, ra)) == [(a, ra)]


def _scenes(src: Path, n: int, bad: int) -> list[str]:
    names = []
    for i in range(n):
        name = f"s{i}.tif"
        if i == bad:
            good = rasters.gray(src.parent / "whole.tif", size=128, seed=9)
            rasters.truncated(src / name, good)
        else:
            rasters.gray(src / name, size=128, seed=i + 1)
        names.append(name)
    return names


def test_one_failing_scene_of_a_batch_is_that_scenes_failure(tmp_path: Path) -> None:
    """The batch task itself (in this process): each scene walks as its own task would."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    names = _scenes(src, 4, bad=1)
    dest.mkdir()
    ctx = RunContext.from_settings(
        resolve_settings({"source": f"{src}/", "dest": f"{dest}/", "min_saving": -1.0}), "r1"
    )
    specs = [
        SceneSpec(
            source=Location.parse(f"{src}/").join(n).url,
            relative=n,
            output=Location.parse(f"{dest}/").join(n).url,
            archive=None,
        )
        for n in names
    ]
    results = process_scenes(specs, ctx)
    assert [r.source for r in results] == [s.source for s in specs]
    assert [r.status for r in results] == ["compacted", "failed", "compacted", "compacted"], [
        r.reason for r in results
    ]
    assert results[1].reason
    for name, r in zip(names, results, strict=True):
        if r.status == "compacted":
            assert (dest / name).exists()
            assert r.stages  # its own stage timers, not the batch's
    assert not (dest / names[1]).exists()
    assert (src / names[1]).exists()  # the bad original is left where it was


def test_a_run_of_small_scenes_keeps_each_scenes_record_and_log(cli: Any, tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    n = SCENES_PER_TASK + 2  # one full batch and a partial one
    names = _scenes(src, n, bad=3)
    cli("run", "--source", str(src), "--dest", str(dest), "--min-saving", "-1")
    reports = list((dest / "_compactor" / "runs").glob("*/report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["totals"]["compacted"] == n - 1
    assert report["totals"]["failed"] == 1
    logged = {Path(s["source"]).name: s for s in scenes_of(report)}
    assert sorted(logged) == sorted(names)  # one scene-log entry per scene
    assert logged[names[3]]["status"] == "failed"
    assert all(logged[x]["status"] == "compacted" for x in names if x != names[3])
    states = {p.name.removesuffix(".json") for p in (dest / "_compactor").rglob("state*/**/*.json")}
    for name in names:
        if name != names[3]:
            assert name in states, states  # each compacted scene's own state record
            assert (dest / name).exists()


def test_a_record_written_by_an_earlier_attempt_of_this_run_is_walked_again(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Dask gave an attempt up (its worker closing on SIGTERM) while its thread still ran;
    this task took the lease over and the attempt wrote the scene's record in between this
    task's read and write: the write's precondition fails, the lease is still this task's,
    so the scene is walked again from the record: found done by this run (what the attempt
    wrote was its last step), as a rerun would find it, not failed."""
    from compactor.records import StateStore

    src, dest = tmp_path / "src", tmp_path / "dest"
    names = _scenes(src, 1, bad=-1)
    dest.mkdir()
    ctx = RunContext.from_settings(
        resolve_settings({"source": f"{src}/", "dest": f"{dest}/", "min_saving": -1.0}), "r1"
    )
    spec = SceneSpec(
        source=Location.parse(f"{src}/").join(names[0]).url,
        relative=names[0],
        output=Location.parse(f"{dest}/").join(names[0]).url,
        archive=None,
    )
    real_save = StateStore.save
    raced: list[int] = []

    def save(self: StateStore, state: Any, etag: str | None) -> str:
        if not raced:  # the earlier attempt's write lands first, with the same version
            raced.append(state.step)
            real_save(self, state, etag)
        return real_save(self, state, etag)

    monkeypatch.setattr(StateStore, "save", save)
    [result] = process_scenes([spec], ctx)
    assert raced
    assert (result.status, result.reason) == ("skipped", "already compacted (run r1)")
    assert (dest / names[0]).exists()
