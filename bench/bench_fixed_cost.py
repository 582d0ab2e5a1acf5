"""A run's fixed cost: ``compactor run`` over 1 and 4 small local scenes (256 x 256 RGB
windows of the real Landsat raster, local disk in and out, a LocalCluster), end to end as a
subprocess, against GDAL converting the same scenes to COGs in one process
(``rasterio.shutil.copy``, JPEG q75, ``NUM_THREADS=1``).

Usage::

    python bench/bench_fixed_cost.py [--counts 1,4] [--rounds 3] [--tree main=/work/main]

Each ``--tree LABEL=PATH`` is another source tree run with ``PYTHONPATH=PATH`` (this
checkout is always ``this``), so a change and its base are measured in one run, the trees
alternated within each round. Prints the median wall per tool and count, the ratio to
GDAL, and the stage table of each tree's run of one scene: the interpreter's start, the
CLI's imports, the run's own stages (``stages`` in report.json: preflight, listing,
cluster start, scenes, cluster stop), the report write and the interpreter's exit, which
add up to the wall time. Also ``python -c 'import compactor.cli'`` and ``compactor
--help`` timed, and the largest entries of ``python -X importtime -c 'import
compactor.cli'``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _common import REPO, need_shared_data, scene_bytes

#: Runs the CLI as the ``compactor`` script does (a file whose top level imports the CLI: a
#: worker started by the fork server re-runs a main *file*'s top level as ``__mp_main__``,
#: so the workers pay that import too), recording when its phases end (absolute
#: ``time.time()``, the clock the bench uses for the launch) into the file $FIXED_COST_OUT.
#: The report write is timed by wrapping ``write_report`` where the run looks it up, when
#: the command imports that module (not before: the command starts the fork server first).
WRAPPER = """import json, os, sys, time
marks = {"start": time.time()}
from compactor.cli import main
marks["cli imported"] = time.time()

if __name__ == "__main__":
    from importlib.machinery import PathFinder

    def wrap(module):
        write = module.write_report
        def timed(*a, **k):
            marks["report write start"] = time.time()
            try:
                return write(*a, **k)
            finally:
                marks["report written"] = time.time()
        module.write_report = timed

    class Timed(PathFinder):
        # When the command has imported the runner: the time; its write_report wrapped.
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name not in ("compactor.runner", "compactor.runner._pipeline"):
                return None
            spec = PathFinder.find_spec(name, path, target)
            load = spec.loader.exec_module
            def exec_module(module):
                load(module)
                if name == "compactor.runner":
                    marks["run modules imported"] = time.time()
                else:
                    wrap(module)
            spec.loader.exec_module = exec_module
            return spec

    if "compactor.runner._pipeline" in sys.modules:  # the CLI imported it already
        wrap(sys.modules["compactor.runner._pipeline"])
    else:
        sys.meta_path.insert(0, Timed)
    try:
        main(sys.argv[1:], prog_name="compactor")
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    finally:
        marks["command done"] = time.time()
        marks.setdefault("run modules imported", marks["cli imported"])  # imported already
        with open(os.environ["FIXED_COST_OUT"], "w") as f:
            json.dump(marks, f)
    sys.exit(code)
