"""Reading a run's scenes back in tests: report.json lists only failed and skipped scenes;
every scene is in the scene log next to it."""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from typing import Any

from compactor.records._scene_log import read_scene_log
from compactor.storage import S3Options


def readable(data: bytes) -> bytes:
    """``data``, decompressed if it is gzip (a scene log part): what a search for a secret
    in what a run wrote must look through."""
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def scenes_of(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every scene of a run (as report.json's ``scenes[]`` used to list them), read back
    from its scene log: on S3 through the test server ``AWS_ENDPOINT_URL`` names now."""
    s3 = S3Options(endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    location = report["scene_log"]["location"]
    found = [r.model_dump(mode="json") for r in read_scene_log(location, s3)]
    assert len(found) == report["scene_log"]["scenes"] == report["totals"]["scenes"]
    return found
