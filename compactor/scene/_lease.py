"""Per-scene leases, so two runs never work on one scene at once.

Why leases and not a run-level lock: two runs started on overlapping sources (a nightly
sweep and an operator's backfill) then share the work scene by scene instead of one
failing, and a crashed run blocks nothing for longer than one lease period.

A lease is a small object at ``<dest>/_compactor/leases/<scene>.json`` holding the
run id, the holder and an expiry time. It is taken with a conditional create
(``If-None-Match: *``), renewed in the background while the scene is worked on
(``If-Match`` on the version we wrote, every ``ttl/4``), taken over when expired (again
with ``If-Match``, so only one contender wins) and deleted when the scene is done. A
lease held by another live run is waited for, at most ``ttl`` plus a margin: a crashed
run's lease is waited out (two minutes by default), a live run that keeps renewing
wins and this run reports the scene as in progress elsewhere. A lease held by an earlier
attempt of the *same* run is taken over at once: Dask only reruns a task when it has
given the earlier attempt up (a lost worker). That attempt's thread may still be running (a
worker closing on SIGTERM): a state write of its that lands first makes this task walk the
scene again from the record (``compactor.scene._walk.WALKS``).

Before each destructive step the pipeline checks that the lease is still held, and
every state write is conditional on the state's ETag, so even a holder that lost its
lease (paused longer than the TTL) cannot overwrite another run's progress. Expiry times
compare clocks across machines: keep them in sync (NTP); skew of seconds is harmless.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from types import TracebackType

from .. import timing
from ..errors import LeaseHeldError, ObjectNotFound, PreconditionFailed, StorageError
from ..storage import Location, Store

log = logging.getLogger(__name__)

#: Seconds a lease lasts without renewal; also the longest wait for a crashed run's lease.
DEFAULT_TTL = 120.0
#: Extra seconds a contender waits beyond the TTL before giving up.
WAIT_MARGIN = 15.0
#: Refuse a destructive step with less validity than this left.
SAFETY_MARGIN = 5.0


class Lease:
    """One scene's lease. Use as a context manager: acquire, renew, release."""

    def __init__(
        self,
        store: Store,
        location: Location,
        run_id: str,
        *,
        ttl: float = DEFAULT_TTL,
        wait: float | None = None,
        poll: float = 1.0,
    ):
        self.store = store
        self.location = location
        self.run_id = run_id
        self.ttl = ttl
        self.wait = ttl + WAIT_MARGIN if wait is None else wait
        self.poll = poll
        self.holder = f"{run_id}/{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self.etag: str | None = None
        self.expires = 0.0
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._io = threading.Lock()

    # -- acquire ----------------------------------------------------------------------

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            try:
                self._write(if_none_match=True)
                return
            except PreconditionFailed:
                pass
            got = self.store.read_versioned(self.location)
            if got is None:
                continue  # released in between: try to create it again
            raw, etag = got
            try:
                current = json.loads(raw)
                other_run, expires = str(current["run_id"]), float(current["expires"])
            except (ValueError, KeyError, TypeError):
                other_run, expires = "?", 0.0  # unreadable: treat as expired
            if other_run == self.run_id or expires < time.time():
                try:
                    self._write(if_match=etag)
                    log.info("took over lease %s from %s", self.location.url, other_run)
                    return
                except PreconditionFailed:
                    continue  # another contender won; look again
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LeaseHeldError(
                    f"in progress in run {other_run} (its lease on this scene was still held "
                    f"after waiting {self.wait:.0f}s)"
                )
            time.sleep(max(0.05, min(self.poll, remaining, expires - time.time() + 0.05)))

    def _write(self, *, if_none_match: bool = False, if_match: str | None = None) -> None:
        with self._io:
            expires = time.time() + self.ttl
            data = json.dumps(
                {"run_id": self.run_id, "holder": self.holder, "expires": expires}
            ).encode()
            self.etag = self.store.put_bytes(
                self.location, data, if_none_match=if_none_match, if_match=if_match
            )
            self.expires = expires

    # -- renew / check / release --------------------------------------------------------

    def renew(self) -> bool:
        """Extend the lease; False (and ``lost``) if someone else holds it now."""
        try:
            self._write(if_match=self.etag)
            return True
        except PreconditionFailed:
            self.lost = True
            log.warning("lost lease %s to another run", self.location.url)
            return False
        except StorageError as err:  # transient: keep the old expiry, try again soon
            log.debug("renewing lease %s failed: %s", self.location.url, err)
            return True

    def _renew_loop(self) -> None:
        interval = max(0.05, self.ttl / 4)
        while not self._stop.wait(interval):
            if not self.renew():
                return

    def check(self, before: str) -> None:
        """Raise unless the lease is ours with at least SAFETY_MARGIN seconds left."""
        left = self.expires - time.time()
        if self.lost or left < min(SAFETY_MARGIN, self.ttl / 4):
            raise LeaseHeldError(f"lost the lease on this scene before {before}; nothing done")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lost or self.etag is None:
            return
        try:
            with self._io:
                self.store.delete(self.location, if_match=self.etag)
        except (PreconditionFailed, ObjectNotFound):
            pass
        except StorageError as err:  # it expires on its own
            log.debug("releasing lease %s failed: %s", self.location.url, err)

    def __enter__(self) -> Lease:
        with timing.stage("lease"):
            self.acquire()
        self._thread = threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with timing.stage("lease"):
            self.release()
