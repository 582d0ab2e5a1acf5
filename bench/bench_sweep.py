"""The nightly sweep: what a run costs over an archive where N scenes are finished and 3
are new, against a run over the 3 new scenes alone. S3 requests (counted by operation at a
proxy in front of a moto server) and wall time, side by side in one process.

1. A real backfill of the smallest N scenes (256 x 256 RGB windows of the real Landsat
   raster; ``--archive`` to a prefix, default settings: automatic quality at SSIM 0.95),
   on one local Dask cluster (2 workers x 1 thread) shared by every run below.
2. For a larger N, the scenes beyond the real backfill are *fabricated* the way a finished
   run leaves them: a state record (the real one, with its URLs rewritten), an output
   (a server-side copy of a real output), the original in GLACIER under the archive
   prefix, and the finished index entries (written with compactor's own index writer).
   Their sources are gone, as after a real run.
3. Then, ``--repeat`` times, alternating: the sweep (3 new scenes uploaded under the same
   source prefix, the same command run again) and the 3 new scenes alone (3 scenes under a
   fresh source prefix into a fresh destination and archive prefix).

Usage::

    python bench/bench_sweep.py [--finished 1000,10000] [--repeat 3] [--size 256]

Prints a table per N and the checks of issue 14: the sweep makes no more requests than the
3 new scenes alone plus the pages of listings it reads (the finished index), and takes at
most 1.5x their time.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import (
    Endpoint,
    median,
    need_shared_data,
    s3_endpoint,
    scene_bytes,
    table,
    timed,
    upload_scenes,
)

SRC, DST, ARC = "bench-src", "bench-dst", "bench-arc"


def run(ep: Endpoint, client: Any, source: str, dest: str, archive: str) -> tuple[Any, int, float]:
    """One ``compactor.run``: the report, the requests it made, its wall time."""
    import compactor

    before = ep.count()
    report, seconds = timed(
        compactor.run,
        source=source,
        dest=dest,
        archive=archive,
        endpoint_url=ep.url,
        client=client,
        progress=False,
    )
    after = ep.count()
    after.subtract(before)
    if report.totals.failed:
        sys.exit(f"a scene failed: {[s.reason for s in report.scenes if s.status == 'failed']}")
    return report, sum(after.values()), seconds


def fabricate(ep: Endpoint, first: int, last: int, size: int) -> None:
    """Scenes ``first`` .. ``last - 1`` as a finished run leaves them (see the docstring)."""
    from compactor.records._results import SceneResult
    from compactor.scene._spec import RunContext
    from compactor.settings._config import resolve_settings
    from compactor.sources._finished import Conditions
    from compactor.sources._index_writer import IndexWriter
    from compactor.storage import Location, S3Options, S3Store

    c = ep.client
    template_key = "out/_compactor/state/s3/bench-src/scenes/s000000.tif.json"
    template = json.loads(c.get_object(Bucket=DST, Key=template_key)["Body"].read())
    original = scene_bytes(0, size)

    def one(i: int) -> None:
        name = f"s{i:06d}.tif"
        state = dict(template)
        state["source"] = f"s3://{SRC}/scenes/{name}"
        state["output"] = {**template["output"], "url": f"s3://{DST}/out/{name}"}
        state["archive"] = {**template["archive"], "url": f"s3://{ARC}/archive/{name}"}
        key = f"out/_compactor/state/s3/{SRC}/scenes/{name}.json"
        c.put_object(Bucket=DST, Key=key, Body=json.dumps(state).encode())
        c.copy_object(
            Bucket=DST, Key=f"out/{name}", CopySource={"Bucket": DST, "Key": "out/s000000.tif"}
        )
        c.put_object(Bucket=ARC, Key=f"archive/{name}", Body=original, StorageClass="GLACIER")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(first, last)))
    settings = resolve_settings(
        {"source": f"s3://{SRC}/scenes/", "dest": f"s3://{DST}/out/",
         "archive": f"s3://{ARC}/archive/", "endpoint_url": ep.server.endpoint_url}
    )  # fmt: skip
    context = RunContext.from_settings(settings, "fabricated")
    writer = IndexWriter(
        S3Store(S3Options(endpoint_url=ep.server.endpoint_url)),
        Location.parse(context.dest),
        f"fabricated-{first:06d}",
        Conditions(context.finish_digest(), context.policy_digest()),
    )
    for i in range(first, last):
        writer.add(
            SceneResult(
                source=f"s3://{SRC}/scenes/s{i:06d}.tif",
                output=f"s3://{DST}/out/s{i:06d}.tif",
                status="compacted",
                finished_version="-",
            )
        )
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--finished", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    need_shared_data()
    sizes = sorted(int(n) for n in args.finished.split(","))

    from distributed import Client, LocalCluster

    with (
        s3_endpoint(SRC, DST, ARC) as ep,
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        real = sizes[0]
        keys = [f"scenes/s{i:06d}.tif" for i in range(real)]
        upload_scenes(ep.client, SRC, keys, args.size)
        report, requests, seconds = run(
            ep, client, f"s3://{SRC}/scenes/", f"s3://{DST}/out/", f"s3://{ARC}/archive/"
        )
        print(
            table(
                ["backfill", "scenes", "requests", "per scene", "wall s", "scenes/s"],
                [
                    [
                        "real run",
                        report.totals.compacted,
                        requests,
                        f"{requests / max(1, report.totals.compacted):.1f}",
                        f"{seconds:.1f}",
                        f"{report.totals.compacted / seconds:.1f}",
                    ]
                ],
            )
        )
        print()
        have, new = real, 0
        checks = []
        for n in sizes:
            if n > have:
                fabricate(ep, have, n, args.size)
                have = n
            sweeps, alones = [], []
            for r in range(args.repeat):
                names = [f"scenes/new{new + i:05d}.tif" for i in range(3)]
                upload_scenes(ep.client, SRC, names, args.size, first=10**6 + new)
                sweep_report, sweep_requests, sweep_s = run(
                    ep, client, f"s3://{SRC}/scenes/", f"s3://{DST}/out/", f"s3://{ARC}/archive/"
                )
                assert sweep_report.totals.compacted == 3, sweep_report.totals
                sweeps.append((sweep_requests, sweep_s, sweep_report.totals.finished_earlier))
                alone = f"alone{n}-{r}"
                names = [f"{alone}/new{new + i:05d}.tif" for i in range(3)]
                upload_scenes(ep.client, SRC, names, args.size, first=10**6 + new)
                alone_report, alone_requests, alone_s = run(
                    ep, client, f"s3://{SRC}/{alone}/", f"s3://{DST}/{alone}/",
                    f"s3://{ARC}/{alone}/",
                )  # fmt: skip
                assert alone_report.totals.compacted == 3
                alones.append((alone_requests, alone_s))
                new += 3
            index_parts = len(
                [
                    o
                    for page in ep.client.get_paginator("list_objects_v2").paginate(
                        Bucket=DST, Prefix="out/_compactor/index/"
                    )
                    for o in page.get("Contents") or []
                ]
            )
            sweep_req = median([s[0] for s in sweeps])
            alone_req = median([a[0] for a in alones])
            sweep_s = median([s[1] for s in sweeps])
            alone_s = median([a[1] for a in alones])
            pages = 1 + index_parts  # the index listing and one GET per part
            print(
                table(
                    [f"N = {n:,} finished", "finished earlier", "requests", "wall s (median)"],
                    [
                        ["sweep: N + 3 new", sweeps[-1][2], int(sweep_req), f"{sweep_s:.2f}"],
                        ["the 3 new alone", 0, int(alone_req), f"{alone_s:.2f}"],
                    ],
                )
            )
            extra = sweep_req - alone_req
            ratio = sweep_s / alone_s
            print(
                f"  sweep - alone = {extra:.0f} requests; listing pages read for the "
                f"finished index: {pages} (1 LIST + {index_parts} parts)"
            )
            print(f"  wall ratio sweep / alone = {ratio:.2f}")
            print()
            checks.append((n, extra <= pages, ratio <= 1.5))
        for n, requests_ok, wall_ok in checks:
            print(
                f"N = {n:,}: requests {'PASS' if requests_ok else 'FAIL'}"
                f" (<= 3 new alone + listing pages), wall {'PASS' if wall_ok else 'FAIL'}"
                " (<= 1.5x)"
            )
    ops = Counter(ep.proxy.operations)
    print("\nall requests by operation:", dict(ops.most_common()))


if __name__ == "__main__":
    main()
