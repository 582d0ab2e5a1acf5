"""One scene, from its spec to its delete: the frozen spec, the pure decision of what to do next
(:func:`decide`), and the walk that runs it as a Dask task.
"""

from ._batch import process_scenes
from ._chunked import ChunkedOutput, compact_chunked
from ._decide import Action, decide, is_recorded, reads_whole, record_problem
from ._handle import StateHandle
from ._spec import RunContext, SceneSpec, assign_outputs, output_relative
from ._walk import process_scene

__all__ = [
    "Action",
    "ChunkedOutput",
    "RunContext",
    "SceneSpec",
    "StateHandle",
    "assign_outputs",
    "compact_chunked",
    "decide",
    "is_recorded",
    "output_relative",
    "process_scene",
    "process_scenes",
    "reads_whole",
    "record_problem",
]
