"""Many tiny scenes: do the client and the workers stay flat in the number of scenes? A
run over 1,000 and over 10,000 tiny scenes (64 x 64 RGB windows of the real Landsat
raster; ``--archive`` to a prefix), each ``compactor run`` its own process with a local
Dask cluster of 2 workers, sampled every 0.25 s for the RSS of the client process (the
CLI, which holds the scheduler and the nannies of the local cluster too) and of each
worker process (forked by the cluster's fork server: the grandchildren of the CLI), and
for the number of scenes done (the leases released, one request at the end of each scene,
counted by the proxy in front of the S3 server).

Usage::

    python bench/bench_many_scenes.py [--counts 1000,10000] [--size 64] [--trees A,B]

``--trees`` runs each count with each source tree on ``PYTHONPATH`` (e.g. ``/work/main``
against this one: before and after, side by side in one run). Prints scenes per second,
requests per scene and peak RSS per run; for each run, each worker's RSS at every tenth
of the run (or every 1,000 scenes) and its end over its RSS after the first 1,000 scenes
(the first fifth of a shorter run), the check of issue 26 (<= 1.1); and the check of
issue 14: the client's peak RSS at the largest count within 1.2x of that at the smallest.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from _common import REPO, need_shared_data, s3_endpoint, table, upload_scenes

SRC, DST, ARC = "bench-src", "bench-dst", "bench-arc"


@dataclass
class Sample:
    seconds: float
    done: int
    client: float
    workers: dict[int, float] = field(default_factory=dict)


@dataclass
class Measured:
    out: str
    seconds: float
    samples: list[Sample]

    @property
    def client_peak(self) -> float:
        return max((s.client for s in self.samples), default=0.0)

    @property
    def workers_peak(self) -> float:
        return max((sum(s.workers.values()) for s in self.samples), default=0.0)


def _workers(me: psutil.Process) -> dict[int, float]:
    """The RSS (MB) of each worker process: the children of the CLI's children (the fork
    server's forks); the fork server and the resource tracker are the CLI's children."""
    rss: dict[int, float] = {}
    for child in me.children():
        with contextlib.suppress(psutil.Error):
            for worker in child.children():
                with contextlib.suppress(psutil.Error):
                    rss[worker.pid] = worker.memory_info().rss / 2**20
    return rss


def measured(cmd: list[str], env: dict[str, str], done: callable) -> Measured:  # type: ignore[valid-type]
    """Run ``cmd``, sampling the RSS of it and of its workers, and ``done()``."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    samples: list[Sample] = []

    def sample() -> None:
        with contextlib.suppress(psutil.Error):
            me = psutil.Process(proc.pid)
            while proc.poll() is None:
                at = time.perf_counter() - t
                samples.append(Sample(at, done(), me.memory_info().rss / 2**20, _workers(me)))
                time.sleep(0.25)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t
    watcher.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}")
    return Measured(out, seconds, samples)


def milestones(n: int) -> list[int]:
    step = 1000 if n >= 10_000 else max(1, n // 10)
    return [*range(step, n, step), n]


def base_of(n: int) -> int:
    """The scenes after which a worker's RSS is its baseline: 1,000, or a fifth of a
    shorter run."""
    return 1000 if n >= 5000 else max(1, n // 5)


def at(samples: list[Sample], done: int) -> Sample | None:
    """The first sample with ``done`` scenes done and workers alive (the last with workers
    if none has that many: the workers stop as the last results arrive)."""
    live = [s for s in samples if s.workers]
    for s in live:
        if s.done >= done:
            return s
    return live[-1] if live else None


def rss_table(label: str, n: int, m: Measured) -> tuple[str, float]:
    """Each worker's RSS (and the client's) over the run; the worst worker's end over
    its RSS after the base scenes."""
    pids = sorted({pid for s in m.samples for pid in s.workers})
    rows = []
    for done in milestones(n):
        s = at(m.samples, done)
        if s is None:
            continue
        rows.append(
            [f"{done:,}", f"{s.seconds:.0f}", f"{s.client:.0f}"]
            + [f"{s.workers[p]:.0f}" if p in s.workers else "-" for p in pids]
        )
    base, end = at(m.samples, base_of(n)), at(m.samples, n)
    worst = 0.0
    if base is not None and end is not None:
        ratios = [
            end.workers[p] / base.workers[p] for p in pids if p in base.workers and p in end.workers
        ]
        worst = max(ratios, default=0.0)
        rows.append(
            [f"end / {base_of(n):,}", "", f"{end.client / base.client:.2f}"]
            + [
                f"{end.workers[p] / base.workers[p]:.2f}"
                if p in base.workers and p in end.workers
                else "-"
                for p in pids
            ]
        )
    headers = ["scenes done", "s", "client MB"] + [f"worker {i + 1} MB" for i in range(len(pids))]
    return f"{label}\n" + table(headers, rows), worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1000,10000")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--trees", default=str(REPO), help="source trees, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    need_shared_data()
    counts = [int(n) for n in args.counts.split(",")]
    trees = args.trees.split(",")
    rows, tables = [], []
    client_peaks: dict[str, list[float]] = {t: [] for t in trees}
    with s3_endpoint(SRC, DST, ARC) as ep:
        ep.proxy.trace = []
        trace = ep.proxy.trace
        for n in counts:
            for tn, tree in enumerate(trees):
                prefix = f"run{n}-{tn}"
                keys = [f"{prefix}/s{i:06d}.tif" for i in range(n)]
                upload_scenes(ep.client, SRC, keys, args.size)
                before = ep.count()
                trace.clear()
                released = f"/{DST}/{prefix}/_compactor/leases/"

                def done(released: str = released) -> int:
                    return sum(
                        1
                        for op, path in list(trace)
                        if op == "DeleteObject" and path.startswith(released)
                    )

                env = {**os.environ, "AWS_ENDPOINT_URL": ep.url, "PYTHONPATH": tree}
                cmd = [
                    str(Path(sys.executable).parent / "compactor"), "-q", "run",
                    "--source", f"s3://{SRC}/{prefix}/", "--dest", f"s3://{DST}/{prefix}/",
                    "--archive", f"s3://{ARC}/{prefix}/", "--workers", str(args.workers),
                ]  # fmt: skip
                m = measured(cmd, env, done)
                after = ep.count()
                after.subtract(before)
                requests = sum(after.values())
                label = f"{n:,} scenes, {tree}"
                text, worst = rss_table(label, n, m)
                tables.append(text)
                client_peaks[tree].append(m.client_peak)
                rows.append(
                    [label, f"{m.seconds:.0f}", f"{n / m.seconds:.1f}", f"{requests / n:.2f}",
                     f"{m.client_peak:.0f}", f"{m.workers_peak:.0f}", f"{worst:.2f}"]
                )  # fmt: skip
                print(text + "\n", flush=True)
    print()
    headers = ["run", "wall s", "scenes/s", "requests/scene", "client MB", "workers MB",
               "worker end/base"]  # fmt: skip
    print(table(headers, rows))
    for tree, peaks in client_peaks.items():
        if len(peaks) > 1:
            ratio = peaks[-1] / peaks[0]
            verdict = "PASS" if ratio <= 1.2 else "FAIL"
            print(
                f"\n{tree}: client peak RSS {counts[-1]:,} / {counts[0]:,} scenes = {ratio:.2f} "
                f"({verdict}: <= 1.2)"
            )
    print("\nworker end/base: the largest of the workers' RSS at the end over after the first "
          "1,000 scenes (a fifth of a shorter run); issue 26: <= 1.1")  # fmt: skip


if __name__ == "__main__":
    main()
