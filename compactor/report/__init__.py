"""Run results and reports: typed results, the scene log, bounded accumulators and the
recorder that feeds them, the JSON and HTML report, charts, costs."""

from .aggregate import FixedQualityComparison, Histogram, RunDistributions
from .bins import Bins
from .costs import CostAccumulator, estimate
from .format import esc, human_bytes, short_name, usd
from .html import render_html, report_json, summary_lines, write_report
from .models import (
    Attempt,
    Bin,
    CostEstimate,
    CostLine,
    Distribution,
    Distributions,
    Probe,
    QualityComparison,
    QualitySearch,
    Report,
    SceneLog,
    SceneResult,
    StacSummary,
    Status,
    Totals,
)
from .recorder import RunRecorder
from .scene_log import SceneLogWriter, read_scene_log, scenes_dataframe

__all__ = [
    "Attempt",
    "Bin",
    "Bins",
    "CostAccumulator",
    "CostEstimate",
    "CostLine",
    "Distribution",
    "Distributions",
    "FixedQualityComparison",
    "Histogram",
    "Probe",
    "QualityComparison",
    "QualitySearch",
    "Report",
    "RunDistributions",
    "RunRecorder",
    "SceneLog",
    "SceneLogWriter",
    "SceneResult",
    "StacSummary",
    "Status",
    "Totals",
    "esc",
    "estimate",
    "human_bytes",
    "read_scene_log",
    "render_html",
    "report_json",
    "scenes_dataframe",
    "short_name",
    "summary_lines",
    "usd",
    "write_report",
]
