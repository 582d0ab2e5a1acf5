"""Forged state records: everything under ``<dest>/_compactor/`` may have been written by
someone else. A record says where a scene is in its walk, never where things go: a forged
record can at most fail its scene, or make it encode again or skip; it never writes
outside the scene's own output and archive keys and never deletes an original unless a
verified output at the scene's output key and an archive copy of the very same bytes at
its archive key exist. Real components: the moto server, the session's Dask processes,
``compactor run`` through the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from compactor.records import SceneLogWriter, SceneResult, read_scene_log
from compactor.scene import RunContext
from compactor.settings import resolve_settings
from compactor.storage import Location, S3Options

from .. import rasters
from ..conftest import S3

SRC = "s3://src-bucket/scenes/"
DEST = "s3://dst-bucket/cogs/"
ARCHIVE = "s3://arc-bucket/orig/"
META = "_compactor/"

Forge = Callable[[dict[str, Any], "Backend"], None]


# --- two backends, one interface ------------------------------------------------------------


class Backend:
    """Where a run's sources, outputs and archive copies are, and how a test reads them."""

    src: str
    dest: str
    arc: str

    def put_source(self, name: str, data: bytes) -> None: ...
    def source_url(self, name: str) -> str: ...
    def output_url(self, name: str) -> str: ...
    def archive_url(self, name: str) -> str: ...
    def state_url(self, name: str) -> str: ...
    def read(self, url: str) -> bytes | None: ...
    def write(self, url: str, data: bytes) -> None: ...
    def snapshot(self) -> dict[str, bytes]:
        """Every object or file outside ``_compactor/``, by URL."""
        ...

    def forget_finished(self) -> None:
        """Drop the finished index, so that the next run walks every scene again and reads
        its record (as after a change of settings)."""
        ...


class S3Backend(Backend):
    def __init__(self, s3: S3):
        self.s3 = s3
        self.src, self.dest, self.arc = SRC, DEST, ARCHIVE

    def put_source(self, name: str, data: bytes) -> None:
        self.s3.put("src-bucket", "scenes/" + name, data)

    def source_url(self, name: str) -> str:
        return SRC + name

    def output_url(self, name: str) -> str:
        return DEST + name.removesuffix(".tif") + ".tif"

    def archive_url(self, name: str) -> str:
        return ARCHIVE + name

    def state_url(self, name: str) -> str:
        return f"{DEST}{META}state/s3/src-bucket/scenes/{name}.json"

    def _split(self, url: str) -> tuple[str, str]:
        loc = Location.parse(url)
        return loc.bucket, loc.key

    def read(self, url: str) -> bytes | None:
        bucket, key = self._split(url)
        if key not in self.s3.keys(bucket, key):
            return None
        return self.s3.read(bucket, key)

    def write(self, url: str, data: bytes) -> None:
        bucket, key = self._split(url)
        self.s3.put(bucket, key, data)

    def snapshot(self) -> dict[str, bytes]:
        return {
            f"s3://{bucket}/{key}": self.s3.read(bucket, key)
            for bucket in ("src-bucket", "dst-bucket", "arc-bucket")
            for key in self.s3.keys(bucket)
            if "/_compactor/" not in f"/{key}"
        }

    def forget_finished(self) -> None:
        for key in self.s3.keys("dst-bucket", "cogs/_compactor/index/"):
            self.s3.client.delete_object(Bucket="dst-bucket", Key=key)


