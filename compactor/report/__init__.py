"""Run results and reports: typed results, the scene log, bounded accumulators and the
recorder that feeds them, the JSON and HTML report, charts, costs."""

from .aggregate import FixedQualityComparison, Histogram, RunDistributions
from .bins import Bins
from .costs import (
    CostAccumulator,
    archive_skip_reason,
    estimate,
    payback,
    request_tier,
    worth_archiving,
)
from .format import esc, human_bytes, months, short_name, usd, usd_price
from .html import render_html, report_json, summary_lines, write_report
from .models import (
    Attempt,
    Bin,
    CostEstimate,
    CostLine,
    Distribution,
    Distributions,
    OneTimeLine,
    Probe,
    QualityComparison,
    QualitySearch,
    Report,
    SceneLog,
    SceneResult,
    SizeClassCost,
    StacSummary,
    Status,
    Totals,
)
from .prices import ClassPrices, PriceTable, known_regions, load_prices, prices_for
from .recorder import RunRecorder
from .scene_log import SceneLogWriter, read_scene_log, scenes_dataframe

__all__ = [
    "Attempt",
    "Bin",
    "Bins",
    "ClassPrices",
    "CostAccumulator",
    "CostEstimate",
    "CostLine",
    "Distribution",
    "Distributions",
    "FixedQualityComparison",
    "Histogram",
    "OneTimeLine",
    "PriceTable",
    "Probe",
    "QualityComparison",
    "QualitySearch",
    "Report",
    "RunDistributions",
    "RunRecorder",
    "SceneLog",
    "SceneLogWriter",
    "SceneResult",
    "SizeClassCost",
    "StacSummary",
    "Status",
    "Totals",
    "archive_skip_reason",
    "esc",
    "estimate",
    "human_bytes",
    "known_regions",
    "load_prices",
    "months",
    "payback",
    "prices_for",
    "read_scene_log",
    "render_html",
    "report_json",
    "request_tier",
    "scenes_dataframe",
    "short_name",
    "summary_lines",
    "usd",
    "usd_price",
    "worth_archiving",
    "write_report",
]