"""

GDAL = (
    "import sys\n"
    "from rasterio.shutil import copy\n"
    "for src in sys.argv[2:]:\n"
    "    dst = sys.argv[1] + '/' + src.rsplit('/', 1)[-1]\n"
    "    copy(src, dst, driver='COG', COMPRESS='JPEG', QUALITY='75', NUM_THREADS='1')\n"
)

#: The ``compactor`` script: the CLI's main on the command line's arguments.
CLI = [sys.executable, str(Path(sys.executable).parent / "compactor")]

RUN_STAGES = ("preflight", "listing", "cluster start", "scenes", "cluster stop")


def build(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"scene-{i:02d}.tif"
        if not path.exists():
            path.write_bytes(scene_bytes(i, size))
        paths.append(path)
    return paths


def env_for(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    return env


def run_compactor(tree: Path, src: Path, work: Path) -> tuple[float, dict[str, float]]:
    """One ``compactor -q run`` of ``src``: its wall seconds and its stage seconds."""
    out, report, marks_file = work / "out", work / "report", work / "marks.json"
    for d in (out, report):
        shutil.rmtree(d, ignore_errors=True)
    args = ["-q", "run", "--source", str(src), "--dest", str(out), "--report", str(report),
            "--min-saving", "-1"]  # fmt: skip
    env = env_for(tree) | {"FIXED_COST_OUT": str(marks_file)}
    work.mkdir(parents=True, exist_ok=True)
    script = work / "compactor-timed.py"
    script.write_text(WRAPPER)
    launched = time.time()
    t = time.perf_counter()
    # Output to files, not pipes: the wall is the command's (a pipe stays open until the
    # fork server it started has exited too, after the command).
    with (work / "stdout").open("w+") as so, (work / "stderr").open("w+") as se:
        code = subprocess.call([sys.executable, str(script), *args], env=env, cwd=work,
                               stdout=so, stderr=se)  # fmt: skip
        wall = time.perf_counter() - t
        if code != 0:
            so.seek(0)
            se.seek(0)
            sys.exit(f"compactor failed ({code}):\n{so.read()}\n{se.read()}")
    marks = json.loads(marks_file.read_text())
    stages = json.loads((report / "report.json").read_text()).get("stages", {})
    parts = {
        "interpreter start": marks["start"] - launched,
        "import compactor.cli": marks["cli imported"] - marks["start"],
        "the run's modules (imported by the command)": marks["run modules imported"]
        - marks["cli imported"],
    }
    parts |= {k: float(stages.get(k, 0.0)) for k in RUN_STAGES}
    parts["report write"] = marks["report written"] - marks["report write start"]
    known = sum(parts.values()) - parts["interpreter start"]
    parts["other in the command (settings, summary)"] = max(
        0.0, marks["command done"] - marks["start"] - known
    )
    parts["interpreter exit"] = max(0.0, launched + wall - marks["command done"])
    return wall, parts


def run_gdal(scenes: list[Path], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", GDAL, str(out), *map(str, scenes)], check=True)
    return time.perf_counter() - t


def timed_command(cmd: list[str], env: dict[str, str], repeat: int) -> float:
    """Median seconds of ``cmd`` (run outside any tree: ``python -c`` puts the working
    directory first on ``sys.path``)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=tempfile.gettempdir())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def importtime_top(tree: Path, n: int = 8) -> list[tuple[str, float]]:
    """The largest cumulative entries of ``-X importtime`` at nesting depth 2 or less."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import compactor.cli"],
        env=env_for(tree), capture_output=True, text=True, check=True, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 2:
            rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:n]


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="1,4", help="scene counts, comma-separated")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH",
                    help="another source tree to run alongside this one")  # fmt: skip
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    need_shared_data()
    trees = {"this": REPO}
    for spec in args.tree:
        label, _, path = spec.partition("=")
        trees[label] = Path(path).resolve()
    counts = [int(c) for c in args.counts.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-fixed-cost-"))
    sources = {n: build(work / f"source-{n}", n, args.size) for n in counts}
    print(f"{len(trees)} tree(s): " + ", ".join(f"{k} = {v}" for k, v in trees.items()))
    load = os.getloadavg()[0]
    print(f"{args.size} x {args.size} RGB scenes; {os.cpu_count()} cores; load {load:.1f}; "
          f"{args.rounds} rounds, alternated", flush=True)  # fmt: skip

    walls: dict[tuple[str, int], list[float]] = defaultdict(list)
    parts: dict[tuple[str, int], list[dict[str, float]]] = defaultdict(list)
    for r in range(args.rounds):
        for n in counts:
            for label, tree in trees.items():
                wall, p = run_compactor(tree, work / f"source-{n}", work / f"run-{label}")
                walls[(label, n)].append(wall)
                parts[(label, n)].append(p)
                print(f"round {r + 1}: compactor ({label}) {n} scenes: {wall:.2f} s", flush=True)
            walls[("GDAL", n)].append(run_gdal(sources[n], work / "gdal"))
            print(f"round {r + 1}: GDAL {n} scenes: {walls[('GDAL', n)][-1]:.2f} s", flush=True)

    print()
    rows = []
    for n in counts:
        gdal = statistics.median(walls[("GDAL", n)])
        for label in [*trees, "GDAL"]:
            s = statistics.median(walls[(label, n)])
            name = "GDAL `rasterio.shutil.copy` COG, one process" if label == "GDAL" else (
                f"**compactor run** ({label})")  # fmt: skip
            rows.append([name, str(n), f"{s:.2f}",
                         " / ".join(f"{t:.2f}" for t in walls[(label, n)]),
                         f"{s / gdal:.1f}x"])  # fmt: skip
    print(markdown(["tool", "scenes", "wall s (median)", "rounds s", "wall / GDAL"], rows))

    print("\nWhere one scene's run goes (median of the rounds, seconds):\n")
    first = counts[0]
    names = list(parts[("this", first)][0])
    stage_rows = []
    for name in names:
        cells = [statistics.median(p[name] for p in parts[(label, first)]) for label in trees]
        stage_rows.append([name, *(f"{c:.2f}" for c in cells)])
    totals = [statistics.median(walls[(label, first)]) for label in trees]
    stage_rows.append(["**wall**", *(f"**{t:.2f}**" for t in totals)])
    print(markdown(["stage", *trees], stage_rows))

    print("\nThe CLI alone (median of 3, seconds):\n")
    cli_rows = []
    for label, tree in trees.items():
        env = env_for(tree)
        cli_rows.append([
            label,
            f"{timed_command([sys.executable, '-c', 'pass'], env, 3):.2f}",
            f"{timed_command([sys.executable, '-c', 'import compactor.cli'], env, 3):.2f}",
            f"{timed_command([*CLI, '--help'], env, 3):.2f}",
            f"{timed_command([*CLI, 'run', '--help'], env, 3):.2f}",
        ])  # fmt: skip
    print(markdown(["tree", "`python -c pass`", "`import compactor.cli`", "`compactor --help`",
                    "`compactor run --help`"], cli_rows))  # fmt: skip
    for label, tree in trees.items():
        print(f"\n`python -X importtime -c 'import compactor.cli'` ({label}), largest:\n")
        top = importtime_top(tree)
        print(markdown(["module", "cumulative s"], [[m, f"{s:.3f}"] for m, s in top]))
    ours = statistics.median(walls[("this", first)])
    verdict = "MET" if ours <= 3.0 else "NOT MET"
    print(f"\ntarget (a {first}-scene local run <= 3 s): {verdict} ({ours:.2f} s)")


if __name__ == "__main__":
    main()
