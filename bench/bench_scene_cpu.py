"""The CPU one small scene costs in one process: ``process_scene`` over tiny scenes (64 x 64
RGB windows of the real Landsat raster, as bench_many_scenes makes them) from a local
folder to local folders with an archive, after one scene to warm up; no Dask, no S3. Each
tree runs in its own process (``--trees``, e.g. this one and ``/work/main``: before and
after side by side), and must give the same outputs byte for byte and the same results.

Usage::

    python bench/bench_scene_cpu.py [--scenes 40] [--size 64] [--trees A,B]
    python bench/bench_scene_cpu.py --midsize [--scenes 4] [--size 2560] [--rounds 3] [--trees A,B]

``--midsize``: bench_midsize's scenes instead (``--size`` square RGB cut from a mosaic of the
Landsat raster, nodata collars inside), JPEG q75 as bench_midsize runs them, and the
stage timers' ms per scene, every tree's side by side. The stage timers count this
thread's CPU time there (not wall time: a shared machine's load would fill them).
``--rounds``: each tree that many times, alternated; medians.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from _common import REPO, need_shared_data, scene_bytes, table


def measure(scenes: int, size: int, root: Path, midsize: bool) -> dict[str, object]:
    """In this process (``$PYTHONPATH``'s compactor, put before the one ``_common`` puts on
    ``sys.path``): CPU and wall ms per scene, and digests."""
    assert "compactor" not in sys.modules
    sys.path.insert(0, os.environ["PYTHONPATH"])
    import compactor

    assert Path(compactor.__file__).parents[1] == Path(os.environ["PYTHONPATH"]).resolve()
    from compactor.scene import RunContext, process_scene
    from compactor.settings import resolve_settings
    from compactor.sources import discover

    if midsize:  # the stages in this thread's CPU time (compactor.timing reads perf_counter)
        import types

        import compactor.timing

        compactor.timing.time = types.SimpleNamespace(perf_counter=time.thread_time)  # type: ignore[assignment]

    src = root / "src"
    src.mkdir(parents=True)
    options: dict[str, object] = {
        "source": str(src), "dest": str(root / "dst"), "archive": str(root / "arc")
    }  # fmt: skip
    if midsize:
        from bench_midsize import build_scenes

        build_scenes(src, scenes + 1, size)
        options.update(codec="jpeg", quality=75, min_ssim=0)
    else:
        for i in range(scenes + 1):
            (src / f"s{i:04d}.tif").write_bytes(scene_bytes(i, size))
    settings = resolve_settings(options)
    context = RunContext.from_settings(settings, "bench")
    specs = list(discover(settings, context).stream)
    process_scene(specs[0], context)  # imports, GDAL drivers, caches
    cpu, wall = time.process_time(), time.perf_counter()
    results = [process_scene(spec, context) for spec in specs[1:]]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    outputs = hashlib.sha256()
    for f in sorted((root / "dst").rglob("*.tif")):
        outputs.update(f.name.encode() + f.read_bytes())
    stages: dict[str, float] = {}
    for r in results:
        for k, v in r.stages.items():
            stages[k] = stages.get(k, 0.0) + 1000 * v / scenes
    fields = ("status", "codec", "quality", "output_bytes", "ssim", "reason")
    said = [{k: r.model_dump().get(k) for k in fields} for r in results]
    return {
        "cpu_ms": 1000 * cpu / scenes,
        "wall_ms": 1000 * wall / scenes,
        "compacted": sum(r.status == "compacted" for r in results),
        "outputs": outputs.hexdigest()[:12],
        "stages": stages,
        "results": hashlib.sha256(json.dumps(said, default=str).encode()).hexdigest()[:12],
    }


def run_child(tree: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": tree}
        cmd = [sys.executable, __file__, "--scenes", str(args.scenes), "--size",
               str(args.size), "--child", tmp]  # fmt: skip
        cmd += ["--midsize"] if args.midsize else []
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, help="40; 4 with --midsize")
    parser.add_argument("--size", type=int, help="64; 2560 with --midsize")
    parser.add_argument("--trees", default=str(REPO), help="source trees, comma-separated")
    parser.add_argument("--midsize", action="store_true", help="bench_midsize's scenes, JPEG")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each tree, alternated")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    need_shared_data()
    if args.size is None:
        args.size = 2560 if args.midsize else 64
    if args.scenes is None:
        args.scenes = 4 if args.midsize else 40
    if args.child:
        print(json.dumps(measure(args.scenes, args.size, Path(args.child), args.midsize)))
        return
    trees = args.trees.split(",")
    runs: dict[str, list[dict[str, Any]]] = {tree: [] for tree in trees}
    for r in range(args.rounds):
        for tree in trees if r % 2 == 0 else trees[::-1]:
            runs[tree].append(run_child(tree, args))
    rows = []
    stages: list[dict[str, float]] = []
    for tree in trees:
        ms = runs[tree]
        names = {k for m in ms for k in m["stages"]}
        stages.append({k: median(m["stages"].get(k, 0.0) for m in ms) for k in names})
        said = {(m["compacted"], m["outputs"], m["results"]) for m in ms}
        assert len(said) == 1, f"{tree}: rounds differ: {said}"
        m = ms[0]
        rows.append([tree, f"{median(x['cpu_ms'] for x in ms):.1f}",
                     f"{median(x['wall_ms'] for x in ms):.1f}", m["compacted"],
                     m["outputs"], m["results"]])  # fmt: skip
    print(table(["tree", "CPU ms/scene", "wall ms/scene", "compacted", "outputs", "results"],
                rows))  # fmt: skip
    names = sorted({k for st in stages for k in st}, key=lambda k: -stages[0].get(k, 0.0))
    what = "stage (CPU ms/scene)" if args.midsize else "stage (ms/scene)"
    print(table([what, *trees],
                [[k, *(f"{st.get(k, 0.0):.1f}" for st in stages)] for k in names]))  # fmt: skip
    base = float(rows[-1][1])
    for row in rows[:-1]:
        print(f"{row[0]}: {base / float(row[1]):.2f}x less CPU a scene than {rows[-1][0]}")


if __name__ == "__main__":
    main()
