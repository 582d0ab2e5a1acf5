"""Stage timers (compactor.timing): inert outside a collection, exclusive inside one."""

from __future__ import annotations

import time

from compactor import timing


def test_stages_are_exclusive_and_add_up() -> None:
    start = time.perf_counter()
    with timing.collecting() as totals:
        with timing.stage("outer"):
            time.sleep(0.02)
            with timing.stage("inner"):
                time.sleep(0.03)
        timing.add("measured", 0.01)
        with timing.stage("inner"):
            time.sleep(0.01)
    covered = time.perf_counter() - start
    assert set(totals) == {"outer", "inner", "measured"}
    assert 0.035 <= totals["inner"] < 0.1
    assert 0.015 <= totals["outer"] < 0.03  # the nested seconds are not counted twice
    assert totals["measured"] == 0.01
    assert sum(totals.values()) <= covered + 0.011


def test_inert_without_collection() -> None:
    with timing.stage("nothing"):
        pass
    timing.add("nothing", 1.0)
    with timing.collecting() as totals:
        pass
    assert totals == {}
