"""Dask on Kubernetes: the DaskCluster spec ``--cluster kubernetes`` creates, and the
start-up check that the client and every worker run the same software.

The spec starts from dask-kubernetes' own template (``make_cluster_spec``) and adds what a
compactor run needs: one image for scheduler and workers, worker CPU and memory requests
and limits (the memory limit is also given to ``dask worker --memory-limit``, so the chunk
planner sees it), node selectors and tolerations (spot workers, the scheduler on on-demand
nodes), the service account (IRSA), a non-root pod security context, and the environment
(``AWS_ENDPOINT_URL`` when set, GDAL's settings, anything from ``cluster.env``). No
credentials ever go into it: pods get theirs from the service account.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from .config import ClusterSettings, Settings, WorkerRange
from .errors import ConfigError

log = logging.getLogger(__name__)

#: Requests of the scheduler pod: it holds task metadata only.
SCHEDULER_RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
#: The non-root user of compactor's image (helm/Dockerfile); fsGroup makes the IRSA
#: web-identity token readable to it.
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000}


def cluster_name(cluster: ClusterSettings) -> str:
    return f"{cluster.name}-{uuid.uuid4().hex[:8]}"


def _k8s_memory(value: str) -> str:
    """Dask sizes (``8GiB``, ``4GB``) as Kubernetes quantities (``8Gi``, ``4G``)."""
    v = value.strip().replace(" ", "")
    for dask_unit, k8s_unit in (("KiB", "Ki"), ("MiB", "Mi"), ("GiB", "Gi"), ("TiB", "Ti")):
        if v.endswith(dask_unit):
            return v[: -len(dask_unit)] + k8s_unit
    for dask_unit, k8s_unit in (("kB", "k"), ("KB", "k"), ("MB", "M"), ("GB", "G"), ("TB", "T")):
        if v.endswith(dask_unit):
            return v[: -len(dask_unit)] + k8s_unit
    return v


def pod_env(settings: Settings) -> dict[str, str]:
    """Environment of the scheduler and worker pods (never credentials)."""
    from .gdal_env import gdal_options

    env: dict[str, str] = {}
    if settings.endpoint_url:
        env["AWS_ENDPOINT_URL"] = settings.endpoint_url
    if settings.region:
        env["AWS_REGION"] = settings.region
    # GDAL reads its configuration from the environment too; tasks apply them again.
    for key, value in gdal_options(
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        overrides=settings.gdal_options,
    ).items():
        if not key.startswith(("AWS_ACCESS", "AWS_SECRET", "AWS_SESSION")):
            env[key] = str(value)
    env.update(settings.cluster.env)
    return env


def cluster_spec(settings: Settings, name: str | None = None) -> dict[str, Any]:
    """The ``DaskCluster`` resource for ``settings.cluster`` (kind ``kubernetes``)."""
    from dask_kubernetes.operator import make_cluster_spec

    cluster = settings.cluster
    if not cluster.image:
        raise ConfigError("cluster kind 'kubernetes' needs cluster.image (the compactor image)")
    workers = cluster.workers
    n_workers = workers.min if isinstance(workers, WorkerRange) else (workers or 2)
    env = pod_env(settings)
    spec: dict[str, Any] = make_cluster_spec(
        name=name or cluster_name(cluster),
        image=cluster.image,
        n_workers=max(n_workers, 1) if not isinstance(workers, WorkerRange) else n_workers,
        env=env,
        worker_command="dask worker",
    )
    spec["metadata"]["labels"] = {
        "app.kubernetes.io/name": "compactor",
        "app.kubernetes.io/component": "dask-cluster",
    }
    if cluster.namespace:
        spec["metadata"]["namespace"] = cluster.namespace

    # Worker pods: resources, memory limit for Dask, placement.
    worker_pod = spec["spec"]["worker"]["spec"]
    (worker,) = worker_pod["containers"]
    resources: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    if cluster.worker_cpu:
        resources["requests"]["cpu"] = cluster.worker_cpu
        resources["limits"]["cpu"] = cluster.worker_cpu
    if cluster.worker_memory:
        resources["requests"]["memory"] = _k8s_memory(cluster.worker_memory)
        resources["limits"]["memory"] = _k8s_memory(cluster.worker_memory)
        worker["args"] += ["--memory-limit", cluster.worker_memory]
    worker["args"] += ["--nthreads", str(cluster.threads_per_worker)]
    worker["resources"] = {k: v for k, v in resources.items() if v} or None
    if worker["resources"] is None:
        del worker["resources"]
    if cluster.node_selector:
        worker_pod["nodeSelector"] = dict(cluster.node_selector)
    if cluster.tolerations:
        worker_pod["tolerations"] = [dict(t) for t in cluster.tolerations]

    # Scheduler pod: the `dask scheduler` command of current distributed, modest resources,
    # on-demand placement.
    sched_pod = spec["spec"]["scheduler"]["spec"]
    (scheduler,) = sched_pod["containers"]
    scheduler["args"] = ["dask", "scheduler", "--host", "0.0.0.0"]
    scheduler["resources"] = SCHEDULER_RESOURCES
    if cluster.scheduler_node_selector:
        sched_pod["nodeSelector"] = dict(cluster.scheduler_node_selector)

    for pod in (worker_pod, sched_pod):
        pod["securityContext"] = dict(POD_SECURITY)
        if cluster.service_account:
            pod["serviceAccountName"] = cluster.service_account
        for c in pod["containers"]:
            if c.get("env") is None:
                c.pop("env", None)
            if c.get("resources") is None:
                c.pop("resources", None)
    return spec


# --- versions ------------------------------------------------------------------------------


def local_versions() -> dict[str, str]:
    """Versions that must agree between the client and every worker."""
    import dask
    import distributed
    import rasterio

    from . import __version__

    return {
        "compactor": __version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
    }


def worker_identity() -> dict[str, str]:
    """Runs on a worker: its versions, and which AWS identity it uses (how its credentials
    were found, and the caller ARN when STS answers quickly). No secrets."""
    info = dict(local_versions())
    try:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session()
        creds = session.get_credentials()
        info["aws_credentials"] = creds.method if creds is not None else "none"
        if creds is not None:
            sts = session.client(
                "sts",
                config=Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 1}),
            )
            info["aws_identity"] = str(sts.get_caller_identity().get("Arn"))
    except Exception as err:  # identity is informational: never fail the run over it
        info.setdefault("aws_identity", f"unknown ({type(err).__name__})")
    return info


def check_versions(client: Any) -> dict[str, dict[str, str]]:
    """Compare this process's versions with every worker's; a mismatch is a clear error
    (mismatched images are the commonest failure of Dask on Kubernetes). Logs each
    worker's AWS identity. Returns what the workers reported."""
    here = local_versions()
    reports: dict[str, dict[str, str]] = client.run(worker_identity)
    problems = []
    for worker, info in sorted(reports.items()):
        for package, version in here.items():
            if info.get(package) != version:
                problems.append(
                    f"{package} {version} here, {info.get(package, 'missing')} on {worker}"
                )
        log.info(
            "worker %s: AWS credentials from %s, identity %s",
            worker,
            info.get("aws_credentials", "?"),
            info.get("aws_identity", "?"),
        )
    if problems:
        raise ConfigError(
            "the Dask workers run different software than this client ("
            + "; ".join(problems[:6])
            + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
            + "): run the client, scheduler and workers from the same image"
        )
    return reports
