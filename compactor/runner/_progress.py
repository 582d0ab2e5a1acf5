"""Jupyter support: is a notebook kernel running, and a live progress display for it.

:class:`NotebookProgress` has the interface of the CLI's progress bar (``start``,
``advance``, ``dashboard``, ``close``) and shows an HTML ``<progress>`` bar with counts,
elapsed time and the Dask dashboard link in the cell's output, updated in place through an
IPython display handle. Outside a kernel it only keeps count: the library never prints.
IPython is imported lazily and is optional.
"""

from __future__ import annotations

import html
import logging
import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

#: Counts shown for each kind of result, in this order (zero counts included).
RUN_LABELS = ("compacted", "skipped", "failed")
PLAN_LABELS = ("to compact", "to skip", "failed")
TASK_LABELS = ("done", "failed")
#: A plan row's ``action`` as counted.
PLAN_ACTIONS = {"compact": "to compact", "skip": "to skip", "fail": "failed"}


def in_notebook() -> bool:
    """True inside a Jupyter (IPython kernel) session; False in plain Python, a terminal
    IPython, under pytest and on the CLI. Never imports IPython itself: a kernel has it
    imported already."""
    if "IPython" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - a broken IPython install
        return False
    shell = get_ipython()
    if shell is None:
        return False
    return type(shell).__name__ == "ZMQInteractiveShell" or hasattr(shell, "kernel")


def _elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class NotebookProgress:
    """Live progress of a run, a dry run or an exploration in a notebook cell.

    >>> with NotebookProgress("compactor run") as bar:   # doctest: +SKIP
    ...     report = compactor.run(..., on_start=bar.start, progress=bar.advance,
    ...                            on_dashboard=bar.dashboard)

    ``advance`` takes a :class:`~compactor.records.SceneResult` (counted by ``status``), a
    plan row (a mapping with ``action``), or any mapping with ``status`` or ``error``.
    The display is updated at most every ``min_interval`` seconds, and always when the
    last scene arrives and on :meth:`close`.
    """

    def __init__(self, title: str = "compactor", *, min_interval: float = 0.2):
        self.title = title
        self.min_interval = min_interval
        self.total: int | None = None
        self.done = 0
        self.counts: dict[str, int] = {}
        self.labels: tuple[str, ...] = ()
        self.dashboard_url: str | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self.stopped = False
        #: The IPython display handle (``None`` outside a kernel or before ``start``).
        self.handle: Any = None
        self._shown = 0.0
        #: How many times the display was due to be drawn (throttled; counted also outside
        #: a kernel, where nothing is shown).
        self.updates = 0

    # --- the interface of the progress callbacks -------------------------------------

    def start(self, total: int) -> None:
        """The number of scenes known so far (it grows while a listing streams in)."""
        first = self.started is None
        self.total = int(total)
        if self.started is None:
            self.started = time.monotonic()
        self._render(force=first)

    def advance(self, result: Any) -> None:
        """One scene is done."""
        if self.started is None:
            self.started = time.monotonic()
        label = self._label(result)
        self.done += 1
        self.counts[label] = self.counts.get(label, 0) + 1
        self._render(force=self.total is not None and self.done >= self.total)

    def dashboard(self, url: str) -> None:
        """The Dask dashboard's address: shown as a link."""
        self.dashboard_url = url
        self._render(force=True)

    def close(self) -> None:
        """The final state (always drawn)."""
        if self.finished is None:
            self.finished = time.monotonic()
        self._render(force=True)

    def __enter__(self) -> NotebookProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.stopped = True
        self.close()

    # --- rendering -------------------------------------------------------------------

    def _label(self, result: Any) -> str:
        status = getattr(result, "status", None)
        if isinstance(status, str):
            self.labels = self.labels or RUN_LABELS
            return status
        if isinstance(result, Mapping):
            if result.get("action") is not None:
                self.labels = self.labels or PLAN_LABELS
                action = str(result["action"])
                return PLAN_ACTIONS.get(action, action)
            if result.get("status") is not None:
                self.labels = self.labels or RUN_LABELS
                return str(result["status"])
            if "error" in result:
                self.labels = self.labels or TASK_LABELS
                return "failed" if result["error"] else "done"
        self.labels = self.labels or TASK_LABELS
        return "done"

    def text(self) -> str:
        """The one-line state, e.g. ``12/40 scenes — 10 compacted, 1 skipped, 1 failed``."""
        total = "?" if self.total is None else str(self.total)
        line = f"{self.done}/{total} scenes"
        shown = list(self.labels) + [k for k in self.counts if k not in self.labels]
        if shown:
            line += " — " + ", ".join(f"{self.counts.get(k, 0)} {k}" for k in shown)
        return line

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def html(self) -> str:
        """The display as self-contained HTML (no scripts, no external resources)."""
        maximum = max(1, self.total or 0)
        state = ""
        if self.finished is not None:
            state = " · stopped" if self.stopped else " · finished"
        link = ""
        if self.dashboard_url:
            url = html.escape(self.dashboard_url, quote=True)
            link = f' · <a href="{url}" target="_blank" rel="noopener">Dask dashboard</a>'
        return (
            (
                '<div class="compactor-progress" style="font-family:system-ui,sans-serif;'
                'font-size:13px;margin:4px 0">'
                f"<b>{html.escape(self.title)}</b> "
                f'<progress value="{min(self.done, maximum)}" max="{maximum}" '
                'style="width:260px;vertical-align:middle"></progress> '
                f"<span>{html.escape(self.text())}</span>"
                f' <span style="color:#667085">· {_elapsed(self.elapsed())}{state}{link}</span>'
                "</div>"
            )
            .encode("ascii", "xmlcharrefreplace")
            .decode("ascii")
        )

    def _render(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._shown < self.min_interval:
            return
        self._shown = now
        self.updates += 1
        if not in_notebook():
            return
        from IPython.display import HTML, display

        if self.handle is None:
            self.handle = display(HTML(self.html()), display_id=True)
        else:
            self.handle.update(HTML(self.html()))

    def __repr__(self) -> str:
        return f"<NotebookProgress {self.title}: {self.text()}>"
