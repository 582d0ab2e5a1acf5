"""Dask on Kubernetes without a cluster: the DaskCluster spec `compactor k8s-spec` prints is
validated against the CRD schema shipped inside dask-kubernetes (strictly: no field the API
server would prune), and the start-up version check runs against the session's real
scheduler and worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask_kubernetes
import jsonschema
import pytest
import yaml
from distributed import Client

from compactor.cluster import _versions as kube
from compactor.errors import ConfigError
from compactor.settings import WorkerRange, resolve_settings

CRDS = (
    Path(dask_kubernetes.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator/crds"
)

CONFIG = {
    "source": "s3://imagery/scenes/",
    "dest": "s3://imagery/cogs/",
    "endpoint_url": "https://s3.example.internal",
    "cluster": {
        "kind": "kubernetes",
        "image": "ghcr.io/example/compactor:0.1.0",
        "namespace": "imagery",
        "service_account": "compactor",
        "workers": {"min": 2, "max": 20},
        "worker_cpu": 2,
        "worker_memory": "8GiB",
        "node_selector": {"eks.amazonaws.com/capacityType": "SPOT"},
        "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
        "scheduler_node_selector": {"eks.amazonaws.com/capacityType": "ON_DEMAND"},
        "env": {"AWS_REGION": "eu-west-1"},
        "secret_env": {"STAC_API_TOKEN": "stac-credentials/token"},
        "labels": {"app.kubernetes.io/instance": "nightly"},
    },
}

#: Distinctive secret values that must never appear in printed manifests or messages.
BEARER = "Bearer sk-live-4f1d9c2b7e"
SECRET_KEY = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYz"


def crd_schema(name: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / f"{name}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return dict(version["schema"]["openAPIV3Schema"])


def pruned_fields(obj: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Fields the API server would drop: present in ``obj`` but not in a structural schema
    that neither allows additional properties nor preserves unknown fields."""
    found: list[str] = []
    if isinstance(obj, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return found
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            if props is not None and key in props:
                found += pruned_fields(value, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += pruned_fields(value, extra, f"{path}.{key}")
            elif props is not None or extra is False:
                found.append(f"{path}.{key}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(obj):
            found += pruned_fields(value, schema["items"], f"{path}[{i}]")
    return found


def spec_from_cli(cli: Any, tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    cfg = tmp_path / "compactor.yaml"
    cfg.write_text(yaml.safe_dump(config))
    result = cli("k8s-spec", "--config", str(cfg), "--name", "compactor-nightly")
    assert result.exit_code == 0, result.output
    return dict(yaml.safe_load(result.output))


def test_k8s_spec_validates_against_the_daskcluster_crd(cli: Any, tmp_path: Path) -> None:
    spec = spec_from_cli(cli, tmp_path, CONFIG)
    schema = crd_schema("daskcluster")
    jsonschema.validate(spec, schema)
    assert pruned_fields(spec["spec"], schema["properties"]["spec"], "spec") == []
    # The strict walk does catch a field the schema does not know.
    import copy

    tampered = copy.deepcopy(spec)
    tampered["spec"]["worker"]["spec"]["containers"][0]["imageTag"] = "x"
    assert pruned_fields(tampered["spec"], schema["properties"]["spec"], "spec") == [
        "spec.worker.spec.containers[0].imageTag"
    ]
    assert spec["apiVersion"] == "kubernetes.dask.org/v1"
    assert spec["kind"] == "DaskCluster"
    assert spec["metadata"]["name"] == "compactor-nightly"
    assert spec["metadata"]["namespace"] == "imagery"


def test_k8s_spec_carries_image_resources_env_and_service_account(cli: Any, tmp_path: Path) -> None:
    spec = spec_from_cli(cli, tmp_path, CONFIG)
    worker_pod = spec["spec"]["worker"]["spec"]
    sched_pod = spec["spec"]["scheduler"]["spec"]
    (worker,) = worker_pod["containers"]
    (scheduler,) = sched_pod["containers"]
    image = "ghcr.io/example/compactor:0.1.0"
    assert worker["image"] == image
    assert scheduler["image"] == image
    assert spec["spec"]["worker"]["replicas"] == 2  # the adaptive minimum
    assert worker["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"cpu": "2", "memory": "8Gi"},
    }
    # The memory limit reaches Dask too (and from it the chunk planner).
    args = worker["args"]
    assert args[args.index("--memory-limit") + 1] == "8GiB"
    assert args[:2] == ["dask", "worker"]
    assert scheduler["args"][:2] == ["dask", "scheduler"]
    for pod in (worker_pod, sched_pod):
        assert pod["serviceAccountName"] == "compactor"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["fsGroup"] == 1000
    assert worker_pod["nodeSelector"] == {"eks.amazonaws.com/capacityType": "SPOT"}
    assert worker_pod["tolerations"] == CONFIG["cluster"]["tolerations"]
    assert sched_pod["nodeSelector"] == {"eks.amazonaws.com/capacityType": "ON_DEMAND"}
    assert "tolerations" not in sched_pod  # the scheduler never lands on spot nodes
    for container in (worker, scheduler):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AWS_ENDPOINT_URL"] == "https://s3.example.internal"
        # boto3's default session (the workers' identity check) reads AWS_DEFAULT_REGION only.
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
        assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
        plain = [e["name"] for e in container["env"] if "value" in e]
        assert not [k for k in plain if "SECRET" in k or "ACCESS_KEY" in k or "TOKEN" in k]


def test_k8s_spec_needs_an_image(cli: Any, tmp_path: Path) -> None:
    config = {**CONFIG, "cluster": {**CONFIG["cluster"], "image": None}}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    result = cli("k8s-spec", "--config", str(cfg))
    assert result.exit_code == 2
    assert "needs cluster.image" in result.output
    result = cli("k8s-spec", "--config", str(cfg), "--image", "registry/compactor:1")
    assert result.exit_code == 0, result.output
    assert "image: registry/compactor:1" in result.output


def test_cluster_settings_from_a_config_file_and_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    settings = resolve_settings({}, config_file=cfg)
    assert settings.cluster.kind == "kubernetes"
    assert settings.cluster.workers == WorkerRange(min=2, max=20)
    assert settings.cluster.worker_cpu == "2"
    # A flag overrides the file: --cluster local with --workers 3.
    settings = resolve_settings({"cluster_kind": "local", "workers": 3}, config_file=cfg)
    assert settings.cluster.kind == "local"
    assert settings.cluster.workers == 3
    bad = {**CONFIG, "cluster": {**CONFIG["cluster"], "workers": {"min": 5, "max": 2}}}
    cfg.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"workers.min must not exceed workers.max"):
        resolve_settings({}, config_file=cfg)


def test_version_check_against_real_workers(dask_scheduler: str, monkeypatch: Any) -> None:
    with Client(dask_scheduler) as client:
        reports = kube.check_versions(client)
        assert len(reports) == 2
        for info in reports.values():
            assert info["rasterio"] == kube.local_versions()["rasterio"]
            assert info["aws_credentials"] == "env"  # the test's environment credentials
            assert "SECRET" not in str(info)
        here = dict(kube.local_versions(), rasterio="0.0.1")
        monkeypatch.setattr(kube, "local_versions", lambda: here)
        with pytest.raises(ConfigError, match=r"rasterio 0\.0\.1 here, .* on tcp://"):
            kube.check_versions(client)


def test_run_with_kubernetes_kind_and_no_image_is_a_usage_error(cli: Any, s3: Any) -> None:
    s3.put("src-bucket", "scenes/x.tif", b"not read: the cluster is refused first")
    result = cli(
        "run", "--source", "s3://src-bucket/scenes/", "--dest", "s3://dst-bucket/cogs/",
        "--cluster", "kubernetes", scheduler=False,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "needs cluster.image" in result.output


# --- hardened pods, labels and secrets in the printed spec ----------------------------------


def test_k8s_spec_pods_are_hardened_and_labelled(cli: Any, tmp_path: Path) -> None:
    spec = spec_from_cli(cli, tmp_path, CONFIG)
    expected_labels = {
        "app.kubernetes.io/name": "compactor",
        "app.kubernetes.io/component": "dask-cluster",
        "app.kubernetes.io/instance": "nightly",
    }
    assert spec["metadata"]["labels"] == expected_labels
    for role in ("scheduler", "worker"):
        # The operator copies these onto the pods; a NetworkPolicy selects them.
        assert spec["spec"][role]["metadata"]["labels"] == expected_labels
        pod = spec["spec"][role]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }
        (mount,) = container["volumeMounts"]
        assert mount["mountPath"] == "/tmp"
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        # Bounded: a worker filling its scratch is evicted instead of filling the node.
        limit = "20Gi" if role == "worker" else "1Gi"
        assert volume == {"name": mount["name"], "emptyDir": {"sizeLimit": limit}}
        env = {e["name"]: e for e in container["env"]}
        for name in ("HOME", "TMPDIR", "DASK_TEMPORARY_DIRECTORY"):
            assert env[name]["value"] == "/tmp"
        # Dask's statistical profiler grows a worker over a long run (as on local workers).
        assert env["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"]["value"] == "False"
        # Its developer logs keep 100 entries (each message to a worker holds a task spec).
        assert env["DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH"]["value"] == "100"
        assert env["STAC_API_TOKEN"] == {
            "name": "STAC_API_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "stac-credentials", "key": "token"}},
        }


def test_k8s_spec_bounds_the_workers_scratch_by_worker_scratch(cli: Any, tmp_path: Path) -> None:
    def scratch(spec: dict[str, Any], role: str) -> dict[str, Any]:
        (volume,) = spec["spec"][role]["spec"]["volumes"]
        return dict(volume["emptyDir"])

    config = {**CONFIG, "cluster": {**CONFIG["cluster"], "worker_scratch": "50Gi"}}
    spec = spec_from_cli(cli, tmp_path, config)
    assert scratch(spec, "worker") == {"sizeLimit": "50Gi"}
    assert scratch(spec, "scheduler") == {"sizeLimit": "1Gi"}
    schema = crd_schema("daskcluster")
    jsonschema.validate(spec, schema)
    assert pruned_fields(spec["spec"], schema["properties"]["spec"], "spec") == []
    # null: no limit (the node's disk bounds it).
    config = {**CONFIG, "cluster": {**CONFIG["cluster"], "worker_scratch": None}}
    assert scratch(spec_from_cli(cli, tmp_path, config), "worker") == {}
    # Anything that is not a Kubernetes quantity is a usage error before any cluster exists.
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        yaml.safe_dump({**CONFIG, "cluster": {**CONFIG["cluster"], "worker_scratch": "lots"}})
    )
    result = cli("k8s-spec", "--config", str(cfg))
    assert result.exit_code == 2, result.output
    assert "'lots' is not a Kubernetes quantity" in " ".join(result.output.split())


def test_k8s_spec_sets_aws_default_region_from_the_region_setting(cli: Any, tmp_path: Path) -> None:
    """A region given as the run's setting (not through cluster.env) reaches the pods under
    both names too."""
    cluster = {k: v for k, v in CONFIG["cluster"].items() if k != "env"}
    spec = spec_from_cli(cli, tmp_path, {**CONFIG, "region": "ap-south-1", "cluster": cluster})
    for role in ("scheduler", "worker"):
        (container,) = spec["spec"][role]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "ap-south-1"


def test_k8s_spec_prints_no_secret(cli: Any, tmp_path: Path) -> None:
    # A secret GDAL option is refused outright (without echoing it) ...
    cfg = tmp_path / "secret.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "gdal_options": {
        "GDAL_HTTP_HEADERS": f"Authorization: {BEARER}"}}))  # fmt: skip
    result = cli("k8s-spec", "--config", str(cfg))
    assert result.exit_code == 2, result.output
    assert "sk-live-4f1d9c2b7e" not in result.output
    # ... and what a spec may carry holds secrets as references only.
    config = {**CONFIG, "gdal_options": {"GDAL_HTTP_MAX_RETRY": "5"}}
    spec = spec_from_cli(cli, tmp_path, config)
    text = yaml.safe_dump(spec)
    assert "sk-live-4f1d9c2b7e" not in text
    assert "GDAL_HTTP_HEADERS" not in text
    for role in ("scheduler", "worker"):
        (container,) = spec["spec"][role]["spec"]["containers"]
        for entry in container["env"]:
            # Plain values are not secrets; secrets are references only.
            assert ("value" in entry) != ("valueFrom" in entry)
            if "valueFrom" in entry:
                assert set(entry["valueFrom"]) == {"secretKeyRef"}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["GDAL_HTTP_MAX_RETRY"] == "5"  # harmless options still reach GDAL


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "DB_PASSWORD"])
def test_a_secret_in_cluster_env_is_a_usage_error_that_does_not_echo_it(
    cli: Any, tmp_path: Path, name: str
) -> None:
    config = {**CONFIG, "cluster": {**CONFIG["cluster"], "env": {name: SECRET_KEY}}}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    result = cli("k8s-spec", "--config", str(cfg))
    assert result.exit_code == 2, result.output
    assert SECRET_KEY not in result.output
    assert name in result.output
    assert "IRSA" in result.output
    assert "secret_env" in result.output
    with pytest.raises(ConfigError) as err:
        resolve_settings({}, config_file=cfg, environ={})
    assert SECRET_KEY not in str(err.value)


