"""The real-world corpus (tests/data/realworld): what compactor makes of each file, checked
independently, next to GDAL's COG driver on the same files.

* ``compactor run`` (local folders, ``--archive``, otherwise default settings unless
  ``--min-saving`` is given) over a copy of the corpus, on one LocalCluster of ``--workers``
  single-threaded processes. A run that aborts (a crash, no report) is split in halves and
  each half run again, down to single files, so every file gets its own outcome and the
  files that abort a run are named.
* Every compacted output checked by tests/realworld_check.py (rasterio only; the original
  read with its sidecars).
* GDAL's COG driver per file (``rasterio.shutil.copy``): DEFLATE with a predictor, and JPEG
  quality 75 where JPEG applies (8-bit, 1 or 3 bands, + alpha). Bytes are compared on the
  files both convert, against GDAL's JPEG where compactor's output is lossy, DEFLATE where
  it is lossless.

Usage::

    python bench/realworld.py [--workers 2] [--min-saving -100] [--workdir DIR] [--files N]

Prints markdown: per class, files / compacted / skipped / failed (reasons grouped) /
information lost / aborted, compactor's and GDAL's bytes; then the files that abort a run
and the ones whose output lost something.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.realworld_check import (  # noqa: E402
    CORPUS,
    SIDECAR_ENV,
    Entry,
    Outcome,
    RunResult,
    judge,
    load_runs,
    run_corpus,
    scenes,
)


def cli(scheduler: str, extra: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """``compactor run`` in this process (click's runner, as the tests do: no interpreter
    start per run) on the bench's cluster."""
    from click.testing import CliRunner

    from compactor.cli import main

    def invoke(argv: list[str]) -> tuple[int | None, str]:
        result = CliRunner().invoke(
            main, ["-q", *argv, "--scheduler", scheduler, *extra], catch_exceptions=False
        )
        return result.exit_code, result.output

    return invoke


def run_all(
    invoke, work: Path, entries: list[Entry]
) -> tuple[dict[str, tuple[RunResult, Path]], list[str], float]:  # type: ignore[no-untyped-def]
    """Each scene's run and the files that abort a run on their own: the whole corpus in one
    run; a run that aborts is split in halves and each half run again, down to single files."""
    where: dict[str, tuple[RunResult, Path]] = {}
    aborting: list[str] = []
    runs = 0

    def attempt(paths: list[str], name: str) -> float:
        nonlocal runs
        runs += 1
        t0 = time.monotonic()
        run = run_corpus(invoke, work / name, paths)
        took = time.monotonic() - t0
        if not run.aborted or len(paths) == 1:
            where.update({p: (run, work / name) for p in paths})
            if run.aborted:
                aborting.append(paths[0])
            return took
        half = len(paths) // 2
        attempt(paths[:half], name + "a")
        attempt(paths[half:], name + "b")
        return took

    took = attempt([e.path for e in entries], "r")
    print(f"{runs} runs to attribute the aborts", file=sys.stderr)
    return where, aborting, took


def gdal_cog(src: Path, dst: Path, jpeg: bool) -> tuple[int | None, str]:
    import rasterio
    from rasterio.shutil import copy

    opts = (
        {"COMPRESS": "JPEG", "QUALITY": "75"}
        if jpeg
        else {"COMPRESS": "DEFLATE", "PREDICTOR": "YES"}
    )
    dst.parent.mkdir(parents=True, exist_ok=True)
    why = ""
    # GDAL refuses a predictor on sub-byte and complex data: DEFLATE alone there
    for o in (opts, {"COMPRESS": "DEFLATE"}) if not jpeg else (opts,):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with rasterio.Env(**SIDECAR_ENV):
                    copy(str(src), str(dst), driver="COG", NUM_THREADS="1", **o)
            return dst.stat().st_size, ""
        except Exception as exc:
            why = str(exc).replace(str(src.parent) + "/", "").splitlines()[0][:100] or repr(exc)
    return None, why


def jpeg_applies(path: Path) -> bool:
    import rasterio
    from rasterio.enums import ColorInterp

    try:
        with rasterio.Env(**SIDECAR_ENV), rasterio.open(path) as ds:
            colour = [c for c in ds.colorinterp if c != ColorInterp.alpha]
            try:
                ds.colormap(1)
                return False
            except ValueError:
                pass
            return set(ds.dtypes) == {"uint8"} and len(colour) in (1, 3)
    except Exception:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--min-saving", default=None, help="passed to compactor (default: its own)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--reuse", action="store_true", help="judge the runs already in --workdir again"
    )
    ap.add_argument("--files", type=int, default=0, help="only the first N scenes (a smoke run)")
    args = ap.parse_args()
    entries = scenes()
    if args.files:
        entries = entries[: args.files]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="realworld-"))
    extra: tuple[str, ...] = ()
    if args.min_saving is not None:
        extra += ("--min-saving", str(args.min_saving))
    if args.reuse:
        where = load_runs(work, [e.path for e in entries])
        aborting = [p for p, (r, _) in where.items() if r.aborted]
        took = float("nan")
    else:
        where, aborting, took = cluster_runs(args.workers, work, entries, extra)
    judge_and_report(entries, where, aborting, took, work)


