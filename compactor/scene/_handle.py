"""A scene's state record as the walk reads and writes it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .. import timing
from ..records import (
    SceneState,
    SourceDigest,
    StateStore,
    Step,
)
from ..storage import (
    Fetched,
)

log = logging.getLogger(__name__)


@dataclass
class StateHandle:
    """A scene's recorded state and the ETag it was read with: every save is conditional
    on that ETag (``None``: the record must not exist yet)."""

    store: StateStore
    state: SceneState | None
    etag: str | None

    def save(self, state: SceneState) -> SceneState:
        with timing.stage("state"):
            self.etag = self.store.save(state, self.etag)
        self.state = state
        return state

    def advance(self, step: Step, run_id: str, **changes: Any) -> SceneState:
        assert self.state is not None
        return self.save(self.state.advanced(step, run_id, **changes))

    def remember(self, state: SceneState) -> SceneState:
        """Move on in memory only (the next :meth:`save` writes it, conditional as ever)."""
        self.state = state
        return state

    @property
    def current(self) -> SceneState:
        assert self.state is not None
        return self.state


def recorded_digest(state: SceneState) -> SourceDigest | None:
    if state.source_sha256 is None:
        return None
    return SourceDigest(state.source_sha256, state.source_part_size, state.source_composite)


def digest_fields(digest: SourceDigest) -> dict[str, Any]:
    """What the state records of an original's hashes."""
    return {
        "source_sha256": digest.sha256,
        "source_part_size": digest.part_size,
        "source_composite": digest.composite,
    }


def fetched_digest(fetched: Fetched | None) -> SourceDigest | None:
    if fetched is None or fetched.sha256 is None:
        return None
    return SourceDigest.of(fetched.sha256, fetched.part_size, fetched.parts)