def test_an_endpoint_with_a_password_never_reaches_the_spec(cli: Any, tmp_path: Path) -> None:
    config = {**CONFIG, "endpoint_url": f"https://minio:{SECRET_KEY}@s3.example.internal"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    result = cli("k8s-spec", "--config", str(cfg))
    assert result.exit_code == 2, result.output
    assert SECRET_KEY not in result.output


def test_secret_env_references_are_checked(tmp_path: Path) -> None:
    from compactor.settings import ClusterSettings

    ok = ClusterSettings(kind="kubernetes", secret_env={"TOKEN": "creds/token"})
    assert ok.secret_env == {"TOKEN": "creds/token"}
    # A value pasted where the reference belongs is refused, and not repeated.
    config = {**CONFIG, "cluster": {**CONFIG["cluster"], "secret_env": {"TOKEN": SECRET_KEY}}}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="must be '<secret name>/<key>'") as err:
        resolve_settings({}, config_file=cfg, environ={})
    assert SECRET_KEY not in str(err.value)


# --- a local cluster listens on loopback only -----------------------------------------------


@pytest.mark.e2e  # starts its own processes
def test_the_local_cluster_and_its_dashboard_listen_on_loopback_only() -> None:
    import ipaddress
    from urllib.parse import urlsplit

    import psutil

    from compactor.cluster import connect
    from compactor.settings import ClusterSettings

    links: list[str] = []
    with connect(ClusterSettings(kind="local", workers=1), on_dashboard=links.append) as client:
        (link,) = links
        dashboard = urlsplit(link)
        assert dashboard.hostname == "127.0.0.1"
        info = client.scheduler_info(n_workers=-1)
        addresses = [client.scheduler.address, *info["workers"]]
        addresses += [w["nanny"] for w in info["workers"].values() if w.get("nanny")]
        ports = {int(urlsplit(a).port or 0) for a in addresses} | {int(dashboard.port or 0)}
        assert 0 not in ports
        for address in addresses:
            assert urlsplit(address).hostname == "127.0.0.1", address
        listening = [
            c
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports
        ]
        # Every one of the cluster's ports is bound, and only to a loopback address.
        assert {c.laddr.port for c in listening} == ports
        for c in listening:
            assert ipaddress.ip_address(c.laddr.ip).is_loopback, c.laddr
