"""What a run reads back counts for nothing it cannot check (issue 22, the attacker's second
round): a state record's existence or claim never lets a run replace an object at an output
key it did not write; a record that says the scene went further than the stores show is
never reported as done; a header value a worker sends never shows in a scene's reason or
traceback; a signed HTTP(S) href keeps its own record; a source's file list names no other
scene. Real components: the moto server, the session's Dask processes (``compactor run``
through the CLI), a loopback HTTP server, GDAL."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from compactor.errors import ForbiddenSourceError, UnreadableSceneError
from compactor.gdal import read_info
from compactor.records import Fingerprint, SceneState, Step
from compactor.redact import redact_text
from compactor.scene import RunContext, SceneSpec, process_scene, record_problem
from compactor.settings import resolve_settings
from compactor.storage import HttpPolicy

from .. import rasters
from ..conftest import S3
from .test_forged_records import Backend, LocalBackend, S3Backend, _compacted_once, _run, run_report

FOREIGN = b"someone else's object at the output key, not written by compactor"


def _backend(request: Any, backend: str, tmp_path: Path) -> Backend:
    if backend == "s3":
        return S3Backend(request.getfixturevalue("s3"))
    return LocalBackend(tmp_path / "tree")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- finding 1: a record never lets a run overwrite an object it did not write ----------------


def _claim(b: Backend, size: int, sha256: str | None) -> bytes:
    """A well-formed record of the scene (as an older version of its source) claiming its
    output key, with these output facts."""
    return json.dumps({
        "version": 1, "source": b.source_url("a.tif"), "fingerprint": {"size": 1},
        "step": 1, "output": {"url": b.output_url("a.tif"), "size": size, "sha256": sha256},
        "run_id": "forged", "updated": "2020-01-01T00:00:00+00:00",
    }).encode()  # fmt: skip


RECORDS = {
    "no-record": lambda b: None,
    "unreadable-record": lambda b: b"not json",
    "claiming-record": lambda b: _claim(b, 0, None),
    "record-of-other-bytes": lambda b: _claim(b, len(FOREIGN), "0" * 64),
}


@pytest.mark.parametrize("record", list(RECORDS))
@pytest.mark.parametrize("backend", ["s3", "local"])
def test_an_object_at_the_output_key_is_never_replaced_on_a_records_word(
    request: Any, cli: Any, tmp_path: Path, record: str, backend: str
) -> None:
    b = _backend(request, backend, tmp_path)
    b.put_source("a.tif", rasters.gray(tmp_path / "r" / "a.tif", size=128, seed=3).read_bytes())
    b.write(b.output_url("a.tif"), FOREIGN)
    forged = RECORDS[record](b)
    if forged is not None:
        b.write(b.state_url("a.tif"), forged)
    scene = run_report(b, _run(cli, b).stdout)["a.tif"]
    assert b.read(b.output_url("a.tif")) == FOREIGN
    assert scene.status == "failed", scene
    assert "already exists and was not written for this source" in (scene.reason or ""), scene


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_a_scenes_own_output_is_replaced_when_its_source_changed(
    request: Any, cli: Any, tmp_path: Path, backend: str
) -> None:
    """What the store shows is this scene's own output (S3: tagged with its source; a
    folder: the very bytes its record says were written) is still replaced by a restart."""
    b = _backend(request, backend, tmp_path)
    _compacted_once(cli, b, tmp_path, ["a.tif"])
    before = b.read(b.output_url("a.tif"))
    b.put_source("a.tif", rasters.gray(tmp_path / "r2" / "a.tif", size=128, seed=99).read_bytes())
    scene = run_report(b, _run(cli, b).stdout)["a.tif"]
    assert scene.status == "compacted", scene
    after = b.read(b.output_url("a.tif"))
    assert after is not None
    assert after != before
    assert scene.output_sha256 == _sha(after)


# --- finding 2: a record past the stores is never reported as done ----------------------------


@pytest.mark.parametrize("step", [4, 5], ids=["archived", "deleted"])
@pytest.mark.parametrize("backend", ["s3", "local"])
def test_a_record_past_the_archive_without_an_archive_copy_is_refused(
    request: Any, cli: Any, tmp_path: Path, backend: str, step: int
) -> None:
    b = _backend(request, backend, tmp_path)
    originals = _compacted_once(cli, b, tmp_path, ["a.tif"])
    state = json.loads(b.read(b.state_url("a.tif")) or b"")
    state["step"] = step  # the archive copy stays None
    b.write(b.state_url("a.tif"), json.dumps(state).encode())
    for _ in range(2):  # and not remembered as finished: the next run refuses it again
        scene = run_report(b, _run(cli, b, "--archive", b.arc).stdout)["a.tif"]
        assert scene.status == "failed", scene
        assert "names no archive copy" in (scene.reason or ""), scene
        assert "left for a person" in (scene.reason or ""), scene
        assert b.read(b.source_url("a.tif")) == originals["a.tif"]
        assert b.read(b.archive_url("a.tif")) is None


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_a_record_at_deleted_while_the_source_is_there_resumes_at_the_checked_delete(
    request: Any, cli: Any, tmp_path: Path, backend: str
) -> None:
    """Step "deleted" with an archive copy recorded (the source's own bytes, at the scene's
    archive key) while the source is still there: the walk goes to the delete, whose
    re-checks find no such copy; the scene fails and its original stays."""
    b = _backend(request, backend, tmp_path)
    originals = _compacted_once(cli, b, tmp_path, ["a.tif"])
    data = originals["a.tif"]
    state = json.loads(b.read(b.state_url("a.tif")) or b"")
    state.update(step=5, source_sha256=_sha(data), archive={
        "url": b.archive_url("a.tif"), "size": len(data), "sha256": _sha(data),
        "storage_class": "GLACIER" if isinstance(b, S3Backend) else None,
    })  # fmt: skip
    b.write(b.state_url("a.tif"), json.dumps(state).encode())
    scene = run_report(b, _run(cli, b, "--archive", b.arc).stdout)["a.tif"]
    assert scene.status == "failed", scene
    assert "refusing to delete the original" in (scene.reason or ""), scene
    assert b.read(b.source_url("a.tif")) == data
    assert b.read(b.archive_url("a.tif")) is None


def test_in_place_a_record_at_archived_while_the_original_is_standard_archives_it(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    b = S3Backend(s3)
    originals = _compacted_once(cli, b, tmp_path, ["a.tif"])
    data = originals["a.tif"]
    state = json.loads(b.read(b.state_url("a.tif")) or b"")
    state.update(step=4, source_sha256=_sha(data), archive={
        "url": b.source_url("a.tif"), "size": len(data), "storage_class": "GLACIER",
        "sha256": _sha(data),
    })  # fmt: skip
    b.write(b.state_url("a.tif"), json.dumps(state).encode())
    scene = run_report(b, _run(cli, b, "--archive", "in-place").stdout)["a.tif"]
    # Not "already compacted" on the record's word: archived now, for real.
    assert scene.status == "compacted", scene
    assert scene.storage_class == "GLACIER"
    assert s3.storage_class("src-bucket", "scenes/a.tif") == "GLACIER"


# --- finding 3: a header value never shows in a scene's reason or traceback -------------------

TOKEN = "Bearer s3cr3t-t0ken-value"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a folder: (host:port, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}", folder
    finally:
        srv.shutdown()
        srv.server_close()


def _http_scene(
    tmp_path: Path, host: str, headers: tuple[tuple[str, str, str], ...], query: str = ""
) -> tuple[SceneSpec, RunContext]:
    dest = str(tmp_path / "dest") + "/"
    args = {"source": str(tmp_path), "dest": dest, "min_saving": -1.0}
    ctx = RunContext.from_settings(resolve_settings(args), "r1")
    ctx = replace(ctx, http=HttpPolicy(hosts=(host,), headers=headers))
    spec = SceneSpec(
        source=f"http://{host}/a.tif{query}", relative="a.tif", output=dest + "a.tif",
        archive=None, read_only="an HTTP(S) href",
    )  # fmt: skip
    return spec, ctx


def test_a_header_value_with_a_line_break_is_refused_by_name_never_shown(
    served: tuple[str, Path], tmp_path: Path, monkeypatch: Any
) -> None:
    """A token read from a file keeps its trailing newline: http.client refused it, quoting
    the value, and the scene's reason and traceback carried the secret."""
    host, folder = served
    rasters.gray(folder / "a.tif", size=64, seed=1)
    monkeypatch.setenv("ASSET_TOKEN", TOKEN + "\n")
    spec, ctx = _http_scene(tmp_path, host, ((host, "Authorization", "${ASSET_TOKEN}"),))
    result = process_scene(spec, ctx)
    assert result.status == "failed"
    text = (result.reason or "") + (result.traceback or "")
    assert "s3cr3t" not in text
    assert "Authorization" in (result.reason or "")
    assert "ASSET_TOKEN" in (result.reason or "")
    assert "line break" in (result.reason or "")


