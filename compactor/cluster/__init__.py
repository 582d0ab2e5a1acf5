"""Where the Dask work runs: a local cluster, an existing scheduler, or an ephemeral
DaskCluster on Kubernetes; and the check that client and workers run the same software.

Importing the package loads only the fork server's starter (the standard library): the
CLI starts the server before it imports the runner, so the two overlap. The rest (Dask,
GDAL, boto3) loads when first asked for.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._forkserver import start_fork_server

if TYPE_CHECKING:
    from ._kubernetes import cluster_spec, kube_cluster
    from ._local import connect, default_workers
    from ._versions import check_versions, local_versions, worker_identity

_LAZY = {
    "cluster_spec": "_kubernetes",
    "kube_cluster": "_kubernetes",
    "connect": "_local",
    "default_workers": "_local",
    "check_versions": "_versions",
    "local_versions": "_versions",
    "worker_identity": "_versions",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The names loaded on use too (documentation tools list a module by ``dir``)."""
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "check_versions",
    "cluster_spec",
    "connect",
    "default_workers",
    "kube_cluster",
    "local_versions",
    "start_fork_server",
    "worker_identity",
]
