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
(``OVERVIEWS=AUTO``) and without (``OVERVIEWS=NONE``); and the real ``compactor run`` (this
checkout's code) on the directory of inputs with one local worker (``--workers 1``,
``--codec auto``): lossless under each overview policy (``--overviews full|lossy|none``),
``--max-error 1`` under the default policy and ``--max-error 2`` under each. A scene a run
leaves as it is (its COG not smaller than the source) keeps that status in the table and is
measured by a rerun of it alone with ``--min-saving -1``. Flags the installed compactor
does not have yet are named and their rows skipped. Rows are grouped like with like:
compactor's ``full`` and ``lossy`` policies beside GDAL's COGs with overviews, ``none``
beside GDAL's ``OVERVIEWS=NONE``.

Columns: bytes, size relative to the source COG, the share of the bytes in overview levels
(from the TIFF's IFDs), encode speed (MB of raw full-resolution pixels per second), and the
largest error over valid pixels, measured here by reading every output against its input
(a figure the run's report gives differently is shown beside it); "mask" says whether every
nodata pixel stayed nodata and no valid pixel became nodata. GDAL's time is the wall time
of the copy (read, encode, overviews, write); compactor's is the scene's ``seconds`` from
the run's scene log (read, encoding search, encode, overviews, verification of every
pixel), without the Dask cluster's start-up: the wall time of each run is printed above
the tables.

Targets (issue 16), on each Landsat-like scene: (a) compactor lossless smaller than every
GDAL lossless preset with the same overview policy; (b) at least 10 % smaller than GDAL's
DEFLATE predictor 2 COG; (c) ``--max-error 2`` at least 30 % smaller than the source COG
with every valid pixel within 2 DN (one line per overview policy, the default named). And
(d): the RGBA uint16 DEFLATE scene is compacted, not left as it is, by every run in which
some output within that run's bar (same overview policy) is smaller than the source; its
status is the run's own (report.json and its scene log).

Usage::

    python bench/bench_science.py [--size 2048] [--scenes 1] [--quick] [--keep DIR]
                                  [--efforts default[,max]] [--workers 1] [--min-saving -1]
                                  [--noise-size 1536] [--noise-only]

Then the ``--max-error noise`` table (issue 27, :mod:`science_noise`: synthetic scenes with
known noise σ = 1, 2, 3.5, 6 DN, uint16 and float32; σ estimated against the truth, the
bound chosen, sizes against lossless and the best hand-picked bound); ``--noise-only``
prints only that table.

Prints a markdown table per input, then PASS/FAIL lines for the issue's targets. ``--keep``
leaves inputs, outputs, reports and ``results.json`` in DIR. About 4-5 minutes at 2048 on
2 busy cores (GDAL's ZSTD level 19 is a quarter of it), 2 minutes with ``--quick``;
``--efforts default,max`` adds a slow run (effort max tries ZSTD up to level 22).
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
    #: ``--overviews`` to pass; ``None``: the tool's default (read back from the report).
    policy: str | None
    bound: float
    args: list[str]
    needs: list[str]

    @property
    def slug(self) -> str:
        name = self.label.replace("compactor ", "").replace(" ", "_").replace(",", "")
        return f"{name.strip('-')}-{self.policy or 'default'}"


def compactor_configs(efforts: list[str], flags: set[str]) -> list[Config]:
    """Lossless under each overview policy (and any further effort with overviews full),
    ``--max-error 1`` with the default policy and ``--max-error 2`` under each policy.
    Without ``--overviews`` (older compactor) there is one policy: the tool's own."""
    policies: list[str | None] = ["full", "lossy", "none"] if "--overviews" in flags else [None]

    def pol(p: str | None) -> list[str]:
        return [] if p is None else ["--overviews", p]

    configs = []
    for n, effort in enumerate(efforts):
        eff = [] if effort == "default" else ["--effort", effort]
        needs = [] if effort == "default" else ["--effort"]
        suffix = "" if effort == "default" else f", effort {effort}"
        for p in policies if n == 0 else policies[:1]:
            configs.append(Config(f"compactor lossless{suffix}", p, 0, eff + pol(p), needs))
    for e, ps in ((1, [None]), (2, policies)):
        for p in ps:
            args = ["--max-error", str(e), *pol(p)]
            configs.append(Config(f"compactor --max-error {e}", p, e, args, ["--max-error"]))
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
    if s.get("lerc_blob") and s["lerc_blob"] != 4:
        parts[0] += f" v2.{s['lerc_blob']}"
    if s.get("lerc_inner"):
        parts[0] += f"+{s['lerc_inner']}"
    bound = s.get("max_error")
    if isinstance(bound, list | tuple):
        bound = max((float(x) for x in bound if x is not None), default=None)
    if bound:
        parts.append(f"<= {bound:g}")
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
    """One ``compactor run`` over ``src_dir`` (this checkout's code); a row per scene, by
    file stem."""
    dest = work / f"compactor{tag}-{cfg.slug}"
    report_dir = work / f"report{tag}-{cfg.slug}"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(report_dir, ignore_errors=True)
    cmd = [str(BIN / "compactor"), "-q", "run", "--source", str(src_dir), "--dest", str(dest),
           "--workers", str(workers), "--codec", "auto", "--report", str(report_dir),
           *cfg.args, *extra]  # fmt: skip
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": path}
    )
    wall = time.perf_counter() - t0
    if not (report_dir / "report.json").exists():
        print(
            f"  {cfg.label} ({cfg.policy}): no report (exit {proc.returncode}):\n"
            f"{proc.stderr[-2000:]}",
            file=sys.stderr,
        )
        return {}
    settings = json.loads((report_dir / "report.json").read_text()).get("settings") or {}
    policy = cfg.policy or settings.get("overviews") or "full"
    if not tag:
        print(f"  {cfg.label}, overviews {policy}: {wall:.1f} s wall (exit {proc.returncode})")
    rows = {}
    for fname, s in read_scenes(report_dir).items():
        out = dest / fname
        status = s.get("status", "?")
        row = Row("compactor", cfg.label, policy, cfg.bound, out if out.exists() else None,
                  s.get("bytes_out"), s.get("seconds"), codec=_codec_label(s), status=status,
                  reported_error=_reported_error(s), extra=s)  # fmt: skip
        if status in ("failed", "skipped"):
            row.codec = (s.get("reason") or "")[:70]
        elif s.get("overviews") and s["overviews"] != policy:
            row.codec += f" (overviews {s['overviews']})"
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
        err = "-" if r.max_error is None else f"{r.max_error:.4g}"
        reported = r.reported_error
        if reported is not None and r.max_error is not None and abs(reported - r.max_error) > 1e-6:
            err += f" (report says {reported:.4g})"
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
    if any(r.status.endswith("*") for r in rows):
        print(
            "\n\\* left as it is by the run (its COG not smaller than the source); the row is "
            "measured by a rerun of the scene alone with --min-saving below 0"
        )


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
            if mine is None or not mine.bytes or mine.path is None:
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
                f"({mine.bytes / (best.bytes or 1) - 1:+.2%}); max error {mine.max_error:g}"
            )
            deflate = next(r for r in gdal if r.codec == "DEFLATE pred")
            ratio = mine.bytes / (deflate.bytes or 1)
            lines.append(
                f"{verdict(ratio <= 0.9)} (b) {inp.name} {POLICY_LABEL[policy]}: compactor "
                f"lossless {ratio - 1:+.2%} vs GDAL DEFLATE pred 2 ({deflate.bytes:,} B); "
                "target <= -10%"
            )
        # the tool's default policy, as lossless compared with GDAL's lossless COGs with
        # overviews (informative: its overviews are not lossless)
        default = next((r.policy for r in rs if r.variant == "compactor --max-error 1"), None)
        mine = (
            ours("compactor lossless", default) if default not in (None, "full", "none") else None
        )
        if mine is not None and mine.bytes and default is not None:
            gdal = [r for r in rs if r.tool == "gdal" and r.policy == "full" and r.bound == 0]
            best = min(gdal, key=lambda r: r.bytes or 0)
            deflate = next(r for r in gdal if r.codec == "DEFLATE pred")
            lines.append(
                f"INFO {inp.name} overviews {default} (the default): compactor lossless "
                f"{mine.bytes:,} B, {mine.bytes / (best.bytes or 1) - 1:+.1%} vs the smallest "
                f"GDAL lossless with overviews ({best.codec}), "
                f"{mine.bytes / (deflate.bytes or 1) - 1:+.1%} vs GDAL DEFLATE pred 2"
            )
        bounded = [r for r in rs if r.variant == "compactor --max-error 2"]
        if not bounded:
            lines.append(f"SKIP (c) {inp.name}: no compactor --max-error 2 row")
        for lossy in bounded:
            tag = " (the default)" if lossy.policy == default else ""
            if not lossy.bytes or lossy.path is None:
                lines.append(f"SKIP (c) {inp.name} overviews {lossy.policy}: status {lossy.status}")
                continue
            change = lossy.bytes / inp.bytes - 1
            within = lossy.max_error is not None and lossy.max_error <= 2 and bool(lossy.mask_ok)
            err = "-" if lossy.max_error is None else f"{lossy.max_error:g}"
            lines.append(
                f"{verdict(change <= -0.3 and within)} (c) {inp.name}: --max-error 2, overviews "
                f"{lossy.policy}{tag}: {lossy.bytes:,} B, {change:+.1%} vs the source COG "
                f"(target <= -30%), max error {err} DN (<= 2), nodata "
                f"{'exact' if lossy.mask_ok else 'CHANGED'}"
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


def noise_table(work: Path, size: int, workers: int) -> list[str]:
    """The ``--max-error noise`` table (issue 27; :mod:`science_noise`)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import science_noise

    return science_noise.table(work, size, workers, _source_rgb, _write_cog)


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
        type=float,
        default=-1.0,
        help="compactor --min-saving of the rerun that measures the scenes a run left as they "
        "are (their COG not smaller): -1 (default) keeps outputs up to twice the source's "
        "size; 0: no rerun, such rows stay empty",
    )
    ap.add_argument(
        "--noise-size", type=int, default=1536,
        help="side of the --max-error noise scenes (bench/science_noise.py); 0: no noise table",
    )  # fmt: skip
    ap.add_argument(
        "--noise-only", action="store_true", help="only the --max-error noise table (issue 27)"
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
        if args.noise_only:
            for line in noise_table(work, args.noise_size, args.workers):
                print(line)
            print(f"\ntotal {time.perf_counter() - started:.0f} s")
            return 0
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
        by_stem = {i.name: i for i in inputs}
        statuses: dict[tuple[str, str], str] = {}
        t0 = time.perf_counter()
        for cfg in compactor_configs(efforts, flags):
            missing = [f for f in cfg.needs if f not in flags]
            if missing:
                print(f"  skipped {cfg.label}: compactor run has no {', '.join(missing)} yet")
                continue
            found = run_compactor(cfg, src_dir, work, args.workers, [])
            # a scene left as it is (its COG not smaller) is measured by a rerun of it alone
            # that keeps larger outputs; its status stays the one the real run gave it
            left = [stem for stem, r in found.items() if r.status == "skipped"]
            if left and args.min_saving < 0:
                again = work / f"left-{cfg.slug}"
                again.mkdir()
                for stem in left:
                    shutil.copy(by_stem[stem].path, again / by_stem[stem].path.name)
                extra = ["--min-saving", str(args.min_saving)]
                for stem, row in run_compactor(cfg, again, work, 1, extra, "-measured").items():
                    row.status = "skipped*"
                    found[stem] = row
            for stem, row in found.items():
                if stem in rows:
                    rows[stem].append(row)
                    if stem.startswith("rgba"):
                        statuses[(row.variant, row.policy)] = row.status.rstrip("*")
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
        if args.noise_size:
            for line in noise_table(work, args.noise_size, args.workers):
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