def test_a_request_the_http_client_refuses_fails_without_its_header_values(
    served: tuple[str, Path], tmp_path: Path, monkeypatch: Any
) -> None:
    """A header name http.client refuses (a colon in it): the scene fails with the kind of
    error, never a value the request held."""
    host, folder = served
    rasters.gray(folder / "a.tif", size=64, seed=1)
    monkeypatch.setenv("ASSET_TOKEN", TOKEN)
    headers = ((host, "Authorization", "${ASSET_TOKEN}"), (host, "X:Key", "${ASSET_TOKEN}"))
    spec, ctx = _http_scene(tmp_path, host, headers)
    result = process_scene(spec, ctx)
    assert result.status == "failed"
    assert "refused by the HTTP client" in (result.reason or ""), result.reason
    assert "s3cr3t" not in (result.reason or "") + (result.traceback or "")


def test_header_values_and_their_parts_are_masked_in_a_workers_messages() -> None:
    policy = HttpPolicy(
        hosts=("h",), headers=(("h", "Authorization", "${ASSET_TOKEN}"), ("h", "X-Key", "lit-42"))
    )
    env = {"ASSET_TOKEN": TOKEN + "\n"}
    secrets = policy.secrets(env)
    quoted = f"ValueError: Invalid header value {(TOKEN + chr(10)).encode()!r}; lit-42"
    shown = redact_text(quoted, secrets)
    assert "s3cr3t" not in shown
    assert "lit-42" not in shown
    assert policy.secrets({}) == ("lit-42",)  # a missing variable: nothing, no error
    with pytest.raises(ForbiddenSourceError, match="ASSET_TOKEN") as err:
        policy.request_headers("http://h/a.tif", env)
    assert "s3cr3t" not in str(err.value)
    with pytest.raises(ForbiddenSourceError, match="latin-1") as err:
        policy.request_headers("http://h/a.tif", {"ASSET_TOKEN": "Bearer s3cr3t\u2603"})
    assert "s3cr3t" not in str(err.value)


