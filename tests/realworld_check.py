"""The real-world corpus (tests/data/realworld): its manifest, a run of ``compactor run`` over
a copy of it, and an independent check of every output.

The check uses rasterio alone (none of compactor's own verification): the original is opened
from the corpus folder WITH its sidecars (``.aux.xml``, ``.msk``, ``.ovr``, ``.rpb``,
``_rpc.txt``, ``.tfw``, ``.IMD``), whatever a process set for GDAL before, and each output is
compared with it: shape, band count and types, CRS, transform or GCPs, RPCs, the dataset
mask, the alpha band, the colour table, and the pixels themselves where the report says the
output is lossless (for a lossy output: the count of valid pixels; its SSIM is compactor's
number and is only read back). Used by tests/project/test_realworld.py and bench/realworld.py.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CORPUS = Path(__file__).resolve().parent / "data" / "realworld"
MANIFEST = CORPUS / "SOURCES.csv"
#: What compactor lists by default (config.DEFAULT_INCLUDE); every other file is a sidecar.
SCENE_SUFFIXES = (".tif", ".tiff", ".ntf", ".nitf", ".jp2", ".img")
SOURCE_DRIVERS = ("GTiff", "JP2OpenJPEG", "NITF", "HFA")
#: Sidecars are read: GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR (which a process may have set)
#: would hide them.
SIDECAR_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "FALSE", "GDAL_PAM_ENABLED": "YES"}
#: Pixels compared at most, per file (the corpus has none above this; a guard, not a sample).
MAX_COMPARED = 64_000_000


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the corpus folder
    project: str
    source_path: str
    licence: str
    cls: str
    features: tuple[str, ...]

    @property
    def is_scene(self) -> bool:
        return self.path.lower().endswith(SCENE_SUFFIXES)


def manifest(path: Path = MANIFEST) -> list[Entry]:
    with path.open(newline="") as fh:
        return [
            Entry(
                r["path"], r["project"], r["source_path"], r["licence"], r["class"],
                tuple(f for f in r["features"].split(";") if f),
            )
            for r in csv.DictReader(fh)
        ]  # fmt: skip


def scenes(entries: Iterable[Entry] | None = None) -> list[Entry]:
    return [e for e in (manifest() if entries is None else entries) if e.is_scene]


# --------------------------------------------------------------------------- runs


@dataclass
class RunResult:
    """One ``compactor run`` over a folder: whether it aborted, and each scene's record."""

    aborted: bool
    abort_reason: str = ""
    exit_code: int | None = None
    scenes: dict[str, dict[str, Any]] = field(default_factory=dict)  # corpus path -> record


def copy_corpus(dest: Path, paths: Iterable[str] | None = None, corpus: Path = CORPUS) -> Path:
    """A copy of the corpus (or of ``paths`` and their sidecars) in ``dest``."""
    entries = manifest(corpus / "SOURCES.csv")
    wanted = None if paths is None else set(paths)
    for e in entries:
        if wanted is not None and e.path not in wanted and owner(e.path, entries) not in wanted:
            continue
        (dest / e.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / e.path, dest / e.path)
    return dest


def owner(sidecar: str, entries: Iterable[Entry]) -> str | None:
    """The scene a sidecar belongs to: the longest scene path whose stem starts its name
    (``a.tif.ovr``, ``a.tif.aux.xml``, ``a.msk``, ``a.rpb``, ``a_rpc.txt``, ``a.IMD``)."""
    folder, _, name = sidecar.rpartition("/")
    best = None
    for e in entries:
        if not e.is_scene or e.path.rpartition("/")[0] != folder:
            continue
        sname = e.path.rpartition("/")[2]
        stem = sname.rsplit(".", 1)[0]
        if name.lower().startswith(sname.lower()) or name.lower().startswith(stem.lower() + "."):
            if best is None or len(e.path) > len(best):
                best = e.path
        elif name.lower().startswith(stem.lower() + "_rpc"):
            best = best or e.path
    return best


