"""Hostile input: whoever writes one source object, or publishes one STAC item a run
searches, gets at most a failed scene with a clear reason. Never a worker's files, another
bucket, an internal URL, or a path outside --dest; the rest of the run completes and every
original stays where it was, byte for byte. Real components throughout: the moto server
over HTTP, the session's Dask processes, ``rustac serve``, small HTTP servers on loopback."""

from __future__ import annotations

import json
import os
import pickle
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

import compactor
from compactor.encode import plan_chunks
from compactor.errors import SceneTooLargeError
from compactor.gdal import RasterInfo
from compactor.records import SceneLogWriter, SceneResult
from compactor.scene import RunContext
from compactor.settings import resolve_settings
from compactor.storage import S3Options

from .. import rasters
from ..conftest import S3
from ..reports import readable, scenes_of
from ..sources.test_stac import COLLECTION, image, item, stac_api
from .test_run_s3 import by_name, load_report

SRC = "s3://src-bucket/scenes/"
DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"


def raw_band_vrt(target: Path, width: int = 64, height: int = 8) -> bytes:
    """A GDAL VRT whose only band reads the bytes of ``target`` (any file, by name)."""
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        '<VRTRasterBand dataType="Byte" band="1" subClass="VRTRawRasterBand">'
        f'<SourceFilename relativetoVRT="0">{target}</SourceFilename>'
        "<ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset>"
        f"<LineOffset>{width}</LineOffset></VRTRasterBand></VRTDataset>"
    ).encode()


def simple_source_vrt(target: Path, size: int) -> bytes:
    """A GDAL VRT that mosaics a local GeoTIFF the worker can read."""
    return (
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">'
        '<VRTRasterBand dataType="Byte" band="1"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{target}</SourceFilename>'
        "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>"
    ).encode()


def all_bytes(s3: S3, bucket: str) -> bytes:
    return b"".join(s3.read(bucket, k) for k in s3.keys(bucket))


def test_vrt_sources_are_refused_before_gdal_reads_what_they_name(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "worker-secret.txt"
    secret.write_bytes(b"TOKEN=worker-only-" + b"x" * 600)
    local_tif = rasters.gray(tmp_path / "local.tif", size=128)
    hostile = {
        "scenes/innocent.tif": raw_band_vrt(secret),
        "scenes/mosaic.tif": simple_source_vrt(local_tif, 128),
    }
    for key, body in hostile.items():
        s3.put("src-bucket", key, body)
    good = rasters.gray(tmp_path / "good.tif", size=256).read_bytes()
    s3.put("src-bucket", "scenes/good.tif", good)

    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)

    assert result.exit_code == 1, result.output
    scenes = by_name(load_report(s3, result.stdout))
    assert scenes["good.tif"]["status"] == "compacted"
    for name in ("innocent.tif", "mosaic.tif"):
        assert scenes[name]["status"] == "failed", scenes[name]
        assert "VRT" in scenes[name]["reason"], scenes[name]["reason"]
        assert scenes[name]["output"] is None
        assert scenes[name]["archive"] is None
    # Nothing was written for them, nothing archived or deleted, and no output anywhere
    # holds the worker's file.
    assert s3.keys("dst-bucket", "cogs/innocent") == []
    assert s3.keys("dst-bucket", "cogs/mosaic") == []
    assert s3.keys("arc-bucket") == ["orig/good.tif"]
    for key, body in hostile.items():
        assert s3.read("src-bucket", key) == body
    assert b"worker-only-" not in all_bytes(s3, "dst-bucket")


def test_dot_dot_keys_never_name_another_object_on_s3(s3: S3, cli: Any, tmp_path: Path) -> None:
    """GDAL's /vsis3/ collapses ``..`` where S3 and boto3 do not: such a key would be encoded
    from one object while another is archived and deleted. It is refused outright."""
    s3.client.create_bucket(Bucket="other-bucket")
    target = rasters.gray(tmp_path / "target.tif", size=200, seed=3).read_bytes()
    decoy = rasters.gray(tmp_path / "decoy.tif", size=200, seed=4).read_bytes()
    s3.put("other-bucket", "secret.tif", target)
    s3.put("src-bucket", "scenes/../../other-bucket/secret.tif", decoy)
    s3.put("src-bucket", "scenes/a/./b.tif", decoy)
    s3.put("src-bucket", "scenes/ok.tif", rasters.gray(tmp_path / "ok.tif", size=256).read_bytes())

    result = cli("run", "--source", SRC, "--dest", DEST, "--archive", ARCHIVE)

    assert result.exit_code == 1, result.output
    report = load_report(s3, result.stdout)
    statuses = {s["source"]: (s["status"], s["reason"]) for s in scenes_of(report)}
    assert statuses["s3://src-bucket/scenes/ok.tif"][0] == "compacted"
    for key in ("scenes/../../other-bucket/secret.tif", "scenes/a/./b.tif"):
        status, reason = statuses[f"s3://src-bucket/{key}"]
        assert status == "failed"
        assert "refused key" in reason, reason
        assert "segment" in reason, reason
        assert s3.read("src-bucket", key) == decoy
    assert s3.read("other-bucket", "secret.tif") == target
    assert s3.keys("arc-bucket") == ["orig/ok.tif"]
    assert [k for k in s3.keys("dst-bucket") if not k.startswith("cogs/_compactor/")] == [
        "cogs/ok.tif"
    ]


