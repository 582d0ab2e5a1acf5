"""Streaming an S3 Inventory report: time and peak memory for a million rows per format.

A moto S3 server is started on loopback; ``tests/inventory_fixture.py`` writes a
synthetic inventory (keys with spaces and ``+``, URL-encoded in CSV) in each format; a
fresh process then reads it with ``compactor.sources`` (download, MD5 check,
parse, one ObjectInfo per object, batches dropped as a caller would after using them)
and reports its wall time and peak RSS.

    .venv/bin/python bench/bench_inventory.py [--rows 1000000] [--files 1] [--formats CSV ORC]

About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM, which starts afresh at exec; ``ru_maxrss`` would
    carry over the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read(url: str, endpoint: str, batch_rows: int) -> None:
    """The measured process: print what it read, how long it took and its peak RSS."""
    from compactor.sources import InventoryStats, iter_inventory, read_manifest
    from compactor.storage import S3Options

    options = S3Options(endpoint_url=endpoint)
    base_mb = peak_rss_mb()
    start = time.perf_counter()
    stats = InventoryStats()
    manifest = read_manifest(url, options)
    objects = total = 0
    for batch in iter_inventory(manifest, options, batch_rows=batch_rows, stats=stats):
        objects += len(batch)
        total += sum(o.size for o in batch)
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    assert objects == stats.objects
    assert total == stats.bytes
    result = {"objects": objects, "seconds": seconds, "peak_mb": peak_mb, "base_mb": base_mb}
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--batch-rows", type=int, default=65536)
    parser.add_argument("--formats", nargs="+", default=["CSV", "Parquet", "ORC"])
    parser.add_argument("--read", nargs=2, metavar=("URL", "ENDPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read(*args.read, args.batch_rows)
        return

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
    from compactor.storage import S3Options, s3_client
    from tests.inventory_fixture import synthetic_rows, write_inventory
    from tests.s3server import MotoServer

    table = synthetic_rows(args.rows)
    print(f"{args.rows:,} rows in {args.files} data file(s), batches of {args.batch_rows:,}")
    print(f"{'format':8} {'data MB':>8} {'write s':>8} {'read s':>7} {'rows/s':>10} "
          f"{'peak RSS MB':>11} {'(after imports)':>15}")  # fmt: skip
    with MotoServer() as server:
        client = s3_client(S3Options(endpoint_url=server.endpoint_url))
        client.create_bucket(Bucket="inv-bucket")
        for fmt in args.formats:
            t0 = time.perf_counter()
            url = write_inventory(client, "inv-bucket", fmt.lower(), table, fmt, args.files)
            written = time.perf_counter() - t0
            size = sum(
                o["Size"]
                for o in client.list_objects_v2(Bucket="inv-bucket", Prefix=f"{fmt.lower()}/")[
                    "Contents"
                ]
                if "/data/" in o["Key"]
            )
            out = subprocess.run(
                [sys.executable, __file__, "--read", url, server.endpoint_url,
                 "--batch-rows", str(args.batch_rows)],
                check=True, capture_output=True, text=True, env=dict(os.environ),
            ).stdout  # fmt: skip
            r = json.loads(out.strip().splitlines()[-1])
            assert r["objects"] == args.rows, r
            rate = args.rows / r["seconds"]
            print(
                f"{fmt:8} {size / 1e6:8.1f} {written:8.1f} {r['seconds']:7.1f} {rate:10,.0f} "
                f"{r['peak_mb']:11.0f} {r['base_mb']:15.0f}"
            )


if __name__ == "__main__":
    main()
