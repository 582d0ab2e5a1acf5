"""Real buckets: versioned and suspended sources, --keep-versions, S3 Object Lock (legal
hold, governance retention), deletes a bucket refuses, in-place archives of versions,
stores without the archive class, requester pays, SSE-KMS and the outputs' class.

Against the moto server, which models versions, delete markers, legal holds and
retention. Every test checks that each original's bytes exist somewhere, byte for byte."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .. import rasters
from ..conftest import S3
from ..faultproxy import FaultProxy
from ..reports import scenes_of
from ..runner.test_run_s3 import load_report

SRC = "s3://src-bucket/scenes/"
DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"
COMPACTOR = str(Path(sys.executable).with_name("compactor"))


def _versioned(s3: S3, bucket: str = "src-bucket", status: str = "Enabled") -> None:
    s3.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def _upload(s3: S3, tmp: Path, bucket: str = "src-bucket", n: int = 2) -> dict[str, bytes]:
    originals = {}
    for i in range(n):
        data = rasters.gray(tmp / f"g{i}.tif", seed=30 + i).read_bytes()
        s3.put(bucket, f"scenes/g{i}.tif", data)
        originals[f"scenes/g{i}.tif"] = data
    return originals


def _versions(s3: S3, bucket: str, prefix: str = "scenes/") -> tuple[list[Any], list[Any]]:
    """(versions, delete markers) under ``prefix``."""
    r = s3.client.list_object_versions(Bucket=bucket, Prefix=prefix)
    return list(r.get("Versions") or []), list(r.get("DeleteMarkers") or [])


def _read_version(s3: S3, bucket: str, key: str, version: str) -> bytes:
    return bytes(s3.client.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read())


def _all_kept(s3: S3, originals: dict[str, bytes], bucket: str = "src-bucket") -> None:
    """Every original's bytes exist somewhere: a version at its source key, or its archive
    copy."""
    for key, data in originals.items():
        versions, _ = _versions(s3, bucket, key)
        at_source = any(
            _read_version(s3, bucket, key, v["VersionId"]) == data
            for v in versions
            if v["Key"] == key
        )
        archived = f"orig/{key.removeprefix('scenes/')}"
        in_archive = archived in s3.keys("arc-bucket") and s3.read("arc-bucket", archived) == data
        assert at_source or in_archive, f"{key} lost"


@pytest.mark.parametrize("status", ["Enabled", "Suspended"])
def test_a_versioned_source_keeps_no_version_of_a_compacted_original(
    s3: S3, cli: Any, tmp_path: Path, status: str
) -> None:
    _versioned(s3, status=status)
    originals = _upload(s3, tmp_path)
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)
    assert result.exit_code == 0, result.output
    versions, markers = _versions(s3, "src-bucket")
    assert (versions, markers) == ([], [])  # deleted by version: nothing billed, no marker
    for key, data in originals.items():
        assert s3.read("arc-bucket", "orig/" + key.removeprefix("scenes/")) == data
    assert {s["status"] for s in scenes_of(load_report(s3, result.stdout))} == {"compacted"}


def test_keep_versions_leaves_them_and_names_each(s3: S3, cli: Any, tmp_path: Path) -> None:
    _versioned(s3)
    originals = _upload(s3, tmp_path)
    ids = {k: s3.client.head_object(Bucket="src-bucket", Key=k)["VersionId"] for k in originals}
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE, "--keep-versions")
    assert result.exit_code == 0, result.output
    versions, markers = _versions(s3, "src-bucket")
    assert {v["VersionId"] for v in versions} == set(ids.values())  # noncurrent, still there
    assert {m["Key"] for m in markers} == set(originals)  # hidden behind delete markers
    kept = {
        s["source"].rsplit("/", 1)[1]: s["kept_version"]
        for s in scenes_of(load_report(s3, result.stdout))
    }
    assert kept == {k.removeprefix("scenes/"): v for k, v in ids.items()}
    _all_kept(s3, originals)


def test_a_version_written_meanwhile_is_never_touched(s3: S3, tmp_path: Path) -> None:
    """Someone uploads a new version while the scene's original is being archived: only
    the version that was read, hashed and archived is deleted; the new one stays."""
    _versioned(s3)
    originals = _upload(s3, tmp_path, n=1)
    newer = rasters.rgb(tmp_path / "newer.tif").read_bytes()
    pidfile = tmp_path / "pid"
    env = {**os.environ, "COMPACTOR_FAILPOINTS": f"after-archived=pidfile:{pidfile}+sleep:4"}

    def overwrite() -> None:
        deadline = time.monotonic() + 120
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        s3.put("src-bucket", "scenes/g0.tif", newer)

    writer = threading.Thread(target=overwrite)
    writer.start()
    run = subprocess.run(
        [COMPACTOR, "-q", "run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE,
         "--workers", "1"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    writer.join()
    assert run.returncode == 0, run.stdout + run.stderr
    assert s3.read("src-bucket", "scenes/g0.tif") == newer  # the new version, untouched
    versions, markers = _versions(s3, "src-bucket")
    assert len(versions) == 1  # only the new one: the archived one is gone
    assert not markers
    assert s3.read("arc-bucket", "orig/g0.tif") == originals["scenes/g0.tif"]


def _locked_bucket(s3: S3, tmp: Path) -> dict[str, bytes]:
    s3.client.create_bucket(Bucket="lock-bucket", ObjectLockEnabledForBucket=True)
    return _upload(s3, tmp, bucket="lock-bucket")


def test_a_legal_hold_is_held_then_finished(s3: S3, cli: Any, tmp_path: Path) -> None:
    originals = _locked_bucket(s3, tmp_path)
    s3.client.put_object_legal_hold(
        Bucket="lock-bucket", Key="scenes/g0.tif", LegalHold={"Status": "ON"}
    )
    args = ("run", "--source", "s3://lock-bucket/scenes/", "--dest", DEST, "--archive", ARCHIVE)
    result = cli(*args)
    assert result.exit_code == 0, result.output  # held is not a failure
    scenes = {s["source"].rsplit("/", 1)[1]: s for s in scenes_of(load_report(s3, result.stdout))}
    assert scenes["g0.tif"]["status"] == "held"
    assert "legal hold" in scenes["g0.tif"]["reason"]
    assert scenes["g1.tif"]["status"] == "compacted"
    assert s3.read("lock-bucket", "scenes/g0.tif") == originals["scenes/g0.tif"]  # kept
    assert s3.read("arc-bucket", "orig/g0.tif") == originals["scenes/g0.tif"]  # and archived
    assert "cogs/g0.tif" in s3.keys("dst-bucket")
    versions, _ = _versions(s3, "lock-bucket")
    assert [v["Key"] for v in versions] == ["scenes/g0.tif"]  # g1's version is gone
    s3.client.put_object_legal_hold(
        Bucket="lock-bucket", Key="scenes/g0.tif", LegalHold={"Status": "OFF"}
    )
    again = cli(*args)
    assert again.exit_code == 0, again.output
    (scene,) = scenes_of(load_report(s3, again.stdout))
    assert scene["status"] == "compacted"
    assert _versions(s3, "lock-bucket") == ([], [])
    _all_kept(s3, originals, bucket="lock-bucket")


def test_governance_retention_is_held(s3: S3, cli: Any, tmp_path: Path) -> None:
    originals = _locked_bucket(s3, tmp_path)
    until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3)
    s3.client.put_object_retention(
        Bucket="lock-bucket", Key="scenes/g1.tif",
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
    )  # fmt: skip
    result = cli(
        "run", "--source", "s3://lock-bucket/scenes/", "--dest", DEST, "--archive", ARCHIVE
    )
    assert result.exit_code == 0, result.output
    scenes = {s["source"].rsplit("/", 1)[1]: s for s in scenes_of(load_report(s3, result.stdout))}
    assert scenes["g1.tif"]["status"] == "held"
    assert f"GOVERNANCE retention until {until.date().isoformat()}" in scenes["g1.tif"]["reason"]
    assert load_report(s3, result.stdout)["totals"]["held"] == 1
    _all_kept(s3, originals, bucket="lock-bucket")


def test_a_refused_delete_is_held(
    s3: S3, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket policy or MFA delete answers 403: the scene is held with the reason,
    nothing lost, and the next run (allowed) finishes it."""
    originals = _upload(s3, tmp_path, n=1)
    args = ("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)

    def refuse(op: str, path: str, _headers: Any) -> tuple[int, str] | None:
        if op == "DeleteObject" and path.startswith("/src-bucket/scenes/"):
            return 403, "AccessDenied"
        return None

    with FaultProxy(s3.endpoint, error_rate=0, reset_rate=0) as proxy:
        proxy.respond = refuse
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        result = cli(*args)
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    assert result.exit_code == 0, result.output
    (scene,) = scenes_of(load_report(s3, result.stdout))
    assert scene["status"] == "held"
    assert "refused (AccessDenied)" in scene["reason"]
    assert s3.read("src-bucket", "scenes/g0.tif") == originals["scenes/g0.tif"]
    again = cli(*args)
    assert scenes_of(load_report(s3, again.stdout))[0]["status"] == "compacted"
    assert "scenes/g0.tif" not in s3.keys("src-bucket")
    _all_kept(s3, originals)


def test_in_place_in_a_versioned_bucket_leaves_only_the_archive_class_version(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    _versioned(s3)
    originals = _upload(s3, tmp_path)
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", "in-place")
    assert result.exit_code == 0, result.output
    versions, markers = _versions(s3, "src-bucket")
    assert not markers
    assert sorted(v["Key"] for v in versions) == sorted(originals)  # one version each
    assert {v["StorageClass"] for v in versions} == {"GLACIER"}
    for v in versions:
        head = s3.client.head_object(Bucket="src-bucket", Key=v["Key"])
        assert head["StorageClass"] == "GLACIER"


def test_a_store_without_the_archive_class_is_a_usage_error(
    s3: S3, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    originals = _upload(s3, tmp_path, n=1)

    def no_glacier(op: str, path: str, headers: Any) -> tuple[int, str] | None:
        if op == "PutObject" and headers.get("x-amz-storage-class") == "GLACIER":
            return 400, "InvalidStorageClass"
        return None

    with FaultProxy(s3.endpoint, error_rate=0, reset_rate=0) as proxy:
        proxy.respond = no_glacier
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    assert result.exit_code == 2, result.output
    assert "storage class GLACIER (InvalidStorageClass)" in " ".join(result.output.split())
    assert s3.read("src-bucket", "scenes/g0.tif") == originals["scenes/g0.tif"]
    assert not [k for k in s3.keys("dst-bucket") if "/probe/" in k]


def test_requester_pays_is_acknowledged_on_every_source_request(
    s3: S3, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upload(s3, tmp_path, n=1)
    seen: list[tuple[str, str, str | None]] = []

    def record(op: str, path: str, headers: Any) -> None:
        if path.startswith("/src-bucket"):
            seen.append((op, path, headers.get("x-amz-request-payer")))
        return None

    with FaultProxy(s3.endpoint, error_rate=0, reset_rate=0) as proxy:
        proxy.respond = record
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE,
                     "--request-payer", "requester")  # fmt: skip
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    assert result.exit_code == 0, result.output
    ops = {op for op, _, _ in seen}
    assert {"ListObjects", "GetObject", "DeleteObject"} <= ops
    bucket_level = {"HEAD bucket", "GET ?versioning"}  # no RequestPayer for these
    unpaid = [(op, p) for op, p, payer in seen if payer != "requester" and op not in bucket_level]
    assert unpaid == []


def test_sse_kms_and_the_outputs_class(s3: S3, cli: Any, tmp_path: Path) -> None:
    originals = _upload(s3, tmp_path, n=1)
    key = "arn:aws:kms:us-east-1:123456789012:key/compactor-test"
    result = cli(
        "run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE, "--sse-kms-key", key,
        "--output-storage-class", "STANDARD_IA", "--storage-class", "INTELLIGENT_TIERING",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = s3.client.head_object(Bucket="dst-bucket", Key="cogs/g0.tif")
    assert (out["ServerSideEncryption"], out["SSEKMSKeyId"]) == ("aws:kms", key)
    assert out["StorageClass"] == "STANDARD_IA"
    arc = s3.client.head_object(Bucket="arc-bucket", Key="orig/g0.tif")
    assert (arc["ServerSideEncryption"], arc["SSEKMSKeyId"]) == ("aws:kms", key)
    assert arc["StorageClass"] == "INTELLIGENT_TIERING"
    notes = load_report(s3, result.stdout)["cost"]["notes"]
    assert any(n.startswith("INTELLIGENT_TIERING: archive copies move") for n in notes)
    assert any("opt-in archive tiers of the archive bucket: none configured" in n for n in notes)
    notes = load_report(s3, result.stdout)["cost"]["notes"]
    assert any(n.startswith("INTELLIGENT_TIERING: archive copies move") for n in notes)
    assert any("opt-in archive tiers of the archive bucket: none configured" in n for n in notes)
    assert s3.read("arc-bucket", "orig/g0.tif") == originals["scenes/g0.tif"]


def test_an_original_too_small_to_pay_back_stays_where_it_is(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    """With the default --payback-months (12), a few-KiB original is compacted but not
    moved to GLACIER: the copy request and the 40 KB GLACIER bills per object would cost
    more than it saves within a year. (The suite archives everything: payback 0.)"""
    originals = _upload(s3, tmp_path, n=1)
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE,
                 "--payback-months", "12")  # fmt: skip
    assert result.exit_code == 0, result.output
    (scene,) = scenes_of(load_report(s3, result.stdout))
    assert scene["status"] == "compacted"
    assert scene["archive_skipped"].startswith("left in STANDARD: moving ")
    assert "to GLACIER would take" in scene["archive_skipped"]
    assert s3.read("src-bucket", "scenes/g0.tif") == originals["scenes/g0.tif"]
    assert s3.keys("arc-bucket") == []
    assert "cogs/g0.tif" in s3.keys("dst-bucket")
