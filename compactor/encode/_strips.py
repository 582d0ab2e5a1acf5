"""The tile writer's plan and what its producers hand over: :class:`StripPlan` (strips of
``2^k`` tile rows, the merge tree's levels and the parts' numbers), :class:`TileJob` (what
every task of one scene shares), the :class:`Segment` of encoded tiles a producer hands
on and the :class:`Leftover` pixels of the next level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..codecs import LOSSY
from ..cog import (
    TILE,
    CogSpec,
    TileCodec,
    pyramid,
)
from ..gdal import RasterInfo
from ..storage import PartSent, PartsWriter

#: Most full-resolution tile rows in one strip (8192 rows).
MAX_STRIP_TILES = 16
# --- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StripPlan:
    width: int
    height: int
    #: Full-resolution tile rows per strip (a power of two, 2**k).
    strip_tiles: int
    nlevels: int

    @classmethod
    def sized(
        cls, info: RasterInfo, *, min_strips: int = 3, fits: Callable[[int], bool] | None = None
    ) -> StripPlan:
        """Strips as tall as ``fits(tile rows)`` allows (up to :data:`MAX_STRIP_TILES`),
        keeping at least ``min_strips`` strips so the work spreads."""
        strip_tiles = 1
        while strip_tiles < MAX_STRIP_TILES:
            bigger = strip_tiles * 2
            enough = -(-info.height // (bigger * TILE)) >= min_strips
            if not (enough and (fits is None or fits(bigger))):
                break
            strip_tiles = bigger
        return cls(info.width, info.height, strip_tiles, len(pyramid(info.width, info.height)))

    @property
    def k(self) -> int:
        return int(math.log2(self.strip_tiles))

    @property
    def strip_rows(self) -> int:
        return self.strip_tiles * TILE

    @property
    def nstrips(self) -> int:
        return -(-self.height // self.strip_rows)

    def rows(self, strip: int) -> tuple[int, int]:
        r0 = strip * self.strip_rows
        return r0, min(self.height, r0 + self.strip_rows)

    def producers(self, level: int) -> int:
        """How many strips or merge nodes produce tile rows of ``level``."""
        levels = pyramid(self.width, self.height)
        if level <= self.k:
            return sum(1 for c in range(self.nstrips) if self.tile_rows(level, c))
        return levels[level].down

    def tile_rows(self, level: int, strip: int) -> range:
        """Tile rows of ``level`` that strip ``strip`` encodes (``level <= k``)."""
        per = self.strip_tiles >> level
        down = pyramid(self.width, self.height)[level].down
        return range(min(down, strip * per), min(down, (strip + 1) * per))

    @property
    def root_level(self) -> int:
        """The first level with one tile row above the strip levels (its producer is the
        tree's root, which also makes every coarser level)."""
        levels = pyramid(self.width, self.height)
        for level in range(self.k + 1, len(levels)):
            if levels[level].down == 1:
                return level
        return len(levels)

    @property
    def merge_levels(self) -> range:
        """The levels made by merge nodes, one tree layer each."""
        return range(self.k + 1, min(self.root_level, self.nlevels - 1) + 1)

    def part_numbers(self) -> dict[tuple[int, int], int]:
        """(level, producer index) -> part number, in file order: part 1 is the header,
        then levels from the smallest, producers top to bottom."""
        numbers: dict[tuple[int, int], int] = {}
        n = 2
        for level in reversed(range(self.nlevels)):
            for p in range(self.producers(level)):
                numbers[(level, p)] = n
                n += 1
        return numbers


# --- what producers hand over --------------------------------------------------------------------


@dataclass
class Segment:
    """One producer's tiles of one level, framed, in row-major order."""

    level: int
    producer: int
    first_tile: int
    #: (image size, mask size or None) per tile, and CRC32s of the tile bytes.
    sizes: list[tuple[int, int | None]]
    crcs: list[int]
    length: int
    #: The bytes, unless the producer already put them as their own part.
    data: bytes | None = None
    #: The part it went out as (when the producer put it).
    sent: PartSent | None = None
    part_number: int = 0
    #: CRC32s of the mask tiles' bytes (tiles with a mask, in order).
    mask_crcs: list[int] = field(default_factory=list)


@dataclass
class Leftover:
    """Level ``level`` pixels of a span of rows, handed up the tree."""

    level: int
    row0: int
    data: np.ndarray  # (bands, rows, cols)
    valid: np.ndarray | None


@dataclass(frozen=True)
class TileJob:
    """Everything a strip or merge needs: plain, picklable data (it travels to Dask tasks)."""

    source: str  # the GDAL path of the source
    plan: StripPlan
    codec: TileCodec
    has_mask: bool
    mask_source: str  # "none", "nodata", "alpha", "dataset"
    keep_bands: tuple[int, ...]  # 1-based source bands written
    alpha_index: int | None
    nodata: float | None
    nearest: bool
    gdal: tuple[tuple[str, str], ...]
    output: PartsWriter
    parts: tuple[tuple[tuple[int, int], int], ...]
    #: JPEG quantisation tables every tile must share (None for other codecs).
    tables: bytes | None = None
    #: The overview levels' own encoding (lossy overviews), and its JPEG tables.
    overview_codec: TileCodec | None = None
    overview_tables: bytes | None = None
    #: Decode lossy full-resolution tiles for the checks with GDAL (the pixels GDAL reads
    #: back), not imagecodecs: a one-task scene's in-memory verification. The output's
    #: header spec: a strip's tiles are read by GDAL's GeoTIFF driver with its tags.
    gdal_decode: CogSpec | None = None

    def part_number(self, level: int, producer: int) -> int:
        return dict(self.parts)[(level, producer)]

    def codec_for(self, level: int) -> TileCodec:
        """The tile codec of ``level`` (0: full resolution)."""
        if level and self.overview_codec is not None:
            return self.overview_codec
        return self.codec

    def tables_for(self, level: int) -> bytes | None:
        return self.overview_tables if level and self.overview_codec is not None else self.tables

    @property
    def lossy(self) -> bool:
        """The full resolution is JPEG or WEBP (measured by SSIM)."""
        return self.codec.codec in LOSSY

    @property
    def bounded(self) -> bool:
        """The full resolution is LERC within error bounds (checked against them)."""
        return self.codec.bounded

    @property
    def exact(self) -> bool:
        """The full resolution must decode to the source exactly."""
        return not (self.lossy or self.bounded)


#: Called for every tile encoded: (level, tile row, tile col, the source block, the encoded
#: tile, the mask tile and its encoded bytes or None). The checks of the chunked path.
TileCheck = Callable[[int, int, int, np.ndarray, bytes, np.ndarray | None, bytes | None], None]
