"""Retries with exponential backoff and full jitter, around what botocore does not retry."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import TransientStorageError

log = logging.getLogger(__name__)

T = TypeVar("T")


def with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    attempts: int = 6,
    base_delay: float = 0.2,
    max_delay: float = 10.0,
    retry_on: tuple[type[BaseException], ...] = (TransientStorageError,),
) -> T:
    """Call ``fn`` until it succeeds, retrying ``retry_on`` errors with exponential
    backoff and full jitter. Used around operations botocore does not retry itself
    (streamed body reads that break midway)."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except retry_on as err:
            if attempt == attempts:
                raise
            delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))
            log.debug("%s: %s; retry %d/%d in %.2fs", what, err, attempt, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
