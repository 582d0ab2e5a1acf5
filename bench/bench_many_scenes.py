"""Many tiny scenes: does the client stay flat in the number of scenes? A run over 1,000 and
over 10,000 tiny scenes (64 x 64 RGB windows of the real Landsat raster; ``--archive`` to a
prefix), each ``compactor run`` its own process with a local Dask cluster of 2 workers,
sampled every 0.1 s for the RSS of the client process (the CLI, which holds the scheduler
of the local cluster too) and of the workers.

Usage::

    python bench/bench_many_scenes.py [--counts 1000,10000] [--size 64]

Prints scenes per second, requests per scene and peak RSS per run, and the check of issue
14: the client's peak RSS at the largest count within 1.2x of that at the smallest.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time

import psutil
from _common import REPO, need_shared_data, s3_endpoint, table, upload_scenes

SRC, DST, ARC = "bench-src", "bench-dst", "bench-arc"


def measured(cmd: list[str], env: dict[str, str]) -> tuple[str, float, float, float]:
    """Run ``cmd``; its stdout, wall seconds, the peak RSS (MB) of the process itself and
    of its child processes together."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    peak = [0.0, 0.0]

    def sample() -> None:
        with contextlib.suppress(psutil.Error):
            me = psutil.Process(proc.pid)
            while proc.poll() is None:
                peak[0] = max(peak[0], me.memory_info().rss / 2**20)
                kids = 0.0
                for child in me.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        kids += child.memory_info().rss / 2**20
                peak[1] = max(peak[1], kids)
                time.sleep(0.1)

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
    parser.add_argument("--counts", default="1000,10000")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    need_shared_data()
    counts = [int(n) for n in args.counts.split(",")]
    rows = []
    with s3_endpoint(SRC, DST, ARC) as ep:
        env = {**os.environ, "AWS_ENDPOINT_URL": ep.url}
        for n in counts:
            prefix = f"run{n}"
            keys = [f"{prefix}/s{i:06d}.tif" for i in range(n)]
            upload_scenes(ep.client, SRC, keys, args.size)
            before = ep.count()
            cmd = [
                str(REPO / ".venv/bin/compactor"), "-q", "run",
                "--source", f"s3://{SRC}/{prefix}/", "--dest", f"s3://{DST}/{prefix}/",
                "--archive", f"s3://{ARC}/{prefix}/", "--workers", "2",
            ]  # fmt: skip
            out, seconds, rss, workers = measured(cmd, env)
            after = ep.count()
            after.subtract(before)
            requests = sum(after.values())
            rows.append(
                [f"{n:,} scenes", f"{seconds:.0f}", f"{n / seconds:.1f}",
                 f"{requests / n:.2f}", f"{rss:.0f}", f"{workers:.0f}"]
            )  # fmt: skip
            print(out.strip().splitlines()[0] if out.strip() else "", flush=True)
    print()
    headers = ["run", "wall s", "scenes/s", "requests/scene", "client MB", "workers MB"]
    print(table(headers, rows))
    small, large = float(rows[0][4]), float(rows[-1][4])
    ratio = large / small
    verdict = "PASS" if ratio <= 1.2 else "FAIL"
    print(
        f"\nclient peak RSS {counts[-1]:,} / {counts[0]:,} scenes = {ratio:.2f} ({verdict}: <= 1.2)"
    )


if __name__ == "__main__":
    main()
