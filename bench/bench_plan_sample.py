"""``compactor plan --sample`` over an S3 Inventory report of a million objects: wall time
and peak memory of the planning process.

A moto server on loopback holds six real scenes (windows of 128 to 768 pixels of the
Landsat 7 RGB raster in ``../shared/data/rasterio-cc0/``) and an S3 Inventory report (CSV,
gzip, as S3 writes it) of ``--rows`` objects, each row one of those six by size and ETag
under its own key. The sample ``compactor plan`` will draw is computed first with the same
code and seed, and only those objects are created (server-side copies of the templates):
the plan lists every row, reads only the sample.

Then ``compactor plan --inventory ... --sample N`` runs as its own process (with a local
Dask cluster of 2 workers) and is sampled every 0.1 s for its RSS; the workers' RSS is
shown apart. Usage::

    python bench/bench_plan_sample.py [--rows 1000000] [--sample 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
import psutil
from _common import REPO, need_shared_data, s3_endpoint, scene_bytes, table

SRC, DST, INV = "bench-src", "bench-dst", "bench-inv"
SIZES = (128, 256, 384, 512, 640, 768)


def rows(n: int, templates: list[tuple[int, str]]) -> Any:
    """``n`` inventory rows: object ``i`` is template ``i % 6`` (its size and ETag)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from tests.inventory_fixture import DEFAULT_MTIME

    which = np.arange(n) % len(templates)
    index = pa.array(np.arange(n)).cast(pa.string())
    group = pa.array(np.arange(n) // 1000).cast(pa.string())
    keys = pc.binary_join_element_wise("scenes/", group, "/s", index, ".tif", "")
    sizes = np.array([t[0] for t in templates])[which]
    etags = np.array([t[1] for t in templates])[which]
    mtime = int(DEFAULT_MTIME.timestamp() * 1000)
    return pa.table(
        {
            "bucket": pa.array(np.full(n, SRC)),
            "key": keys,
            "size": pa.array(sizes),
            "last_modified_date": pa.array(np.full(n, mtime), pa.timestamp("ms", "UTC")),
            "e_tag": pa.array(etags),
            "storage_class": pa.array(np.full(n, "STANDARD")),
        }
    )


def sample_keys(manifest: str, endpoint: str, n: int, seed: int) -> tuple[list[str], float]:
    """The keys ``compactor plan --sample n --seed seed`` will read (same code, same seed),
    and how long listing and sampling took in this process."""
    from compactor.runner import sample_scenes
    from compactor.scene import RunContext
    from compactor.settings import resolve_settings
    from compactor.sources import discover

    settings = resolve_settings(
        {
            "inventory": manifest,
            "source": f"s3://{SRC}/",
            "dest": f"s3://{DST}/out/",
            "endpoint_url": endpoint,
        }
    )
    context = RunContext.from_settings(settings, "bench")
    t = time.perf_counter()
    _, draws, _ = sample_scenes(discover(settings, context), n, seed)
    keys = [d.item.source.removeprefix(f"s3://{SRC}/") for d in draws]
    return keys, time.perf_counter() - t


def measured(cmd: list[str], env: dict[str, str]) -> tuple[str, float, float, float]:
    """Run ``cmd``; its stdout, wall seconds, peak RSS (MB) of the process itself and of
    its child processes (the Dask workers) together."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    peak = [0.0, 0.0]

    def sample() -> None:
        try:
            me = psutil.Process(proc.pid)
            while proc.poll() is None:
                peak[0] = max(peak[0], me.memory_info().rss / 2**20)
                kids = 0.0
                for child in me.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        kids += child.memory_info().rss / 2**20
                peak[1] = max(peak[1], kids)
                time.sleep(0.1)
        except psutil.Error:
            pass

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t
    watcher.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}")
    return out, seconds, peak[0], peak[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    need_shared_data()
    from tests.inventory_fixture import write_inventory

    with s3_endpoint(SRC, DST, INV) as ep:
        templates = []
        for k, size in enumerate(SIZES):
            body = scene_bytes(k, size)
            r = ep.client.put_object(Bucket=SRC, Key=f"templates/t{k}.tif", Body=body)
            templates.append((len(body), r["ETag"].strip('"')))
        t = time.perf_counter()
        manifest = write_inventory(
            ep.client, INV, "inventory", rows(args.rows, templates), fmt="CSV",
            source_bucket=SRC,
        )  # fmt: skip
        print(f"wrote a {args.rows:,}-row CSV inventory in {time.perf_counter() - t:.1f} s")
        keys, listing_s = sample_keys(manifest, ep.server.endpoint_url, args.sample, args.seed)
        for key in keys:
            i = int(key.rsplit("/s", 1)[1].removesuffix(".tif"))
            ep.client.copy_object(
                Bucket=SRC, Key=key,
                CopySource={"Bucket": SRC, "Key": f"templates/t{i % len(SIZES)}.tif"},
            )  # fmt: skip
        print(f"listed and sampled in-process in {listing_s:.1f} s: {len(keys)} scenes created")
        env = {**os.environ, "AWS_ENDPOINT_URL": ep.server.endpoint_url}
        cmd = [
            str(REPO / ".venv/bin/compactor"), "-q", "plan", "--inventory", manifest,
            "--source", f"s3://{SRC}/", "--dest", f"s3://{DST}/out/", "--sample", str(args.sample),
            "--seed", str(args.seed), "--workers", "2",
        ]  # fmt: skip
        out, seconds, rss, workers = measured(cmd, env)
    summary = [ln for ln in out.splitlines() if "planned:" in ln]
    print()
    row = ["compactor plan", f"{args.rows:,}", len(keys), f"{seconds:.1f}", f"{rss:.0f}"]
    headers = ["plan --sample", "rows", "sampled", "wall s", "peak RSS MB", "workers MB"]
    print(table(headers, [[*row, f"{workers:.0f}"]]))
    print()
    print(summary[0] if summary else out[-2000:])
    print(
        f"\nunder 60 s: {'PASS' if seconds < 60 else 'FAIL'}; "
        f"under 1 GB: {'PASS' if rss < 1024 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