def read_run(dest: Path, src: Path) -> dict[str, dict[str, Any]]:
    """Each scene's record of the one run whose report is under ``dest``, by corpus path."""
    from compactor.records._scene_log import read_scene_log

    reports = sorted((dest / "_compactor" / "runs").glob("*/report.json"))
    if not reports:
        return {}
    report = json.loads(reports[-1].read_text())
    found: dict[str, dict[str, Any]] = {}
    for r in read_scene_log(report["scene_log"]["location"]):
        rec = r.model_dump(mode="json")
        source = Path(rec["source"].removeprefix("file://"))
        try:
            found[source.relative_to(src).as_posix()] = rec
        except ValueError:
            found[rec["source"]] = rec
    return found


def run_corpus(
    invoke: Callable[[list[str]], tuple[int | None, str]],
    work: Path,
    paths: Iterable[str] | None = None,
    extra: tuple[str, ...] = (),
) -> RunResult:
    """``compactor run`` over a fresh copy of the corpus (or of ``paths``) in ``work``.
    ``invoke(argv)`` runs the CLI and returns (exit code, output); an exception it raises, an
    exit code other than 0 and 1, or no report is an abort."""
    src, dest, arch = work / "src", work / "dest", work / "archive"
    for d in (src, dest, arch):
        shutil.rmtree(d, ignore_errors=True)
    copy_corpus(src, paths)
    argv = ["run", "--source", str(src), "--dest", str(dest), "--archive", str(arch), *extra]
    try:
        code, output = invoke(argv)
    except Exception as exc:  # the run crashed: that is what this records
        return RunResult(True, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    found = read_run(dest, src)
    if code not in (0, 1) or not found:
        tail = output.strip().splitlines()[-1:] if output.strip() else ["no output"]
        return RunResult(True, f"exit {code}, no report: {tail[0][:300]}", code, found)
    return RunResult(False, "", code, found)


def load_runs(work: Path, paths: Iterable[str]) -> dict[str, tuple[RunResult, Path]]:
    """The runs :func:`run_corpus` left in ``work``'s subfolders, read again: for each of
    ``paths``, the run that did not abort with it in its copy, else the aborted one."""
    wanted = set(paths)
    found: dict[str, tuple[RunResult, Path]] = {}
    for d in sorted(p for p in work.iterdir() if (p / "src").is_dir()):
        mine = {
            f.relative_to(d / sub).as_posix()
            for sub in ("src", "archive")
            for f in (d / sub).rglob("*")
            if f.is_file()
        } & wanted
        scenes_found = read_run(d / "dest", d / "src")
        run = RunResult(not scenes_found, "" if scenes_found else "no report", None, scenes_found)
        for p in mine:
            if p not in found or (found[p][0].aborted and not run.aborted):
                found[p] = (run, d)
    return found


# --------------------------------------------------------------------------- verification


def _open(path: Path, drivers: tuple[str, ...] = SOURCE_DRIVERS) -> Any:
    import rasterio

    ds = rasterio.open(path)
    if ds.driver not in drivers:
        ds.close()
        raise ValueError(f"{path.name} opens with GDAL's {ds.driver} driver")
    return ds


def _same_floats(a: Iterable[float], b: Iterable[float], tol: float = 1e-9) -> bool:
    la, lb = list(a), list(b)
    return len(la) == len(lb) and all(
        math.isclose(x, y, rel_tol=tol, abs_tol=tol) for x, y in zip(la, lb, strict=True)
    )


def _flat(d: Mapping[str, Any]) -> list[float]:
    """RPC values in key order; an unknown error (None) is -1, as GDAL writes it."""
    out: list[float] = []
    for k in sorted(d):
        v = d[k]
        if k in ("err_bias", "err_rand") and v is None:
            v = -1.0
        out.extend(
            0.0 if x is None else float(x) for x in (v if isinstance(v, list | tuple) else [v])
        )
    return out


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _same_definition(a: Any, b: Any) -> bool:
    """Two CRSs PROJ defines alike (names and default-valued parameters aside: what GeoTIFF
    keys cannot hold), never a rotated pole."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pa, pb = a.to_proj4(), b.to_proj4()
    return bool(pa) and pa == pb and "ob_tran" not in pa


def _alpha_became_mask(src: Any, dst: Any) -> bool:
    from rasterio.enums import ColorInterp

    return (
        (src.width, src.height) == (dst.width, dst.height)
        and dst.count == src.count - 1
        and src.colorinterp[-1] == ColorInterp.alpha
        and ColorInterp.alpha not in dst.colorinterp
    )


def _binary_alpha_problems(src: Any, dst: Any, record: Mapping[str, Any]) -> list[str]:
    alpha = src.read(src.count)
    top = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "iu" else 1.0
    problems: list[str] = []
    if not np.isin(alpha, (0, top)).all():
        return ["a graded alpha band became a 1-bit mask"]
    if not _equal(alpha > 0, dst.dataset_mask() > 0):
        problems.append("the mask is not the alpha band")
    if src.crs != dst.crs or not _same_floats(src.transform, dst.transform, 1e-9):
        problems.append("georeferencing changed")
    if tuple(src.dtypes[:-1]) != tuple(dst.dtypes):
        problems.append(f"dtypes {src.dtypes[:-1]} became {dst.dtypes}")
    if record.get("lossless"):
        valid = alpha > 0
        a, b = src.read(list(range(1, src.count))), dst.read()
        if not _equal(a[:, valid], b[:, valid]):
            problems.append("lossless output differs where the alpha is opaque")
    elif record.get("ssim") is None:
        problems.append("lossy output without an SSIM in the report")
    return problems


def verify(original: Path, output: Path, record: Mapping[str, Any]) -> list[str]:
    """What ``output`` lost of ``original`` (read with its sidecars); empty: nothing."""
    import rasterio

    problems: list[str] = []
    with rasterio.Env(**SIDECAR_ENV), _open(original) as src:
        try:
            dst_ctx = _open(output, ("GTiff",))
        except Exception as exc:
            return [f"output does not open: {exc}"]
        with dst_ctx as dst:
            if _alpha_became_mask(src, dst):
                # A binary alpha (only 0 and the maximum) may become the output's mask: it
                # is the same information. The colour bands are checked as any others.
                return _binary_alpha_problems(src, dst, record)
            if (src.width, src.height, src.count) != (dst.width, dst.height, dst.count):
                problems.append(
                    f"shape {src.width}x{src.height}x{src.count} became "
                    f"{dst.width}x{dst.height}x{dst.count}"
                )
                return problems
            if tuple(src.dtypes) != tuple(dst.dtypes):
                problems.append(f"dtypes {src.dtypes} became {dst.dtypes}")
            if (src.crs is None) != (dst.crs is None) or (
                src.crs and src.crs != dst.crs and not _same_definition(src.crs, dst.crs)
            ):
                problems.append(f"CRS {src.crs} became {dst.crs}")
            gcps, gcp_crs = src.gcps
            if gcps:
                out_gcps, out_crs = dst.gcps
                flat = [v for g in gcps for v in (g.row, g.col, g.x, g.y, g.z or 0.0)]
                out_flat = [v for g in out_gcps for v in (g.row, g.col, g.x, g.y, g.z or 0.0)]
                if not _same_floats(flat, out_flat, 1e-7):
                    problems.append(f"{len(gcps)} GCPs became {len(out_gcps)} different ones")
                if gcp_crs != out_crs:
                    problems.append(f"GCP CRS {gcp_crs} became {out_crs}")
            elif not _same_floats(src.transform, dst.transform, 1e-9):
                problems.append(
                    f"transform {tuple(src.transform)[:6]} became {tuple(dst.transform)[:6]}"
                )
            if src.rpcs is not None:
                if dst.rpcs is None:
                    problems.append("RPCs lost")
                elif not _same_floats(_flat(src.rpcs.to_dict()), _flat(dst.rpcs.to_dict()), 1e-6):
                    problems.append("RPCs changed")
            for b in range(1, src.count + 1):
                try:
                    cmap = src.colormap(b)
                except ValueError:
                    continue
                try:
                    out_cmap = dst.colormap(b)
                except ValueError:
                    problems.append(f"band {b} colour table lost")
                    continue
                # Every value the pixels hold must show the same colour (a 1-, 2- or 4-bit
                # table has fewer entries than the 8-bit table its expansion carries).
                used = (
                    {int(v) for v in np.unique(src.read(b))}
                    if src.width * src.height <= MAX_COMPARED
                    else set(cmap)
                )
                if any(out_cmap.get(v) != cmap.get(v) for v in used | set(cmap)):
                    problems.append(f"band {b} colour table changed")
            if src.width * src.height * src.count > MAX_COMPARED:
                problems.append("too large for the check")
                return problems
            problems += _pixels(src, dst, record)
    return problems


def _pixels(src: Any, dst: Any, record: Mapping[str, Any]) -> list[str]:
    from rasterio.enums import ColorInterp

    problems = []
    src_mask, dst_mask = src.dataset_mask(), dst.dataset_mask()
    if record.get("lossless"):
        if not _equal(src_mask, dst_mask):
            problems.append(f"dataset mask differs at {int((src_mask != dst_mask).sum())} pixels")
        a, b = src.read(), dst.read()
        if not _equal(a, b):
            differ = ~((a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind in "fc" else (a == b))
            problems.append(f"lossless output differs at {int(differ.sum())} samples")
        return problems
    # lossy: the validity mask exactly, the alpha band exactly; SSIM is compactor's number
    if not _equal(src_mask > 0, dst_mask > 0):
        problems.append(
            f"valid pixels {int((src_mask > 0).sum())} became {int((dst_mask > 0).sum())}"
        )
    for i, ci in enumerate(src.colorinterp, start=1):
        if ci == ColorInterp.alpha and not _equal(src.read(i), dst.read(i)):
            problems.append(f"alpha band {i} changed")
    ssim = record.get("ssim")
    if ssim is None:
        problems.append("lossy output without an SSIM in the report")
    return problems


# --------------------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    path: str
    status: str  # compacted / skipped / failed / held / missing / aborted
    ok: bool
    detail: str = ""
    bytes_in: int | None = None
    bytes_out: int | None = None
    codec: str | None = None
    lossless: bool | None = None


def judge(entry: Entry, run: RunResult, work: Path, corpus: Path = CORPUS) -> Outcome:
    """What became of one corpus scene in ``run``: ok when it compacted and its output passes
    :func:`verify` and its original is in the archive byte for byte, or it failed (or was
    skipped) with a one-line reason and its original untouched at the source."""
    rec = run.scenes.get(entry.path)
    if rec is None:
        if run.aborted:
            return Outcome(entry.path, "aborted", False, run.abort_reason)
        return Outcome(entry.path, "missing", False, "not in the report")
    status, reason = rec["status"], (rec.get("reason") or "").strip()
    out = Outcome(
        entry.path, status, False, reason, rec.get("bytes_in"), rec.get("bytes_out"),
        rec.get("codec"), rec.get("lossless"),
    )  # fmt: skip
    original = (corpus / entry.path).read_bytes()
    if status in ("failed", "skipped"):
        if not reason or "\n" in reason:
            out.detail = f"{status} without a one-line reason: {reason!r}"
        elif (work / "src" / entry.path).read_bytes() != original:
            out.detail = f"{status}, but its original changed at the source"
        else:
            out.ok = True
        return out
    if status in ("compacted", "held"):
        archived = work / "archive" / entry.path
        if not archived.exists() or archived.read_bytes() != original:
            out.detail = "original not in the archive byte for byte"
            return out
        output = Path(str(rec["output"]).removeprefix("file://"))
        try:
            problems = verify(corpus / entry.path, output, rec)
        except Exception as exc:  # the check itself could not read something: not verified
            problems = [f"check failed: {type(exc).__name__}: {exc}".splitlines()[0]]
        out.ok = not problems
        out.detail = "; ".join(problems) if problems else "verified"
        return out
    out.detail = f"unknown status {status}"
    return out
