"""Automatic quality against every fixed quality, on the real CC0 rasters.

For each 8-bit scene of ``../shared/data/rasterio-cc0/`` that a lossy codec can take, every
JPEG quality from 10 to 95 is encoded and measured (whole scene, the run's own writer and
SSIM). A fixed-quality policy "holds" when every scene reaches the SSIM bar at that quality.
Then real runs (``compactor.run`` on a LocalCluster) with ``--quality auto`` and with
``--codec auto-lossy --allow-webp`` compact the same scenes; the tables compare their
archive size with the best fixed quality that holds.

    .venv/bin/python bench/bench_auto_quality.py [--min-ssim 0.95] [--workers 2]

Takes about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COMPACTOR_SHARED_DATA", REPO.parent / "shared/data/rasterio-cc0"))
#: The scenes a lossy codec can take (8-bit, 1 or 3 colour bands, optional alpha).
SCENES = (
    "RGB.byte.tif",  # Landsat 7 RGB with a nodata collar
    "RGBA.byte.tif",  # the same with an alpha band
    "alpha.tif",  # aerial photograph, stored as JPEG already, with alpha
    "cogeo.tif",  # aerial photograph, JPEG already
    "goes.tif",  # GOES weather satellite, JPEG already
    "rgb1_fake_nir_epsg3857.tif",  # single band with nodata
    "shade.tif",  # SRTM hillshade
    "world.byte.tif",  # a 2880x1200 world image: sampled by the search, not whole
)
QUALITIES = range(10, 96)


def measure(args: tuple[str, str, float]) -> tuple[str, dict[int, tuple[int, float]]]:
    """quality -> (bytes, SSIM) of the whole scene's JPEG COG."""
    path, scratch, _ = args
    from compactor.encode import choose_profile, write_cog
    from compactor.gdal import read_info
    from compactor.verify import check_output

    info = read_info(path)
    base = choose_profile(info, "jpeg", None)
    table = {}
    for q in QUALITIES:
        profile = replace(base, quality=q)
        out = write_cog(path, Path(scratch) / f"{Path(path).stem}-{q}.tif", profile, info)
        fid = check_output(path, str(out), info, profile)
        table[q] = (out.stat().st_size, fid.ssim or 0.0)
        out.unlink()
    return Path(path).name, table


def run(src: Path, dest: Path, workers: int, bar: float, **extra: object) -> dict:
    import compactor

    started = time.perf_counter()
    report = compactor.run(
        source=str(src), dest=str(dest), workers=workers, min_ssim=bar, quality="auto", **extra
    )
    elapsed = time.perf_counter() - started
    data = json.loads(report.model_dump_json())
    data["elapsed"] = elapsed
    # every scene, read back from the run's scene log (before the work folder goes)
    data["scenes"] = [s.model_dump(mode="json") for s in report.scene_results()]
    return data


