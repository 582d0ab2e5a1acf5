"""The safety protocol without injected faults: changed sources, leases, output conflicts,
multipart archive copies, `compactor verify` and `compactor restore`."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compactor.errors import LeaseHeldError
from compactor.scene._lease import Lease
from compactor.storage import Location, S3Options, S3Store

from .. import rasters
from ..conftest import S3
from ..reports import scenes_of
from ..runner.test_run_s3 import ARCHIVE, DEST, SRC, by_name, load_report, upload


def big_raster(path: Path, size: int = 1500) -> Path:
    """An RGB original over 5 MiB uncompressed (for multipart copies)."""
    return rasters.rgb(path, size=size)


def test_changed_source_is_redone_from_scratch(s3: S3, cli: Any, tmp_path: Path) -> None:
    upload(s3, {"a.tif": rasters.gray(tmp_path / "a.tif", seed=1)})
    assert cli("run", "--source", SRC, "--dest", DEST).exit_code == 0
    first = s3.read("dst-bucket", "cogs/a.tif")
    upload(s3, {"a.tif": rasters.gray(tmp_path / "a2.tif", seed=9)})  # replaced in place
    result = cli("run", "--source", SRC, "--dest", DEST)
    assert result.exit_code == 0
    scene = scenes_of(load_report(s3, result.stdout))[0]
    assert scene["status"] == "compacted"
    assert s3.read("dst-bucket", "cogs/a.tif") != first


def test_output_key_held_by_someone_else_is_not_overwritten(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    upload(s3, {"a.tif": rasters.gray(tmp_path / "a.tif")})
    s3.put("dst-bucket", "cogs/a.tif", b"somebody else's file")
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)
    assert result.exit_code == 1
    scene = scenes_of(load_report(s3, result.stdout))[0]
    assert "already exists and was not written for this source" in scene["reason"]
    assert s3.read("dst-bucket", "cogs/a.tif") == b"somebody else's file"
    assert s3.keys("arc-bucket") == []
    assert s3.keys("src-bucket") == ["scenes/a.tif"]


def test_source_deleted_behind_our_back_is_reported(s3: S3, cli: Any, tmp_path: Path) -> None:
    upload(s3, {"a.tif": rasters.gray(tmp_path / "a.tif")})
    assert cli("run", "--source", SRC, "--dest", DEST).exit_code == 0  # verified, not archived
    s3.client.delete_object(Bucket="src-bucket", Key="scenes/a.tif")
    s3.put("src-bucket", "scenes/other.tif", rasters.gray(tmp_path / "o.tif").read_bytes())
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)
    assert result.exit_code == 0, result.output
    report = load_report(s3, result.stdout)
    scenes = by_name(report)
    # Not ours to lose: no task, nothing failed, and its verified output is kept.
    assert "a.tif" not in scenes
    assert report["totals"]["finished_earlier"] == 1
    assert "cogs/a.tif" in s3.keys("dst-bucket")
    assert scenes["other.tif"]["status"] == "compacted"


def test_multipart_archive_copy_keeps_metadata_tags_and_encryption(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    data = big_raster(tmp_path / "big.tif").read_bytes()
    assert len(data) > 6 * 1024 * 1024
    extra = {
        "ContentType": "image/tiff",
        "Metadata": {"mission": "L7", "path": "012"},
        "Tagging": "team=geo&tier=gold",
        "CacheControl": "max-age=60",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:aws:kms:us-east-1:123456789012:key/abc",
    }
    s3.client.put_object(Bucket="src-bucket", Key="scenes/big.tif", Body=data, **extra)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("multipart_copy_threshold: 5MiB\nmultipart_copy_part_size: 5MiB\n")
    # GLACIER_IR: instantly readable, so moto lets us read the copy's tags back.
    result = cli("--config", str(cfg), "run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE,
                 "--storage-class", "GLACIER_IR")  # fmt: skip
    assert result.exit_code == 0, result.output
    head = s3.client.head_object(Bucket="arc-bucket", Key="orig/big.tif")
    assert head["ETag"].endswith('-2"')  # really two parts
    assert head["StorageClass"] == "GLACIER_IR"
    assert head["Metadata"] == extra["Metadata"]
    assert head["ContentType"] == "image/tiff"
    assert head["CacheControl"] == "max-age=60"
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == extra["SSEKMSKeyId"]
    tags = s3.client.get_object_tagging(Bucket="arc-bucket", Key="orig/big.tif")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "geo", "tier": "gold"}
    assert s3.read("arc-bucket", "orig/big.tif") == data
    assert "scenes/big.tif" not in s3.keys("src-bucket")
    assert s3.client.list_multipart_uploads(Bucket="arc-bucket").get("Uploads") is None


def test_archive_key_holding_other_bytes_is_never_overwritten(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    originals = upload(s3, {"a.tif": rasters.gray(tmp_path / "a.tif")})
    s3.put("arc-bucket", "orig/a.tif", b"an older original")
    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)
    assert result.exit_code == 1
    scene = scenes_of(load_report(s3, result.stdout))[0]
    assert "already holds a different object" in scene["reason"]
    assert s3.read("arc-bucket", "orig/a.tif") == b"an older original"
    assert s3.read("src-bucket", "scenes/a.tif") == originals["scenes/a.tif"]


def test_verify_passes_clean_and_names_tampering(s3: S3, cli: Any, tmp_path: Path) -> None:
    upload(s3, {"a.tif": rasters.gray(tmp_path / "a.tif"), "b.tif": rasters.uint16(tmp_path / "b.tif"),
                "c.tif": rasters.rgb(tmp_path / "c.tif")})  # fmt: skip
    assert cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE).exit_code == 0
    clean = cli("verify", DEST)
    assert clean.exit_code == 0, clean.output
    assert "3 outputs and 3 archive copies checked: all as recorded" in clean.stdout

    # tamper: same size, other bytes; a missing archive copy; a stray file
    tampered = bytearray(s3.read("dst-bucket", "cogs/a.tif"))
    tampered[-10] ^= 0xFF
    s3.put("dst-bucket", "cogs/a.tif", bytes(tampered))
    s3.client.delete_object(Bucket="arc-bucket", Key="orig/b.tif")
    s3.put("dst-bucket", "cogs/stray.tif", b"x")
    bad = cli("verify", DEST)
    assert bad.exit_code == 1
    lines = bad.stdout.splitlines()
    assert "s3://dst-bucket/cogs/a.tif: SHA-256 differs from the recorded one" in lines
    assert "s3://arc-bucket/orig/b.tif: archive copy is missing or not as recorded" in lines
    assert any(line.startswith("s3://dst-bucket/cogs/stray.tif: no state record") for line in lines)
    assert not any("cogs/c.tif" in line for line in lines)


def test_restore_brings_originals_back_byte_for_byte(s3: S3, cli: Any, tmp_path: Path) -> None:
    originals = upload(
        s3, {"x/a.tif": rasters.gray(tmp_path / "a.tif"), "b.tif": rasters.rgb(tmp_path / "b.tif")}
    )
    run = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)
    assert run.exit_code == 0
    assert s3.keys("src-bucket") == []
    args = ("restore", "--archive", ARCHIVE, "--to", SRC, "--tier", "Standard", "--days", "2")
    first = cli(*args)
    assert first.exit_code == 3, first.output  # restores requested, pending
    assert "restores requested 2" in first.stdout
    second = cli(*args)  # moto completes restores at once
    assert second.exit_code == 0, second.output
    assert "restored 2" in second.stdout
    for key, data in originals.items():
        assert s3.read("src-bucket", key) == data
        head = s3.client.head_object(Bucket="src-bucket", Key=key)
        assert head.get("StorageClass", "STANDARD") == "STANDARD"
        assert head["Metadata"] == {"mission": "test"}
    third = cli(*args)
    assert third.exit_code == 0
    assert "already back 2" in third.stdout
    # one run's originals only
    report_url = load_report(s3, run.stdout)["location"]
    only = cli(
        "restore", "--archive", ARCHIVE, "--to", "s3://src-bucket/again/", "--report", report_url
    )
    assert only.exit_code == 0, only.output
    assert sorted(k for k in s3.keys("src-bucket") if k.startswith("again/")) == [
        "again/b.tif",
        "again/x/a.tif",
    ]


def test_lease_excludes_then_expires(s3: S3) -> None:
    store = S3Store(S3Options(endpoint_url=s3.endpoint))
    loc = Location.parse("s3://dst-bucket/_compactor/leases/x.json")
    first = Lease(store, loc, "run-1", ttl=2.0, wait=0.5, poll=0.1)
    first.acquire()
    other = Lease(store, loc, "run-2", ttl=2.0, wait=0.5, poll=0.1)
    with pytest.raises(LeaseHeldError, match="in progress in run run-1"):
        other.acquire()
    # run-1 crashes (never renews); run-2 waits it out and takes over
    patient = Lease(store, loc, "run-2", ttl=2.0, wait=5.0, poll=0.1)
    t0 = time.monotonic()
    patient.acquire()
    assert 1.0 < time.monotonic() - t0 < 4.0
    assert json.loads(s3.read("dst-bucket", "_compactor/leases/x.json"))["run_id"] == "run-2"
    # the old holder notices it lost the lease before doing anything destructive
    assert first.renew() is False
    with pytest.raises(LeaseHeldError, match="lost the lease"):
        first.check("deleting the original")
    patient.release()
    assert "_compactor/leases/x.json" not in s3.keys("dst-bucket")


def test_renewed_lease_keeps_contenders_out(s3: S3) -> None:
    store = S3Store(S3Options(endpoint_url=s3.endpoint))
    loc = Location.parse("s3://dst-bucket/_compactor/leases/y.json")
    with Lease(store, loc, "run-1", ttl=0.8) as held:
        contender = Lease(store, loc, "run-2", ttl=0.8, wait=2.0, poll=0.1)
        with pytest.raises(LeaseHeldError):
            contender.acquire()  # 2 s of waiting, the holder renewing every 0.2 s
        held.check("anything")
    # released: free at once
    Lease(store, loc, "run-2", ttl=1.0, wait=0.0).acquire()


def test_same_run_takes_over_its_lost_attempt(s3: S3) -> None:
    store = S3Store(S3Options(endpoint_url=s3.endpoint))
    loc = Location.parse("s3://dst-bucket/_compactor/leases/z.json")
    Lease(store, loc, "run-1", ttl=60).acquire()  # a worker that died
    retry = Lease(store, loc, "run-1", ttl=60, wait=0.0)
    retry.acquire()  # Dask rescheduled the task: no waiting
    assert retry.etag is not None


def test_local_leases_are_exclusive_across_threads(tmp_path: Path) -> None:
    from compactor.storage import LocalStore

    loc = Location.parse(str(tmp_path / "lease.json"))
    winners: list[str] = []

    def contend(name: str) -> None:
        try:
            Lease(LocalStore(), loc, name, ttl=30, wait=0.0).acquire()
            winners.append(name)
        except LeaseHeldError:
            pass

    threads = [threading.Thread(target=contend, args=(f"run-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_state_records_every_step(s3: S3, cli: Any, tmp_path: Path) -> None:
    upload(s3, {"a b+ü.tif": rasters.rgb(tmp_path / "a.tif")})
    first = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)
    assert first.exit_code == 0
    state = json.loads(
        s3.read("dst-bucket", "cogs/_compactor/state/s3/src-bucket/scenes/a b+ü.tif.json")
    )
    assert state["step"] == 4  # archived: the last step recorded (the source is gone)
    assert state["output"]["url"] == "s3://dst-bucket/cogs/a b+ü.tif"
    assert state["archive"]["storage_class"] == "GLACIER"
    import hashlib

    assert (
        state["source_sha256"]
        == hashlib.sha256(s3.read("arc-bucket", "orig/a b+ü.tif")).hexdigest()
    )
    assert not [k for k in s3.keys("dst-bucket") if "/leases/" in k]  # released
    assert np.isclose(state["ssim"], scenes_of(load_report(s3, first.stdout))[0]["ssim"])


def test_source_removed_before_compaction_stops_failing(s3: S3, cli: Any, tmp_path: Path) -> None:
    (tmp_path / "bad.tif").write_text("not a raster")
    upload(s3, {"bad.tif": tmp_path / "bad.tif", "ok.tif": rasters.gray(tmp_path / "ok.tif")})
    assert cli("run", "--source", SRC, "--dest", DEST).exit_code == 1
    s3.client.delete_object(Bucket="src-bucket", Key="scenes/bad.tif")  # the user gives up on it
    # A scene that failed before its output was stored left no record: once its source is
    # gone, the next run does not know of it.
    assert not [k for k in s3.keys("dst-bucket") if "bad.tif" in k]
    again = cli("run", "--source", SRC, "--dest", DEST)
    assert again.exit_code == 0, again.output
    assert "bad.tif" not in by_name(load_report(s3, again.stdout))


def test_scene_stuck_at_encoded_with_its_output_gone_is_encoded_again(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    upload(s3, {"a.tif": rasters.gray(tmp_path / "a.tif")})
    assert cli("run", "--source", SRC, "--dest", DEST).exit_code == 0
    key = "cogs/_compactor/state/s3/src-bucket/scenes/a.tif.json"
    state = json.loads(s3.read("dst-bucket", key))
    state["step"] = 2  # as if killed between the upload and its confirmation ...
    s3.put("dst-bucket", key, json.dumps(state).encode())
    for index in s3.keys("dst-bucket", "cogs/_compactor/index/"):  # ... before it was indexed
        s3.client.delete_object(Bucket="dst-bucket", Key=index)
    s3.client.delete_object(Bucket="dst-bucket", Key="cogs/a.tif")  # ... and the output lost
    result = cli("run", "--source", SRC, "--dest", DEST)
    assert result.exit_code == 0, result.output
    assert scenes_of(load_report(s3, result.stdout))[0]["status"] == "compacted"
    assert "cogs/a.tif" in s3.keys("dst-bucket")
