"""One-task verification: reading the output back with GDAL against verifying from memory.

Builds ``--scenes`` (4) scenes of ``--size`` (2560) square RGB uint8 from the real Landsat 7
raster, as ``bench_midsize.py`` does, and for each writes its JPEG q75 COG with the tile
writer and verifies it both ways, alternated (``--rounds``, the median kept), in this
process:

* **read back**: ``encode_cog`` then ``check_output`` (GDAL reads the output whole and the
  source a second time);
* **from memory**: ``encode_verified`` (every tile checked as it is encoded, from the source
  pixels read to encode it; the file's structure, overviews, metadata and tile CRCs).

Both give the same figures (the SSIM is printed). CPU seconds (``process_time``) are quoted
beside wall seconds: on a shared machine they move less with other processes' load.

Usage::

    python bench/bench_verify.py [--scenes 4] [--size 2560] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_midsize import RGB, build_scenes  # noqa: E402

from compactor import timing  # noqa: E402
from compactor.encode import choose_profile, encode_cog  # noqa: E402
from compactor.gdal import read_info  # noqa: E402
from compactor.verify import check_output, encode_verified  # noqa: E402

WAYS = ("read back", "from memory")


def run(way: str, src: Path, out: Path) -> tuple[float, float, float | None, dict[str, float]]:
    info = read_info(str(src))
    profile = choose_profile(info, "jpeg", 75)
    out.unlink(missing_ok=True)
    with timing.collecting() as stages:
        wall, cpu = time.perf_counter(), time.process_time()
        if way == "read back":
            encode_cog(str(src), out, profile, info)
            fidelity = check_output(str(src), str(out), info, profile)
        else:
            _, fidelity = encode_verified(str(src), out, info, profile)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, fidelity.ssim, dict(stages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--size", type=int, default=2560)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=REPO / "bench" / "out" / "verify")
    args = ap.parse_args()
    if not RGB.exists():
        sys.exit(f"needs the real rasters of ../shared/data/rasterio-cc0/ ({RGB} is missing)")
    scenes = build_scenes(args.workdir / "source", args.scenes, args.size)
    walls: dict[str, list[float]] = defaultdict(list)
    cpus: dict[str, list[float]] = defaultdict(list)
    ssims: dict[str, list[float | None]] = defaultdict(list)
    stages: dict[str, dict[str, float]] = {w: defaultdict(float) for w in WAYS}
    for r in range(args.rounds):
        for src in scenes:
            for way in WAYS if r % 2 == 0 else WAYS[::-1]:
                wall, cpu, ssim, st = run(way, src, args.workdir / "out.tif")
                walls[way].append(wall)
                cpus[way].append(cpu)
                if r == 0:
                    ssims[way].append(ssim)
                for name, s in st.items():
                    stages[way][name] += s / (args.rounds * len(scenes))
    print(f"{args.scenes} scenes of {args.size}² RGB uint8, JPEG q75, {args.rounds} rounds; "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")  # fmt: skip
    base_wall = statistics.median(walls[WAYS[0]])
    base_cpu = statistics.median(cpus[WAYS[0]])
    print("| verification | wall s per scene (median) | CPU s per scene (median) | wall ratio "
          "| CPU ratio | SSIM of each scene |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for way in WAYS:
        w, c = statistics.median(walls[way]), statistics.median(cpus[way])
        figures = " ".join(f"{s:.10f}" if s is not None else "-" for s in ssims[way])
        print(f"| {way} | {w:.3f} | {c:.3f} | {w / base_wall:.2f}x | {c / base_cpu:.2f}x "
              f"| {figures} |")  # fmt: skip
    names = sorted({n for w in WAYS for n in stages[w]}, key=lambda n: -max(
        stages[w].get(n, 0.0) for w in WAYS))  # fmt: skip
    print("\nstages, ms per scene (mean, wall):\n")
    print("| stage | " + " | ".join(WAYS) + " |")
    print("| --- | " + " | ".join("---" for _ in WAYS) + " |")
    for name in names:
        print(f"| {name} | " + " | ".join(f"{1000 * stages[w].get(n, 0.0):.0f}"
                                         for w in WAYS for n in [name]) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
