"""The run's recorder: takes each scene's result as it arrives and builds the report at the
end, holding only bounded state however many scenes the run has.

>>> with RunRecorder(report_location, s3, storage_class="GLACIER") as recorder:  # doctest: +SKIP
...     for result in results_as_they_complete:
...         recorder.add(result)
>>> report = recorder.report(run_id=..., started=..., finished=..., settings=...)  # doctest: +SKIP

Each result goes to the scene log (:mod:`compactor.records._scene_log`) and to the
accumulators: totals, distributions, the cost estimate, the fixed-quality comparison.
Kept in memory besides: every failed, skipped and held scene (the exceptions the report
lists), the first :data:`~compactor.report._html.TABLE_LIMIT` results (report.html's
table of a small run), and, for a STAC run, the compacted scenes that have an item (what
the updated items are made of; the run holds those items anyway).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from ..pricing import CostAccumulator, PriceTable
from ..records import (
    FLUSH_EVERY,
    FLUSH_SECONDS,
    FixedQualityComparison,
    Report,
    RunDistributions,
    SceneLog,
    SceneLogWriter,
    SceneResult,
    StacSummary,
    Totals,
    scene_log_location,
)
from ..storage import S3Options
from ._html import TABLE_LIMIT


class RunRecorder:
    """Feed it every result of a run (:meth:`add`), close it (a ``with`` block does, also on
    an error or Ctrl-C, so the scene log keeps what finished), then build the
    :class:`~compactor.records._results.Report` (:meth:`report`).

    ``storage_class`` is the archive class of the originals (``None``: not archived), for
    the cost estimate, with ``prices`` (the run's table; default us-east-1),
    ``payback_months`` (``--payback-months``, as reported) and ``node_hour_price``
    (``--node-hour-price``: compute is priced when :meth:`report` is told the hours and
    workers); ``compare_quality`` turns on the fixed-quality comparison of
    ``--quality auto`` at ``min_ssim``; ``keep_stac`` keeps the compacted results that have
    a STAC item (:attr:`stac_results`).
    """

    def __init__(
        self,
        report_location: str,
        s3: S3Options,
        *,
        storage_class: str | None,
        prices: PriceTable | None = None,
        payback_months: float | None = None,
        node_hour_price: float | None = None,
        min_ssim: float = 0.0,
        compare_quality: bool = False,
        keep_stac: bool = False,
        flush_every: int = FLUSH_EVERY,
        flush_seconds: float = FLUSH_SECONDS,
        table_limit: int = TABLE_LIMIT,
        fresh: bool = False,
    ):
        self.log = SceneLogWriter(
            scene_log_location(report_location), s3,
            flush_every=flush_every, flush_seconds=flush_seconds, fresh=fresh,
        )  # fmt: skip
        self.totals = Totals()
        self.distributions = RunDistributions()
        self.costs = CostAccumulator(storage_class, prices, payback_months=payback_months)
        self.node_hour_price = node_hour_price
        self.quality = FixedQualityComparison(min_ssim) if compare_quality else None
        self.failed: list[SceneResult] = []
        self.skipped: list[SceneResult] = []
        self.held: list[SceneResult] = []
        self.table_limit = table_limit
        #: Every result while there are at most ``table_limit`` (then dropped for good).
        self.first: list[SceneResult] = []
        self._many = False
        self.keep_stac = keep_stac
        #: Compacted results with a STAC item (``keep_stac``), without their attempts and
        #: search (what :func:`compactor.sources._stac_items.write_items` needs, and no more).
        self.stac_results: list[SceneResult] = []
        self._scene_log: SceneLog | None = None

    def add(self, result: SceneResult) -> None:
        """Record one scene's result (logged first: the log is the record of every scene)."""
        self.log.append(result)
        self.totals.add(result)
        self.distributions.add(result)
        self.costs.add(result)
        if self.quality is not None:
            self.quality.add(result)
        if result.status == "failed":
            self.failed.append(result)
        elif result.status == "skipped":
            # A run may skip many (left as they are): report.json lists each with its
            # reason and sizes; the scene log keeps the attempts, the search, the requests.
            self.skipped.append(_slim(result))
        elif result.status == "held":
            self.held.append(result)
        if not self._many:
            self.first.append(result)
            if len(self.first) > self.table_limit:
                self._many, self.first = True, []
        if self.keep_stac and result.status == "compacted" and result.item is not None:
            self.stac_results.append(result.model_copy(update={"attempts": [], "search": None}))

    def add_requests(self, counts: Mapping[str, int]) -> None:
        """Count S3 requests of the run itself (listings, the finished index, the report
        and scene log writes), by operation, in its cost."""
        self.costs.add_requests(counts)

    def close(self) -> SceneLog:
        """Write the scene log's last part; idempotent."""
        if self._scene_log is None:
            self._scene_log = self.log.close()
        return self._scene_log

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # keep what finished, without hiding why the run stopped
            self.log.__exit__(exc_type, exc, tb)

    def report(
        self,
        *,
        run_id: str,
        started: str,
        finished: str,
        settings: dict[str, Any],
        versions: dict[str, str] | None = None,
        stac: StacSummary | None = None,
        finished_earlier: int = 0,
        hours: float | None = None,
        workers: int | None = None,
        stages: dict[str, float] | None = None,
    ) -> Report:
        """The run's report. ``settings`` as recorded (``Settings.redacted()``: no secrets);
        ``finished_earlier``: scenes earlier runs had finished, which this run did not take
        up (counted by discovery); ``hours`` the run took and the ``workers`` it had, for
        its compute cost (with ``node_hour_price``)."""
        scene_log = self.close()
        totals = self.totals.model_copy(update={"finished_earlier": finished_earlier})
        return Report(
            run_id=run_id,
            started=started,
            finished=finished,
            settings=settings,
            totals=totals,
            distributions=self.distributions.summary(),
            failed=list(self.failed),
            skipped=list(self.skipped),
            held=list(self.held),
            scene_log=scene_log,
            stages=dict(stages or {}),
            cost=self.costs.estimate(
                hours=hours, workers=workers, node_hour_price=self.node_hour_price
            ),
            versions=dict(versions or {}),
            stac=stac,
            quality=self.quality.result() if self.quality is not None else None,
            table=sorted(self.first, key=lambda s: s.source),
        )


def _slim(result: SceneResult) -> SceneResult:
    """A result without what only the scene log needs to keep."""
    return result.model_copy(update={"attempts": [], "search": None, "requests": {}})
