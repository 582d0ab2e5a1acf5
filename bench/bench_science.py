"""Lossless and bounded-error compaction of 16-bit and float scenes against GDAL's COG presets
(issue 16).

Inputs, built at run time in a temporary directory from the real rasters of
``../shared/data/rasterio-cc0/`` (nothing is written into the repository):

* **Landsat-like** (``--scenes`` of them): 4-band uint16, ``--size`` square. The Landsat 7
  RGB raster (``RGB.byte.tif``) upsampled (cubic) to the size, each scene a different
  flip/transposition of it, plus a fourth NIR-like band (0.7 G + 0.5 R - 0.2 B); scaled to
  a 12-bit signal (x15 + 64), plus Gaussian sensor noise (sigma 3 DN), clipped to 1-4095;
  the raster's own rotated Landsat footprint as the nodata collar (0). Written as Landsat
  Collection 2 ships: a COG, DEFLATE with predictor 2, tiled 512, no overviews.
* **DEM**: float32 elevation (0-3000 m, full float precision), a smooth synthetic surface
  derived from the same raster's luminance (Gaussian-smoothed at two scales plus a ramp),
  nodata -9999 in a rotated-rectangle collar; DEFLATE with predictor 3, tiled 512, no
  overviews.
* **RGBA uint16**: ``RGBA.uint16.tif`` (634 x 411, four bands) rewritten as a DEFLATE COG
  tiled 512 (no predictor, as the original).

On each input: GDAL's COG driver (``rasterio.shutil.copy``, ``NUM_THREADS=1``, AVERAGE
overviews as compactor's) with DEFLATE predictor 2 (3 for floats), ZSTD predictor 2/3 at
levels 9 and 19, LERC_ZSTD lossless and with ``MAX_Z_ERROR`` 1 and 2, each with overviews
(``OVERVIEWS=AUTO``) and without (``OVERVIEWS=NONE``); and the real ``compactor run`` on the
directory of inputs, one local worker (``--workers 1``): lossless ``--codec auto`` under each
overview policy (``--overviews full|lossy|none``) and ``--max-error 1`` and ``2``.

Columns: bytes, size relative to the source COG, encode speed (MB of raw full-resolution
pixels per second), the share of the bytes in overview levels, and the largest error over
valid pixels, measured here by reading every output against its input (not taken from the
tool's report); "mask" says whether every nodata pixel stayed nodata and no valid pixel
became nodata. GDAL's time is the wall time of the copy (read, encode, overviews, write);
compactor's is the scene's ``seconds`` from the run's scene log (read, lossless search,
encode, overviews, verification of the output), without the Dask cluster's start-up.

Usage::

    python bench/bench_science.py [--size 2048] [--scenes 1] [--quick] [--keep DIR]
                                  [--efforts default[,max]] [--workers 1]

Ends with PASS/FAIL lines for the issue's targets on the Landsat-like scenes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COMPACTOR_SHARED_DATA", REPO.parent / "shared/data/rasterio-cc0"))
RGB = SHARED / "RGB.byte.tif"
RGBA16 = SHARED / "RGBA.uint16.tif"
BIN = Path(sys.executable).parent

#: GDAL COG presets: label -> creation options (``PREDICTOR=YES`` is 2 for integers, 3 for
#: floats), and the error bound they promise (0: lossless).
GDAL_PRESETS: dict[str, tuple[dict[str, str], float]] = {
    "DEFLATE pred": ({"COMPRESS": "DEFLATE", "PREDICTOR": "YES"}, 0),
    "ZSTD pred L9": ({"COMPRESS": "ZSTD", "PREDICTOR": "YES", "LEVEL": "9"}, 0),
    "ZSTD pred L19": ({"COMPRESS": "ZSTD", "PREDICTOR": "YES", "LEVEL": "19"}, 0),
    "LERC_ZSTD lossless": ({"COMPRESS": "LERC_ZSTD", "MAX_Z_ERROR": "0"}, 0),
    "LERC_ZSTD err 1": ({"COMPRESS": "LERC_ZSTD", "MAX_Z_ERROR": "1"}, 1),
    "LERC_ZSTD err 2": ({"COMPRESS": "LERC_ZSTD", "MAX_Z_ERROR": "2"}, 2),
}
#: compactor's overview policies and GDAL's ``OVERVIEWS`` option they are compared with.
POLICIES = {"full": "AUTO", "lossy": "AUTO", "none": "NONE"}
POLICY_LABEL = {"full": "with overviews", "lossy": "lossy overviews", "none": "no overviews"}


@dataclass
class Input:
    name: str
    kind: str  # "landsat", "dem", "rgba16"
    path: Path
    raw_bytes: int
    bytes: int


@dataclass
class Row:
    """One output of one input."""

    tool: str  # "source", "gdal", "compactor"
    variant: str
    policy: str  # full | lossy | none (GDAL AUTO counts as full)
    bound: float  # 0: lossless
    path: Path | None
    bytes: int | None = None
    seconds: float | None = None
    codec: str = ""
    status: str = ""
    max_error: float | None = None
    mask_ok: bool | None = None
    overview_bytes: int | None = None
    reported_error: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- inputs


def _zoom(a: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    from scipy.ndimage import zoom

    factors = (shape[0] / a.shape[0], shape[1] / a.shape[1])
    out = zoom(a, factors, order=order, grid_mode=True, mode="nearest")
    return out[: shape[0], : shape[1]]


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th of the 8 flips/transpositions of the last two axes."""
    if k & 4:
        a = np.swapaxes(a, -1, -2)
    if k & 1:
        a = a[..., ::-1]
    if k & 2:
        a = a[..., ::-1, :]
    return np.ascontiguousarray(a)


