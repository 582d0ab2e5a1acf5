"""Dask on Kubernetes: the DaskCluster spec ``--cluster kubernetes`` creates, and the
start-up check that the client and every worker run the same software.

The spec starts from dask-kubernetes' own template (``make_cluster_spec``) and adds what a
compactor run needs: one image for scheduler and workers, worker CPU and memory requests
and limits (the memory limit is also given to ``dask worker --memory-limit``, so the chunk
planner sees it), node selectors and tolerations (spot workers, the scheduler on on-demand
nodes), the service account (IRSA), labels a NetworkPolicy can select (``cluster.labels``),
hardened pods (non-root, no service-account token, seccomp ``RuntimeDefault``, no privilege
escalation, every capability dropped, a read-only root filesystem with an ``emptyDir`` at
``/tmp`` for ``HOME``, ``TMPDIR`` and the worker's local directory, its size bounded by
``cluster.worker_scratch``), and the environment (``AWS_ENDPOINT_URL`` when set, the region
as ``AWS_REGION`` and ``AWS_DEFAULT_REGION``, GDAL's settings, anything from
``cluster.env``, and ``cluster.secret_env`` as references to Kubernetes Secrets). No secret
ever goes into it: pods get AWS credentials from the service account (IRSA), secret-named
GDAL options are left out, and ``cluster.env`` refuses secret-named variables.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from distributed import Client

from ..errors import ConfigError
from ..gdal import gdal_options
from ..redact import is_secret_name, secret_values
from ..settings import ClusterSettings, Settings, WorkerRange

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
#: Size limit of the scheduler pod's scratch volume (the workers': ``cluster.worker_scratch``).
SCHEDULER_SCRATCH = "1Gi"
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

    env: dict[str, str] = {
        "HOME": SCRATCH,
        "TMPDIR": SCRATCH,
        "DASK_TEMPORARY_DIRECTORY": SCRATCH,
        # Dask's statistical profiler grows a worker by hundreds of MB over a long run
        # (local workers run without it too: cluster/_local.py's WORKER_CONFIG).
        "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
        # Dask's developer logs keep 100 entries, not 1,000: the scheduler kept each
        # worker's last 1,000 task messages, scenes and run context included (cluster/
        # _local.py's LOG_LENGTH).
        "DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH": "100",
    }
    if settings.endpoint_url:
        if "@" in urlsplit(settings.endpoint_url).netloc:
            raise ConfigError(
                "endpoint_url carries user info (a name or password before '@'); it would be "
                "copied into every pod spec: give the endpoint without it"
            )
        env["AWS_ENDPOINT_URL"] = settings.endpoint_url
    if settings.region:
        # Both names: boto3's default session (the workers' identity check, any client made
        # without an explicit region) reads only AWS_DEFAULT_REGION; other SDKs AWS_REGION.
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = settings.region
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
    if "AWS_REGION" in settings.cluster.env and "AWS_DEFAULT_REGION" not in settings.cluster.env:
        env["AWS_DEFAULT_REGION"] = settings.cluster.env["AWS_REGION"]
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
    # Imported here, as below: dask-kubernetes pulls in the Kubernetes client at import,
    # which costs every other command its start-up time.
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
    _worker(cluster, worker_pod)

    # Scheduler pod: the `dask scheduler` command of current distributed, modest resources,
    # on-demand placement.
    sched_pod = spec["spec"]["scheduler"]["spec"]
    (scheduler,) = sched_pod["containers"]
    scheduler["args"] = ["dask", "scheduler", "--host", "0.0.0.0"]
    scheduler["resources"] = SCHEDULER_RESOURCES
    if cluster.scheduler_node_selector:
        sched_pod["nodeSelector"] = dict(cluster.scheduler_node_selector)

    secrets = secret_env(cluster)
    # The scratch volumes: a worker's holds TMPDIR and Dask's local directory (spilled
    # data), bounded by cluster.worker_scratch; the scheduler writes next to nothing.
    worker_scratch = {"sizeLimit": cluster.worker_scratch} if cluster.worker_scratch else {}
    _secure(
        cluster,
        ((worker_pod, worker_scratch), (sched_pod, {"sizeLimit": SCHEDULER_SCRATCH})),
        secrets,
    )
    return spec


def _worker(cluster: ClusterSettings, worker_pod: dict[str, Any]) -> None:
    """Worker pods: resources, memory limit for Dask, placement."""
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


def _secure(
    cluster: ClusterSettings,
    pods: Iterable[tuple[dict[str, Any], dict[str, str]]],
    secrets: list[dict[str, Any]],
) -> None:
    """Each pod (with its scratch volume's ``emptyDir``): security contexts, the service
    account without a token, the scratch volume mounted, the secrets' environment."""
    for pod, scratch in pods:
        pod["securityContext"] = copy.deepcopy(POD_SECURITY)
        if cluster.service_account:
            pod["serviceAccountName"] = cluster.service_account
        # Neither the scheduler nor a worker talks to the Kubernetes API: no token. (The
        # IRSA web-identity token is a separate projected volume, mounted either way.)
        pod["automountServiceAccountToken"] = False
        pod["volumes"] = [{"name": SCRATCH_VOLUME, "emptyDir": scratch}]
        for c in pod["containers"]:
            c["securityContext"] = copy.deepcopy(CONTAINER_SECURITY)
            c["volumeMounts"] = [{"name": SCRATCH_VOLUME, "mountPath": SCRATCH}]
            c["env"] = list(c.get("env") or []) + copy.deepcopy(secrets)
            if not c["env"]:
                c.pop("env")
            if c.get("resources") is None:
                c.pop("resources", None)


@contextmanager
def kube_cluster(cluster: ClusterSettings, settings: Settings | None) -> Iterator[Any]:
    """An ephemeral DaskCluster through the dask-kubernetes operator, deleted on exit
    (also on errors and Ctrl-C)."""
    try:  # imported here: it pulls in the Kubernetes client, which only this path needs
        from dask_kubernetes.operator import KubeCluster
    except ImportError as err:
        raise ConfigError(
            "cluster kind 'kubernetes' needs dask-kubernetes (pip install dask-kubernetes)"
        ) from err
    spec = cluster_spec(settings or Settings(cluster=cluster))
    name = spec["metadata"]["name"]
    log.info("creating DaskCluster %s (image %s)", name, cluster.image)
    try:
        kube = KubeCluster(
            custom_cluster_spec=spec, namespace=cluster.namespace, shutdown_on_close=True
        )
    except Exception as err:
        raise ConfigError(f"cannot create DaskCluster {name}: {err}") from err
    try:
        if isinstance(cluster.workers, WorkerRange):
            kube.adapt(minimum=cluster.workers.min, maximum=cluster.workers.max)
        with Client(kube) as client:
            yield client
    finally:
        log.info("deleting DaskCluster %s", name)
        kube.close()
