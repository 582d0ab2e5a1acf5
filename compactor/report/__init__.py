"""The run report: ``report.json``, ``report.html`` with its charts and the summary lines,
over the model in :mod:`compactor.records`, and the recorder that tallies results into it as
they arrive.
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