def cluster_runs(workers, work, entries, extra):  # type: ignore[no-untyped-def]
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        invoke = cli(cluster.scheduler_address, extra)
        return run_all(invoke, work, entries)


def judge_and_report(entries, where, aborting, took, work) -> None:  # type: ignore[no-untyped-def]
    outcomes: dict[str, Outcome] = {}
    for e in entries:
        run, w = where[e.path]
        outcomes[e.path] = judge(e, run, w)
    gdal: dict[str, tuple[int | None, str, bool]] = {}
    for e in entries:
        src = CORPUS / e.path
        jpeg = jpeg_applies(src)
        o = outcomes[e.path]
        use_jpeg = jpeg and o.lossless is False
        size, why = gdal_cog(src, work / "gdal" / (e.path.replace("/", "__") + ".tif"), use_jpeg)
        gdal[e.path] = (size, why, use_jpeg)
    report(entries, outcomes, gdal, aborting, took, work)


def report(entries, outcomes, gdal, aborting, took, work) -> None:  # type: ignore[no-untyped-def]
    by_class: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_class[e.cls].append(e)
    print(f"corpus: {len(entries)} scenes in {CORPUS}; work in {work}")
    print(f"whole-corpus run: {took:.1f} s" + (" (ABORTED)" if aborting else ""))
    print()
    print(
        "| class | files | compacted | verified | skipped | failed | lost info | aborted "
        "| compactor bytes | GDAL bytes | ratio |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    totals = Counter()
    for cls in sorted(by_class):
        c = Counter()
        cb = gb = 0
        for e in by_class[cls]:
            o = outcomes[e.path]
            c["files"] += 1
            c[o.status] += 1
            if o.status == "compacted":
                c["verified" if o.ok else "lost"] += 1
                g = gdal[e.path][0]
                if g and o.bytes_out:
                    cb += o.bytes_out
                    gb += g
            if e.path in aborting:
                c["abort"] += 1
        totals.update(c)
        totals["cb"] += cb
        totals["gb"] += gb
        ratio = f"{cb / gb:.2f}" if gb else "-"
        print(
            f"| {cls} | {c['files']} | {c['compacted']} | {c['verified']} | {c['skipped']} "
            f"| {c['failed']} | {c['lost']} | {c['abort']} | {cb} | {gb} | {ratio} |"
        )
    ratio = f"{totals['cb'] / totals['gb']:.2f}" if totals["gb"] else "-"
    print(
        f"| **all** | {totals['files']} | {totals['compacted']} | {totals['verified']} "
        f"| {totals['skipped']} | {totals['failed']} | {totals['lost']} | {totals['abort']} "
        f"| {totals['cb']} | {totals['gb']} | {ratio} |"
    )
    print()
    reasons = Counter(
        (outcomes[e.path].detail.split(":")[0][:80]) for e in entries
        if outcomes[e.path].status == "failed"
    )  # fmt: skip
    print("failed, reasons grouped (text before the first colon):")
    for r, n in reasons.most_common():
        print(f"  {n:3d}  {r}")
    gdal_fail = Counter(w[:70] for (s, w, _) in gdal.values() if s is None)
    print(f"\nGDAL COG failed on {sum(gdal_fail.values())} files:")
    for r, n in gdal_fail.most_common():
        print(f"  {n:3d}  {r}")
    print("\nfiles that abort a run on their own:")
    for p in aborting:
        print(f"  {p}: {outcomes[p].detail[:160]}")
    print("\ncompacted outputs that lost information (independent check):")
    for e in entries:
        o = outcomes[e.path]
        if o.status == "compacted" and not o.ok:
            print(f"  {e.path} [{e.cls}]: {o.detail[:200]}")
    print("\nother outcomes that are not ok (missing, reasons not one line, changed originals):")
    for e in entries:
        o = outcomes[e.path]
        if not o.ok and o.status not in ("compacted", "aborted"):
            print(f"  {e.path}: {o.status}: {o.detail[:160]}")


if __name__ == "__main__":
    main()
