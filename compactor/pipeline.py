"""The run (client side): discover scenes, fan out one task per scene on Dask, collect
the results into a report. The per-scene work is :mod:`compactor.scene`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from .cluster import as_completed_results, connect
from .config import META_PREFIX, Settings, resolve_settings
from .costs import estimate
from .discover import check_locations, discover, preflight
from .errors import CompactorError
from .kube import check_versions, local_versions
from .models import Report, SceneResult, StacSummary, Totals
from .quality import compare_fixed
from .redact import redact_url
from .report import write_report
from .scene import process_scene
from .state import now_iso
from .storage import Location
from .tasks import RunContext, SceneSpec

log = logging.getLogger(__name__)

ProgressCallback = Callable[[SceneResult], None]


def notebook_bar(title: str, progress: Any) -> Any:
    """A live progress display when running in a Jupyter notebook and the caller asked for
    no progress of its own (``progress=False`` turns it off); else ``None``."""
    if progress is not None:
        return None
    from .notebook import NotebookProgress, in_notebook

    return NotebookProgress(title) if in_notebook() else None


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


# --- the run (client side) ---------------------------------------------------------


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
    bar = notebook_bar("compactor run", progress)
    if bar is not None:
        with bar:
            return run(
                settings, config_file=config_file, progress=bar.advance,
                on_start=on_start or bar.start, on_dashboard=on_dashboard or bar.dashboard,
                client=client, **arguments,
            )  # fmt: skip
    if settings is None:
        settings = resolve_settings(arguments, config_file=config_file)
    check_locations(settings)
    run_id = new_run_id()
    context = RunContext.from_settings(settings, run_id)
    started = now_iso()
    preflight(context)
    found = discover(settings, context)
    if on_start:
        on_start(len(found.scenes) + len(found.rejected))
    results: list[SceneResult] = list(found.rejected)
    for refused in found.rejected:
        if progress:
            progress(refused)
    if found.scenes:
        if client is not None:
            check_versions(client)
            if on_dashboard and client.dashboard_link:
                on_dashboard(client.dashboard_link)
            results += _run_on(client, found.scenes, context, progress or None)
        else:
            with connect(settings.cluster, on_dashboard=on_dashboard, settings=settings) as c:
                results += _run_on(c, found.scenes, context, progress or None)

    order = {s.source: i for i, s in enumerate(found.scenes)}
    results.sort(key=lambda r: order.get(r.source, 0))
    archive_class = None
    if context.archive_mode != "none":
        archive_class = settings.storage_class
    stac = None
    if found.items:
        stac = _write_stac(found.items, results, settings, run_id, context)
    report = Report(
        run_id=run_id,
        started=started,
        finished=now_iso(),
        settings=settings.redacted(),
        totals=Totals.of(results),
        scenes=results,
        cost=estimate(results, archive_class),
        versions=local_versions(),
        stac=stac,
        quality=compare_fixed(results, settings.min_ssim)
        if settings.quality_mode == "auto"
        else None,
    )
    return write_report(report, report_location(settings, run_id), context.s3)


def _write_stac(
    items: dict[str, Any],
    results: list[SceneResult],
    settings: Settings,
    run_id: str,
    context: RunContext,
) -> StacSummary:
    """Updated STAC items next to the report; a failure here is recorded in the report
    (the scenes themselves are done and recorded in their states)."""
    from .stac import write_items

    try:
        summary, _ = write_items(
            items, results, report_location(settings, run_id), settings, context.s3
        )
    except CompactorError as err:
        log.error("writing the updated STAC items failed: %s", err)
        assert settings.stac.url is not None
        summary = StacSummary(api=redact_url(settings.stac.url), update_error=f"not written: {err}")
    return summary


def _run_on(
    client: Any, scenes: list[SceneSpec], context: RunContext, progress: ProgressCallback | None
) -> list[SceneResult]:
    futures = {
        client.submit(
            process_scene, spec, context, key=spec.key(context), retries=1, pure=False
        ): spec
        for spec in scenes
    }

    def task_died(spec: SceneSpec, err: Exception) -> SceneResult:
        return SceneResult(
            source=spec.source,
            item=spec.item,
            asset=spec.asset,
            status="failed",
            reason=f"task failed: {type(err).__name__}: {err}",
        )

    results: list[SceneResult] = []
    for _, result in as_completed_results(client, futures, task_died):
        results.append(result)
        if progress:
            progress(result)
    return results
