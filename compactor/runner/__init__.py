"""A run, client side: discover, fan out one task per scene on Dask, collect, report; the dry
run (``plan``), ``restore`` and ``verify``.
"""

from ._audit import audit
from ._fanout import fan_out, progress_of
from ._pipeline import run
from ._planner import plan, plan_cost, sample_scenes
from ._progress import NotebookProgress
from ._restore import restore

__all__ = [
    "NotebookProgress",
    "audit",
    "fan_out",
    "plan",
    "plan_cost",
    "progress_of",
    "restore",
    "run",
    "sample_scenes",
]
