"""Many mid-size scenes: compactor against two single-threaded GDAL COG conversions at a time.

Builds ``--scenes`` (16) scenes of 2560 x 2560 RGB uint8 (19.7 MB raw each) from the real
Landsat 7 RGB raster in ``../shared/data/rasterio-cc0/RGB.byte.tif``: mosaics of its flipped
copies, nodata collars included, each cut at an offset of its own so no two scenes are the
same bytes; uncompressed tiled GeoTIFFs on local disk. Then times, on the same inputs, same
codec and quality (JPEG q75), local disk in and out, the tools interleaved round by round
(``--rounds``, the median kept) so that load from other processes falls on all of them:

* ``compactor run --workers 2 --codec jpeg --quality 75 --min-ssim 0`` (no ``--archive``);
* GDAL's COG driver (``rasterio.shutil.copy``, ``COMPRESS=JPEG QUALITY=75 NUM_THREADS=1``),
  two processes at a time: one process per scene (``xargs -P2``), and two processes that
  convert half of the scenes each (no interpreter start per scene: the stronger baseline).

Usage::

    python bench/bench_midsize.py [--scenes 16] [--size 2560] [--rounds 2] [--workdir DIR]

Prints markdown tables: wall time, throughput, output size and the ratios; then
compactor's **stage breakdown** per scene, measured by the stage timers of the scene tasks
(``stages`` in the scene log, :mod:`compactor.timing`) and of the run (``stages`` in
``report.json``: cluster start, listing). *Scheduler overhead* is the worker time of the
scenes phase not spent inside a scene task (both workers busy throughout would make it 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import rasterio

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COMPACTOR_SHARED_DATA", REPO.parent / "shared/data/rasterio-cc0"))
RGB = SHARED / "RGB.byte.tif"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

GDAL_ONE = (
    "import sys, rasterio\n"
    "from rasterio.shutil import copy\n"
    "for src in sys.argv[2:]:\n"
    "    dst = sys.argv[1] + '/' + src.rsplit('/', 1)[-1]\n"
    "    copy(src, dst, driver='COG', COMPRESS='JPEG', QUALITY='75', NUM_THREADS='1')\n"
)


def build_scenes(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` distinct ``size``-square RGB scenes cut from a mosaic of the Landsat raster
    (flipped copies side by side, so its nodata collars recur inside every scene)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"scene-{i:03d}.tif" for i in range(count)]
    # compactor lists the whole folder: scenes an earlier, larger run left are removed.
    for stale in set(folder.glob("*")) - set(paths):
        stale.unlink()
    if all(p.exists() for p in paths):
        return paths
    with rasterio.open(RGB) as src:
        tile = src.read()
        profile = src.profile
    _, th, tw = tile.shape
    variants = [tile, tile[:, :, ::-1], tile[:, ::-1, :], tile[:, ::-1, ::-1]]
    across, down = -(-size // tw) + 2, -(-size // th) + 2
    rows = [np.concatenate([variants[(r + c) % 4] for c in range(across)], axis=2)
            for r in range(down)]  # fmt: skip
    mosaic = np.concatenate(rows, axis=1)
    profile.update(
        driver="GTiff", width=size, height=size, tiled=True, blockxsize=512, blockysize=512,
        compress=None, interleave="pixel",
    )  # fmt: skip
    span_x, span_y = mosaic.shape[2] - size, mosaic.shape[1] - size
    for i, path in enumerate(paths):
        x, y = (i * 7919) % span_x, (i * 104729) % span_y
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(mosaic[:, y : y + size, x : x + size])
    return paths


def run_compactor(src: Path, out: Path, report: Path) -> float:
    for d in (out, report):
        shutil.rmtree(d, ignore_errors=True)
    cmd = [
        str(BIN / "compactor"), "-q", "run", "--source", str(src), "--dest", str(out),
        "--report", str(report), "--workers", "2", "--codec", "jpeg", "--quality", "75",
        "--min-ssim", "0",
    ]  # fmt: skip
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"compactor failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds


def run_gdal(scenes: list[Path], out: Path, per_scene: bool) -> float:
    """Two single-threaded COG conversions at a time: a process per scene (xargs -P2), or
    two processes taking half of the scenes each."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    py = [sys.executable, "-c", GDAL_ONE, str(out)]
    t = time.perf_counter()
    if per_scene:
        names = "\n".join(str(p) for p in scenes)
        subprocess.run(["xargs", "-P2", "-n1", *py], input=names, text=True, check=True)
    else:
        procs = [subprocess.Popen([*py, *map(str, scenes[k::2])]) for k in range(2)]
        if any(p.wait() for p in procs):
            sys.exit("GDAL conversion failed")
    return time.perf_counter() - t


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.tif"))


def ssim_of(src: Path, out: Path) -> float:
    """compactor's SSIM of ``out`` against ``src`` (masked by the source's nodata)."""
    from compactor.fidelity import ssim

    with rasterio.open(src) as s, rasterio.open(out) as o:
        a, b = s.read(), o.read(indexes=[1, 2, 3])
    valid = np.any(a != 0, axis=0)
    a[:, ~valid] = 0
    b[:, ~valid] = 0
    return min(ssim(a[k], b[k], 255.0, valid) for k in range(3))


