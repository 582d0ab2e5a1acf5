"""The run (client side): discover scenes, fan out one task per scene on Dask (small scenes
several to a task, :mod:`._batches`), collect the results scene by scene into a report.
The per-scene work is :mod:`compactor.scene._walk`."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any, Literal

from .. import failpoints
from ..cluster import local_versions
from ..errors import CompactorError
from ..records import Report, SceneResult, StacSummary, now_iso
from ..redact import redact_url
from ..report import RunRecorder, write_report
from ..scene import RunContext, SceneSpec, process_scene, process_scenes
from ..settings import META_PREFIX, Settings, resolve_settings
from ..sources import (
    Conditions,
    Discovery,
    IndexWriter,
    ItemKey,
    check_locations,
    discover,
    preflight,
    write_items,
)
from ..storage import Location, counting_requests, store_for
from ._batches import Item, batched, unbatched
from ._fanout import Bound, Progress, cluster_for, progress_of, stream

log = logging.getLogger(__name__)

ProgressCallback = Callable[[SceneResult], None]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _weight(item: Item, settings: Settings, bound: Bound) -> int:
    """What a scene task counts toward the bound: a scene likely to be split into chunk
    tasks (listed at a quarter of ``--chunk-threshold`` or more: compressed originals
    rarely shrink raw pixels by more) counts as the cluster's threads, which its chunk
    tasks will occupy."""
    listed = item.listed if isinstance(item, SceneSpec) else None
    if listed is not None and listed.size * 4 >= settings.chunk_threshold > 0:
        return bound.threads
    return 1


def report_location(settings: Settings, run_id: str) -> str:
    if settings.report:
        return settings.report
    assert settings.dest is not None
    return Location.parse(settings.dest).join(f"{META_PREFIX}/runs/{run_id}/").url


def run(
    settings: Settings | None = None,
    *,
    config_file: str | None = None,
    progress: ProgressCallback | Literal[False] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_dashboard: Callable[[str], None] | None = None,
    client: Any = None,
    **arguments: Any,
) -> Report:
    """Compact every scene under ``source`` into ``dest``; returns the run's report.

    ``arguments`` are settings by name (``source=``, ``dest=``, ``archive=``, ``codec=``
    ...), resolved over the environment and ``config_file``. ``progress`` is called with
    each scene's result as it completes; ``on_start`` with the number of scenes;
    ``on_dashboard`` with the Dask dashboard's URL. In a Jupyter notebook, without
    ``progress``, a live progress bar with the dashboard link shows in the cell's output.
    """
    if settings is None:
        settings = resolve_settings(arguments, config_file=config_file)
    check_locations(settings)
    run_id = new_run_id()
    context = RunContext.from_settings(settings, run_id)
    started = now_iso()
    clock = time.monotonic()
    location = report_location(settings, run_id)
    # The client's own requests (preflight, listing pages, the finished index, the scene
    # log): the run's share of the one-time cost, next to what each scene's task counted.
    stages: dict[str, float] = {}
    tick = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        stages[name] = round(stages.get(name, 0.0) + now - tick, 4)
        tick = now

    with counting_requests() as run_requests:
        checked = preflight(context, settings.source)
        lap("preflight")
        dest = Location.parse(context.dest)
        conditions = Conditions(context.finish_digest(), context.policy_digest())
        index = IndexWriter(store_for(dest, context.s3), dest, run_id, conditions)
        # Every result goes to the recorder as it arrives (the scene log next to the report,
        # bounded totals and distributions) and, once finished, to the finished index; nothing
        # keeps the whole list.
        recorder = RunRecorder(
            location, context.s3,
            storage_class=settings.storage_class if context.archive_mode != "none" else None,
            prices=context.prices, payback_months=settings.payback_months,
            node_hour_price=settings.node_hour_price,
            min_ssim=settings.min_ssim, compare_quality=settings.quality_mode == "auto",
            keep_stac=settings.stac.url is not None,
            fresh=settings.report is None,  # the run's own new folder: nothing earlier to remove
        )  # fmt: skip
        with (
            recorder,
            progress_of(
                "compactor run", progress, on_start=on_start, on_dashboard=on_dashboard
            ) as callbacks,
        ):
            found = discover(settings, context, consolidate=True)

            def submit(c: Any, _index: int, item: Item) -> Any:
                if isinstance(item, tuple):  # small scenes, several to a task
                    key = f"batch-{item[0].key(context)}"
                    return c.submit(process_scenes, item, context, key=key, retries=1, pure=False)
                assert isinstance(item, SceneSpec)
                return c.submit(
                    process_scene, item, context, key=item.key(context), retries=1, pure=False
                )

            # The first listing page is read before a cluster starts: a listing that fails or
            # matches nothing says so at once, and a sweep with nothing new starts no cluster.
            first = list(islice(found, 1))
            lap("listing")
            workers = 0
            stopped: BaseException | None = None
            try:
                if first:
                    with cluster_for(settings, client, callbacks) as c:
                        bound = Bound(c, settings)
                        workers = len(c.nthreads())
                        lap("cluster start")
                        scenes = _counted(chain(first, _guarded(found, settings)), callbacks)
                        for task, results in stream(
                            c, batched(scenes), submit, bound=bound,
                            weight=lambda item: _weight(item, settings, bound),
                            immediate=lambda item: item if isinstance(item, SceneResult) else None,
                            task_died=_task_died,
                        ):  # fmt: skip
                            for item, result in unbatched(task, results):
                                _collected(item, result, recorder, index, callbacks)
                        lap("scenes")
                    lap("cluster stop")
            except BaseException as err:  # Ctrl-C, the cluster lost, a bug: still a report
                stopped = err
                log.error("the run stopped early: %s", stopped_reason(err))
            finally:
                index.close()
            if callbacks.start is not None and stopped is None:
                callbacks.start(found.counts.scenes + found.counts.refused)
        stac = _stac_of(found, stopped, recorder, settings, run_id, context)
    recorder.add_requests(run_requests)
    report = recorder.report(
        run_id=run_id,
        started=started,
        finished=now_iso(),
        settings=settings.redacted(),
        versions=local_versions(),
        stac=stac,
        finished_earlier=found.finished_earlier,
        hours=(time.monotonic() - clock) / 3600,
        workers=workers,
        stages=stages,
    )
    if report.cost is not None:  # versions kept or not change what the run costs
        report.cost.notes.extend(checked.notes(settings.keep_versions))
    return _written(report, stopped, location, context)


def _counted(
    stream: Iterable[SceneSpec | SceneResult], callbacks: Progress[SceneResult]
) -> Iterator[SceneSpec | SceneResult]:
    """The stream, telling the progress how many scenes are known so far."""
    for n, item in enumerate(stream, start=1):
        if callbacks.start is not None:
            callbacks.start(n)
        yield item


def _guarded(found: Discovery, settings: Settings) -> Iterator[SceneSpec | SceneResult]:
    """The rest of the stream; discovery failing midway (a listing page, an
    inventory data file, a STAC page) ends it with a failed result saying so:
    the scenes already submitted finish and the report is written."""
    try:
        yield from found
    except CompactorError as err:
        where = found.source.url if found.source is not None else settings.stac.url
        log.error("discovery stopped: %s", err)
        yield SceneResult.refused(
            redact_url(where or ""), f"discovery stopped, scenes after this were "
            f"not listed: {err}",
        )  # fmt: skip


def _task_died(item: Item, err: BaseException) -> SceneResult | list[SceneResult]:
    """A task whose worker died: each of its scenes failed, saying so."""
    if isinstance(item, tuple):
        return [_scene_died(spec, err) for spec in item]
    return _scene_died(item, err)


def _scene_died(spec: SceneSpec | SceneResult, err: BaseException) -> SceneResult:
    return SceneResult(
        source=spec.source, item=spec.item, asset=spec.asset, status="failed",
        reason=f"task failed: {type(err).__name__}: {err}",
    )  # fmt: skip


def _collected(
    item: SceneSpec | SceneResult,
    result: SceneResult,
    recorder: RunRecorder,
    index: IndexWriter,
    callbacks: Progress[SceneResult],
) -> None:
    """A scene's result as it arrives: to the report, the finished index, the progress."""
    if isinstance(item, SceneSpec) and result.collection is None:
        result.collection = item.collection
    recorder.add(result)
    index.add(result)
    if callbacks.advance is not None:
        callbacks.advance(result)
    failpoints.hit("client-collected")