def test_dot_dot_keys_never_write_outside_a_local_dest(s3: S3, cli: Any, tmp_path: Path) -> None:
    """Output, state and lease paths are built from keys: a ``..`` key must not reach
    above --dest, nor replace a file it would take for an expired lease."""
    base = tmp_path / "a" / "b"
    dest = base / "dest"
    dest.mkdir(parents=True)
    victim = tmp_path / "a" / "victim.json"
    victim.write_text('{"run_id": "someone", "expires": 0}')
    body = rasters.gray(tmp_path / "g.tif", size=200).read_bytes()
    for key in ("scenes/../../escape.tif", "scenes/../../../victim.tif", "scenes/fine.tif"):
        s3.put("src-bucket", key, body)
    before = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(dest))

    result = cli("run", "--source", SRC, "--dest", str(dest))

    assert result.exit_code == 1, result.output
    report = json.loads(next(dest.rglob("report.json")).read_text())
    statuses = {s["source"].rsplit("scenes/", 1)[1]: s for s in scenes_of(report)}
    assert statuses["fine.tif"]["status"] == "compacted"
    for rel in ("../../escape.tif", "../../../victim.tif"):
        assert statuses[rel]["status"] == "failed"
        assert "refused key" in statuses[rel]["reason"]
    after = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(dest))
    assert after == before  # nothing created, moved or deleted outside --dest
    assert victim.read_text() == '{"run_id": "someone", "expires": 0}'
    assert (dest / "fine.tif").is_file()


