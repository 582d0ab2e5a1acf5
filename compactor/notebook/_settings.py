"""Settings shared by compare, preview and open: resolved as a run resolves them, with a
destination that is never created standing in when none is given.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from typing import Any

from ..errors import ConfigError
from ..scene import RunContext
from ..settings import Settings, resolve_settings
from ..storage import Location

# --- settings shared by compare and preview --------------------------------------------


def _resolve(
    settings: Settings | None, config_file: str | None, arguments: dict[str, Any]
) -> Settings:
    if settings is None:
        return resolve_settings(arguments, config_file=config_file)
    if arguments:
        raise ConfigError("give either settings= or settings by name, not both")
    return settings


def _with_dest(settings: Settings) -> Settings:
    """Exploring needs no destination, but discovery and the task context are defined
    with one: a local folder that is never created stands in for it."""
    if settings.dest:
        return settings
    nowhere = os.path.join(tempfile.gettempdir(), f"compactor-explore-{uuid.uuid4().hex}", "")
    return settings.model_copy(update={"dest": nowhere})


def _context(settings: Settings) -> RunContext:
    return RunContext.from_settings(_with_dest(settings), f"explore-{uuid.uuid4().hex[:12]}")


def _parse_source(url: str) -> Location:
    try:
        return Location.parse(str(url))
    except ValueError as err:
        raise ConfigError(str(err)) from err
