"""Where the Dask work runs: ``cluster:`` of the settings."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..redact import is_secret_name
from ._meta import ClusterKind, Opt


class WorkerRange(BaseModel):
    """Adaptive worker count: between ``min`` and ``max`` workers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: int = Field(default=0, ge=0)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> WorkerRange:
        if self.min > self.max:
            raise ValueError("workers.min must not exceed workers.max")
        return self


class ClusterSettings(BaseModel):
    """Where the Dask work runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Annotated[
        ClusterKind,
        Opt("cluster", flag="--cluster", param="cluster_kind", env=None, shown_default=True),
    ] = Field(
        default="local",
        description="Where the Dask work runs: a LocalCluster on this machine, an existing "
        "scheduler (--scheduler), or an ephemeral DaskCluster on Kubernetes through the "
        "dask-kubernetes operator (image, workers, resources from the config file's "
        "cluster: section; see compactor k8s-spec).",
    )
    address: Annotated[str | None, Opt("cluster", flag="--scheduler", metavar="ADDRESS")] = Field(
        default=None,
        description="Use an existing Dask scheduler (tcp://host:8786) instead of a local cluster.",
    )
    workers: Annotated[
        int | WorkerRange | None, Opt("cluster", low=1, shown_default="one per core")
    ] = Field(
        default=None,
        description="Worker processes of the local Dask cluster (in the config file also "
        "{min, max} for an adaptive Kubernetes cluster).",
    )
    threads_per_worker: int = Field(default=1, ge=1, description="Threads of each worker.")
    worker_memory: Annotated[str | None, Opt("cluster", metavar="SIZE")] = Field(
        default=None,
        description="Memory limit per local worker, e.g. 2GiB (on Kubernetes also the worker "
        "pods' memory request and limit).",
    )
    # --- kind: kubernetes (an ephemeral DaskCluster through the dask-kubernetes operator)
    image: str | None = Field(
        default=None,
        description="Container image of the scheduler and workers (the same as the runner's).",
    )
    namespace: str | None = Field(default=None, description="Kubernetes namespace.")
    service_account: str | None = Field(
        default=None,
        description="Service account of the scheduler and worker pods (IRSA gives them AWS "
        "access).",
    )
    worker_cpu: str | None = Field(
        default=None, description='CPU request and limit of a worker pod, e.g. "2" or "1500m".'
    )
    worker_scratch: str | None = Field(
        default="20Gi",
        description="Size limit of a worker pod's scratch volume (the emptyDir at /tmp: "
        "TMPDIR, Dask's local directory and its spill), a Kubernetes quantity, e.g. 20Gi; the "
        "kubelet evicts a worker that writes more (its tasks rerun elsewhere) instead of "
        "letting it fill the node's disk. null: no limit.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node selector of the worker pods (e.g. spot nodes).",
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="Tolerations of the worker pods."
    )
    scheduler_node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node selector of the scheduler pod (keep it on on-demand nodes).",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment of the scheduler and worker pods: plain settings only. "
        "The pod spec is printed by compactor k8s-spec and stored in the cluster, so a "
        "variable whose name marks a secret is refused (use IRSA, or secret_env).",
    )
    secret_env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment of the scheduler and worker pods taken from Kubernetes "
        'Secrets: {VARIABLE: "<secret name>/<key>"}, rendered as valueFrom.secretKeyRef (the '
        "value itself never appears in the spec).",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels of the DaskCluster and of its scheduler and worker pods (the Helm "
        "chart sets the release's, which its NetworkPolicy selects on).",
    )
    name: str = Field(
        default="compactor",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$",
        description="Prefix of the DaskCluster's name.",
    )

    @field_validator("worker_cpu", mode="before")
    @classmethod
    def _cpu(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("worker_scratch", mode="before")
    @classmethod
    def _scratch(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not re.fullmatch(
            r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?", value.strip()
        ):
            raise ValueError(
                f"worker_scratch {value!r} is not a Kubernetes quantity (e.g. 20Gi, 500Mi)"
            )
        return value.strip() if isinstance(value, str) else value

    @field_validator("env")
    @classmethod
    def _no_secrets_in_env(cls, value: dict[str, str]) -> dict[str, str]:
        secret = sorted(name for name in value if is_secret_name(name))
        if secret:
            raise ValueError(
                f"{', '.join(secret)} looks like a secret and cannot go into cluster.env "
                "(pod specs are printed and stored in the cluster as plain text): give the "
                "pods AWS access through IRSA (the service account's IAM role), and any other "
                "secret through a Kubernetes Secret with cluster.secret_env "
                "({NAME: <secret name>/<key>})"
            )
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret_refs(cls, value: dict[str, str]) -> dict[str, str]:
        ref = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/[-._a-zA-Z0-9]{1,253}$")
        for name, target in value.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if not isinstance(target, str) or not ref.fullmatch(target):
                raise ValueError(
                    f"cluster.secret_env.{name} must be '<secret name>/<key>' "
                    "(a Kubernetes Secret in the cluster's namespace and one of its keys)"
                )
        return value
