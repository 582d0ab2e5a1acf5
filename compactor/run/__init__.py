"""A run, client side: discovery (a listing or a STAC search), the one fan-out, the run and
its report, the dry run, ``compactor verify`` and ``compactor restore``."""

from .audit import audit
from .discover import Discovery, check_locations, discover, preflight
from .fanout import fan_out, progress_of
from .pipeline import run
from .planner import plan
from .restore import restore

__all__ = [
    "Discovery",
    "audit",
    "check_locations",
    "discover",
    "fan_out",
    "plan",
    "preflight",
    "progress_of",
    "restore",
    "run",
]
