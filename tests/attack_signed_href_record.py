"""Robustness: an HTTP(S) STAC asset href with a signed query (X-Amz-Signature, sig=...) is
recorded with its source redacted; record_problem then compares that redacted source with
the spec's unredacted one, so every later walk of the scene refuses its own record."""

from __future__ import annotations

import functools
import http.server
import threading
from dataclasses import replace
from pathlib import Path

from compactor.config import resolve_settings
from compactor.safety.spec import RunContext, SceneSpec
from compactor.safety.walk import process_scene
from compactor.storage import HttpPolicy

from . import rasters


def test_signed_href_second_walk(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    rasters.gray(served / "a.tif", size=128, seed=5)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{srv.server_address[1]}"
        dest = str(tmp_path / "dest") + "/"
        args = {"source": str(tmp_path), "dest": dest, "min_saving": -1.0}
        ctx = replace(
            RunContext.from_settings(resolve_settings(args), "r1"), http=HttpPolicy(hosts=(host,))
        )
        url = f"http://{host}/a.tif?X-Amz-Expires=3600&X-Amz-Signature=abcdef0123"
        spec = SceneSpec(
            source=url,
            relative="a.tif",
            output=dest + "a.tif",
            archive=None,
            read_only="an HTTP(S) href",
        )
        first = process_scene(spec, ctx)
        print("FIRST:", first.status, first.reason)
        second = process_scene(spec, replace(ctx, run_id="r2"))
        print("SECOND:", second.status, second.reason)
        assert first.status == "compacted"
        assert second.status != "failed", second.reason
    finally:
        srv.shutdown()