# --- finding 4: a signed href keeps its own record --------------------------------------------


def test_a_signed_href_accepts_its_own_record_on_the_next_walk(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    host, folder = served
    rasters.gray(folder / "a.tif", size=128, seed=5)
    query = "?X-Amz-Expires=3600&X-Amz-Signature=abcdef0123"
    spec, ctx = _http_scene(tmp_path, host, (), query)
    first = process_scene(spec, ctx)
    assert first.status == "compacted", first.reason
    resigned = replace(spec, source=spec.source.replace("abcdef0123", "fedcba9876"))
    for again in (spec, resigned):  # the same href, and one signed again
        second = process_scene(again, replace(ctx, run_id="r2"))
        assert second.status == "skipped", second.reason
        assert "already compacted" in (second.reason or "")


def test_a_record_of_another_href_is_refused_saying_which() -> None:
    dest = "s3://d/cogs/"
    ctx = RunContext.from_settings(resolve_settings({"source": "s3://s/", "dest": dest}), "r")
    url = "https://h.example/a.tif?X-Amz-Expires=3600&X-Amz-Signature=abcdef0123"
    spec = SceneSpec(
        source=url, relative="a.tif", output=dest + "a.tif", archive=None, read_only="href"
    )
    state = SceneState(
        source=url.replace("3600", "7200"), fingerprint=Fingerprint(size=1), step=Step.VERIFIED,
        run_id="r", updated="t",
    )  # fmt: skip
    problem = record_problem(state, spec, ctx)
    assert problem is not None
    assert "X-Amz-Expires=7200" in problem
    assert "X-Amz-Expires=3600" in problem
    assert "abcdef0123" not in problem
    assert record_problem(state.model_copy(update={"source": url}), spec, ctx) is None


# --- a source's file list names no other scene ------------------------------------------------


def _hfa_with_spill(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "v.img"
    profile = {"driver": "HFA", "width": 64, "height": 64, "count": 1, "dtype": "uint8"}
    with rasterio.open(path, "w", USE_SPILL="YES", **profile) as ds:
        ds.write(np.arange(64 * 64, dtype="uint8").reshape(1, 64, 64))
    assert (folder / "v.ige").is_file()
    return path


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_an_hfa_scene_reads_its_spill_file_never_another_scene(tmp_path: Path) -> None:
    own = _hfa_with_spill(tmp_path / "own")
    assert read_info(str(own)).width == 64  # its own spill file, v.ige: read
    img = _hfa_with_spill(tmp_path / "other")
    # The header names its spill file: v.tif, another scene beside it.
    img.write_bytes(img.read_bytes().replace(b"v.ige", b"v.tif"))
    (tmp_path / "other" / "v.ige").rename(tmp_path / "other" / "v.tif")
    with pytest.raises(UnreadableSceneError, match="refers to files other than itself"):
        read_info(str(img))
