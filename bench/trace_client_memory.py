"""Where does the client's memory go over many small scenes? One ``compactor run`` over
``--scenes`` tiny scenes (as bench_many_scenes.py), the CLI run in a child process that, at
each mark of ``--marks`` scenes collected, records its RSS, its RSS after
``malloc_trim(0)`` (what glibc gives back: fragmentation, not references), the count of
live objects by type (``gc.get_objects``) and, with ``--trace``, a tracemalloc snapshot;
then prints the growth between the first and the last mark: bytes per scene, the types
whose counts grew, and (``--trace``) the allocation sites that grew, by traceback.

Usage::

    python bench/trace_client_memory.py [--scenes 4000] [--marks 1000,3500] [--trace]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import tracemalloc
import types
from collections import Counter, deque
from pathlib import Path

SRC, DST, ARC = "trace-src", "trace-dst", "trace-arc"


def _rss() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


OPAQUE = (type, types.ModuleType, types.FunctionType, types.CodeType, types.BuiltinFunctionType)


def _largest(n: int = 40) -> list[tuple[str, int]]:
    """The ``n`` longest containers alive (a dict or set keyed by something per task or
    per scene grows without its type's count growing), each with a sample of what it holds."""
    sized = []
    for o in gc.get_objects():
        if isinstance(o, (dict, list, set, deque)) and len(o) >= 200:
            sample = next(iter(o), None)
            sized.append(
                (f"{type(o).__name__} of {type(sample).__name__} {str(sample)[:80]!r}", len(o))
            )
    return sorted(sized, key=lambda t: -t[1])[:n]


def _in_message_logs() -> dict[str, int]:
    """The payloads Dask's BatchedSend streams in this process keep in their
    ``recent_message_log`` and the objects reachable from them (by type, the top ones)."""
    from distributed.batched import BatchedSend

    logs = [o.recent_message_log for o in gc.get_objects() if isinstance(o, BatchedSend)]
    seen: set[int] = set()
    todo: list[object] = [list(log) for log in logs]
    found: Counter[str] = Counter()
    while todo:
        o = todo.pop()
        if id(o) in seen or isinstance(o, OPAQUE):  # code and modules are shared
            continue
        seen.add(id(o))
        found[type(o).__qualname__] += 1
        todo.extend(gc.get_referents(o))
    kept = {"streams": len(logs), "payloads": sum(len(log) for log in logs)}
    return kept | dict(found.most_common(12))


def child(out: Path, marks: list[int], trace: bool, argv: list[str]) -> None:
    """The CLI, in this process, recording at each mark."""
    if trace:
        tracemalloc.start(12)
    from compactor.cli import main
    from compactor.runner import _pipeline

    original = _pipeline._collected
    seen = [0]
    lock = threading.Lock()

    def collected(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)  # type: ignore[arg-type]
        with lock:
            seen[0] += 1
            n = seen[0]
        if n in marks:
            record(n)

    def record(n: int) -> None:
        gc.collect()
        rss = _rss()
        types = Counter(type(o).__qualname__ for o in gc.get_objects())
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        trimmed = _rss()
        row = {"scenes": n, "rss": rss, "trimmed": trimmed, "types": dict(types)}
        row["held by message logs"] = _in_message_logs()
        row["largest"] = _largest()
        row["namespaces"] = [
            [str(d.get("__name__")), str(d.get("__file__")), len(d), [str(k) for k in list(d)[-8:]]]
            for d in gc.get_objects()
            if isinstance(d, dict) and len(d) > 400 and next(iter(d), None) == "__name__"
        ]
        if trace:
            snap = tracemalloc.take_snapshot()
            snap = snap.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            with open(out / f"snap{n}.pickle", "wb") as f:
                pickle.dump(snap, f)
            row["traced"] = tracemalloc.get_traced_memory()[0] / 2**20
        (out / f"mark{n}.json").write_text(json.dumps(row))

    _pipeline._collected = collected  # type: ignore[assignment]
    sys.argv = ["compactor", *argv]
    main()


def report(out: Path, marks: list[int], trace: bool) -> None:
    a, b = (json.loads((out / f"mark{n}.json").read_text()) for n in (marks[0], marks[-1]))
    scenes = b["scenes"] - a["scenes"]
    for name in ("rss", "trimmed", "traced"):
        if name in a:
            grew = (b[name] - a[name]) * 2**20
            print(f"{name:8s} {a[name]:8.1f} -> {b[name]:8.1f} MB  {grew / scenes:8.0f} B/scene")
    print(f"held by Dask's message logs at {a['scenes']}: {a['held by message logs']}")
    print(f"held by Dask's message logs at {b['scenes']}: {b['held by message logs']}")
    print("\nlongest containers (first mark, last mark):")
    before = dict(a.get("largest", []))
    for what, size in b.get("largest", []):
        print(f"  {before.get(what, 0):8d} {size:8d}  {what}")
    grown = Counter(b["types"])
    grown.subtract(a["types"])
    print("\nobject types grown (count per 1,000 scenes):")
    for t, n in grown.most_common(25):
        if n > 0:
            print(f"  {n * 1000 / scenes:9.0f}  {t}")
    if trace:
        with open(out / f"snap{marks[0]}.pickle", "rb") as f:
            s1 = pickle.load(f)
        with open(out / f"snap{marks[-1]}.pickle", "rb") as f:
            s2 = pickle.load(f)
        print("\nallocation sites grown (by line):")
        for st in s2.compare_to(s1, "lineno")[:25]:
            print(f"  {st.size_diff / scenes:8.0f} B/scene  {st.count_diff:+8d}  {st.traceback[0]}")
        print("\nallocation sites grown (by traceback, top 8):")
        for st in s2.compare_to(s1, "traceback")[:8]:
            print(f"\n  {st.size_diff / scenes:8.0f} B/scene  {st.count_diff:+8d} blocks")
            for line in st.traceback.format()[-24:]:
                print("    " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--scenes", type=int, default=4000)
    parser.add_argument("--marks", default="1000,3500")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--out", help="keep the marks and snapshots in this folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    marks = [int(m) for m in args.marks.split(",")]
    if args.child:
        child(Path(args.child), marks, args.trace, rest)
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import need_shared_data, s3_endpoint, upload_scenes

    need_shared_data()
    with s3_endpoint(SRC, DST, ARC) as ep, tempfile.TemporaryDirectory() as scratch:
        tmp = args.out or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        keys = [f"p/s{i:06d}.tif" for i in range(args.scenes)]
        upload_scenes(ep.client, SRC, keys, args.size)
        env = {**os.environ, "AWS_ENDPOINT_URL": ep.url}
        cmd = [
            sys.executable, __file__, "--child", tmp, "--marks", args.marks,
            *(["--trace"] if args.trace else []),
            "-q", "run", "--source", f"s3://{SRC}/p/", "--dest", f"s3://{DST}/p/",
            "--archive", f"s3://{ARC}/p/", "--workers", "2",
        ]  # fmt: skip
        subprocess.run(cmd, env=env, check=True)
        report(Path(tmp), marks, args.trace)


if __name__ == "__main__":
    main()
