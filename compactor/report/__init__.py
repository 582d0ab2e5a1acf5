"""Run results and reports: typed results, the JSON and HTML report, charts, costs."""

from .costs import estimate
from .format import esc, human_bytes, short_name, usd
from .html import render_html, report_json, summary_lines, write_report
from .models import (
    Attempt,
    CostEstimate,
    CostLine,
    Probe,
    QualityComparison,
    QualitySearch,
    Report,
    SceneResult,
    StacSummary,
    Status,
    Totals,
)

__all__ = [
    "Attempt",
    "CostEstimate",
    "CostLine",
    "Probe",
    "QualityComparison",
    "QualitySearch",
    "Report",
    "SceneResult",
    "StacSummary",
    "Status",
    "Totals",
    "esc",
    "estimate",
    "human_bytes",
    "render_html",
    "report_json",
    "short_name",
    "summary_lines",
    "usd",
    "write_report",
]
