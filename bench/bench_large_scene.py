"""Large-scene benchmark: compactor's chunked path against GDAL's COG driver and rio-cogeo.

Builds a large RGB scene (1.8 GB raw by default) by mosaicking the real Landsat 7 RGB
raster from ``../shared/data/rasterio-cc0/RGB.byte.tif`` (flipped copies, nodata collars
included), then times, one after another on this machine, with the same codec and quality:

* ``compactor run`` with 2 local workers capped at ``--worker-memory`` (450 MB by default:
  the scene is at least 4x that), fixed quality (``--min-ssim 0``), local disk in and out;
* ``rasterio.shutil.copy(..., driver="COG")`` (the GDAL in compactor's own environment),
  single-threaded and with ``NUM_THREADS=ALL_CPUS``;
* ``rio cogeo create`` with ``--threads ALL_CPUS``.

Each runs in its own process tree, sampled every 0.1 s for the peak RSS of every process.
SSIM is measured on every output with compactor's definition (skimage's SSIM per band,
masked pixels 0, minimum over bands), against the source's validity mask.

Usage::

    python bench/bench_large_scene.py [--size-gb 1.8] [--worker-memory 450MB]
                                      [--codecs jpeg,deflate] [--workdir bench/out]
                                      [--lossless lossless|deflate|zstd|...] [--quick]

Prints a table and writes ``results.json`` in the work directory. The last lines compare
compactor with the targets and give the codec-only floor: how long the tile encoder alone
would take for the scene on every core, the limit no COG writer can beat with that codec.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import psutil
import rasterio
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[1]
SHARED = (
    Path(os.environ.get("COMPACTOR_SHARED_DATA", REPO.parent / "shared/data/rasterio-cc0"))
    / "RGB.byte.tif"
)
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from compactor.fidelity import ssim_sum  # noqa: E402


@dataclass
class Run:
    tool: str
    codec: str
    seconds: float
    out_bytes: int
    ssim: float | None = None
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    returncode: int = 0
    #: Dask's "Pausing worker" events in the run's log (compactor only; None: not counted).
    pauses: int | None = None


def build_mosaic(path: Path, size_gb: float) -> tuple[int, int]:
    """A square-ish RGB mosaic of the Landsat scene, flipped copies side by side."""
    with rasterio.open(SHARED) as src:
        tile = src.read()
        profile = src.profile
    _, th, tw = tile.shape
    side = int(math.sqrt(size_gb * 1e9 / 3))
    across, down = -(-side // tw), -(-side // th)
    width, height = across * tw, down * th
    variants = [tile, tile[:, :, ::-1], tile[:, ::-1, :], tile[:, ::-1, ::-1]]
    profile.update(
        driver="GTiff",
        width=width,
        height=height,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress=None,
        interleave="pixel",
        BIGTIFF="YES",
    )
    if path.exists():
        with rasterio.open(path) as existing:
            if (existing.width, existing.height) == (width, height):
                return width, height
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(down):
            row = np.concatenate([variants[(r + c) % 4] for c in range(across)], axis=2)
            dst.write(row, window=Window(0, r * th, width, th))
    return width, height


def monitor(proc: subprocess.Popen[bytes]) -> tuple[int, dict[str, float]]:
    """Wait for ``proc``; peak RSS (MB) of every process of its tree, by role."""
    peaks: dict[int, tuple[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    rss = p.memory_info().rss / 1e6
                    cmd = " ".join(p.cmdline())
                except psutil.Error:
                    continue
                role = (
                    "worker"
                    if "spawn_main" in cmd or "forkserver" in cmd
                    else ("main" if p.pid == proc.pid else "helper")
                )
                old = peaks.get(p.pid, (role, 0.0))
                peaks[p.pid] = (role, max(old[1], rss))
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    rc = proc.wait()
    done.set()
    t.join()
    by_role: dict[str, float] = {}
    workers = sorted((v for r, v in peaks.values() if r == "worker"), reverse=True)
    for i, v in enumerate(workers[:2]):
        by_role[f"worker{i + 1}"] = round(v, 1)
    by_role["main"] = round(max((v for r, v in peaks.values() if r == "main"), default=0.0), 1)
    return rc, by_role


def timed(
    cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> tuple[float, int, dict[str, float]]:
    """Run ``cmd``: wall seconds, return code, peak RSS by role; its stderr to ``log``."""
    t0 = time.perf_counter()
    with open(log or os.devnull, "wb") as err:
        proc = subprocess.Popen(
            cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=err
        )
        rc, peaks = monitor(proc)
    return time.perf_counter() - t0, rc, peaks


def stage_breakdown(report: Path) -> list[str]:
    """Where compactor's time went (the scene log's ``stages``, wall seconds of the scene
    task, and ``task_stages``, seconds of its chunk and merge tasks summed over the tasks)."""
    import gzip

    lines: list[str] = []
    for part in sorted((report / "scenes").glob("*.ndjson.gz")):
        with gzip.open(part, "rt") as fh:
            for line in fh:
                scene = json.loads(line)
                tasks = scene.get("task_stages") or {}
                total = sum(tasks.values()) or 1.0
                lines.append(f"| chunk tasks ({scene.get('chunks')}), summed | seconds | share |")
                lines.append("| --- | --- | --- |")
                for name, sec in sorted(tasks.items(), key=lambda kv: -kv[1]):
                    lines.append(f"| {name} | {sec:.1f} | {sec / total:.1%} |")
                lines.append(f"| all | {total:.1f} | |")
                walls = scene.get("stages") or {}
                ordered = sorted(walls.items(), key=lambda kv: -kv[1])
                shown = ", ".join(f"{k} {v:.2f}" for k, v in ordered if v >= 0.01)
                lines.append(f"scene task, wall s: {shown}")
    return lines


def chosen_codec(report: Path) -> str:
    """`` -> zstd/1`` : the codec and level the scene was written with (scene log)."""
    import gzip

    for part in sorted((report / "scenes").glob("*.ndjson.gz")):
        with gzip.open(part, "rt") as fh:
            for line in fh:
                scene = json.loads(line)
                search = scene.get("search") or scene.get("encoding_search") or {}
                chosen = search.get("chosen") if isinstance(search, dict) else None
                if chosen:
                    return f" -> {chosen}"
    return ""


def pause_events(log: Path) -> int:
    """Dask's memory pauses in a run's log ("Worker is at 88% memory usage. Pausing
    worker"; the workers' warnings reach the CLI's stderr)."""
    return log.read_text(errors="replace").count("Pausing worker") if log.exists() else 0


def measure_ssim(src_path: Path, out_path: Path) -> float:
    """compactor's SSIM of ``out_path`` against ``src_path`` (masked by the source)."""
    with rasterio.open(src_path) as src, rasterio.open(out_path) as out:
        height, width = src.height, src.width
        totals = [0.0] * 3
        count = 0
        rows = 512
        for r0 in range(0, height, rows):
            r1 = min(height, r0 + rows)
            top, bottom = max(0, r0 - 3), min(height, r1 + 3)
            top = max(0, min(top, bottom - 7))
            win = Window(0, top, width, bottom - top)
            a = src.read(window=win)
            b = out.read(indexes=[1, 2, 3], window=win)
            valid = np.any(a != 0, axis=0)
            a[:, ~valid] = 0
            b[:, ~valid] = 0
            lo, hi = max(r0, 3), min(r1, height - 3)
            sl = slice(lo - 3 - top, hi + 3 - top)
            for k in range(3):
                t, n = ssim_sum(a[k, sl], b[k, sl], 255.0)
                totals[k] += t
            count += n
        return min(t / count for t in totals)


def codec_floor(src: Path, codec: str, raw_mb: float) -> float:
    """Seconds the tile codec alone needs for the scene on every core: encode a sample of
    real tiles (the encoder compactor uses, GDAL's levels), scale to the full resolution plus
    overviews (4/3 of its pixels), divide by the cores. No read, decode or check."""
    from compactor.cog import TILE, TileCodec

    tc = TileCodec.for_profile(codec, 75 if codec == "jpeg" else None, "uint8", 3)
    with rasterio.open(src) as ds:
        block = ds.read(window=Window(0, ds.height // 3, min(ds.width, 16 * TILE), TILE))
    tiles = [
        np.ascontiguousarray(np.moveaxis(block[:, :, x : x + TILE], 0, -1))
        for x in range(0, block.shape[2] - TILE + 1, TILE)
    ]
    start = time.perf_counter()
    for tile in tiles:
        tc.encode(tile)
    per_mb = (time.perf_counter() - start) / (len(tiles) * TILE * TILE * 3 / 1e6)
    return per_mb * raw_mb * 4 / 3 / (os.cpu_count() or 1)


def run_compactor(
    src_dir: Path, out_dir: Path, codec: str, memory: str, lossless: str = "lossless"
) -> Run:
    """compactor on the scene: ``codec`` for JPEG; for a lossless row (GDAL's ``codec``),
    ``--codec lossless`` (the default effort's search picks the codec) or the one given."""
    shutil.rmtree(out_dir, ignore_errors=True)
    asked = codec if codec in ("jpeg", "webp") else lossless
    args = [
        str(BIN / "compactor"),
        "-q",
        "run",
        "--source",
        str(src_dir),
        "--dest",
        str(out_dir),
        "--report",
        str(out_dir.parent / f"report-{codec}"),
        "--workers",
        "2",
        "--worker-memory",
        memory,
        "--codec",
        asked,
        "--min-ssim",
        "0",
        "--min-saving",
        "-1",
    ]
    if codec == "jpeg":
        args += ["--quality", "75"]
    log = out_dir.parent / f"compactor-{codec}.log"
    seconds, rc, peaks = timed(args, log=log)
    out = out_dir / "mosaic.tif"
    return Run(
        f"compactor (2 workers, {asked}{chosen_codec(out_dir.parent / f'report-{codec}')})",
        codec,
        seconds,
        out.stat().st_size if out.exists() else 0,
        None,
        peaks,
        rc,
        pause_events(log),
    )


def run_gdal(src: Path, out: Path, codec: str, threads: str) -> Run:
    opts = {"COMPRESS": codec.upper(), "NUM_THREADS": threads, "BIGTIFF": "IF_SAFER"}
    if codec == "jpeg":
        opts["QUALITY"] = "75"
    else:
        opts["PREDICTOR"] = "YES"
    code = (
        "import rasterio; from rasterio.shutil import copy; "
        f"copy({str(src)!r}, {str(out)!r}, driver='COG', **{opts!r})"
    )
    seconds, rc, peaks = timed([sys.executable, "-c", code])
    return Run(
        f"GDAL COG, NUM_THREADS={threads}",
        codec,
        seconds,
        out.stat().st_size,
        None,
        peaks,
        rc,
    )


def run_rio_cogeo(src: Path, out: Path, codec: str) -> Run:
    args = [
        str(BIN / "rio"),
        "cogeo",
        "create",
        str(src),
        str(out),
        "--cog-profile",
        codec,
        "--threads",
        "ALL_CPUS",
        "--overview-resampling",
        "average",
        "-q",
    ]
    if codec == "jpeg":
        args += ["--co", "QUALITY=75", "--add-mask"]
    else:
        args += ["--co", "PREDICTOR=2"]
    seconds, rc, peaks = timed(args)
    return Run(
        "rio cogeo create, all threads",
        codec,
        seconds,
        out.stat().st_size if out.exists() else 0,
        None,
        peaks,
        rc,
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-gb", type=float, default=1.8)
    ap.add_argument("--worker-memory", default="450MB")
    ap.add_argument("--codecs", default="jpeg,deflate")
    ap.add_argument(
        "--lossless",
        default="lossless",
        help="compactor's --codec for the lossless rows (GDAL writes --codecs' codec): "
        "lossless (the default effort's search picks) or a codec",
    )
    ap.add_argument("--workdir", type=Path, default=REPO / "bench" / "out")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="only GDAL NUM_THREADS=ALL_CPUS (the reference) and compactor",
    )
    args = ap.parse_args()
    if not SHARED.exists():
        sys.exit(f"{SHARED} is needed (the real Landsat 7 RGB raster)")
    work = args.workdir
    src_dir = work / "source"
    src_dir.mkdir(parents=True, exist_ok=True)
    src = src_dir / "mosaic.tif"
    width, height = build_mosaic(src, args.size_gb)
    raw_mb = width * height * 3 / 1e6
    from dask.utils import parse_bytes

    limit = parse_bytes(args.worker_memory) / 1e6
    print(
        f"scene {width} x {height} x 3 uint8 = {raw_mb:,.0f} MB raw; worker memory limit "
        f"{limit:.0f} MB ({raw_mb / limit:.1f}x smaller than the scene); {os.cpu_count()} cores"
    )
    runs: list[Run] = []
    for codec in args.codecs.split(","):
        outs = work / codec
        outs.mkdir(exist_ok=True)
        batch = [
            run_gdal(src, outs / "gdal-all.tif", codec, "ALL_CPUS"),
            run_compactor(src_dir, outs / "compactor", codec, args.worker_memory, args.lossless),
        ]
        paths = [outs / "gdal-all.tif", outs / "compactor" / "mosaic.tif"]
        if not args.quick:
            batch += [
                run_gdal(src, outs / "gdal-1.tif", codec, "1"),
                run_rio_cogeo(src, outs / "rio-cogeo.tif", codec),
            ]
            paths += [outs / "gdal-1.tif", outs / "rio-cogeo.tif"]
        for run, path in zip(batch, paths, strict=True):
            if run.returncode == 0 and path.exists():
                run.ssim = 1.0 if codec != "jpeg" else measure_ssim(src, path)
        runs += batch

    print()
    cols = ("tool", "codec", "wall s", "MB/s", "out MB", "size/GDAL", "SSIM", "speed/GDAL")
    header = "{:52} {:7} {:>7} {:>6} {:>8} {:>9} {:>7} {:>10} {:>6}  peak RSS MB".format(
        *cols, "pauses"
    )
    print(header)
    print("-" * len(header))
    for codec in args.codecs.split(","):
        ref = next(r for r in runs if r.codec == codec and "ALL_CPUS" in r.tool)
        for r in (x for x in runs if x.codec == codec):
            rss = ", ".join(f"{k} {v:.0f}" for k, v in r.peak_rss_mb.items())
            ssim = r.ssim if r.ssim is not None else float("nan")
            pauses = "-" if r.pauses is None else str(r.pauses)
            print(
                f"{r.tool:52} {r.codec:7} {r.seconds:7.1f} {raw_mb / r.seconds:6.1f} "
                f"{r.out_bytes / 1e6:8.1f} {r.out_bytes / ref.out_bytes:9.3f} {ssim:7.4f} "
                f"{ref.seconds / r.seconds:9.2f}x {pauses:>6}  {rss}"
            )
    print()
    floors = {}
    for codec in args.codecs.split(","):
        ours = next(r for r in runs if r.codec == codec and r.tool.startswith("compactor"))
        ref = next(r for r in runs if r.codec == codec and "ALL_CPUS" in r.tool)
        worst = max((v for k, v in ours.peak_rss_mb.items() if k.startswith("worker")), default=0.0)
        if ours.returncode != 0 or ours.ssim is None:
            print(f"{codec}: compactor failed (exit status {ours.returncode}; "
                  f"{ours.pauses} pause events; see compactor-{codec}.log)")  # fmt: skip
            continue
        floors[codec] = floor = codec_floor(src, codec, raw_mb)
        # Issue 17's targets: lossy >= 2x GDAL at a size within 5 %; lossless >= 1.5x, no larger.
        lossy = codec in ("jpeg", "webp")
        speed_target, size_target = ("2x", "within 5%") if lossy else ("1.5x", "no larger")
        print(
            f"{codec}: speed {ref.seconds / ours.seconds:.2f}x GDAL ALL_CPUS (target >= "
            f"{speed_target}); size {ours.out_bytes / ref.out_bytes - 1:+.1%} (target "
            f"{size_target}); "
            f"SSIM {ours.ssim:.4f} vs {ref.ssim:.4f}; worst worker peak {worst:.0f} MB = "
            f"{worst / limit:.2f}x the limit (target <= 1.25x); {ours.pauses} pause events"
            " (target 0)"
        )
        print("\n".join(stage_breakdown(work / codec / f"report-{codec}")))
        print(
            f"{codec}: codec-only floor {floor:.1f} s on {os.cpu_count()} cores (encoding the"
            f" full resolution and overviews, nothing else): {ref.seconds / floor:.2f}x"
            " GDAL ALL_CPUS"
        )
    (work / "results.json").write_text(
        json.dumps(
            {
                "scene": {
                    "width": width,
                    "height": height,
                    "raw_mb": raw_mb,
                    "worker_memory_mb": limit,
                },
                "runs": [asdict(r) for r in runs],
                "codec_floor_seconds": floors,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
