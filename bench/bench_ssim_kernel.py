"""The 8-bit SSIM kernel (``compactor.fidelity._ssim_u8.ssim_sum_u8``): this tree's against
another revision's (``--old``, default ``main``), side by side in one run.

The old module is taken with ``git show <rev>:compactor/fidelity/_ssim_u8.py`` into a
temporary directory and imported from there (it compiles there on first run). Both get
the same ``--size`` (2560) square band of 8-bit pixels (a smooth field and its copy with
noise) in the layouts the callers pass:

* **contiguous**: a C-contiguous band (``fidelity._compare``'s strips);
* **interleaved**: a band of a pixel-interleaved ``(rows, cols, 3)`` block (column
  stride 3), timed over the 3 bands and quoted per band;
* **column slice**: a column slice of a wider band-first block (``encode._chunk_tasks``:
  row stride > width);
* **masked**: contiguous, with a validity mask (a nodata border and holes);
* **footprint**: contiguous, valid in a tilted swath (a scene's footprint; the two
  corners outside it, a quarter of the band, nodata).

Each figure is the minimum over ``--rounds`` (7) of CPU milliseconds per band (the calling
thread's CPU time: on a shared machine it moves much less than wall time), old and new
alternated; the sums are checked equal (to 1e-12 of the mean).

Usage::

    python bench/bench_ssim_kernel.py [--size 2560] [--rounds 7] [--old main]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from compactor.fidelity import _ssim_u8 as new  # noqa: E402

MODULE = "compactor/fidelity/_ssim_u8.py"
WIN = 7
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
COV = 49 / 48


def load_old(rev: str, tmp: Path) -> ModuleType:
    src = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:{MODULE}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = tmp / "ssim_u8_old.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("ssim_u8_old", path)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def images(size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(26)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(size, size)), axis=0), axis=1)
    a = np.clip(128 + smooth / np.abs(smooth).max() * 120, 0, 255).astype(np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    return a, b


Case = list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]


def cases(size: int) -> dict[str, Case]:
    a, b = images(size)
    inter_a = np.ascontiguousarray(np.stack([a, b, a[::-1]], axis=-1))
    inter_b = np.ascontiguousarray(np.stack([b, a, b[::-1]], axis=-1))
    wide_a = np.zeros((2, size, size + 512), np.uint8)
    wide_b = np.zeros_like(wide_a)
    wide_a[0, :, 256 : 256 + size], wide_b[0, :, 256 : 256 + size] = a, b
    valid = np.zeros((size, size), bool)
    valid[16:-16, 16:-16] = True
    valid[size // 3 : size // 2, size // 4 : size // 2] = False
    rows, cols = np.indices((size, size))
    footprint = np.abs(rows - cols) < size // 2  # a tilted swath: a quarter of the band nodata
    return {
        "contiguous": [(a, b, None)],
        "interleaved": [(inter_a[:, :, k], inter_b[:, :, k], None) for k in range(3)],
        "column slice": [(wide_a[0][:, 256 : 256 + size], wide_b[0][:, 256 : 256 + size], None)],
        "masked": [(a, b, valid)],
        "footprint": [(a, b, footprint)],
    }


def timed(fn: Callable[..., tuple[float, int]], case: Case) -> tuple[float, list[float]]:
    t = time.thread_time()
    means = []
    for x, y, v in case:
        total, count = fn(x, y, v, WIN, C1, C2, COV)
        means.append(total / count)
    return (time.thread_time() - t) / len(case) * 1e3, means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2560)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--old", default="main", help="git revision of the old kernel")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = load_old(args.old, Path(tmp))
        print(f"{args.size}x{args.size} uint8, CPU ms per band (min of {args.rounds} rounds)")
        print(f"{'layout':<14}{'old ' + args.old:>14}{'new':>10}{'old/new':>10}")
        for name, case in cases(args.size).items():
            best = {"old": float("inf"), "new": float("inf")}
            means: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for key, mod in (("old", old), ("new", new)):
                    ms, means[key] = timed(mod.ssim_sum_u8, case)
                    best[key] = min(best[key], ms)
            diff = max(abs(p - q) for p, q in zip(means["old"], means["new"], strict=True))
            assert diff < 1e-12, (name, means)
            ratio = best["old"] / best["new"]
            print(f"{name:<14}{best['old']:>14.1f}{best['new']:>10.1f}{ratio:>9.2f}x")


if __name__ == "__main__":
    main()
