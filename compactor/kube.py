"""Dask on Kubernetes: the DaskCluster spec ``--cluster kubernetes`` creates, and the
start-up check that the client and every worker run the same software.

The spec starts from dask-kubernetes' own template (``make_cluster_spec``) and adds what a
compactor run needs: one image for scheduler and workers, worker CPU and memory requests
and limits (the memory limit is also given to ``dask worker --memory-limit``, so the chunk
planner sees it), node selectors and tolerations (spot workers, the scheduler on on-demand
nodes), the service account (IRSA), labels a NetworkPolicy can select (``cluster.labels``),
hardened pods (non-root, no service-account token, seccomp ``RuntimeDefault``, no privilege
escalation, every capability dropped, a read-only root filesystem with an ``emptyDir`` at
``/tmp`` for ``HOME``, ``TMPDIR`` and the worker's local directory), and the environment
(``AWS_ENDPOINT_URL`` when set, GDAL's settings, anything from ``cluster.env``, and
``cluster.secret_env`` as references to Kubernetes Secrets). No secret ever goes into it:
pods get AWS credentials from the service account (IRSA), secret-named GDAL options are left
out, and ``cluster.env`` refuses secret-named variables.
"""

from __future__ import annotations

import copy
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

from .config import ClusterSettings, Settings, WorkerRange
from .errors import ConfigError

log = logging.getLogger(__name__)

#: Requests of the scheduler pod: it holds task metadata only.
SCHEDULER_RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
#: The non-root user of compactor's image (helm/Dockerfile); fsGroup makes the IRSA
#: web-identity token readable to it; the container runtime's default syscall filter.
POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
#: Every scheduler and worker container: no setuid escalation, no capabilities, nothing
#: written outside the scratch volume.
CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
#: The writable scratch directory (an emptyDir): HOME, TMPDIR, the worker's local directory.
SCRATCH = "/tmp"
SCRATCH_VOLUME = "scratch"
#: Labels of every DaskCluster compactor creates (``cluster.labels`` are added).
BASE_LABELS = {"app.kubernetes.io/name": "compactor", "app.kubernetes.io/component": "dask-cluster"}


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
    """Plain environment of the scheduler and worker pods: never a secret. Secret-named GDAL
    options (``GDAL_HTTP_HEADERS``, ``AWS_SECRET_ACCESS_KEY``, ...) and options whose value
    carries a URL password are left out (tasks apply the run's GDAL options themselves); an
    endpoint URL with user info is refused."""
    from .gdal_env import gdal_options
    from .redact import is_secret_name, secret_values

    env: dict[str, str] = {
        "HOME": SCRATCH,
        "TMPDIR": SCRATCH,
        "DASK_TEMPORARY_DIRECTORY": SCRATCH,
    }
    if settings.endpoint_url:
        if "@" in urlsplit(settings.endpoint_url).netloc:
            raise ConfigError(
                "endpoint_url carries user info (a name or password before '@'); it would be "
                "copied into every pod spec: give the endpoint without it"
            )
        env["AWS_ENDPOINT_URL"] = settings.endpoint_url
    if settings.region:
        env["AWS_REGION"] = settings.region
    # GDAL reads its configuration from the environment too; tasks apply them again.
    left_out = []
    for key, value in gdal_options(
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        overrides=settings.gdal_options,
    ).items():
        if is_secret_name(key) or secret_values(str(value)):
            left_out.append(key)
            continue
        env[key] = str(value)
    if left_out:
        log.info("GDAL options left out of the pod environment (secrets): %s", ", ".join(left_out))
    env.update(settings.cluster.env)
    for name in settings.cluster.secret_env:
        env.pop(name, None)
    return env


def secret_env(cluster: ClusterSettings) -> list[dict[str, Any]]:
    """``cluster.secret_env`` as container env entries reading Kubernetes Secrets."""
    out = []
    for name, ref in sorted(cluster.secret_env.items()):
        secret, _, key = ref.partition("/")
        out.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    return out


def labels(cluster: ClusterSettings) -> dict[str, str]:
    """Labels of the DaskCluster and its pods."""
    return {**BASE_LABELS, **cluster.labels}


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
    # The operator copies the DaskCluster's labels onto the scheduler and worker pods; they
    # are also set on the pod templates, so the pods carry them whatever the operator does.
    pod_labels = labels(cluster)
    spec["metadata"]["labels"] = dict(pod_labels)
    for role in ("scheduler", "worker"):
        spec["spec"][role]["metadata"] = {"labels": dict(pod_labels)}
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
    worker["args"] += ["--local-directory", SCRATCH]
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

    secrets = secret_env(cluster)
    for pod in (worker_pod, sched_pod):
        pod["securityContext"] = copy.deepcopy(POD_SECURITY)
        if cluster.service_account:
            pod["serviceAccountName"] = cluster.service_account
        # Neither the scheduler nor a worker talks to the Kubernetes API: no token. (The
        # IRSA web-identity token is a separate projected volume, mounted either way.)
        pod["automountServiceAccountToken"] = False
        pod["volumes"] = [{"name": SCRATCH_VOLUME, "emptyDir": {}}]
        for c in pod["containers"]:
            c["securityContext"] = copy.deepcopy(CONTAINER_SECURITY)
            c["volumeMounts"] = [{"name": SCRATCH_VOLUME, "mountPath": SCRATCH}]
            c["env"] = list(c.get("env") or []) + copy.deepcopy(secrets)
            if not c["env"]:
                c.pop("env")
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