def mib(n: float) -> str:
    return f"{n / 2**20:8.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-ssim", type=float, default=0.95)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    bar = args.min_ssim
    if not SHARED.is_dir():
        print(f"{SHARED} is not present; this benchmark needs the CC0 rasters", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-auto-"))
    try:
        src = work / "src"
        src.mkdir()
        for name in SCENES:
            shutil.copy(SHARED / name, src / name)
        scratch = work / "scratch"
        scratch.mkdir()
        t0 = time.perf_counter()
        with ProcessPoolExecutor(args.workers) as pool:
            tables = dict(pool.map(measure, [(str(src / n), str(scratch), bar) for n in SCENES]))
        brute_s = time.perf_counter() - t0
        auto = run(src, work / "auto", args.workers, bar)
        webp = run(src, work / "webp", args.workers, bar, codec="auto-lossy", allow_webp=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nSSIM bar {bar}; JPEG qualities {QUALITIES.start}-{QUALITIES.stop - 1} measured on "
          f"whole scenes in {brute_s:.0f} s\n")  # fmt: skip
    head = f"{'scene':28} {'MiB in':>8} {'lowest q':>8} {'auto':>10} {'MiB':>8} {'SSIM':>7} "
    print(head + f"{'probes':>6} {'sample':>7} | {'auto-lossy+webp':>15} {'MiB':>8} {'SSIM':>7}")
    by_name = {Path(s["source"]).name: s for s in auto["scenes"]}
    by_name_webp = {Path(s["source"]).name: s for s in webp["scenes"]}
    for name in SCENES:
        s, w, t = by_name[name], by_name_webp[name], tables[name]
        passing = [q for q in QUALITIES if t[q][1] >= bar]
        lowest = str(min(passing)) if passing else "none"
        label = f"{s['codec']} q{s['quality']}" if s["quality"] else s["codec"]
        wlabel = f"{w['codec']} q{w['quality']}" if w["quality"] else w["codec"]
        search = s.get("search") or {}
        print(
            f"{name:28} {mib(s['bytes_in'])} {lowest:>8} {label:>10} {mib(s['bytes_out'])} "
            f"{s['ssim']:7.4f} {len(search.get('probes', [])):6d} "
            f"{'whole' if search.get('sample_whole') else 'sample':>7} | {wlabel:>15} "
            f"{mib(w['bytes_out'])} {w['ssim']:7.4f}"
        )
    lossy = [n for n in SCENES if by_name[n]["lossless"] is False]
    auto_total = sum(by_name[n]["bytes_out"] for n in lossy)
    webp_total = sum(by_name_webp[n]["bytes_out"] for n in lossy)
    holding = [q for q in QUALITIES if all(tables[n][q][1] >= bar for n in lossy)]
    print(f"\n{len(lossy)} scenes went lossy under --quality auto; "
          f"{len(SCENES) - len(lossy)} lossless (no JPEG quality <= 95 met the bar)")  # fmt: skip
    print(f"\n{'policy':44} {'MiB':>8} {'vs auto':>8} {'min SSIM':>9}")
    print(f"{'--quality auto':44} {mib(auto_total)} {'':>8} "
          f"{min(by_name[n]['ssim'] for n in lossy):9.4f}")  # fmt: skip
    print(f"{'--codec auto-lossy --allow-webp':44} {mib(webp_total)} "
          f"{webp_total / auto_total - 1:+8.1%} "
          f"{min(by_name_webp[n]['ssim'] for n in lossy):9.4f}")  # fmt: skip
    for q in (75, 85, 90, 95):
        total = sum(tables[n][q][0] for n in lossy)
        low = min(tables[n][q][1] for n in lossy)
        holds = "holds" if q in holding else "misses the bar"
        print(f"{f'fixed JPEG q{q} ({holds})':44} {mib(total)} {total / auto_total - 1:+8.1%} "
              f"{low:9.4f}")  # fmt: skip
    if holding:
        best = min(holding, key=lambda q: sum(tables[n][q][0] for n in lossy))
        total = sum(tables[n][best][0] for n in lossy)
        low = min(tables[n][best][1] for n in lossy)
        print(f"{f'best fixed JPEG that holds: q{best}':44} {mib(total)} "
              f"{total / auto_total - 1:+8.1%} {low:9.4f}")  # fmt: skip
        smaller = all(auto_total < sum(tables[n][q][0] for n in lossy) for q in holding)
        print(f"\n--quality auto smaller than every fixed quality that holds "
              f"({len(holding)} of them, q{min(holding)}-q{max(holding)}): {smaller}")  # fmt: skip
    rq = auto.get("quality") or {}
    if rq:
        print(f"report's own estimate: fixed q{rq['fixed_quality']} ~{mib(rq['bytes_fixed'])} MiB,"
              f" saving {rq['saving']:.1%}")  # fmt: skip
    print(f"run time: auto {auto['elapsed']:.1f} s, auto-lossy+webp {webp['elapsed']:.1f} s "
          f"({args.workers} workers)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
