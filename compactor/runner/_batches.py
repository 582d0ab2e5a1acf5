"""Small scenes travel several to a task: :func:`batched` groups the scene stream's small
scenes (listed at under :data:`SMALL_SCENE_BYTES`) into batches of up to
:data:`SCENES_PER_TASK`, each submitted as one :func:`~compactor.scene.process_scenes` task;
every other scene stays a task of its own. Each scene of a batch keeps its own lease, state
record, result and scene-log entry; the client unpacks a batch's results scene by scene
(:func:`unbatched`), so the progress, the report and the finished index see scenes, never
batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..records import SceneResult
from ..scene import SceneSpec

#: A scene listed at under this many bytes is small: its walk is a handful of requests and
#: milliseconds of pixels, and the task around it (scheduling, its round trip, its thread
#: waiting on each request in turn) costs as much as the scene (64x64 RGB scenes: 0.5 s
#: per scene per worker as one task each, bench/bench_many_scenes.py). Well under any
#: chunk threshold: a batch never holds a scene that may be split into chunk tasks.
SMALL_SCENE_BYTES = 4 * 2**20

#: The most scenes in one task: enough that the per-task cost is a small part of each
#: scene's, few enough that a worker lost mid-batch costs little to redo and the scenes in
#: flight (this times the tasks in flight) stay a small multiple of the workers.
SCENES_PER_TASK = 8

Batch = tuple[SceneSpec, ...]
Item = SceneSpec | SceneResult | Batch


def is_small(item: SceneSpec | SceneResult) -> bool:
    return (
        isinstance(item, SceneSpec)
        and item.listed is not None
        and item.listed.size < SMALL_SCENE_BYTES
    )


def batched(
    items: Iterable[SceneSpec | SceneResult], size: int = SCENES_PER_TASK
) -> Iterator[Item]:
    """``items`` with runs of small scenes grouped into batches of up to ``size`` (a batch of
    one is its scene alone); every other item passes as it comes, in order."""
    batch: list[SceneSpec] = []
    for item in items:
        if size > 1 and is_small(item):
            assert isinstance(item, SceneSpec)
            batch.append(item)
            if len(batch) >= size:
                yield tuple(batch)
                batch = []
            continue
        yield item
    if len(batch) > 1:
        yield tuple(batch)
    elif batch:
        yield batch[0]


def unbatched(item: Item, result: Any) -> Iterator[tuple[SceneSpec | SceneResult, SceneResult]]:
    """A task's (item, result) as (scene, result) pairs: a batch's results are its scenes'."""
    if isinstance(item, tuple):
        assert isinstance(result, list)
        yield from zip(item, result, strict=True)
    else:
        yield item, result
