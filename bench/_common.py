"""What the archive-scale benchmarks share: a moto server behind a request-counting proxy,
small scenes cut from a real raster, uploads in parallel, and a table printer.

The scenes are windows of the real Landsat 7 RGB raster in ``../shared/data/rasterio-cc0/``
(real texture compresses like real archives; noise does not), each window at its own
offset so no two scenes are the same bytes."""

from __future__ import annotations

import io
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COMPACTOR_SHARED_DATA", REPO.parent / "shared/data/rasterio-cc0"))
RGB = SHARED / "RGB.byte.tif"
sys.path.insert(0, str(REPO))

from tests.faultproxy import FaultProxy  # noqa: E402
from tests.s3server import MotoServer  # noqa: E402


def need_shared_data() -> None:
    if not RGB.exists():
        sys.exit(f"needs the real rasters of ../shared/data/rasterio-cc0/ ({RGB} is missing)")


@dataclass
class Endpoint:
    """The moto server and the counting proxy in front of it (what compactor talks to)."""

    server: MotoServer
    proxy: FaultProxy
    client: Any

    @property
    def url(self) -> str:
        return self.proxy.url

    def count(self) -> Counter[str]:
        return Counter(self.proxy.operations)


@contextmanager
def s3_endpoint(*buckets: str) -> Iterator[Endpoint]:
    """A moto server on a free loopback port, a proxy that counts every request by S3
    operation (it injects no faults), and ``buckets`` created."""
    import boto3
    from botocore.config import Config

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with (
        MotoServer() as server,
        FaultProxy(server.endpoint_url, error_rate=0, reset_rate=0) as proxy,
    ):
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            config=Config(max_pool_connections=32, response_checksum_validation="when_required"),
        )
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield Endpoint(server, proxy, client)


def scene_bytes(index: int, size: int) -> bytes:
    """A ``size`` x ``size`` RGB GeoTIFF: the window of the Landsat raster at an offset of
    its own (deterministic per index)."""
    with rasterio.open(RGB) as src:
        cols, rows = src.width - size, src.height - size
        col, row = (index * 7919) % cols, (index * 104729 // cols) % rows
        window = Window(col, row, size, size)
        data = src.read(window=window)
        profile = {
            "driver": "GTiff",
            "width": size,
            "height": size,
            "count": src.count,
            "dtype": "uint8",
            "crs": src.crs,
            "transform": src.window_transform(window),
            "nodata": src.nodata,
        }
    buf = io.BytesIO()
    with rasterio.io.MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
        buf.write(mem.read())
    return buf.getvalue()


def upload_scenes(client: Any, bucket: str, keys: Sequence[str], size: int, first: int = 0) -> int:
    """Put a distinct scene at each key (in parallel); returns the bytes uploaded."""
    total = 0

    def put(i_key: tuple[int, str]) -> int:
        i, key = i_key
        body = scene_bytes(first + i, size)
        client.put_object(Bucket=bucket, Key=key, Body=body)
        return len(body)

    with ThreadPoolExecutor(16) as pool:
        for n in pool.map(put, enumerate(keys)):
            total += n
    return total


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, columns right-aligned except the first."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        rest = zip(row[1:], widths[1:], strict=True)
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in rest]
        lines.append("  ".join(parts))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float)))