def stage_table(report: Path, scenes: int) -> tuple[list[list[str]], float]:
    """Per-scene seconds by stage, from the scene log and report.json."""
    from compactor.records import read_scene_log

    results = list(read_scene_log(str(report)))
    run = json.loads((report / "report.json").read_text())
    run_stages: dict[str, float] = run.get("stages", {})
    workers = 2
    totals: dict[str, float] = defaultdict(float)
    task_seconds = 0.0
    for r in results:
        task_seconds += r.seconds
        for k, v in r.stages.items():
            totals[k] += v
        totals["other (in task)"] += max(0.0, r.seconds - sum(r.stages.values()))
    rows: list[tuple[str, float]] = [(k, v / scenes) for k, v in totals.items()]
    for k in ("cluster start", "listing", "preflight", "cluster stop"):
        if k in run_stages:
            rows.append((f"{k} (run, once; per scene)", run_stages[k] / scenes))
    phase = run_stages.get("scenes", 0.0)
    rows.append(("scheduler overhead (idle worker time)",
                 max(0.0, phase * workers - task_seconds) / scenes))  # fmt: skip
    total = sum(v for _, v in rows)
    rows.sort(key=lambda kv: -kv[1])
    out = [[name, f"{v * 1000:.0f}", f"{v / total:.1%}"] for name, v in rows]
    out.append(["**total (per scene, both workers' time)**", f"{total * 1000:.0f}", "100%"])
    return out, task_seconds / len(results)


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=16)
    ap.add_argument("--size", type=int, default=2560)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=REPO / "bench" / "out" / "midsize")
    args = ap.parse_args()
    if not RGB.exists():
        print(f"skipped: needs the real rasters of ../shared/data/rasterio-cc0/ ({RGB} is missing)")
        return
    work = args.workdir
    src = work / "source"
    scenes = build_scenes(src, args.scenes, args.size)
    raw_mb = args.scenes * args.size * args.size * 3 / 1e6
    in_mb = sum(p.stat().st_size for p in scenes) / 1e6
    print(f"{args.scenes} scenes of {args.size} x {args.size} x 3 uint8 ({raw_mb:.1f} MB raw, "
          f"{in_mb:.1f} MB on disk); {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}",
          flush=True)  # fmt: skip
    tools = {
        "GDAL COG `NUM_THREADS=1`, 2 processes x half the scenes": lambda: run_gdal(
            scenes, work / "gdal-2p", per_scene=False
        ),
        "GDAL COG `NUM_THREADS=1`, `xargs -P2` (a process per scene)": lambda: run_gdal(
            scenes, work / "gdal-xargs", per_scene=True
        ),
        "**compactor** `--workers 2`": lambda: run_compactor(
            src, work / "compactor", work / "report"
        ),
    }
    times: dict[str, list[float]] = defaultdict(list)
    for n in range(args.rounds):
        for name, fn in tools.items():
            times[name].append(fn())
            print(f"round {n + 1}: {name}: {times[name][-1]:.2f} s", flush=True)
    outs = {
        "GDAL COG `NUM_THREADS=1`, 2 processes x half the scenes": work / "gdal-2p",
        "GDAL COG `NUM_THREADS=1`, `xargs -P2` (a process per scene)": work / "gdal-xargs",
        "**compactor** `--workers 2`": work / "compactor",
    }
    ref_name = next(iter(tools))
    ref_s = statistics.median(times[ref_name])
    ref_b = folder_bytes(outs[ref_name])
    rows = []
    for name in tools:
        s, b = statistics.median(times[name]), folder_bytes(outs[name])
        ssims = [ssim_of(p, outs[name] / p.name) for p in scenes[:4]]
        rows.append([
            name, f"{s:.2f}", " / ".join(f"{t:.1f}" for t in times[name]),
            f"{raw_mb / s:.1f}", f"{b / 1e6:.1f}", f"{b / ref_b:.3f}",
            f"{statistics.mean(ssims):.4f}", f"{ref_s / s:.2f}x",
        ])  # fmt: skip
    print()
    print(markdown(
        ["tool (JPEG q75, local disk)", "wall s (median)", "rounds s", "MB/s raw", "output MB",
         "size / GDAL", "SSIM (4 scenes)", "speed / GDAL 2 processes"],
        rows,
    ))  # fmt: skip
    print()
    stages, per_task = stage_table(work / "report", args.scenes)
    print(f"compactor stage breakdown, per scene (last round; a scene task took {per_task:.2f} s"
          " on average):\n")  # fmt: skip
    print(markdown(["stage", "ms per scene", "share"], stages))
    ours = statistics.median(times["**compactor** `--workers 2`"])
    size = folder_bytes(outs["**compactor** `--workers 2`"]) / ref_b - 1
    # Issue 26's targets: at least GDAL's pace at 16 scenes, 1.3x at 96 (the fixed cost of a
    # run weighs less the more scenes share it); other counts are held to the 96 scenes' bar.
    target = 1.0 if args.scenes <= 16 else 1.3
    verdict = "MET" if ref_s / ours >= target and abs(size) <= 0.05 else "NOT MET"
    print(
        f"\ntarget (>= {target:.1f}x two parallel GDAL conversions at {args.scenes} scenes, "
        f"size within 5 %): {verdict} ({ref_s / ours:.2f}x, size {size:+.1%})"
    )


if __name__ == "__main__":
    main()
