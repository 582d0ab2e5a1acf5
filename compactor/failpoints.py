"""Failpoints: named moments in a scene's life where fault-injection tests act.

Inert unless ``COMPACTOR_FAILPOINTS`` is set (read at each call, never at import). Its
value is a comma-separated list of ``point=action``; actions chain with ``+``:

* ``kill``          SIGKILL the whole process group (the CLI, its cluster, every worker)
* ``exit``          SIGKILL this process only (a worker dying mid-task)
* ``sleep:S``       sleep S seconds
* ``pidfile:PATH``  write this process's pid to PATH (so a test knows whom to kill)
* ``raise``         raise :class:`InjectedFault`

``point@N=...`` acts only on the N-th time this process reaches the point. Example:
``COMPACTOR_FAILPOINTS="after-archive-copy@2=kill"``.

Points, in order: ``after-discovered``, ``after-encode``, ``mid-upload`` (after the first
part of a multipart upload), ``after-upload``, ``after-encoded``, ``after-verified``,
``after-source-hash``, ``mid-archive-copy`` (after the first part of a multipart copy),
``after-archive-copy``, ``after-archived``, ``before-delete``, ``after-delete``; in the
client: ``client-collected`` (after each scene result is recorded).
"""

from __future__ import annotations

import os
import signal
import threading
import time

ENV = "COMPACTOR_FAILPOINTS"

_hits: dict[str, int] = {}
_lock = threading.Lock()


class InjectedFault(RuntimeError):
    """Raised by the ``raise`` action."""


def hit(point: str) -> None:
    """Act on ``point`` if a test asked for it; otherwise do nothing."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    with _lock:
        _hits[point] = _hits.get(point, 0) + 1
        count = _hits[point]
    for item in spec.split(","):
        name, _, actions = item.strip().partition("=")
        name, _, nth = name.partition("@")
        if name != point or (nth and int(nth) != count):
            continue
        for action in actions.split("+"):
            _act(action, point)


def _act(action: str, point: str) -> None:
    kind, _, arg = action.partition(":")
    if kind == "kill":
        os.killpg(os.getpgrp(), signal.SIGKILL)
    elif kind == "exit":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "sleep":
        time.sleep(float(arg))
    elif kind == "pidfile":
        with open(arg, "w") as fh:
            fh.write(str(os.getpid()))
    elif kind == "raise":
        raise InjectedFault(f"injected fault at {point}")
