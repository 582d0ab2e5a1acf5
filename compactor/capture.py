"""What libraries say while a scene is handled, kept with the scene instead of on stderr.

GDAL (through rasterio), tifffile and others warn about what they read: a TIFF without a
geotransform (``NotGeoreferencedWarning``), a ``GDAL_NODATA`` tag its data type cannot
hold, a broken second IFD GDAL skips. On a worker nothing configures logging, so Python
would print each on the worker's stderr, between the progress bar's lines, with no scene
named. :func:`capturing` collects them, for the thread that handles the scene, into a list
its result keeps (``SceneResult.warnings``, in the scene log)."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: What GDAL says about compactor's own settings, not about a scene (``GDAL_SKIP`` names
#: drivers a build may lack).
NOT_ABOUT_THE_SCENE = ("to unload from GDAL_SKIP",)

#: At most this many messages per scene (each cut to :data:`MAX_CHARS`).
MAX_MESSAGES = 20
MAX_CHARS = 300

_setup_lock = threading.Lock()
_setup_done = False
#: Per thread: the warning categories :func:`unheard` drops.
_unheard = threading.local()


def _setup() -> None:
    """Python warnings go to logging (the ``py.warnings`` logger), every time they are
    raised rather than once per place in the code: each scene keeps its own."""
    global _setup_done
    with _setup_lock:
        if _setup_done:
            return
        logging.captureWarnings(True)
        warnings.simplefilter("always")
        _setup_done = True


class _SceneHandler(logging.Handler):
    def __init__(self, thread: int, into: list[str], ignore: tuple[str, ...]) -> None:
        super().__init__(logging.WARNING)
        self.thread, self.into, self.ignore = thread, into, ignore

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread or record.name.startswith(self.ignore):
            return
        if len(self.into) >= MAX_MESSAGES:
            return
        try:
            text = record.getMessage()
        except Exception:  # a library's broken format string: keep what there is
            text = str(record.msg)
        if record.name == "py.warnings":  # "file:line: Category: message\n  source line"
            first = text.strip().splitlines()[0] if text.strip() else text
            if any(f" {name}: " in first for name in getattr(_unheard, "names", ())):
                return
            text = first.split(": ", 1)[1] if ": " in first else first
        elif not record.name.startswith("compactor"):
            text = f"{record.name}: {text}"
        line = " ".join(text.split())[:MAX_CHARS]
        if any(n in line for n in NOT_ABOUT_THE_SCENE):
            return
        if line and line not in self.into:
            self.into.append(line)


@contextmanager
def capturing(into: list[str], ignore: tuple[str, ...] = ()) -> Iterator[list[str]]:
    """Collect WARNING and above that this thread logs or warns (loggers named by
    ``ignore``, prefixes, excepted: they are dropped) into ``into`` while the block runs.
    The records stay off stderr: the root logger has a handler while the block runs, so
    Python's last-resort printing to stderr does not happen."""
    _setup()
    handler = _SceneHandler(threading.get_ident(), into, ignore)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield into
    finally:
        root.removeHandler(handler)


@contextmanager
def unheard(category: type[Warning]) -> Iterator[None]:
    """Warnings of ``category`` this thread raises in the block are not the scene's (a
    tile decoded alone has no geotransform). Scene threads share a worker process, and
    ``warnings.catch_warnings`` swaps the process's filters (two threads leaving it in
    another order keep one's filter for good): where warnings are captured, this thread's
    are dropped by name instead. Elsewhere (one thread: a notebook, a test), the filters."""
    if not _setup_done:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category)
            yield
        return
    before = getattr(_unheard, "names", ())
    _unheard.names = (*before, category.__name__)
    try:
        yield
    finally:
        _unheard.names = before
