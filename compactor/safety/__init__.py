"""Never lose an original: durable per-scene state, leases, verified archive copies, the
guarded delete, and the scene's walk through them."""

from .archive import SourceDigest, delete_exactly, recheck_before_delete, server_copy
from .lease import Lease
from .spec import RunContext, SceneSpec
from .state import SceneState, StateStore, Step, StoredObject
from .walk import Action, StateHandle, decide, process_scene, reads_whole, records

__all__ = [
    "Action",
    "Lease",
    "RunContext",
    "SceneSpec",
    "SceneState",
    "SourceDigest",
    "StateHandle",
    "StateStore",
    "Step",
    "StoredObject",
    "decide",
    "delete_exactly",
    "process_scene",
    "reads_whole",
    "recheck_before_delete",
    "records",
    "server_copy",
]