def _write_cog(path: Path, data: np.ndarray, profile: dict[str, Any], **options: str) -> None:
    """``data`` as a COG without overviews (through a plain GTiff, then GDAL's COG driver)."""
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", driver="GTiff", **profile) as dst:
        dst.write(data)
    rasterio.shutil.copy(
        tmp,
        path,
        driver="COG",
        BLOCKSIZE="512",
        OVERVIEWS="NONE",
        NUM_THREADS="ALL_CPUS",
        **options,
    )
    tmp.unlink()


def _source_rgb(size: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """RGB.byte.tif upsampled to ``size`` (float32, 3 bands), its footprint, its CRS. The
    collar is filled with the nearest valid pixel first, so the cubic upsampling does not
    darken the footprint's edge towards 0 (its overshoots are clipped to 0-255)."""
    from scipy.ndimage import distance_transform_edt

    with rasterio.open(RGB) as src:
        rgb = src.read().astype(np.float32)
        valid = src.dataset_mask() > 0
        crs = src.crs
    _, (iy, ix) = distance_transform_edt(~valid, return_indices=True)
    rgb = rgb[:, iy, ix]
    up = np.clip(np.stack([_zoom(b, (size, size), 3) for b in rgb]), 0, 255)
    footprint = _zoom(valid.astype(np.uint8), (size, size), 0) > 0
    return up, footprint, crs


def build_inputs(folder: Path, size: int, scenes: int) -> list[Input]:
    folder.mkdir(parents=True, exist_ok=True)
    up, footprint, crs = _source_rgb(size)
    pixel = 30.0 * 2048 / size
    transform = rasterio.Affine(pixel, 0, 300000.0, 0, -pixel, 2900000.0)
    inputs = []
    for k in range(scenes):
        rng = np.random.default_rng(1600 + k)
        bands = _dihedral(up, k % 8)
        mask = _dihedral(footprint, k % 8)
        nir = np.clip(0.7 * bands[1] + 0.5 * bands[0] - 0.2 * bands[2], 0, 255)
        signal = np.concatenate([bands, nir[None]]) * 15 + 64
        noisy = signal + rng.normal(0, 3, signal.shape).astype(np.float32)
        data = np.clip(np.rint(noisy), 1, 4095).astype(np.uint16)
        data[:, ~mask] = 0
        path = folder / f"landsat-like-{k + 1}.tif"
        profile = {
            "width": size,
            "height": size,
            "count": 4,
            "dtype": "uint16",
            "crs": crs,
            "transform": transform,
            "nodata": 0,
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
        }
        _write_cog(path, data, profile, COMPRESS="DEFLATE", PREDICTOR="2")
        inputs.append(Input(path.stem, "landsat", path, data.nbytes, path.stat().st_size))

    # DEM: a smooth surface with the raster's structure, float32, nodata collar
    from scipy.ndimage import gaussian_filter

    lum = up.mean(axis=0)
    surface = gaussian_filter(lum, size / 256) * 6 + gaussian_filter(lum, size / 32) * 8
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    surface = surface + 400 * xx + 250 * yy
    surface = (surface - surface.min()) / (surface.max() - surface.min()) * 3000
    dem = surface.astype(np.float32)
    angle = math.radians(12)
    cx, cy = xx - 0.5, yy - 0.5
    u = cx * math.cos(angle) + cy * math.sin(angle)
    v = -cx * math.sin(angle) + cy * math.cos(angle)
    dem[(np.abs(u) > 0.40) | (np.abs(v) > 0.43)] = -9999
    path = folder / "dem-float32.tif"
    profile = {
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "float32",
        "crs": crs,
        "transform": transform,
        "nodata": -9999,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
    }
    _write_cog(path, dem[None], profile, COMPRESS="DEFLATE", PREDICTOR="3")
    inputs.append(Input(path.stem, "dem", path, dem.nbytes, path.stat().st_size))

    # RGBA uint16: the real one, as a DEFLATE COG
    if RGBA16.exists():
        path = folder / "rgba-uint16.tif"
        rasterio.shutil.copy(
            RGBA16, path, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE="512", OVERVIEWS="NONE"
        )
        with rasterio.open(path) as ds:
            raw = ds.width * ds.height * ds.count * np.dtype(ds.dtypes[0]).itemsize
        inputs.append(Input(path.stem, "rgba16", path, raw, path.stat().st_size))
    return inputs


# ---------------------------------------------------------------------------- measures


def overview_bytes(path: Path) -> int | None:
    """Bytes of the tiles of reduced-resolution IFDs (overviews and their masks)."""
    try:
        import tifffile
    except ImportError:
        return None
    total = 0
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            if page.subfiletype & 1:  # reduced-resolution image
                total += sum(page.databytecounts)
    return total


def compare(src_path: Path, out_path: Path) -> tuple[float, bool]:
    """Largest absolute error over the source's valid samples, and whether the validity
    (nodata/NaN) is the same in the output, read strip by strip."""
    worst, mask_ok = 0.0, True
    with rasterio.open(src_path) as src, rasterio.open(out_path) as out:
        nodata = src.nodata
        for r0 in range(0, src.height, 512):
            win = Window(0, r0, src.width, min(512, src.height - r0))
            a = src.read(window=win).astype(np.float64)
            b = out.read(indexes=list(range(1, src.count + 1)), window=win).astype(np.float64)
            inv_a = np.isnan(a)
            inv_b = np.isnan(b)
            if nodata is not None and not math.isnan(nodata):
                inv_a |= a == nodata
                inv_b |= b == nodata
            if not np.array_equal(inv_a, inv_b):
                mask_ok = False
            valid = ~inv_a & ~inv_b
            if valid.any():
                worst = max(worst, float(np.abs(a[valid] - b[valid]).max()))
    return worst, mask_ok


def raw_mb(inp: Input) -> float:
    return inp.raw_bytes / 1e6


# ---------------------------------------------------------------------------- GDAL


def run_gdal(inp: Input, out_dir: Path) -> list[Row]:
    rows = []
    for policy, overviews in (("full", "AUTO"), ("none", "NONE")):
        for label, (options, bound) in GDAL_PRESETS.items():
            out = out_dir / f"{inp.name}.{label.replace(' ', '_')}.{overviews}.tif"
            opts = dict(
                options, OVERVIEWS=overviews, NUM_THREADS="1", BLOCKSIZE="512", RESAMPLING="AVERAGE"
            )
            t0 = time.perf_counter()
            rasterio.shutil.copy(inp.path, out, driver="COG", **opts)
            seconds = time.perf_counter() - t0
            rows.append(
                Row(
                    "gdal",
                    f"GDAL {label}",
                    policy,
                    bound,
                    out,
                    out.stat().st_size,
                    seconds,
                    codec=label,
                )
            )
    return rows


# ---------------------------------------------------------------------------- compactor


def compactor_flags() -> set[str]:
    help_text = subprocess.run(
        [str(BIN / "compactor"), "run", "--help"], capture_output=True, text=True, check=False
    ).stdout
    return {f for f in ("--max-error", "--overviews", "--effort") if f in help_text}


@dataclass
class Config:
    label: str
    policy: str
    bound: float
    args: list[str]
    needs: list[str]


def compactor_configs(efforts: list[str]) -> list[Config]:
    configs = []
    for effort in efforts:
        eff = [] if effort == "default" else ["--effort", effort]
        needs = [] if effort == "default" else ["--effort"]
        suffix = "" if effort == "default" else f", effort {effort}"
        for policy in ("full", "lossy", "none") if effort == efforts[0] else ("full",):
            pol = [] if policy == "full" else ["--overviews", policy]
            configs.append(
                Config(
                    f"compactor lossless{suffix}",
                    policy,
                    0,
                    eff + pol,
                    needs + (["--overviews"] if pol else []),
                )
            )
    for e in (1, 2):
        configs.append(
            Config(
                f"compactor --max-error {e}", "full", e, ["--max-error", str(e)], ["--max-error"]
            )
        )
    return configs


def read_scenes(report_dir: Path) -> dict[str, dict[str, Any]]:
    """Every scene of a run by source file name: report.json's ``scenes`` if it has them,
    else the scene log it points to; skipped/failed entries of report.json fill gaps."""
    report = json.loads((report_dir / "report.json").read_text())
    scenes: list[dict[str, Any]] = list(report.get("scenes") or [])
    if not scenes:
        log = (report.get("scene_log") or {}).get("location")
        folder = Path(log) if log else report_dir / "scenes"
        for part in sorted(folder.glob("part-*.ndjson*")):
            opener = gzip.open if part.suffix == ".gz" else open
            with opener(part, "rt") as f:
                scenes += [json.loads(line) for line in f if line.strip()]
    by_name = {Path(s["source"]).name: s for s in scenes}
    for s in (report.get("skipped") or []) + (report.get("failed") or []):
        by_name.setdefault(Path(s["source"]).name, s)
    return by_name


def _codec_label(s: dict[str, Any]) -> str:
    parts = [str(s.get("codec") or "?")]
    if s.get("level") is not None:
        parts.append(f"L{s['level']}")
    if s.get("predictor") is not None:
        parts.append(f"p{s['predictor']}")
    bound = s.get("max_error")
    if bound:
        parts.append(f"<= {bound}")
    elif s.get("lossless"):
        parts.append("lossless")
    return " ".join(parts)


def _reported_error(s: dict[str, Any]) -> float | None:
    e = s.get("error_max")
    if e is None:
        return None
    if isinstance(e, list | tuple):
        vals = [float(x) for x in e if x is not None]
        return max(vals) if vals else None
    return float(e)


def run_compactor(
    cfg: Config, src_dir: Path, work: Path, workers: int, extra: list[str], tag: str = ""
) -> dict[str, Row]:
    """One ``compactor run`` over ``src_dir``; a row per scene, by file stem."""
    name = cfg.label.replace("compactor ", "").replace(" ", "_").replace(",", "").strip("-")
    dest = work / f"compactor{tag}-{name}-{cfg.policy}"
    report_dir = work / f"report{tag}-{name}-{cfg.policy}"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(report_dir, ignore_errors=True)
    cmd = [
        str(BIN / "compactor"),
        "-q",
        "run",
        "--source",
        str(src_dir),
        "--dest",
        str(dest),
        "--workers",
        str(workers),
        "--codec",
        "auto",
        "--report",
        str(report_dir),
        *cfg.args,
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if not (report_dir / "report.json").exists():
        print(
            f"  {cfg.label} ({cfg.policy}): no report (exit {proc.returncode}):\n"
            f"{proc.stderr[-2000:]}",
            file=sys.stderr,
        )
        return {}
    if not tag:
        print(f"  {cfg.label}, overviews {cfg.policy}: {wall:.1f} s wall (exit {proc.returncode})")
    rows = {}
    for fname, s in read_scenes(report_dir).items():
        out = dest / fname
        status = s.get("status", "?")
        row = Row(
            "compactor",
            cfg.label,
            cfg.policy,
            cfg.bound,
            out if out.exists() else None,
            s.get("bytes_out"),
            s.get("seconds"),
            codec=_codec_label(s) if status != "skipped" else "",
            status=status,
            reported_error=_reported_error(s),
            extra=s,
        )
        if status in ("failed", "skipped"):
            row.codec = (s.get("reason") or "")[:70]
        rows[Path(fname).stem] = row
    return rows


# ---------------------------------------------------------------------------- output


def fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    right = [False] + [True] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("| " + " | ".join("---:" if r else "---" for r in right) + " |")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def print_input_table(inp: Input, rows: list[Row]) -> None:
    print(f"\n### {inp.name}: {inp.kind}, {raw_mb(inp):.1f} MB raw, source {inp.bytes:,} bytes\n")
    headers = [
        "output",
        "overviews",
        "codec",
        "bytes",
        "size/src",
        "ovr share",
        "MB/s",
        "max err",
        "mask",
        "status",
    ]
    body = [
        [
            "source COG",
            "none",
            "as shipped",
            fmt_bytes(inp.bytes),
            "100.0%",
            "0.0%",
            "-",
            "0",
            "ok",
            "",
        ]
    ]
    order = {"full": 0, "lossy": 1, "none": 2}
    for r in sorted(rows, key=lambda r: (order[r.policy], r.tool != "gdal", r.bound)):
        size = f"{r.bytes / inp.bytes:.1%}" if r.bytes else "-"
        share = (
            f"{r.overview_bytes / r.bytes:.1%}" if r.bytes and r.overview_bytes is not None else "-"
        )
        speed = f"{raw_mb(inp) / r.seconds:.1f}" if r.seconds else "-"
        err = "-" if r.max_error is None else f"{r.max_error:g}"
        if r.reported_error is not None:
            err += f" (rep. {r.reported_error:g})"
        mask = "-" if r.mask_ok is None else ("ok" if r.mask_ok else "CHANGED")
        status = r.status
        if status == "compacted" and r.bytes and r.bytes >= inp.bytes:
            status += " (not smaller)"
        body.append(
            [
                r.variant,
                POLICY_LABEL[r.policy],
                r.codec,
                fmt_bytes(r.bytes),
                size,
                share,
                speed,
                err,
                mask,
                status,
            ]
        )
    print(md_table(headers, body))


def verdict(ok: bool | None) -> str:
    return "SKIP" if ok is None else ("PASS" if ok else "FAIL")


def targets(
    inputs: list[Input], rows: dict[str, list[Row]], statuses: dict[tuple[str, str], str]
) -> list[str]:
    """PASS/FAIL lines; ``statuses``: the RGBA uint16 scene's status in the runs with
    compactor's default ``--min-saving``, by (variant, policy)."""
    lines = []
    lossless_gdal = [k for k, (_, b) in GDAL_PRESETS.items() if b == 0]
    for inp in (i for i in inputs if i.kind == "landsat"):
        rs = rows[inp.name]

        def ours(label: str, policy: str, rs: list[Row] = rs) -> Row | None:
            return next((r for r in rs if r.variant == label and r.policy == policy), None)

        for policy in ("full", "none"):
            mine = ours("compactor lossless", policy)
            gdal = [
                r
                for r in rs
                if r.tool == "gdal" and r.policy == policy and r.codec in lossless_gdal
            ]
            if mine is None or not mine.bytes or mine.status != "compacted":
                why = "no row" if mine is None else f"status {mine.status or '?'}"
                lines.append(
                    f"SKIP (a)/(b) {inp.name} overviews {policy}: compactor lossless {why}"
                )
                continue
            best = min(gdal, key=lambda r: r.bytes or 0)
            ok_a = mine.bytes < (best.bytes or 0) and mine.max_error == 0 and bool(mine.mask_ok)
            lines.append(
                f"{verdict(ok_a)} (a) {inp.name} {POLICY_LABEL[policy]}: compactor lossless "
                f"{mine.bytes:,} B vs smallest GDAL lossless ({best.codec}) {best.bytes:,} B "
                f"({mine.bytes / (best.bytes or 1) - 1:+.1%}); max error {mine.max_error:g}"
            )
            deflate = next(r for r in gdal if r.codec == "DEFLATE pred")
            ratio = mine.bytes / (deflate.bytes or 1)
            lines.append(
                f"{verdict(ratio <= 0.9)} (b) {inp.name} {POLICY_LABEL[policy]}: compactor "
                f"lossless {ratio - 1:+.1%} vs GDAL DEFLATE pred 2 ({deflate.bytes:,} B); "
                "target <= -10%"
            )
        lossy = ours("compactor --max-error 2", "full")
        if lossy is None or not lossy.bytes:
            why = "no row (--max-error missing?)" if lossy is None else f"status {lossy.status}"
            lines.append(f"SKIP (c) {inp.name}: compactor --max-error 2 {why}")
        else:
            change = lossy.bytes / inp.bytes - 1
            within = lossy.max_error is not None and lossy.max_error <= 2 and bool(lossy.mask_ok)
            err = "-" if lossy.max_error is None else f"{lossy.max_error:g}"
            lines.append(
                f"{verdict(change <= -0.3 and within)} (c) {inp.name}: --max-error 2 (overviews "
                f"full) {lossy.bytes:,} B, {change:+.1%} vs the source COG (target <= -30%), "
                f"max error {err} DN (<= 2), nodata {'exact' if lossy.mask_ok else 'CHANGED'}"
            )
    for inp in (i for i in inputs if i.kind == "rgba16"):
        rs = rows[inp.name]
        for r in (r for r in rs if r.tool == "compactor"):
            status = statuses.get((r.variant, r.policy))
            rivals = [
                g
                for g in rs
                if g.tool == "gdal"
                and g.policy == POLICIES_GDAL[r.policy]
                and g.bytes
                and g.max_error is not None
                and g.max_error <= r.bound
                and g.mask_ok
            ]
            if r.bytes and r.max_error is not None and r.max_error <= r.bound and r.mask_ok:
                rivals.append(r)
            smaller = [g for g in rivals if (g.bytes or 0) < inp.bytes]
            expect = "compacted" if smaller else "skipped"
            best = min(smaller, key=lambda g: g.bytes or 0) if smaller else None
            note = (
                f"smallest within its bar: {best.variant} {best.bytes:,} B"
                if best
                else ("nothing within its bar is smaller")
            )
            lines.append(
                f"{verdict(None if status is None else status == expect)} (d) {inp.name} "
                f"{r.variant}, overviews {r.policy}: {status or 'not run'} with the default "
                f"--min-saving (source {inp.bytes:,} B; {note})"
            )
    return lines


#: The GDAL rows a compactor policy is compared with (``full`` and ``lossy``: with overviews).
POLICIES_GDAL = {"full": "full", "lossy": "full", "none": "none"}


# ---------------------------------------------------------------------------- main


def code_version() -> str:
    """The checkout's commit, and the newest main commit it contains."""

    def git(*a: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(REPO), *a], capture_output=True, text=True, check=False
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    base = git("merge-base", "HEAD", "main")
    main = git("rev-parse", "--short", base) if base else ""
    return f"{head}{dirty}" + (f", main {main} merged" if main else "")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=int, default=2048, help="side of the generated scenes")
    ap.add_argument("--scenes", type=int, default=1, help="Landsat-like scenes")
    ap.add_argument("--quick", action="store_true", help="smoke run: --size 1024")
    ap.add_argument("--keep", type=Path, help="build and keep everything in this directory")
    ap.add_argument(
        "--efforts",
        default="default",
        help="compactor --effort values for the lossless rows, comma-separated "
        "(the first gets every overview policy, the others overviews full)",
    )
    ap.add_argument("--workers", type=int, default=1, help="compactor --workers")
    ap.add_argument(
        "--min-saving",
        default="-1",
        help="compactor --min-saving for the measured runs (default -1: keep "
        "outputs up to twice the source's size, so every one is measured; "
        "target (d) runs separately with the tool's default)",
    )
    args = ap.parse_args()
    if not RGB.exists():
        print(
            f"needs the real rasters of ../shared/data/rasterio-cc0/ ({RGB} is missing)",
            file=sys.stderr,
        )
        return 2
    size = 1024 if args.quick else args.size
    efforts = [e.strip() for e in args.efforts.split(",") if e.strip()]
    started = time.perf_counter()
    if args.keep:
        work = args.keep.resolve()
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-science-"))
    try:
        src_dir = work / "inputs"
        t0 = time.perf_counter()
        inputs = build_inputs(src_dir, size, args.scenes)
        print(f"inputs ({size} x {size}) built in {time.perf_counter() - t0:.1f} s in {src_dir}")
        rows: dict[str, list[Row]] = {i.name: [] for i in inputs}

        gdal_dir = work / "gdal"
        gdal_dir.mkdir()
        t0 = time.perf_counter()
        for inp in inputs:
            rows[inp.name] += run_gdal(inp, gdal_dir)
        print(f"GDAL presets: {time.perf_counter() - t0:.1f} s")

        flags = compactor_flags()
        t0 = time.perf_counter()
        rgba = next((i for i in inputs if i.kind == "rgba16"), None)
        statuses: dict[tuple[str, str], str] = {}
        if rgba is not None:
            alone = work / "inputs-rgba16"
            alone.mkdir()
            shutil.copy(rgba.path, alone / rgba.path.name)
        for cfg in compactor_configs(efforts):
            missing = [f for f in cfg.needs if f not in flags]
            if missing:
                print(
                    f"  skipped {cfg.label} (overviews {cfg.policy}): compactor run has no "
                    f"{', '.join(missing)} yet"
                )
                continue
            extra = ["--min-saving", str(args.min_saving)]
            for stem, row in run_compactor(cfg, src_dir, work, args.workers, extra).items():
                if stem in rows:
                    rows[stem].append(row)
            if rgba is not None:
                alone_rows = run_compactor(cfg, alone, work, 1, [], tag="-default")
                if rgba.name in alone_rows:
                    statuses[(cfg.label, cfg.policy)] = alone_rows[rgba.name].status
        print(f"compactor runs: {time.perf_counter() - t0:.1f} s (cluster start-ups included)")

        t0 = time.perf_counter()
        for inp in inputs:
            for r in rows[inp.name]:
                if r.path is not None and r.path.exists():
                    r.max_error, r.mask_ok = compare(inp.path, r.path)
                    r.overview_bytes = overview_bytes(r.path)
                    r.bytes = r.path.stat().st_size if r.bytes is None else r.bytes
        print(f"errors measured: {time.perf_counter() - t0:.1f} s")

        print(
            f"\n## bench_science: {size} x {size}, {args.scenes} Landsat-like scene(s), "
            f"compactor --workers {args.workers}, GDAL {rasterio.__gdal_version__} "
            f"NUM_THREADS=1; code at {code_version()}"
        )
        for inp in inputs:
            print_input_table(inp, rows[inp.name])
        print()
        for line in targets(inputs, rows, statuses):
            print(line)
        print(f"\ntotal {time.perf_counter() - started:.0f} s")
        if args.keep:
            summary = {
                i.name: [
                    {k: v for k, v in r.__dict__.items() if k not in ("path", "extra")}
                    for r in rows[i.name]
                ]
                for i in inputs
            }
            (work / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