def _stac_of(
    found: Discovery,
    stopped: BaseException | None,
    recorder: RunRecorder,
    settings: Settings,
    run_id: str,
    context: RunContext,
) -> StacSummary | None:
    """A STAC run's updated items, written unless the run stopped; its item spool closed."""
    if found.items is None:
        return None
    if stopped is not None:
        found.items.close()
        return None
    try:
        return _write_stac(found.items, recorder.stac_results, settings, run_id, context)
    finally:
        found.items.close()


def _written(
    report: Report, stopped: BaseException | None, location: str, context: RunContext
) -> Report:
    """The report written; a run that stopped early raises why, once its report is
    written (or failed to be: that failure is logged)."""
    if stopped is None:
        return write_report(report, location, context.s3)
    report.interrupted = stopped_reason(stopped)
    try:
        write_report(report, location, context.s3)
    except Exception as err:  # the run's own reason to stop is what the caller must see
        log.error("writing the report of the stopped run failed: %s", err)
    raise stopped


def stopped_reason(err: BaseException) -> str:
    """Why a run stopped before every scene was done, on one line."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    message = " ".join(str(err).split())[:300]
    return f"stopped by {type(err).__name__}" + (f": {message}" if message else "")


def _write_stac(
    items: Mapping[ItemKey, Any],
    results: Iterable[SceneResult],
    settings: Settings,
    run_id: str,
    context: RunContext,
) -> StacSummary:
    """Updated STAC items next to the report; a failure here is recorded in the report
    (the scenes themselves are done and recorded in their states)."""

    try:
        summary, _ = write_items(
            items, results, report_location(settings, run_id), settings, context.s3
        )
    except CompactorError as err:
        log.error("writing the updated STAC items failed: %s", err)
        assert settings.stac.url is not None
        summary = StacSummary(api=redact_url(settings.stac.url), update_error=f"not written: {err}")
    return summary