def test_a_symlink_out_of_a_local_source_is_refused(cli: Any, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    target = rasters.gray(outside / "private.tif", size=200)
    original = target.read_bytes()
    src, dest, arch = tmp_path / "src", tmp_path / "dest", tmp_path / "arch"
    src.mkdir()
    rasters.gray(src / "real.tif", size=200)
    (src / "link.tif").symlink_to(target)

    result = cli("run", "--source", str(src), "--dest", str(dest), "--archive", str(arch))

    assert result.exit_code == 1, result.output
    report = json.loads(next(dest.rglob("report.json")).read_text())
    scenes = {Path(s["source"]).name: s for s in scenes_of(report)}
    assert scenes["real.tif"]["status"] == "compacted"
    assert scenes["link.tif"]["status"] == "failed"
    assert "resolves outside" in scenes["link.tif"]["reason"]
    assert target.read_bytes() == original
    assert (src / "link.tif").is_symlink()
    assert not (dest / "link.tif").exists()
    assert sorted(p.name for p in arch.iterdir()) == ["real.tif"]


# --- declared sizes ---------------------------------------------------------------------------


def test_declared_terabytes_fail_from_the_header(s3: S3, cli: Any, tmp_path: Path) -> None:
    """A few hundred bytes can declare 200000 x 200000 pixels, or 100000 x 100000 x 200 bands
    of uint16 (3.6 TiB): refused before any read, with no chunk task planned."""
    huge = rasters.declared(tmp_path / "huge.tif", 200_000, 200_000)
    cube = rasters.declared(tmp_path / "cube.tif", 100_000, 100_000, bands=200, bits=16)
    assert huge.stat().st_size < 1024
    assert cube.stat().st_size < 4096
    s3.put("src-bucket", "scenes/huge.tif", huge.read_bytes())
    s3.put("src-bucket", "scenes/cube.tif", cube.read_bytes())
    s3.put("src-bucket", "scenes/ok.tif", rasters.gray(tmp_path / "ok.tif", size=256).read_bytes())

    result = cli("run", "--source", SRC, "--dest", DEST, "--max-bands", "100")

    assert result.exit_code == 1, result.output
    scenes = by_name(load_report(s3, result.stdout))
    assert scenes["ok.tif"]["status"] == "compacted"
    assert "refused before reading" in scenes["huge.tif"]["reason"]
    assert "--max-pixels" in scenes["huge.tif"]["reason"]
    assert "200 bands, more than 100" in scenes["cube.tif"]["reason"]
    assert not scenes["huge.tif"]["chunked"]
    assert not scenes["cube.tif"]["chunked"]
    uploads = s3.client.list_multipart_uploads(Bucket="dst-bucket").get("Uploads") or []
    assert uploads == []

    # The raw-size limit alone: the default pixel and band limits pass this cube.
    result = cli("run", "--source", SRC, "--dest", DEST, "--include", "cube.tif")
    scenes = by_name(load_report(s3, result.stdout))
    assert "--max-raw-size" in scenes["cube.tif"]["reason"], scenes["cube.tif"]["reason"]


def test_a_chunk_that_cannot_fit_a_worker_is_refused_not_planned() -> None:
    info = RasterInfo(
        driver="GTiff", width=400_000, height=2048, count=8, dtype="uint16", nodata=None,
        colorinterp=("gray",) * 8, descriptions=(None,) * 8, block_shape=(512, 512),
        has_colormap=False, has_dataset_mask=False,
    )  # fmt: skip
    with pytest.raises(SceneTooLargeError, match=r"smallest chunk .* \(--worker-memory\)"):
        plan_chunks(info, budget=1024**3, threads=4)
    assert plan_chunks(info, budget=64 * 1024**3, threads=4).nstrips == 4


def test_gdal_written_scenes_above_the_chunk_threshold_are_bounded(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    """GCP-georeferenced scenes go through GDAL's COG driver in one task: above
    --chunk-threshold they fail with that reason instead of taking a worker whatever their
    size. LERC goes through compactor's tile writer now, so a LERC scene above it is
    chunked like any other."""
    s3.put("src-bucket", "scenes/gcps.tif", rasters.with_gcps(tmp_path / "gcps.tif").read_bytes())
    s3.put("src-bucket", "scenes/u16.tif", rasters.uint16(tmp_path / "u16.tif").read_bytes())
    result = cli(
        "run", "--source", SRC, "--dest", DEST, "--chunk-threshold", "16KiB",
        "--include", "gcps.tif",
    )  # fmt: skip
    scenes = by_name(load_report(s3, result.stdout))
    assert scenes["gcps.tif"]["status"] == "failed"
    assert "GCPs or RPCs" in scenes["gcps.tif"]["reason"]
    assert "--chunk-threshold" in scenes["gcps.tif"]["reason"]
    result = cli(
        "run", "--source", SRC, "--dest", DEST, "--chunk-threshold", "16KiB",
        "--include", "u16.tif", "--codec", "lerc",
    )  # fmt: skip
    scenes = by_name(load_report(s3, result.stdout))
    assert scenes["u16.tif"]["status"] == "compacted", scenes["u16.tif"]["reason"]
    assert scenes["u16.tif"]["chunked"]
    assert scenes["u16.tif"]["codec"] == "lerc"


# --- STAC -------------------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Serves ``files``; ``redirects`` answer 302 to another URL; every request is kept."""

    files: dict[str, bytes] = {}
    redirects: dict[str, str] = {}
    seen: list[tuple[str, str, dict[str, str]]] = []

    def _answer(self, body: bool) -> None:
        self.seen.append((self.command, self.path, dict(self.headers)))
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.end_headers()
            return
        data = self.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def http_server(host: str, files: dict[str, bytes], redirects: dict[str, str] | None = None
                ) -> Iterator[tuple[str, list[tuple[str, str, dict[str, str]]]]]:  # fmt: skip
    """A threaded HTTP server on ``host`` and a free port: (its origin, the requests seen)."""
    seen: list[tuple[str, str, dict[str, str]]] = []
    handler = type("Handler", (_Recorder,), {
        "files": files, "redirects": {} if redirects is None else redirects, "seen": seen,
    })  # fmt: skip
    server = ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_stac_items_cannot_reach_other_hosts_buckets_or_paths(
    s3: S3, dask_scheduler: str, tmp_path: Path
) -> None:
    """Hrefs to a second loopback address, a redirect, an s3:// object outside the
    collection's buckets and an item id with ``..``: none of them reads what it names, none
    deletes anything, and the one good item still goes through."""
    s3.client.create_bucket(Bucket="other-bucket")
    tif = rasters.gray(tmp_path / "h.tif", size=200).read_bytes()
    good = rasters.gray(tmp_path / "good.tif", size=256).read_bytes()
    s3.put("src-bucket", "scenes/good.tif", good)
    s3.put("src-bucket", "scenes/escape.tif", good)
    s3.put("other-bucket", "theirs.tif", tif)
    redirects: dict[str, str] = {}
    with (
        http_server("127.0.0.2", {"/internal.tif": tif}) as (internal, internal_seen),
        http_server("127.0.0.1", {}, redirects) as (bouncer, bouncer_seen),
    ):
        redirects["/bounce.tif"] = f"{internal}/internal.tif"
        items = [
            item("good", 0, "2020-03-01T00:00:00Z", {"image": image("s3://src-bucket/scenes/good.tif")}),
            item("internal", 0, "2020-03-01T00:00:00Z", {"image": image(f"{internal}/internal.tif")}),
            item("bounce", 0, "2020-03-01T00:00:00Z", {"image": image(f"{bouncer}/bounce.tif")}),
            item("theirs", 0, "2020-03-01T00:00:00Z", {"image": image("s3://other-bucket/theirs.tif")}),
            item("../../../escape", 0, "2020-03-01T00:00:00Z",
                 {"image": image("s3://src-bucket/scenes/escape.tif")}),
        ]  # fmt: skip
        with stac_api(tmp_path, items) as api, Client(dask_scheduler) as client:
            report = compactor.run(
                stac=api, collection=[COLLECTION], dest=DEST, archive=ARCHIVE, client=client,
                min_saving=-1, allow_host=[bouncer.removeprefix("http://")],
            )  # fmt: skip
    scenes = {s.item: s for s in report.scene_results()}
    assert scenes["good"].status == "compacted"
    assert scenes["good"].archive == "s3://arc-bucket/orig/scenes/good.tif"

    internal_scene = scenes["internal"]
    assert internal_scene.status == "failed"
    assert "not allowed" in (internal_scene.reason or "")
    assert internal_seen == [], "nothing may be requested from a host that is not allowed"

    bounce = scenes["bounce"]
    assert bounce.status == "failed"
    assert "redirect" in (bounce.reason or "")
    assert bouncer_seen, "the allowed host was asked"
    assert internal_seen == [], "the redirect was not followed"

    theirs = scenes["theirs"]
    assert theirs.status == "compacted"  # read, compacted ...
    assert theirs.archive is None  # ... never archived or deleted
    assert "outside the buckets" in (theirs.reason or "")
    assert s3.read("other-bucket", "theirs.tif") == tif

    escape = scenes["../../../escape"]
    assert escape.status == "failed"
    assert "item id" in (escape.reason or "")
    assert s3.read("src-bucket", "scenes/escape.tif") == good
    assert [k for k in s3.keys("dst-bucket") if "escape" in k] == []
    assert s3.keys("arc-bucket") == ["orig/scenes/good.tif"]


def test_http_headers_go_only_to_their_host_and_never_into_tasks(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header configured for one host reaches that host (its value read from the workers'
    environment) and no other; the value is in no task, report or log."""
    token = "Bearer tok-" + "7" * 24
    monkeypatch.setenv("COMPACTOR_TEST_TOKEN", token)
    tif = rasters.gray(tmp_path / "h.tif", size=200).read_bytes()
    with (
        http_server("127.0.0.1", {"/a.tif": tif}) as (a, a_seen),
        http_server("127.0.0.2", {"/b.tif": tif}) as (b, b_seen),
    ):
        items = [
            item("a", 0, "2020-03-01T00:00:00Z", {"image": image(f"{a}/a.tif")}),
            item("b", 0, "2020-03-01T00:00:00Z", {"image": image(f"{b}/b.tif")}),
        ]
        host_a, host_b = a.removeprefix("http://"), b.removeprefix("http://")
        arguments: dict[str, Any] = dict(
            stac={"url": None}, collection=[COLLECTION], dest=str(tmp_path / "out"),
            min_saving=-1, allow_host=[host_a, host_b], workers=1,
            http_headers={host_a: {"Authorization": "${COMPACTOR_TEST_TOKEN}"}},
        )  # fmt: skip
        with stac_api(tmp_path, items) as api:
            arguments["stac"] = {"url": api}
            settings = resolve_settings(arguments)
            context = RunContext.from_settings(settings, "probe")
            assert token.encode() not in pickle.dumps(context)
            report = compactor.run(settings)
    scenes = list(report.scene_results())
    assert {s.item: s.status for s in scenes} == {
        "a": "compacted", "b": "compacted",
    }, [(s.item, s.reason, s.traceback) for s in scenes]  # fmt: skip
    assert a_seen
    assert all(h.get("Authorization") == token for _, _, h in a_seen)
    assert b_seen
    assert all("Authorization" not in h for _, _, h in b_seen)
    written = b"".join(readable(p.read_bytes()) for p in (tmp_path / "out").rglob("*")
                       if p.is_file())  # fmt: skip
    assert b'"status":"compacted"' in written  # the scene log, decompressed, is searched too
    assert token.encode() not in written


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_in_a_config_file_are_refused_without_echoing_them(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    secret = "sekrit-" + "Q" * 20
    s3.put("src-bucket", "scenes/a.tif", rasters.gray(tmp_path / "a.tif", size=128).read_bytes())
    for config, why in (
        ({"gdal_options": {"GDAL_HTTP_HEADERS": f"Authorization: Bearer {secret}"}},
         "headers for STAC asset hosts go in http_headers"),
        ({"gdal_options": {"AWS_SECRET_ACCESS_KEY": secret}}, "holds a secret"),
        ({"endpoint_url": f"http://ann:{secret}@127.0.0.1:9"}, "must not hold credentials"),
        ({"http_headers": {"example.com": {"Authorization": secret}}},
         "environment variable set on the workers"),
    ):  # fmt: skip
        path = tmp_path / "config.yaml"
        path.write_text(json.dumps({"source": SRC, "dest": DEST, **config}))
        result = cli("--config", str(path), "run")
        assert result.exit_code == 2, (config, result.output)
        assert why in " ".join(result.output.split()), result.output
        assert secret not in result.output
    assert s3.keys("dst-bucket") == []


def test_passwords_in_urls_are_masked_in_the_report_and_the_log(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    """A STAC API reached with user info in its URL: the password shows nowhere."""
    password = "pw-" + "Z" * 20
    s3.put("src-bucket", "scenes/a.tif", rasters.gray(tmp_path / "a.tif", size=200).read_bytes())
    items = [item("a", 0, "2020-03-01T00:00:00Z", {"image": image("s3://src-bucket/scenes/a.tif")})]
    with stac_api(tmp_path, items) as api:
        url = api.replace("http://", f"http://reader:{password}@")
        result = cli("run", "--stac", url, "--collection", COLLECTION, "--dest", DEST,
                     "--min-saving", "-1", quiet=False)  # fmt: skip
        verbose = cli("-vv", "plan", "--stac", url, "--collection", COLLECTION, "--dest", DEST,
                      quiet=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = load_report(s3, result.stdout)
    assert password not in json.dumps(report)
    assert report["settings"]["stac"]["url"] == url.replace(password, "****")
    assert password not in result.output
    assert password not in verbose.output
    stored = [readable(s3.read("dst-bucket", k)) for k in s3.keys("dst-bucket")]
    assert any(b'"status":"compacted"' in body for body in stored)  # the scene log, decompressed
    assert all(password.encode() not in body for body in stored)


# --- restore ------------------------------------------------------------------------------------


def test_restore_checks_the_paths_a_report_gives(cli: Any, tmp_path: Path) -> None:
    """The archive paths come from the run's scene log next to its report.json (never from
    anything inside report.json: tests/scene/test_forged_records.py)."""
    arch, back, outside = tmp_path / "arch", tmp_path / "back", tmp_path / "outside"
    for d in (arch, back, outside):
        d.mkdir()
    (arch / "ok.tif").write_bytes(b"archived original")
    (outside / "private.tif").write_bytes(b"not an archived original")
    scenes = [
        SceneResult(source="s3://b/ok.tif", status="compacted", archive=str(arch / "ok.tif")),
        SceneResult(source="s3://b/p.tif", status="compacted",
                    archive=f"{arch}/../outside/private.tif"),
    ]  # fmt: skip
    report = tmp_path / "report.json"
    # the log names no folder of its own: it is always scenes/ next to report.json
    report.write_text(json.dumps({"scene_log": {"location": str(outside), "parts": 1}}))
    with SceneLogWriter(str(tmp_path / "scenes"), S3Options()) as log:
        for scene in scenes:
            log.append(scene)
    before = sorted(p for p in tmp_path.rglob("*"))

    result = cli("restore", "--archive", str(arch), "--to", str(back), "--report", str(report))

    assert result.exit_code == 1, result.output
    assert "refused key" in result.output
    assert (back / "ok.tif").read_bytes() == b"archived original"
    created = sorted(set(tmp_path.rglob("*")) - set(before))
    assert created == [back / "ok.tif"]
    assert os.listdir(outside) == ["private.tif"]
