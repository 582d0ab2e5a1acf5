"""Attack/robustness: a secret HTTP header value that http.client refuses (a token read from
a file keeps its trailing newline, a common Kubernetes Secret mistake) ends up verbatim in
the scene's reason and traceback (report.json, scene log): redact_text is called with no
secrets, and the header value is read on the worker from ${VAR}."""

from __future__ import annotations

import http.server
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from compactor.config import resolve_settings
from compactor.safety.spec import RunContext, SceneSpec
from compactor.safety.walk import process_scene
from compactor.storage import HttpPolicy

TOKEN = "Bearer s3cr3t-t0ken-value"


def test_header_value_in_scene_reason(tmp_path: Path, monkeypatch: Any) -> None:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    try:
        monkeypatch.setenv("ASSET_TOKEN", TOKEN + "\n")
        dest = str(tmp_path / "dest") + "/"
        ctx = RunContext.from_settings(
            resolve_settings({"source": str(tmp_path), "dest": dest}), "r1"
        )
        host = f"127.0.0.1:{port}"
        ctx = replace(
            ctx,
            http=HttpPolicy(hosts=(host,), headers=((host, "Authorization", "${ASSET_TOKEN}"),)),
        )
        url = f"http://{host}/a.tif"
        spec = SceneSpec(
            source=url,
            relative="a.tif",
            output=dest + "a.tif",
            archive=None,
            read_only="an HTTP(S) href",
        )
        result = process_scene(spec, ctx)
        print("REASON:", result.reason)
        print("TRACEBACK tail:", (result.traceback or "")[-300:])
        text = (result.reason or "") + (result.traceback or "")
        assert "s3cr3t" not in text
    finally:
        srv.shutdown()
