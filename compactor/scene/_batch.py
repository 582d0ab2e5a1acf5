"""Several small scenes in one Dask task (:func:`process_scenes`): a small scene's own work
is a few requests and milliseconds of pixels, so the task around it (scheduling, a round
trip to the client, a thread waiting on each request in turn) was most of its cost. A batch
walks its scenes side by side in a few threads, each exactly as its own task would
(:func:`~compactor.scene.process_scene`: its own lease, state record, result and scene-log
entry); one scene's exception stays that scene's failed result.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..records import SceneResult
from ..redact import redact_text
from ._spec import RunContext, SceneSpec
from ._walk import process_scene, scene_reason

#: The scenes of a batch walked at once: a small scene's walk waits on its requests most of
#: its time (a worker thread on one scene at a time sat near 40 % of a core), so a few at
#: once keep the worker's core busy; more only queue on the same core and the GIL.
SCENE_THREADS = 4


def process_scenes(specs: Sequence[SceneSpec], context: RunContext) -> list[SceneResult]:
    """Dask task: each scene of ``specs`` as :func:`process_scene` would take it; the
    results in the order of ``specs``."""
    if len(specs) <= 1:
        return [_one(spec, context) for spec in specs]
    return list(_pool().map(lambda spec: _one(spec, context), specs))


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The scene threads of this process, started once and kept: threads started per
    batch would each set up GDAL's and PROJ's per-thread state again."""
    pid = os.getpid()  # a forked process starts its own
    with _pools_lock:
        pool = _pools.get(pid)
        if pool is None:
            pool = _pools[pid] = ThreadPoolExecutor(SCENE_THREADS, "compactor-scene")
        return pool


def _one(spec: SceneSpec, context: RunContext) -> SceneResult:
    """One scene of a batch; whatever escapes its walk is its failure, not the batch's."""
    try:
        return process_scene(spec, context)
    except Exception as err:  # one bad object is one failed scene, never a lost batch
        secrets = context.http.secrets(os.environ)
        return SceneResult(
            source=spec.source, item=spec.item, asset=spec.asset, status="failed",
            reason=redact_text(scene_reason(err), secrets),
            traceback=redact_text("".join(traceback.format_exception(err)), secrets),
        )  # fmt: skip
