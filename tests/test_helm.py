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

from compactor.config import resolve_settings

REPO = Path(__file__).resolve().parents[1]
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
    assert kinds(objects) == ["ConfigMap", "CronJob", "Role", "RoleBinding", "ServiceAccount"]


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
    sa = one(render(BACKFILL_IRSA), "ServiceAccount")
    assert sa["metadata"]["name"] == "nightly-compactor"
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}

    default_sa = one(render({}), "ServiceAccount")
    assert "eks.amazonaws.com/role-arn" not in default_sa["metadata"].get("annotations", {})

    extra = render({"serviceAccount": {"roleArn": ROLE_ARN, "annotations": {"team": "geo"}}})
    assert one(extra, "ServiceAccount")["metadata"]["annotations"] == {
        "team": "geo",
        "eks.amazonaws.com/role-arn": ROLE_ARN,
    }


def test_an_existing_service_account_is_used_and_not_created() -> None:
    objects = render(EXISTING_SA)
    assert "ServiceAccount" not in kinds(objects)
    for pod in pod_specs(objects):
        assert pod["serviceAccountName"] == "compactor-irsa"
    subjects = one(objects, "RoleBinding")["subjects"]
    assert subjects == [
        {"kind": "ServiceAccount", "name": "compactor-irsa", "namespace": NAMESPACE}
    ]
    assert config_file(objects)["cluster"]["service_account"] == "compactor-irsa"


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
    assert env["AWS_REGION"] == "eu-west-1"
    assert "AWS_ENDPOINT_URL" not in env  # empty values are left out
    assert env["HOME"] == "/tmp"
    assert config_file(objects)["cluster"]["env"] == {"AWS_REGION": "eu-west-1"}

    minio = render(EXISTING_SA)
    assert config_file(minio)["cluster"]["env"] == {
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "https://minio.storage.svc:9000",
    }


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
        "cluster": {
            "kind": "kubernetes",
            "image": pod["containers"][0]["image"],
            "namespace": NAMESPACE,
            "service_account": pod["serviceAccountName"],
            "workers": {"min": 1, "max": 20},
            "worker_cpu": "2",
            "worker_memory": "8GiB",
            "node_selector": {"eks.amazonaws.com/capacityType": "SPOT"},
            "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
            "scheduler_node_selector": {"eks.amazonaws.com/capacityType": "ON_DEMAND"},
            "env": {"AWS_REGION": "us-east-1"},
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
    """The rendered file is a valid compactor config. Needs compactor.config to know
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
    """The DaskCluster a run would create from the chart's config: same image and service
    account as the runner pod, in the release's namespace, workers on the spot selector."""
    from compactor.kube import cluster_spec

    objects = render(BACKFILL_IRSA)
    (pod,) = pod_specs(objects)
    path = tmp_path / "config.yaml"
    path.write_text(one(objects, "ConfigMap")["data"]["config.yaml"])
    spec = cluster_spec(resolve_settings({}, config_file=path, environ={}), name="compactor-test")
    assert spec["metadata"]["namespace"] == NAMESPACE
    for role in ("scheduler", "worker"):
        dask_pod = spec["spec"][role]["spec"]
        assert dask_pod["serviceAccountName"] == pod["serviceAccountName"]
        assert dask_pod["containers"][0]["image"] == pod["containers"][0]["image"]
        assert dask_pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsUser"]
    worker_pod = spec["spec"]["worker"]["spec"]
    assert worker_pod["nodeSelector"] == {"eks.amazonaws.com/capacityType": "SPOT"}
    scheduler_pod = spec["spec"]["scheduler"]["spec"]
    assert scheduler_pod["nodeSelector"] == {"eks.amazonaws.com/capacityType": "ON_DEMAND"}


# --- RBAC -------------------------------------------------------------------------------


def test_the_role_lets_the_runner_drive_dask_clusters() -> None:
    objects = render({})
    rules = one(objects, "Role")["rules"]

    def granted(group: str, resource: str) -> set[str]:
        verbs: set[str] = set()
        for rule in rules:
            if group in rule["apiGroups"] and resource in rule["resources"]:
                verbs |= set(rule["verbs"])
        return verbs

    manage = {"get", "list", "watch", "create", "update", "patch", "delete"}
    for resource in ("daskclusters", "daskworkergroups", "daskautoscalers", "daskjobs"):
        assert granted("kubernetes.dask.org", resource) >= manage, resource
    for resource in ("pods", "services", "events"):
        assert granted("", resource) >= {"get", "list", "watch"}, resource
    assert "get" in granted("", "pods/log")
    # Nothing beyond the namespace and nothing cluster-wide.
    assert all("*" not in rule["verbs"] and "*" not in rule["resources"] for rule in rules)
    assert granted("", "secrets") == set()

    binding = one(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": one(objects, "Role")["metadata"]["name"],
    }
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
    policy = json.loads(POLICY.read_text())
    assert policy["Version"] == "2012-10-17"
    statements = policy["Statement"]
    sids = [s.get("Sid") for s in statements]
    assert all(sids), "every statement needs a Sid"
    assert len(set(sids)) == len(sids)
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement
        assert "NotResource" not in statement
        actions = _listed(statement["Action"])
        resources = _listed(statement["Resource"])
        assert "*" not in actions
        assert "*" not in resources, statement["Sid"]
        for action in actions:
            assert action not in ("s3:*", "kms:*"), statement["Sid"]
            assert "*" not in action, statement["Sid"]
        if any(a.startswith("s3:") for a in actions):
            assert all(r.startswith("arn:aws:s3:::") for r in resources), statement["Sid"]

    def granted(action: str, resource: str) -> bool:
        return any(
            action in _listed(s["Action"]) and resource in _listed(s["Resource"])
            for s in statements
        )

    source, dest, archive = (
        "arn:aws:s3:::SOURCE_BUCKET",
        "arn:aws:s3:::DEST_BUCKET",
        "arn:aws:s3:::ARCHIVE_BUCKET",
    )
    assert granted("s3:ListBucket", source)
    assert granted("s3:GetObject", f"{source}/*")
    assert granted("s3:GetObjectTagging", f"{source}/*")
    assert granted("s3:DeleteObject", f"{source}/*")
    assert not granted("s3:PutObject", f"{source}/*")  # the run never writes to the source
    assert granted("s3:PutObject", f"{dest}/*")
    assert granted("s3:GetObject", f"{dest}/*")
    assert granted("s3:ListBucket", dest)
    assert granted("s3:ListBucketMultipartUploads", dest)
    assert granted("s3:AbortMultipartUpload", f"{dest}/*")
    assert granted("s3:ListMultipartUploadParts", f"{dest}/*")
    # On the destination, deletes are limited to compactor's own records and leases.
    assert not granted("s3:DeleteObject", f"{dest}/*")
    assert granted("s3:DeleteObject", f"{dest}/*_compactor/*")
    for action in (
        "s3:PutObject",
        "s3:PutObjectTagging",
        "s3:GetObject",
        "s3:GetObjectTagging",
        "s3:RestoreObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ):
        assert granted(action, f"{archive}/*"), action
    assert granted("s3:ListBucket", archive)
    assert not granted("s3:DeleteObject", f"{archive}/*")  # archived originals are kept
    # The archive PUT is held to the archive storage classes.
    (archive_put,) = (s for s in statements if s["Sid"] == "CopyOriginalsIntoArchiveStorageClass")
    classes = archive_put["Condition"]["StringEqualsIfExists"]["s3:x-amz-storage-class"]
    assert "GLACIER" in classes
    assert "STANDARD" not in classes
    # KMS is optional and scoped to one key.
    (kms,) = (s for s in statements if any(a.startswith("kms:") for a in _listed(s["Action"])))
    assert set(_listed(kms["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert _listed(kms["Resource"]) == ["arn:aws:kms:REGION:ACCOUNT_ID:key/KMS_KEY_ID"]
