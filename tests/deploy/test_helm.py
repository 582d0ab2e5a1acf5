"""The Helm chart under helm/compactor, rendered and linted by Helm's own Go library
(helm-python-sdk), every object checked against the Kubernetes JSON schemas
(kubernetes-validate, strict), and the IAM policy next to it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from compactor.settings import resolve_settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "compactor"
POLICY = REPO / "helm" / "iam-policy.json"

RELEASE = "nightly"
NAMESPACE = "imagery"
#: The newest Kubernetes version whose schemas kubernetes-validate ships.
KUBE_VERSION = kubernetes_validate.latest_version()

CONFIG_PATH = "/etc/compactor/config.yaml"
ROLE_ARN = "arn:aws:iam::123456789012:role/compactor-s3"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/compactor"

#: A one-off backfill with IRSA and no nightly sweep.
BACKFILL_IRSA: dict[str, Any] = {
    "sweep": {"enabled": False},
    "backfill": {"enabled": True, "activeDeadlineSeconds": 172800},
    "serviceAccount": {"roleArn": ROLE_ARN},
    "image": {"repository": ECR, "tag": "0.1.0-gdal3.9"},
    "config": {
        "source": "s3://raw-scenes/landsat/",
        "dest": "s3://cogs/landsat/",
        "archive": "s3://cold-archive/landsat/",
        "storage_class": "DEEP_ARCHIVE",
        "codec": "jpeg",
        "quality": 80,
        "min_ssim": 0.97,
        "include": ["*.tif"],
        "min_saving": 0.1,
    },
    "workers": {"count": 8, "cpu": 4, "memory": "16GiB"},
    "env": {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": ""},
}

#: Both the sweep and a backfill, with a ServiceAccount made beforehand by eksctl.
EXISTING_SA: dict[str, Any] = {
    "backfill": {"enabled": True},
    "serviceAccount": {"create": False, "name": "compactor-irsa"},
    "schedule": "30 1 * * 6",
    "sweep": {"timeZone": "Europe/Berlin"},
    "env": {"AWS_ENDPOINT_URL": "https://minio.storage.svc:9000"},
}

CASES = {"default": {}, "backfill_irsa": BACKFILL_IRSA, "existing_sa": EXISTING_SA}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart's objects, as `helm template` renders them for an install."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def notes(values: dict[str, Any]) -> str:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    values = CASES[request.param]
    return values, render(values)


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for o in objects:
        if o["kind"] == "CronJob":
            yield o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif o["kind"] == "Job":
            yield o["spec"]["template"]["spec"]


def config_file(objects: list[dict[str, Any]]) -> dict[str, Any]:
    text = one(objects, "ConfigMap")["data"]["config.yaml"]
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


# --- helm lint and the schemas ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_helm_lint_is_clean(name: str) -> None:
    report = helm.lint(CHART, CASES[name], strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # Severity 1 is informational ("icon is recommended"); 2 is a warning, 3 an error.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_metadata() -> None:
    with helm.Chart.load(CHART) as chart:
        meta = chart.metadata
        assert chart.name == "compactor"
        assert chart.dependencies == []
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == "0.1.0"
    # The operator is a documented prerequisite, not a dependency fetched at render time.
    assert not meta.get("dependencies")
    assert "dask-kubernetes-operator" in meta["annotations"]["compactor/prerequisite"]


def test_every_object_validates_against_the_kubernetes_schemas(case: Any) -> None:
    _, objects = case
    assert objects
    for obj in objects:
        validated = kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        assert validated == ".".join(KUBE_VERSION.split(".")[:2])
        assert obj["metadata"]["namespace"] == NAMESPACE
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "compactor"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_the_schema_check_is_strict() -> None:
    """A misspelt field fails, so a clean pass above means something."""
    cronjob = one(render({}), "CronJob")
    cronjob["spec"]["concurrencyPolicies"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cronjob, KUBE_VERSION, strict=True)


# --- what gets rendered -----------------------------------------------------------------


def test_default_values_render_the_nightly_sweep_only() -> None:
    objects = render({})
    assert kinds(objects) == [
        "ConfigMap",
        "CronJob",
        "NetworkPolicy",
        "NetworkPolicy",
        "NetworkPolicy",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "ServiceAccount",
    ]


def test_the_cronjob_runs_nightly_one_run_at_a_time() -> None:
    cronjob = one(render({}), "CronJob")
    spec = cronjob["spec"]
    assert cronjob["metadata"]["name"] == "nightly-compactor-sweep"
    assert spec["schedule"] == "0 2 * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 3600
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 5
    assert "timeZone" not in spec
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 1
    assert "activeDeadlineSeconds" not in job
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_the_schedule_and_time_zone_come_from_values() -> None:
    spec = one(render(EXISTING_SA), "CronJob")["spec"]
    assert spec["schedule"] == "30 1 * * 6"
    assert spec["timeZone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == "Forbid"


def test_the_backfill_job_exists_only_when_enabled() -> None:
    assert "Job" not in kinds(render({}))
    assert "Job" not in kinds(render({"backfill": {"enabled": False}}))

    objects = render(BACKFILL_IRSA)
    assert "CronJob" not in kinds(objects)
    job = one(objects, "Job")
    assert job["metadata"]["name"] == "nightly-compactor-backfill"
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 172800
    assert job["spec"]["ttlSecondsAfterFinished"] == 604800
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"

    both = render(EXISTING_SA)
    assert "CronJob" in kinds(both)
    assert "Job" in kinds(both)
    # Same pod either way: the backfill runs exactly what the nightly sweep runs.
    sweep_pod, backfill_pod = pod_specs(both)
    assert sweep_pod == backfill_pod


def test_names_fit_kubernetes_limits_for_the_longest_release_name() -> None:
    release = "r" * 53  # Helm's limit
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render({"backfill": {"enabled": True}}, name=release, namespace="ns")
    objects = [
        doc
        for path, text in manifests.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    assert {"CronJob", "Job"} <= set(kinds(objects))
    for obj in objects:
        name = obj["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        # A CronJob's Jobs append 11 characters to its name.
        assert len(name) <= (52 if obj["kind"] == "CronJob" else 63), name
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_irsa_annotation_carries_the_role_arn() -> None:
    objects = render(BACKFILL_IRSA)
    # The runner's and the Dask pods' ServiceAccounts both carry the role (S3 access).
    for name in ("nightly-compactor", "nightly-compactor-dask"):
        sa = named(objects, "ServiceAccount", name)
        assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}

    for sa in (o for o in render({}) if o["kind"] == "ServiceAccount"):
        assert "eks.amazonaws.com/role-arn" not in sa["metadata"].get("annotations", {})

    extra = render({"serviceAccount": {"roleArn": ROLE_ARN, "annotations": {"team": "geo"}}})
    assert named(extra, "ServiceAccount", "nightly-compactor")["metadata"]["annotations"] == {
        "team": "geo",
        "eks.amazonaws.com/role-arn": ROLE_ARN,
    }
    own = render({"serviceAccount": {"roleArn": ROLE_ARN}, "daskServiceAccount": {"roleArn": "x"}})
    dask_sa = named(own, "ServiceAccount", "nightly-compactor-dask")
    assert dask_sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "x"}


def test_an_existing_service_account_is_used_and_not_created() -> None:
    objects = render(EXISTING_SA)
    # Only the Dask pods' own ServiceAccount is created.
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"] == [
        "nightly-compactor-dask"
    ]
    for pod in pod_specs(objects):
        assert pod["serviceAccountName"] == "compactor-irsa"
    subjects = one(objects, "RoleBinding")["subjects"]
    assert subjects == [
        {"kind": "ServiceAccount", "name": "compactor-irsa", "namespace": NAMESPACE}
    ]
    assert config_file(objects)["cluster"]["service_account"] == "nightly-compactor-dask"
    both_existing = render(
        {**EXISTING_SA, "daskServiceAccount": {"create": False, "name": "dask-irsa"}}
    )
    assert "ServiceAccount" not in kinds(both_existing)
    assert config_file(both_existing)["cluster"]["service_account"] == "dask-irsa"


def test_pods_run_unprivileged(case: Any) -> None:
    _, objects = case
    pods = list(pod_specs(objects))
    assert pods
    for pod in pods:
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] == 1000
        # The IRSA web-identity token is mounted group-readable for this group.
        assert security["fsGroup"] == 1000
        (container,) = pod["containers"]
        csc = container["securityContext"]
        assert csc["allowPrivilegeEscalation"] is False
        assert csc["readOnlyRootFilesystem"] is True
        assert csc["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]


def test_the_runner_runs_compactor_with_the_mounted_config(case: Any) -> None:
    values, objects = case
    configmap = one(objects, "ConfigMap")
    for pod in pod_specs(objects):
        (container,) = pod["containers"]
        assert container["command"] == ["compactor"]
        assert container["args"] == ["--config", CONFIG_PATH, "run"]
        image = values.get("image", {})
        expected = (
            f"{image.get('repository', 'ghcr.io/example/compactor')}:{image.get('tag') or '0.1.0'}"
        )
        assert container["image"] == expected
        # /etc/compactor/config.yaml is the ConfigMap's config.yaml.
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        config_volume = next(v for v in pod["volumes"] if "configMap" in v)
        mount = mounts[config_volume["name"]]
        assert mount["readOnly"] is True
        items = {i["key"]: i["path"] for i in config_volume["configMap"]["items"]}
        assert f"{mount['mountPath']}/{items['config.yaml']}" == CONFIG_PATH
        assert config_volume["configMap"]["name"] == configmap["metadata"]["name"]


def test_env_reaches_the_runner_and_the_dask_cluster() -> None:
    objects = render(BACKFILL_IRSA)
    (pod,) = pod_specs(objects)
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    # Both names: boto3's default session reads AWS_DEFAULT_REGION only.
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert "AWS_ENDPOINT_URL" not in env  # empty values are left out
    assert env["HOME"] == "/tmp"
    assert config_file(objects)["cluster"]["env"] == {
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }

    minio = render(EXISTING_SA)
    assert config_file(minio)["cluster"]["env"] == {
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "https://minio.storage.svc:9000",
    }


def test_an_explicit_aws_default_region_is_kept(tmp_path: Path) -> None:
    objects = render({"env": {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2"}})
    (pod,) = pod_specs(objects)
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == ("eu-west-1", "eu-west-2")
    spec = dask_cluster(objects, tmp_path)
    for role in ("scheduler", "worker"):
        (container,) = spec["spec"][role]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == ("eu-west-1", "eu-west-2")


def test_the_dask_pods_get_the_region_under_both_names(tmp_path: Path) -> None:
    spec = dask_cluster(render(BACKFILL_IRSA), tmp_path)
    for role in ("scheduler", "worker"):
        (container,) = spec["spec"][role]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_the_workers_scratch_size_limit_is_a_value(tmp_path: Path) -> None:
    def worker_scratch(values: dict[str, Any]) -> dict[str, Any]:
        spec = dask_cluster(render(values), tmp_path)
        pod = spec["spec"]["worker"]["spec"]
        (container,) = pod["containers"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        (volume,) = [v for v in pod["volumes"] if v["name"] == mounts["/tmp"]]
        return dict(volume["emptyDir"])

    assert worker_scratch({}) == {"sizeLimit": "20Gi"}
    assert worker_scratch({"workers": {"scratchSizeLimit": "64Gi"}}) == {"sizeLimit": "64Gi"}
    # null (or ""): no limit.
    assert worker_scratch({"workers": {"scratchSizeLimit": None}}) == {}
    assert worker_scratch({"workers": {"scratchSizeLimit": ""}}) == {}


#: A digest such as `make image` or a registry prints.
DIGEST = "sha256:" + "4f1d9c2b" * 8


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ({"repository": ECR, "digest": DIGEST}, f"{ECR}@{DIGEST}"),
        ({"repository": ECR, "tag": "0.1.0", "digest": DIGEST}, f"{ECR}:0.1.0@{DIGEST}"),
        ({"repository": ECR, "tag": "0.1.0", "digest": ""}, f"{ECR}:0.1.0"),
    ],
)
def test_an_image_digest_pins_the_runner_and_the_dask_cluster(
    image: dict[str, str], expected: str, tmp_path: Path
) -> None:
    objects = render({"backfill": {"enabled": True}, "image": image})
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    pods = list(pod_specs(objects))
    assert len(pods) == 2  # the sweep and the backfill
    for pod in pods:
        assert pod["containers"][0]["image"] == expected
    assert config_file(objects)["cluster"]["image"] == expected
    spec = dask_cluster(objects, tmp_path)
    for role in ("scheduler", "worker"):
        assert spec["spec"][role]["spec"]["containers"][0]["image"] == expected


@pytest.mark.parametrize("digest", ["latest", "sha256:abc", "sha512:" + "0" * 128, DIGEST + "x"])
def test_a_malformed_image_digest_is_refused(digest: str) -> None:
    with pytest.raises(Exception, match=r"image\.digest must be sha256:<64 hex digits>"):
        render({"image": {"digest": digest}})


# --- the config file --------------------------------------------------------------------


def test_config_file_defaults() -> None:
    objects = render({})
    config = config_file(objects)
    (pod,) = pod_specs(objects)
    assert config == {
        "source": "s3://SOURCE_BUCKET/scenes/",
        "dest": "s3://DEST_BUCKET/cogs/",
        "archive": "s3://ARCHIVE_BUCKET/archive/",
        "storage_class": "GLACIER",
        "codec": "auto",
        "min_ssim": 0.95,
        "effort": "default",
        "overviews": "lossy",
        "cluster": {
            "kind": "kubernetes",
            "image": pod["containers"][0]["image"],
            "namespace": NAMESPACE,
            "service_account": "nightly-compactor-dask",
            "labels": {
                "app.kubernetes.io/name": "compactor",
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": "dask-cluster",
            },
            "secret_env": {},
            "workers": {"min": 1, "max": 20},
            "worker_cpu": "2",
            "worker_memory": "8GiB",
            "worker_scratch": "20Gi",
            "node_selector": {"eks.amazonaws.com/capacityType": "SPOT"},
            "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
            "scheduler_node_selector": {"eks.amazonaws.com/capacityType": "ON_DEMAND"},
            "env": {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"},
        },
    }
    assert "quality" not in config  # null values are left out


def test_config_file_from_backfill_values() -> None:
    config = config_file(render(BACKFILL_IRSA))
    assert config["source"] == "s3://raw-scenes/landsat/"
    assert config["storage_class"] == "DEEP_ARCHIVE"
    assert config["quality"] == 80
    assert config["min_ssim"] == 0.97
    # Keys the chart does not know are passed through.
    assert config["include"] == ["*.tif"]
    assert config["min_saving"] == 0.1
    cluster = config["cluster"]
    assert cluster["workers"] == 8
    assert cluster["worker_cpu"] == "4"
    assert cluster["worker_memory"] == "16GiB"
    assert cluster["image"] == f"{ECR}:0.1.0-gdal3.9"


def test_config_cluster_values_merge_over_the_built_block() -> None:
    config = config_file(
        render({"config": {"archive": None, "cluster": {"threads_per_worker": 2}}})
    )
    assert "archive" not in config
    assert config["cluster"]["threads_per_worker"] == 2
    assert config["cluster"]["kind"] == "kubernetes"


def test_config_file_is_accepted_by_compactor(case: Any, tmp_path: Path) -> None:
    """The rendered file is a valid compactor config. Needs compactor.settings to know
    the kubernetes cluster keys (image, namespace, service_account, worker_cpu, ...)."""
    _, objects = case
    path = tmp_path / "config.yaml"
    path.write_text(one(objects, "ConfigMap")["data"]["config.yaml"])
    config = config_file(objects)
    settings = resolve_settings({}, config_file=path, environ={})
    assert settings.source == config["source"]
    assert settings.dest == config["dest"]
    assert settings.archive == config.get("archive")
    assert settings.storage_class == config["storage_class"]
    assert settings.min_ssim == config["min_ssim"]
    assert settings.cluster.kind == "kubernetes"
    cluster = settings.cluster.model_dump()
    assert cluster["image"] == config["cluster"]["image"]
    assert cluster["namespace"] == NAMESPACE
    assert cluster["service_account"] == config["cluster"]["service_account"]


def test_the_dask_cluster_from_the_config_matches_the_runner(tmp_path: Path) -> None:
    """The DaskCluster a run would create from the chart's config: same image as the runner
    pod, the chart's Dask ServiceAccount, in the release's namespace, workers on the spot
    selector."""
    from compactor.cluster import cluster_spec

    objects = render(BACKFILL_IRSA)
    (pod,) = pod_specs(objects)
    path = tmp_path / "config.yaml"
    path.write_text(one(objects, "ConfigMap")["data"]["config.yaml"])
    spec = cluster_spec(resolve_settings({}, config_file=path, environ={}), name="compactor-test")
    assert spec["metadata"]["namespace"] == NAMESPACE
    for role in ("scheduler", "worker"):
        dask_pod = spec["spec"][role]["spec"]
        assert dask_pod["serviceAccountName"] == "nightly-compactor-dask"
        assert pod["serviceAccountName"] == "nightly-compactor"
        assert dask_pod["containers"][0]["image"] == pod["containers"][0]["image"]
        assert dask_pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsUser"]
    worker_pod = spec["spec"]["worker"]["spec"]
    assert worker_pod["nodeSelector"] == {"eks.amazonaws.com/capacityType": "SPOT"}
    scheduler_pod = spec["spec"]["scheduler"]["spec"]
    assert scheduler_pod["nodeSelector"] == {"eks.amazonaws.com/capacityType": "ON_DEMAND"}


# --- RBAC -------------------------------------------------------------------------------


#: Exactly what dask-kubernetes' KubeCluster (custom_cluster_spec, adapt, close) calls in
#: dask_kubernetes/operator/kubecluster/kubecluster.py and operator/networking.py, through
#: kr8s (which reads an object by name with a list call and a fieldSelector):
#: DaskCluster create/exists/get/ready/delete, DaskWorkerGroup.get (start-up status),
#: DaskAutoscaler patch-else-create (adapt), Pod.get by label + ready() + logs() on a
#: crash loop, Service.get + ready().
CLIENT_CALLS = {
    ("kubernetes.dask.org", "daskclusters"): {"create", "get", "list", "delete"},
    ("kubernetes.dask.org", "daskworkergroups"): {"list"},
    ("kubernetes.dask.org", "daskautoscalers"): {"create", "patch"},
    ("", "pods"): {"get", "list"},
    ("", "pods/log"): {"get"},
    ("", "services"): {"get", "list"},
}


def test_the_role_grants_exactly_what_the_dask_client_calls() -> None:
    objects = render({})
    rules = one(objects, "Role")["rules"]
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "resourceNames" not in rule
        assert "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    assert grants == CLIENT_CALLS
    # In particular: no DaskJobs, no watch/update, no secrets, nothing cluster-wide.
    assert ("kubernetes.dask.org", "daskjobs") not in grants
    assert not any({"watch", "update", "*"} & verbs for verbs in grants.values())

    binding = one(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": one(objects, "Role")["metadata"]["name"],
    }
    # Bound to the runner only: the Dask pods' ServiceAccount gets no API access.
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "nightly-compactor", "namespace": NAMESPACE}
    ]


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    objects = render({"rbac": {"create": False}})
    assert "Role" not in kinds(objects)
    assert "RoleBinding" not in kinds(objects)


# --- notes and values documentation ----------------------------------------------------


def test_notes_tell_how_to_reach_the_dashboard_and_the_report() -> None:
    text = notes({})
    assert f"kubectl -n {NAMESPACE} port-forward svc/<cluster>-scheduler 8787:8787" in text
    assert "s3://DEST_BUCKET/cogs/_compactor/runs/<run-id>/report.html" in text
    assert "serviceAccount.roleArn is empty" in text
    assert "serviceAccount.roleArn is empty" not in notes(BACKFILL_IRSA)


def test_every_key_in_values_yaml_has_a_comment_above_it() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    key = re.compile(r"^(\s*)([A-Za-z0-9_.\-/]+):")
    undocumented = []
    for i, line in enumerate(lines):
        match = key.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        # Keys inside a list item (e.g. a toleration) are documented at the item.
        parent = next(
            (p for p in reversed(lines[:i]) if p.strip() and len(p) - len(p.lstrip()) < indent),
            "",
        )
        if parent.lstrip().startswith("- "):
            continue
        above = lines[i - 1].strip() if i else ""
        if not above.startswith("#"):
            undocumented.append(line.strip())
    assert undocumented == []


# --- IAM policy -------------------------------------------------------------------------


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_iam_policy_is_minimal_and_explained() -> None:
    """The shape of the policies; what they allow and deny, call by call, is checked
    against compactor/storage/_iam.py in tests/storage/test_iam_policy.py."""
    for path in (POLICY, POLICY.with_name("iam-policy-in-place.json")):
        policy = json.loads(path.read_text())
        assert policy["Version"] == "2012-10-17"
        statements = policy["Statement"]
        sids = [s.get("Sid") for s in statements]
        assert all(sids), "every statement needs a Sid"
        assert len(set(sids)) == len(sids)
        for statement in statements:
            assert statement["Effect"] in ("Allow", "Deny")
            assert "NotAction" not in statement
            assert "NotResource" not in statement
            actions = _listed(statement["Action"])
            resources = _listed(statement["Resource"])
            assert "*" not in resources, statement["Sid"]
            for action in actions:
                assert "*" not in action, statement["Sid"]
            if any(a.startswith("s3:") for a in actions):
                assert all(r.startswith("arn:aws:s3:::") for r in resources), statement["Sid"]
                # Objects only under a prefix placeholder or the whole bucket for reads.
                for r in resources:
                    if "/" in r:
                        assert r.endswith(("PREFIX*", "_compactor/*", "SOURCE_BUCKET/*")), r
                        if r.endswith("SOURCE_BUCKET/*"):
                            assert set(actions) <= {  # reads only, bucket-wide
                                "s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersion",
                                "s3:GetObjectLegalHold", "s3:GetObjectRetention",
                            }  # fmt: skip
    statements = json.loads(POLICY.read_text())["Statement"]
    # KMS is optional and scoped to one key.
    (kms,) = (s for s in statements if any(a.startswith("kms:") for a in _listed(s["Action"])))
    assert set(_listed(kms["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert _listed(kms["Resource"]) == ["arn:aws:kms:REGION:ACCOUNT_ID:key/KMS_KEY_ID"]
    # No IfExists escape hatch on any condition.
    assert "IfExists" not in POLICY.read_text()


# --- the Dask cluster: network, service account, pods, secrets ----------------------------

#: Labels the dask-kubernetes operator adds to the pods it creates (controller.py).
OPERATOR_POD_LABELS = {
    "scheduler": {"dask.org/component": "scheduler", "sidecar.istio.io/inject": "false"},
    "worker": {"dask.org/component": "worker", "sidecar.istio.io/inject": "false"},
}


def dask_cluster(objects: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    """The DaskCluster a run started from the chart's config would create."""
    from compactor.cluster import cluster_spec

    path = tmp_path / "config.yaml"
    path.write_text(one(objects, "ConfigMap")["data"]["config.yaml"])
    return cluster_spec(resolve_settings({}, config_file=path, environ={}), name="compactor-x")


