"""What a run records: typed scene results and the run's report model, the scene log that
persists them, bounded accumulators, and the durable per-scene state records.
"""

from ._aggregate import FixedQualityComparison, Histogram, RunDistributions
from ._bins import Bins
from ._cost_estimate import CostEstimate, CostLine, OneTimeLine, SizeClassCost
from ._digest import SourceDigest
from ._distributions import Bin, Distribution, Distributions
from ._results import (
    Attempt,
    BandNoise,
    CodecProbe,
    EncodingSearch,
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
from ._scene_log import (
    FLUSH_EVERY,
    FLUSH_SECONDS,
    SceneLogWriter,
    read_scene_log,
    scene_log_location,
    scenes_dataframe,
)
from ._state import (
    STATE_VERSION,
    Fingerprint,
    SceneState,
    StateStore,
    Step,
    StoredObject,
    lease_location,
    now_iso,
    source_of_state_key,
    state_prefix_for,
    state_root,
)

__all__ = [
    "FLUSH_EVERY",
    "FLUSH_SECONDS",
    "STATE_VERSION",
    "Attempt",
    "BandNoise",
    "Bin",
    "Bins",
    "CodecProbe",
    "CostEstimate",
    "CostLine",
    "Distribution",
    "Distributions",
    "EncodingSearch",
    "Fingerprint",
    "FixedQualityComparison",
    "Histogram",
    "OneTimeLine",
    "Probe",
    "QualityComparison",
    "QualitySearch",
    "Report",
    "RunDistributions",
    "SceneLog",
    "SceneLogWriter",
    "SceneResult",
    "SceneState",
    "SizeClassCost",
    "SourceDigest",
    "StacSummary",
    "StateStore",
    "Status",
    "Step",
    "StoredObject",
    "Totals",
    "lease_location",
    "now_iso",
    "read_scene_log",
    "scene_log_location",
    "scenes_dataframe",
    "source_of_state_key",
    "state_prefix_for",
    "state_root",
]