class LocalBackend(Backend):
    def __init__(self, root: Path):
        self.root = root
        for d in ("src", "dest", "arc"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self.src, self.dest, self.arc = (str(root / d) + "/" for d in ("src", "dest", "arc"))

    def put_source(self, name: str, data: bytes) -> None:
        (self.root / "src" / name).write_bytes(data)

    def source_url(self, name: str) -> str:
        return str(self.root / "src" / name)

    def output_url(self, name: str) -> str:
        return str(self.root / "dest" / (name.removesuffix(".tif") + ".tif"))

    def archive_url(self, name: str) -> str:
        return str(self.root / "arc" / name)

    def state_url(self, name: str) -> str:
        return (
            str(self.root / "dest" / "_compactor" / "state" / "file")
            + self.source_url(name)
            + ".json"
        )

    def read(self, url: str) -> bytes | None:
        p = Path(url)
        return p.read_bytes() if p.is_file() else None

    def write(self, url: str, data: bytes) -> None:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        Path(url).write_bytes(data)

    def snapshot(self) -> dict[str, bytes]:
        return {
            str(p): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and "_compactor" not in p.parts
        }

    def forget_finished(self) -> None:
        shutil.rmtree(self.root / "dest" / "_compactor" / "index", ignore_errors=True)


def run_report(backend: Backend, stdout: str) -> dict[str, SceneResult]:
    """The run's scenes by file name, from its scene log next to report.html."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("report: "))
    folder = line.split("report: ", 1)[1].strip().removesuffix("report.html")
    s3 = S3Options(endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    return {r.source.rsplit("/", 1)[-1]: r for r in read_scene_log(folder, s3)}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def policy_of(backend: Backend, *extra: tuple[str, Any]) -> str:
    """The policy digest of a run with these settings (what a forger can compute too)."""
    args: dict[str, Any] = {"source": backend.src, "dest": backend.dest, "archive": backend.arc,
                            "min_saving": -1.0, **dict(extra)}  # fmt: skip
    return RunContext.from_settings(resolve_settings(args), "x").policy_digest()


# --- the table ----------------------------------------------------------------------------------

VICTIM_SRC = "victim-src.tif"  # an object outside --source (not a scene of the run)
VICTIM_OUT = "victim-out.tif"  # an object in --dest that is no scene's output


@dataclass(frozen=True)
class Case:
    name: str
    forge: Forge
    #: "refused": failed, nothing written or deleted, the record left as forged;
    #: "harmless": whatever happened, the original is safe (see _assert_safe).
    expect: str


def victim_url(b: Backend, which: str) -> str:
    if isinstance(b, S3Backend):
        return {"src": "s3://src-bucket/other/" + VICTIM_SRC, "out": DEST + VICTIM_OUT}[which]
    assert isinstance(b, LocalBackend)
    return {"src": str(b.root / "other" / VICTIM_SRC), "out": str(b.root / "dest" / VICTIM_OUT)}[
        which
    ]


def _set(path: str, value: Any) -> Forge:
    def forge(state: dict[str, Any], b: Backend) -> None:
        obj = state
        *parents, last = path.split(".")
        for p in parents:
            obj = obj[p]
        obj[last] = value(state, b) if callable(value) else value

    return forge


def _all(*forges: Forge) -> Forge:
    def forge(state: dict[str, Any], b: Backend) -> None:
        for f in forges:
            f(state, b)

    return forge


def _as_source(state: dict[str, Any], b: Backend) -> dict[str, Any]:
    """A stored-object record that describes the scene's own source (passes a HEAD check)."""
    url = state["source"]
    data = b.read(url)
    assert data is not None
    checksum = None
    if isinstance(b, S3Backend):  # what a HEAD reports, so that the record passes one
        loc = Location.parse(url)
        head = b.s3.client.head_object(Bucket=loc.bucket, Key=loc.key, ChecksumMode="ENABLED")
        checksum = head.get("ChecksumSHA256")
    return {"checksum": checksum, "url": url, "size": len(data), "sha256": sha(data),
            "etag": state["fingerprint"]["etag"] if isinstance(b, S3Backend) else None,
            "storage_class": "GLACIER" if isinstance(b, S3Backend) else None}  # fmt: skip


def _archived_at(url: Callable[[dict[str, Any], Backend], str]) -> Forge:
    """Step archived, the archive copy said to be at ``url`` with the source's bytes."""

    def forge(state: dict[str, Any], b: Backend) -> None:
        record = _as_source(state, b)
        record["url"] = url(state, b)
        state.update(step=4, archive=record, source_sha256=record["sha256"])

    return forge


def _src(state: dict[str, Any], b: Backend) -> str:
    return str(state["source"])


def _own_archive(state: dict[str, Any], b: Backend) -> str:
    return b.archive_url(state["source"].rsplit("/", 1)[-1])


# fmt: off
CASES = [
    # where things are: refused
    Case("source-other", _set("source", lambda s, b: victim_url(b, "src")), "refused"),
    Case("source-ftp", _set("source", "ftp://example.com/a.tif"), "refused"),
    Case("output-outside-dest", _set("output.url", lambda s, b: victim_url(b, "src")), "refused"),
    Case("output-other-key", _set("output.url", lambda s, b: victim_url(b, "out")), "refused"),
    Case("output-ftp", _set("output.url", "ftp://example.com/a.tif"), "refused"),
    Case("restart-output-elsewhere", _all(
        _set("step", 1), _set("fingerprint.size", 1),
        _set("output.url", lambda s, b: victim_url(b, "out"))), "refused"),
    Case("archive-is-source", _all(
        _archived_at(_src), _set("output", lambda s, b: _as_source(s, b))), "refused"),
    Case("archive-outside", _archived_at(lambda s, b: victim_url(b, "src")), "refused"),
    Case("archive-class", _all(
        _archived_at(_own_archive), _set("archive.storage_class", "STANDARD")), "refused"),
    Case("pending-version-prefix", _all(
        _archived_at(_own_archive), _set("pending_version", "v1")), "refused"),
    Case("version", _set("version", 99), "refused"),
    # past the archive without an archive copy: no walk records that
    Case("step-archived-bare", _set("step", 4), "refused"),
    Case("step-deleted", _set("step", 5), "refused"),
    # what the walk does next: harmless
    Case("fingerprint-size", _set("fingerprint.size", 1), "harmless"),
    Case("fingerprint-etag-mtime", _all(
        _set("fingerprint.etag", "forged"),
        _set("fingerprint.mtime", "2001-01-01T00:00:00+00:00")), "harmless"),
    Case("step-discovered", _set("step", 1), "harmless"),
    Case("step-encoded", _set("step", 2), "harmless"),
    Case("source-digest", _all(
        _set("source_sha256", "0" * 64), _set("source_part_size", 5),
        _set("source_composite", "x")), "harmless"),
    Case("output-facts", _all(
        _set("output.size", 7), _set("output.sha256", "0" * 64), _set("output.etag", '"x"'),
        _set("output.checksum", "x"), _set("output.storage_class", "GLACIER")), "harmless"),
    Case("archived-wrong-bytes", _all(
        _archived_at(_own_archive), _set("archive.sha256", "0" * 64)), "harmless"),
    Case("archived-claimed", _archived_at(_own_archive), "harmless"),  # no copy exists
    Case("deleted-claimed", _all(_archived_at(_own_archive), _set("step", 5)), "harmless"),
    Case("encoding", _all(
        _set("codec", "jpeg"), _set("quality", 1), _set("lossless", False), _set("ssim", 1.5),
        _set("psnr", -3.0), _set("max_error", [1e9]), _set("run_id", "forged"),
        _set("updated", "yesterday")), "harmless"),
    Case("skip-reason", _all(
        _set("step", 1), _set("skip_reason", "forged: leave it"),
        _set("policy", lambda s, b: policy_of(b))), "harmless"),
]
# fmt: on


def _run(cli: Any, b: Backend, *extra: str) -> Any:
    return cli("run", "--source", b.src, "--dest", b.dest, "--min-saving", "-1", *extra)


def _assert_safe(b: Backend, name: str, original: bytes, scene: SceneResult) -> None:
    """The original still is at its source, or the scene's own archive key holds its very
    bytes and its own output key holds a COG (an output that is no longer its, or an archive
    copy of other bytes, never let it go)."""
    if b.read(b.source_url(name)) == original:
        return
    assert b.read(b.archive_url(name)) == original, (name, scene)
    out = b.read(b.output_url(name))
    assert out is not None, (name, scene)
    assert out[:4] in (b"II*\x00", b"MM\x00*"), (name, scene)


def forged_table(cli: Any, b: Backend, tmp_path: Path) -> None:
    names = [f"{c.name}.tif" for c in CASES] + ["untouched.tif"]
    originals: dict[str, bytes] = {}
    for i, name in enumerate(names):
        data = rasters.gray(tmp_path / "rasters" / name, size=128, seed=i).read_bytes()
        b.put_source(name, data)
        originals[name] = data
    b.write(victim_url(b, "src"), b"victim source")
    b.write(victim_url(b, "out"), b"victim output")
    first = _run(cli, b)  # records at "verified", outputs stored, originals left
    assert first.exit_code == 0, first.output
    forged: dict[str, bytes] = {}
    for case in CASES:
        name = f"{case.name}.tif"
        state = json.loads(b.read(b.state_url(name)) or b"")
        case.forge(state, b)
        forged[name] = json.dumps(state).encode()
        b.write(b.state_url(name), forged[name])
    before = b.snapshot()

    second = _run(cli, b, "--archive", b.arc)

    scenes = run_report(b, second.stdout)
    after = b.snapshot()
    assert scenes["untouched.tif"].status == "compacted", scenes["untouched.tif"]
    assert b.read(b.source_url("untouched.tif")) is None  # the run did archive and delete
    # Nothing outside the scenes' own source, output and archive keys changed.
    own = {u for n in names for u in (b.source_url(n), b.output_url(n), b.archive_url(n))}
    changed = {u for u in set(before) | set(after) if before.get(u) != after.get(u)}
    assert changed <= own, changed - own
    for case in CASES:
        name = f"{case.name}.tif"
        scene = scenes[name]
        _assert_safe(b, name, originals[name], scene)
        if case.expect == "refused":
            assert scene.status == "failed", (name, scene)
            assert "state record" in (scene.reason or ""), (name, scene.reason)
            assert "left for a person" in (scene.reason or ""), (name, scene.reason)
            assert scene.output is None, (name, scene)
            assert scene.archive is None, (name, scene)
            for url in (b.source_url(name), b.output_url(name), b.archive_url(name)):
                assert before.get(url) == after.get(url), (name, url)
            assert b.read(b.state_url(name)) == forged[name], name  # left for a person
        else:
            assert scene.status in ("compacted", "skipped", "failed", "held"), (name, scene)


def test_forged_records_on_s3(s3: S3, cli: Any, tmp_path: Path) -> None:
    forged_table(cli, S3Backend(s3), tmp_path)


def test_forged_records_in_a_local_folder(cli: Any, tmp_path: Path) -> None:
    forged_table(cli, LocalBackend(tmp_path / "tree"), tmp_path)


# --- the findings, one by one ----------------------------------------------------------------


def _versioned(s3: S3) -> None:
    s3.client.put_bucket_versioning(
        Bucket="src-bucket", VersioningConfiguration={"Status": "Enabled"}
    )


def _versions(s3: S3, key: str) -> dict[str, str]:
    """Every version of ``src-bucket/key``: the MD5 of its bytes (its ETag: single-part
    uploads and copies) by version id. Archive-class versions cannot be read without a
    restore; their ETags say which bytes they hold."""
    found = s3.client.list_object_versions(Bucket="src-bucket", Prefix=key).get("Versions") or []
    return {v["VersionId"]: v["ETag"].strip('"') for v in found if v["Key"] == key}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _compacted_once(cli: Any, b: Backend, tmp_path: Path, names: list[str]) -> dict[str, bytes]:
    """Sources ``names`` compacted with originals left: records at "verified"."""
    originals = {}
    for i, name in enumerate(names):
        data = rasters.gray(tmp_path / "rasters" / name, size=128, seed=40 + i).read_bytes()
        b.put_source(name, data)
        originals[name] = data
    first = _run(cli, b)
    assert first.exit_code == 0, first.output
    b.forget_finished()
    return originals


def _forge(b: Backend, name: str, **changes: Any) -> dict[str, Any]:
    state = json.loads(b.read(b.state_url(name)) or b"")
    state.update(changes)
    b.write(b.state_url(name), json.dumps(state).encode())
    return dict(state)


@pytest.mark.parametrize("versioned", [False, True], ids=["plain", "versioned"])
def test_finding1_a_record_naming_the_source_as_output_and_archive_deletes_nothing(
    s3: S3, cli: Any, tmp_path: Path, versioned: bool
) -> None:
    """Finding 1: a record at "archived" whose output and archive copy are the source itself
    (and, versioned, whose pending version is the live one) deleted the original."""
    if versioned:
        _versioned(s3)
    b = S3Backend(s3)
    originals = _compacted_once(cli, b, tmp_path, ["a.tif"])
    state = json.loads(b.read(b.state_url("a.tif")) or b"")
    itself = _as_source(state, b)
    forged = _forge(
        b, "a.tif", step=4, output=itself, archive=itself, source_sha256=itself["sha256"],
        pending_version=state["fingerprint"]["version_id"] if versioned else None,
    )  # fmt: skip
    assert not versioned or forged["pending_version"]

    result = _run(cli, b, "--archive", ARCHIVE)

    assert result.exit_code == 1, result.output
    scene = run_report(b, result.stdout)["a.tif"]
    assert scene.status == "failed", scene
    assert "state record" in (scene.reason or ""), scene
    assert s3.read("src-bucket", "scenes/a.tif") == originals["a.tif"]
    if versioned:
        assert list(_versions(s3, "scenes/a.tif").values()) == [md5(originals["a.tif"])]
    assert s3.keys("arc-bucket") == []


@pytest.mark.parametrize("where", ["local", "s3"])
def test_finding2_a_restarted_record_never_writes_where_the_record_says(
    s3: S3, cli: Any, tmp_path: Path, where: str
) -> None:
    """Finding 2: a record at "discovered" with a wrong fingerprint and an output outside
    --dest (local), or another scene's COG (S3): the restart wrote the COG there."""
    b: Backend = S3Backend(s3) if where == "s3" else LocalBackend(tmp_path / "tree")
    originals = _compacted_once(cli, b, tmp_path, ["a.tif", "b.tif"])
    target = b.output_url("b.tif") if where == "s3" else str(tmp_path / "outside.tif")
    if where == "local":
        Path(target).write_bytes(b"a file outside --dest")
    before = b.read(target)
    state = json.loads(b.read(b.state_url("a.tif")) or b"")
    _forge(b, "a.tif", step=1, fingerprint={**state["fingerprint"], "size": 1},
           output={**state["output"], "url": target})  # fmt: skip

    result = _run(cli, b)

    assert result.exit_code == 1, result.output
    scene = run_report(b, result.stdout)["a.tif"]
    assert scene.status == "failed", scene
    assert "state record names output" in (scene.reason or ""), scene
    assert b.read(target) == before
    assert b.read(b.source_url("a.tif")) == originals["a.tif"]


def test_finding5_a_record_with_an_ftp_output_fails_its_scene_not_the_run(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    b = S3Backend(s3)
    originals = _compacted_once(cli, b, tmp_path, ["a.tif", "b.tif"])
    state = json.loads(b.read(b.state_url("a.tif")) or b"")
    _forge(b, "a.tif", output={**state["output"], "url": "ftp://example.com/a.tif"})

    result = _run(cli, b, "--archive", ARCHIVE)

    assert result.exit_code == 1, result.output
    scenes = run_report(b, result.stdout)
    assert scenes["a.tif"].status == "failed"
    assert "ftp://example.com/a.tif" in (scenes["a.tif"].reason or "")
    assert scenes["b.tif"].status == "compacted", scenes["b.tif"]
    assert s3.read("src-bucket", "scenes/a.tif") == originals["a.tif"]


def test_finding5_a_name_too_long_for_the_local_dest_fails_its_scene(
    cli: Any, tmp_path: Path
) -> None:
    """A 250-character file name: the temporary files beside its output and record are
    longer than a file name may be (ENAMETOOLONG). That scene fails, the run goes on."""
    b = LocalBackend(tmp_path / "tree")
    long = "x" * 246 + ".tif"
    originals = {}
    for i, name in enumerate([long, "ok.tif"]):
        data = rasters.gray(tmp_path / f"r{i}.tif", size=128, seed=i).read_bytes()
        b.put_source(name, data)
        originals[name] = data

    result = _run(cli, b)

    assert result.exit_code == 1, result.output
    scenes = run_report(b, result.stdout)
    assert scenes["ok.tif"].status == "compacted"
    assert scenes[long].status == "failed"
    reason = scenes[long].reason or ""
    assert reason.startswith("OSError: [Errno 36]"), reason
    assert "\n" not in reason, reason
    trace = scenes[long].traceback or ""  # the scene log keeps the whole traceback
    assert trace.startswith("Traceback (most recent call last):"), trace
    assert "OSError: [Errno 36]" in trace, trace
    assert scenes["ok.tif"].traceback is None
    assert b.read(b.source_url(long)) == originals[long]


def test_finding11_restore_report_reads_the_scene_log_never_report_json_scenes(
    cli: Any, tmp_path: Path
) -> None:
    """A report.json whose ``scenes`` list was edited to name another run's original (inside
    --archive): restore --report brings back only what the run's scene log names."""
    arch, back = tmp_path / "arch", tmp_path / "back"
    arch.mkdir()
    (arch / "ours.tif").write_bytes(b"this run's original")
    (arch / "theirs.tif").write_bytes(b"another run's original")
    report = tmp_path / "run" / "report.json"
    report.parent.mkdir()
    with SceneLogWriter(str(report.parent / "scenes"), S3Options()) as log:
        log.append(SceneResult(source="s3://b/ours.tif", status="compacted",
                               archive=str(arch / "ours.tif")))  # fmt: skip
    theirs = SceneResult(source="s3://b/theirs.tif", status="compacted",
                         archive=str(arch / "theirs.tif"))  # fmt: skip
    report.write_text(json.dumps({"scenes": [theirs.model_dump(mode="json")]}))

    result = cli("restore", "--archive", str(arch), "--to", str(back), "--report", str(report))

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in back.iterdir()) == ["ours.tif"]


# --- pending versions in a versioned bucket, in place ---------------------------------------


def test_forged_pending_versions_in_place(s3: S3, cli: Any, tmp_path: Path) -> None:
    """In place in a versioned bucket, where a pending version is recorded by design: a
    forged one is deleted only when the store shows it is an older version of the same key
    with the archive-class copy's bytes; the archived copy itself and other bytes never."""
    _versioned(s3)
    b = S3Backend(s3)
    names = ["live.tif", "other-bytes.tif", "replaced.tif", "bogus.tif", "fingerprint.tif"]
    first_bytes, kept = {}, {}
    for i, name in enumerate(names):
        first_bytes[name] = rasters.gray(tmp_path / f"a{i}.tif", size=128, seed=60 + i).read_bytes()
        kept[name] = rasters.gray(tmp_path / f"b{i}.tif", size=128, seed=80 + i).read_bytes()
        b.put_source(name, first_bytes[name])  # an older version with other bytes
        b.put_source(name, kept[name])
    args = ("--archive", "in-place", "--keep-versions")
    first = _run(cli, b, *args)
    assert first.exit_code == 0, first.output
    versions = {name: _versions(s3, "scenes/" + name) for name in names}
    older = {
        n: next(v for v, d in vs.items() if d == md5(first_bytes[n])) for n, vs in versions.items()
    }
    replaced = {
        n: next(v for v, d in vs.items() if d == md5(kept[n]) and v != _live(s3, n))
        for n, vs in versions.items()
    }
    _forge(b, "live.tif", pending_version=_live(s3, "live.tif"))
    _forge(b, "other-bytes.tif", pending_version=older["other-bytes.tif"])
    _forge(b, "replaced.tif", pending_version=replaced["replaced.tif"])
    _forge(b, "bogus.tif", pending_version="no-such-version")
    state = json.loads(b.read(b.state_url("fingerprint.tif")) or b"")
    _forge(b, "fingerprint.tif",
           fingerprint={**state["fingerprint"], "version_id": older["fingerprint.tif"]})  # fmt: skip

    result = _run(cli, b, "--archive", "in-place")

    scenes = run_report(b, result.stdout)
    now = {name: _versions(s3, "scenes/" + name) for name in names}
    for name in names:  # both sets of bytes are still there, every one
        assert md5(first_bytes[name]) in now[name].values(), (name, scenes[name])
        assert md5(kept[name]) in now[name].values(), (name, scenes[name])
    assert scenes["live.tif"].status == "failed"
    assert "state record" in (scenes["live.tif"].reason or "")
    assert now["live.tif"] == versions["live.tif"]
    assert scenes["other-bytes.tif"].status == "failed"
    assert "bytes differ" in (scenes["other-bytes.tif"].reason or "")
    assert now["other-bytes.tif"] == versions["other-bytes.tif"]
    # The version the copy replaced holds the archived bytes: deleting it loses nothing.
    assert replaced["replaced.tif"] not in now["replaced.tif"]
    assert now["fingerprint.tif"] == versions["fingerprint.tif"]


def _live(s3: S3, name: str) -> str:
    return str(s3.client.head_object(Bucket="src-bucket", Key="scenes/" + name)["VersionId"])
