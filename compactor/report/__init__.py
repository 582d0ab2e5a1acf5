"""The run report, presentation only: ``report.json``, ``report.html`` with its charts, the
summary lines, and the recorder that builds them as results arrive.
"""

from ._charts import X_AXES, is_missing, scatter_chart
from ._html import render_html, report_json, write_report
from ._recorder import RunRecorder
from ._summary import cost_lines, summary_lines

__all__ = [
    "X_AXES",
    "RunRecorder",
    "cost_lines",
    "is_missing",
    "render_html",
    "report_json",
    "scatter_chart",
    "summary_lines",
    "write_report",
]
