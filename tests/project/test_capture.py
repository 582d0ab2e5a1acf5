"""Warnings kept per scene thread: what one thread sets aside never changes another's."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator

import pytest
from rasterio.errors import NotGeoreferencedWarning

from compactor import capture


@pytest.fixture(autouse=True)
def as_on_a_worker() -> Iterator[None]:
    """Warnings routed to logging as on a worker (pytest's own recorder replaces the
    route it set up once per process)."""
    logger = logging.getLogger("py.warnings")
    level, disabled, propagate = logger.level, logger.disabled, logger.propagate
    # Earlier tests in this process may have quietened logging (a CLI run's -q).
    logger.setLevel(logging.WARNING)
    logger.disabled, logger.propagate = False, True
    try:
        with warnings.catch_warnings():
            # An earlier test's route may point at a pytest recorder long gone: set it anew.
            logging.captureWarnings(False)
            capture._setup()
            logging.captureWarnings(True)
            warnings.simplefilter("always")
            yield
            logging.captureWarnings(False)
    finally:
        logger.setLevel(level)
        logger.disabled, logger.propagate = disabled, propagate


def test_unheard_drops_only_this_threads_warnings_of_that_category() -> None:
    got: list[str] = []
    with capture.capturing(got):
        with capture.unheard(NotGeoreferencedWarning):
            warnings.warn("a tile alone", NotGeoreferencedWarning, stacklevel=1)
            warnings.warn("kept inside", UserWarning, stacklevel=1)
        warnings.warn("kept after", NotGeoreferencedWarning, stacklevel=1)
    assert got == ["UserWarning: kept inside", "NotGeoreferencedWarning: kept after"]


def test_threads_leaving_unheard_out_of_order_keep_every_later_warning() -> None:
    """With ``warnings.catch_warnings`` two threads that leave in the order they entered
    leave the second's copy of the first's ignore filter in force for the whole process."""
    a_in, b_in, a_out = (threading.Event() for _ in range(3))
    done = threading.Barrier(2)
    seen: dict[str, list[str]] = {}

    def scene(name: str) -> None:
        got: list[str] = []
        with capture.capturing(got):
            if name == "b":
                a_in.wait()
            with capture.unheard(NotGeoreferencedWarning):
                (a_in if name == "a" else b_in).set()
                if name == "a":
                    b_in.wait()
                else:
                    a_out.wait()
            if name == "a":
                a_out.set()
            done.wait()
            warnings.warn(f"{name} later", NotGeoreferencedWarning, stacklevel=1)
        seen[name] = got

    threads = [threading.Thread(target=scene, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {
        "a": ["NotGeoreferencedWarning: a later"],
        "b": ["NotGeoreferencedWarning: b later"],
    }