def dask_pod_labels(spec: dict[str, Any], role: str) -> dict[str, str]:
    """A scheduler or worker pod's labels as the operator creates it: the DaskCluster's labels,
    the pod template's, and its own."""
    return {
        **spec["metadata"]["labels"],
        **spec["spec"][role].get("metadata", {}).get("labels", {}),
        "dask.org/cluster-name": spec["metadata"]["name"],
        **OPERATOR_POD_LABELS[role],
    }


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def admitted(
    policies: list[dict[str, Any]],
    target: dict[str, str],
    source: dict[str, str],
    port: int,
    source_namespace: str = NAMESPACE,
) -> bool:
    """Whether NetworkPolicies in NAMESPACE let a pod labelled ``source`` (in namespace
    ``source_namespace``) connect to ``port`` of a pod labelled ``target``."""
    selecting = [
        p
        for p in policies
        if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], target)
    ]
    if not selecting:
        return True  # not isolated
    ns_labels = {"kubernetes.io/metadata.name": source_namespace}
    for policy in selecting:
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        for rule in policy["spec"].get("ingress") or []:
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port for p in ports):
                continue
            for peer in rule.get("from") or []:
                assert "ipBlock" not in peer
                if "namespaceSelector" in peer:
                    ns_ok = selects(peer["namespaceSelector"], ns_labels)
                else:
                    ns_ok = source_namespace == NAMESPACE
                pod_ok = selects(peer.get("podSelector") or {}, source)
                if ns_ok and pod_ok:
                    return True
    return False


