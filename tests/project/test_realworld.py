"""The real-world corpus (tests/data/realworld, issue 23): 214 rasters from 12 public
projects' test data, run through ``compactor run`` (local folders, ``--archive``, the
session's real Dask cluster). Every file either compacts with an output that the
independent check of tests/realworld_check.py accepts (rasterio, the original read with its
sidecars) and its original in the archive byte for byte, or fails (or is skipped) with a
one-line reason and its original untouched. The run itself never aborts.

``KNOWN_GAPS`` lists the files that still break one of these, each with the issue sub-item
that fixes it. A gap is an expectation, strictly: a listed file that starts passing fails
its test, so the list shrinks as fixes land. A gap marked ``ABORTS`` crashes a whole run:
such files are left out of the corpus run and each is run on its own instead (expected to
abort there, until fixed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..realworld_check import Entry, Outcome, RunResult, judge, run_corpus, scenes

pytestmark = pytest.mark.slow

#: ``--min-saving -100``: every file is compacted where it can be (most corpus files are a
#: few KB and would otherwise be skipped unchecked as "not smaller").
ARGS = ("--min-saving", "-100")

ABORTS = "ABORTS"
#: corpus path -> the issue-23 sub-item still breaking it (prefix ABORTS: crashes the run).
#: The baseline at e4f1f84 is in tests/data/realworld/README.md.
KNOWN_GAPS: dict[str, str] = {}

ENTRIES = scenes()


def _aborts(path: str) -> bool:
    return KNOWN_GAPS.get(path, "").startswith(ABORTS)


@pytest.fixture(scope="module")
def corpus_runs(
    dask_scheduler: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """The corpus less the aborting gaps in one run; each aborting gap in a run of its own.
    In-process like the ``cli`` fixture, on the session's real Dask cluster."""
    from click.testing import CliRunner

    from compactor.cli import main

    def invoke(argv: list[str]) -> tuple[int | None, str]:
        args = ["-q", *argv, *ARGS, "--scheduler", dask_scheduler]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        return result.exit_code, result.output

    base = tmp_path_factory.mktemp("realworld")
    outcomes: dict[str, Outcome] = {}
    rest = [e for e in ENTRIES if not _aborts(e.path)]
    run = run_corpus(invoke, base / "corpus", [e.path for e in rest])
    outcomes["<corpus run>"] = Outcome(
        "<corpus run>", "aborted" if run.aborted else "ran", not run.aborted, run.abort_reason
    )
    for e in rest:
        outcomes[e.path] = judge(e, run, base / "corpus")
    for i, e in enumerate(x for x in ENTRIES if _aborts(x.path)):
        alone: RunResult = run_corpus(invoke, base / f"alone{i}", [e.path])
        outcomes[e.path] = judge(e, alone, base / f"alone{i}")
    return outcomes


def test_the_corpus_run_does_not_abort(corpus_runs: dict[str, Outcome]) -> None:
    run = corpus_runs["<corpus run>"]
    assert run.ok, f"compactor run aborted over the corpus: {run.detail}"


def test_manifest_lists_every_file_with_a_licence() -> None:
    from ..realworld_check import CORPUS, manifest

    listed = {e.path for e in manifest()}
    on_disk = {
        p.relative_to(CORPUS).as_posix()
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name not in ("SOURCES.csv", "LICENSES.md", "README.md")
    }
    assert listed == on_disk
    assert all(e.licence and e.project and e.cls for e in manifest())
    assert sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file()) <= 20 * 2**20
    stems = [str(Path(p).with_suffix("")).lower() for p in listed if Path(p).suffix.lower() in
             (".tif", ".tiff", ".jp2", ".ntf", ".nitf", ".img")]  # fmt: skip
    assert len(stems) == len(set(stems)), "two scenes would map to one output"
    assert set(KNOWN_GAPS) <= {e.path for e in ENTRIES}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.path for e in ENTRIES])
def test_file_compacts_verified_or_fails_with_a_reason(
    entry: Entry, corpus_runs: dict[str, Outcome]
) -> None:
    outcome = corpus_runs[entry.path]
    gap = KNOWN_GAPS.get(entry.path)
    if gap is None:
        assert outcome.ok, f"[{entry.cls}] {outcome.status}: {outcome.detail}"
        return
    if outcome.ok:
        pytest.fail(
            f"known gap closed ({gap}): {entry.path} is now {outcome.status} "
            f"({outcome.detail}); remove it from KNOWN_GAPS"
        )
    if _aborts(entry.path) and outcome.status != "aborted":
        pytest.fail(
            f"{entry.path} no longer aborts a run ({outcome.status}: {outcome.detail}); "
            f"change its KNOWN_GAPS entry ({gap}) to what still breaks it, or remove it"
        )
    pytest.xfail(f"{gap}: {outcome.status}: {outcome.detail[:200]}")
