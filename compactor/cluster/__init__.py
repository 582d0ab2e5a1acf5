"""Where the Dask work runs: a local cluster, an existing scheduler, or an ephemeral
DaskCluster on Kubernetes; and the check that client and workers run the same software.
"""

from ._kubernetes import cluster_spec, kube_cluster
from ._local import connect, default_workers
from ._versions import check_versions, local_versions, worker_identity

__all__ = [
    "check_versions",
    "cluster_spec",
    "connect",
    "default_workers",
    "kube_cluster",
    "local_versions",
    "worker_identity",
]