def runner_labels(objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    found = []
    for o in objects:
        if o["kind"] == "CronJob":
            found.append(o["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
        elif o["kind"] == "Job":
            found.append(o["spec"]["template"]["metadata"]["labels"])
    return found


def test_network_policies_admit_only_the_runner_the_cluster_and_the_operator(
    case: Any, tmp_path: Path
) -> None:
    _, objects = case
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    spec = dask_cluster(objects, tmp_path)
    scheduler = dask_pod_labels(spec, "scheduler")
    worker = dask_pod_labels(spec, "worker")
    runners = runner_labels(objects)
    assert runners
    operator = {
        "app.kubernetes.io/name": "dask-kubernetes-operator",
        "app.kubernetes.io/instance": "x",
    }

    # Every Dask pod of this release is isolated by a policy.
    for target in (scheduler, worker):
        assert any(selects(p["spec"]["podSelector"], target) for p in policies)
        # The cluster's own pods reach each other on any port (workers listen on random ones).
        for source in (scheduler, worker):
            assert admitted(policies, target, source, 40123)
    for runner in runners:
        assert admitted(policies, scheduler, runner, 8786)
        assert not admitted(policies, scheduler, runner, 8787)
        assert not admitted(policies, worker, runner, 40123)  # the client talks to the scheduler
    assert admitted(policies, scheduler, operator, 8786, "dask-operator")
    assert admitted(policies, scheduler, operator, 8787, "dask-operator")
    assert not admitted(policies, worker, operator, 8788, "dask-operator")

    # Nobody else: another pod of the namespace, a pod claiming the operator's labels in this
    # namespace, the operator's labels in some other namespace, another release's pods.
    stranger = {"app": "notebook"}
    other_release = {**scheduler, "app.kubernetes.io/instance": "backfill"}
    other_runner = {**runners[0], "app.kubernetes.io/instance": "backfill"}
    for target in (scheduler, worker):
        for source, ns in (
            (stranger, NAMESPACE),
            (operator, NAMESPACE),
            (operator, "kube-system"),
            (other_release, NAMESPACE),
            (other_runner, NAMESPACE),
            (scheduler, "other-namespace"),
        ):
            for port in (8786, 8787, 8788, 40123):
                assert not admitted(policies, target, source, port, ns), (source, ns, port)
    # Another release's Dask pods are not this release's policies' business.
    assert not any(selects(p["spec"]["podSelector"], other_release) for p in policies)


def test_the_operator_namespace_is_a_value() -> None:
    objects = render(
        # null removes the default label (Helm merges maps of values).
        {
            "daskOperator": {
                "namespace": "ops",
                "podLabels": {"app.kubernetes.io/name": None, "app": "dask-operator"},
            }
        }
    )
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    scheduler = {
        "app.kubernetes.io/name": "compactor",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "dask-cluster",
        "dask.org/component": "scheduler",
    }
    assert admitted(policies, scheduler, {"app": "dask-operator"}, 8787, "ops")
    assert not admitted(policies, scheduler, {"app": "dask-operator"}, 8787, "dask-operator")
    assert "NetworkPolicy" not in kinds(render({"networkPolicy": {"create": False}}))


def test_dask_pods_run_under_their_own_service_account_hardened(case: Any, tmp_path: Path) -> None:
    values, objects = case
    spec = dask_cluster(objects, tmp_path)
    dask_sa = named(objects, "ServiceAccount", "nightly-compactor-dask")
    assert dask_sa["automountServiceAccountToken"] is False
    runner_sas = {pod["serviceAccountName"] for pod in pod_specs(objects)}
    assert "nightly-compactor-dask" not in runner_sas
    role_arn = values.get("serviceAccount", {}).get("roleArn")
    if role_arn:  # the same IAM role as the runner, for S3
        assert dask_sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role_arn
    for role in ("scheduler", "worker"):
        pod = spec["spec"][role]["spec"]
        assert pod["serviceAccountName"] == "nightly-compactor-dask"
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        csc = container["securityContext"]
        assert csc["allowPrivilegeEscalation"] is False
        assert csc["readOnlyRootFilesystem"] is True
        assert csc["capabilities"] == {"drop": ["ALL"]}
        assert csc["runAsNonRoot"] is True
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(volumes[mounts["/tmp"]]) == {"name", "emptyDir"}
        assert volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["HOME"] == env["TMPDIR"] == "/tmp"
    worker_args = spec["spec"]["worker"]["spec"]["containers"][0]["args"]
    assert worker_args[worker_args.index("--local-directory") + 1] == "/tmp"


def test_secret_env_reaches_the_runner_and_the_dask_pods_as_references(tmp_path: Path) -> None:
    values = {"secretEnv": {"STAC_API_TOKEN": "stac-credentials/token"}}
    objects = render(values)
    ref = {"secretKeyRef": {"name": "stac-credentials", "key": "token"}}
    (pod,) = pod_specs(objects)
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["STAC_API_TOKEN"] == {"name": "STAC_API_TOKEN", "valueFrom": ref}
    assert config_file(objects)["cluster"]["secret_env"] == values["secretEnv"]
    spec = dask_cluster(objects, tmp_path)
    for role in ("scheduler", "worker"):
        (container,) = spec["spec"][role]["spec"]["containers"]
        entries = [e for e in container["env"] if e["name"] == "STAC_API_TOKEN"]
        assert entries == [{"name": "STAC_API_TOKEN", "valueFrom": ref}]
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    with pytest.raises(Exception, match=r"secretEnv\.STAC_API_TOKEN must be"):
        render({"secretEnv": {"STAC_API_TOKEN": "no-key-given"}})


# --- egress ---------------------------------------------------------------------------

#: A pod of the cluster DNS, as EKS runs it.
KUBE_DNS = ({"k8s-app": "kube-dns"}, "kube-system")


def egress_allowed(
    policies: list[dict[str, Any]],
    source: dict[str, str],
    port: int,
    *,
    ip: str | None = None,
    pod: tuple[dict[str, str], str] | None = None,
    protocol: str = "TCP",
) -> bool:
    """Whether egress NetworkPolicies in NAMESPACE let a pod labelled ``source`` connect to
    ``ip`` (an address outside the cluster) or ``pod`` (labels, namespace) on ``port``."""
    import ipaddress

    selecting = [
        p
        for p in policies
        if "Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], source)
    ]
    if not selecting:
        return True  # not isolated
    for policy in selecting:
        for rule in policy["spec"].get("egress") or []:
            ports = rule.get("ports")
            if ports and not any(
                p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
            ):
                continue
            for peer in rule.get("to") or []:
                if "ipBlock" in peer:
                    if ip is None:
                        continue
                    address = ipaddress.ip_address(ip)
                    block = peer["ipBlock"]
                    net = ipaddress.ip_network(block["cidr"])
                    if address.version != net.version or address not in net:
                        continue
                    excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
                    for e in excepted:  # Kubernetes refuses an except outside its CIDR
                        assert e.version == net.version
                        assert e.subnet_of(net)  # type: ignore[arg-type]
                    if any(address in e for e in excepted):
                        continue
                    return True
                if pod is None:
                    continue
                labels, namespace = pod
                if "namespaceSelector" in peer:
                    ns_ok = selects(
                        peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}
                    )
                else:
                    ns_ok = namespace == NAMESPACE
                if ns_ok and selects(peer.get("podSelector") or {}, labels):
                    return True
    return False


def test_egress_keeps_every_pod_from_the_instance_metadata_service(
    case: Any, tmp_path: Path
) -> None:
    """The Dask pods (they read hostile data) and the runner reach DNS, S3 over HTTPS and
    each other as they must; never the instance metadata service (IPv4 or IPv6), private
    addresses or other pods."""
    _, objects = case
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    spec = dask_cluster(objects, tmp_path)
    scheduler = dask_pod_labels(spec, "scheduler")
    worker = dask_pod_labels(spec, "worker")
    runners = runner_labels(objects)
    s3_address = "52.216.8.10"  # an address of s3.amazonaws.com
    for source in (scheduler, worker, *runners):
        assert egress_allowed(policies, source, 53, pod=KUBE_DNS, protocol="UDP")
        assert egress_allowed(policies, source, 53, pod=KUBE_DNS, protocol="TCP")
        assert egress_allowed(policies, source, 443, ip=s3_address)
        assert egress_allowed(policies, source, 443, ip="2600:1fa0:80d8::1")
        for metadata in ("169.254.169.254", "fd00:ec2::254"):
            for port in (80, 443):
                assert not egress_allowed(policies, source, port, ip=metadata), (source, metadata)
        assert not egress_allowed(policies, source, 80, ip=s3_address)
        assert not egress_allowed(policies, source, 22, ip=s3_address)
        assert not egress_allowed(policies, source, 53, pod=({"app": "notebook"}, NAMESPACE))
    for source in (scheduler, worker):
        for target in (scheduler, worker):
            assert egress_allowed(policies, source, 40123, pod=(target, NAMESPACE))
        for private in ("10.0.3.7", "192.168.1.1", "172.20.0.10"):
            assert not egress_allowed(policies, source, 443, ip=private)
        assert not egress_allowed(policies, source, 8786, pod=(runners[0], NAMESPACE))
        assert not egress_allowed(policies, source, 443, pod=({"app": "notebook"}, NAMESPACE))
    for runner in runners:
        assert egress_allowed(policies, runner, 8786, pod=(scheduler, NAMESPACE))
        assert not egress_allowed(policies, runner, 40123, pod=(worker, NAMESPACE))
        assert egress_allowed(policies, runner, 443, ip="10.0.3.7")  # the EKS API, in the VPC


def test_egress_destinations_are_values() -> None:
    objects = render(
        {
            "networkPolicy": {
                "egress": {
                    "s3Except": [],
                    "extraCidrs": ["10.96.0.0/12"],
                    "extraPorts": [9000],
                    "dns": {"podLabels": {"k8s-app": None, "app": "coredns"}},
                }
            }
        }
    )
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    worker = {
        "app.kubernetes.io/name": "compactor",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "dask-cluster",
        "dask.org/component": "worker",
    }
    assert egress_allowed(policies, worker, 443, ip="10.0.3.7")  # VPC endpoints
    assert egress_allowed(policies, worker, 9000, ip="10.100.0.5")  # an in-cluster MinIO
    assert not egress_allowed(policies, worker, 9000, ip="52.216.8.10")
    assert not egress_allowed(policies, worker, 443, ip="169.254.169.254")
    assert egress_allowed(
        policies, worker, 53, pod=({"app": "coredns"}, "kube-system"), protocol="UDP"
    )
    assert not egress_allowed(policies, worker, 53, pod=KUBE_DNS, protocol="UDP")
    names = [o["metadata"]["name"] for o in policies]
    assert [n for n in names if n.endswith("-out")] != []
    # A CIDR that could hold the metadata address cannot be listed past it.
    for cidr in ("169.254.0.0/16", "128.0.0.0/1", "fd00::/8"):
        with pytest.raises(helm.HelmError, match="instance metadata"):
            render({"networkPolicy": {"egress": {"extraCidrs": [cidr]}}})
    off = render({"networkPolicy": {"egress": {"create": False}}})
    assert [o["metadata"]["name"] for o in off if o["kind"] == "NetworkPolicy"] == [
        n for n in names if not n.endswith("-out")
    ]
