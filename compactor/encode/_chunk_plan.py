"""How a large scene is cut into chunk tasks: strips as tall as a worker thread's memory
budget allows, several per thread so the work spreads and stragglers are short."""

from __future__ import annotations

import numpy as np

from ..cog import TILE
from ..errors import SceneTooLargeError
from ..gdal import RasterInfo
from ._strips import StripPlan

#: Working memory of a chunk task relative to its raw strip: the strip, its decoded copy,
#: masks, the first overview, encoded bytes, temporaries and GDAL's block cache while the
#: strip is read (measured on 8-bit RGB strips: 3.45x in process memory, 2.7x of it numpy
#: arrays). The margin is kept once, in :data:`~compactor.encode._chunk_budget.HEADROOM`.
MEMORY_FACTOR = 3.5
#: Chunks per worker thread at least, so the work spreads and stragglers are short.
CHUNKS_PER_THREAD = 3


def plan_chunks(info: RasterInfo, *, budget: int, threads: int) -> StripPlan:
    """Strips as tall as ``budget`` bytes of working memory allow (with MEMORY_FACTOR),
    with at least CHUNKS_PER_THREAD chunks per thread, at most 8192 full-res rows. A scene
    whose smallest strip (one row of tiles) does not fit is refused."""
    row_bytes = info.width * info.count * np.dtype(info.dtype).itemsize
    smallest = TILE * row_bytes * MEMORY_FACTOR
    if smallest > budget:
        raise SceneTooLargeError(
            f"even its smallest chunk (one row of {TILE}-pixel tiles, {info.width} pixels wide "
            f"with {info.count} bands) needs about {smallest / 2**20:,.0f} MiB, more than a "
            f"worker thread's {budget / 2**20:,.0f} MiB: give workers more memory "
            "(--worker-memory) to take it"
        )
    return StripPlan.sized(
        info,
        min_strips=CHUNKS_PER_THREAD * max(1, threads),
        fits=lambda tiles: tiles * TILE * row_bytes * MEMORY_FACTOR <= budget,
    )
