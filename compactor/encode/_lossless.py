"""The smallest lossless (or bounded) encoding of a scene, searched on its sample.

A lossless scene can be written with any of several codecs, levels and predictors, and which
is smallest depends on the data: ZSTD with horizontal differencing on smooth 8-bit imagery,
LERC on noisy 12-bit reflectance, no predictor on classes. So each candidate of the effort's
:data:`CATALOG` encodes the sample's tiles (at most :data:`MAX_TILES` tiles, the same tile
codec the writers use) and the smallest wins, unless a faster candidate is within
:data:`EFFORT_WORTH` of it per halving of the speed (:func:`pick`); ties go to the faster.
The effort is a floor on each candidate's encode speed (:data:`EFFORT_FLOOR`): ``fast``
searches nothing and keeps ``auto``'s ZSTD, ``max`` tries even the slowest levels. A bounded
scene (``--max-error``) is searched the same way over LERC's inner codecs.

The floor applies to speeds declared with each candidate (single core, 12-bit imagery,
measured by ``bench/bench_science.py``), not to a clock read during the run: a scene gets
the same encoding on a busy node as on an idle one. The speeds measured on the sample are
reported next to the sizes.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio

from ..codecs import CODECS
from ..cog import TILE, Profile, TileCodec, alpha_is_graded, pad_tile
from ..gdal import RasterInfo, is_complex
from ..records import CodecProbe, EncodingSearch
from ..settings import Effort, Encoding
from ._choose import choose_profile, needs_ranges
from ._sample import Sample, valid_ranges, write_sample

log = logging.getLogger(__name__)

#: The slowest nominal encode speed (MB/s of raw pixels, one core) each effort accepts;
#: ``None``: no search.
EFFORT_FLOOR: dict[str, float | None] = {"fast": None, "default": 40.0, "max": 0.0}
#: How much smaller (a fraction of the faster one's size) a slower candidate's sample must be
#: for each halving of the encode speed (declared) to be chosen over a faster one:
#: ``default`` does not halve the encode speed of a scene for a fraction of a percent
#: (DEFLATE 9 against 6 on 8-bit imagery: 0.3 % smaller, half as fast), nor divide it by 7
#: for 2 % (ZSTD 9 against 1 on 8-bit RGB, where ZSTD 1 is already 1.7 % smaller than
#: GDAL's DEFLATE 6 and 5x faster); ``max`` takes the smallest, whatever it costs.
EFFORT_WORTH: dict[str, float] = {"fast": 0.0, "default": 0.01, "max": 0.0}
#: Tiles of the sample encoded by each candidate (the 2x2 sample mosaic holds four).
MAX_TILES = 4


@dataclass(frozen=True)
class Candidate:
    """One encoding the search may try."""

    codec: str
    level: int | None
    #: ``dtype``: the data type's predictor (2 for integers, 3 for floats); ``none``: 1.
    predictor: Literal["dtype", "none"] | None
    lerc_inner: Literal["zstd", "deflate"] | None
    #: Typical encode speed, MB/s of raw pixels on one core (12-bit imagery).
    speed: float
    #: LERC's blob version: 5 codes each band as a delta from the one before (multi-band
    #: scenes, compactor's tile writer).
    lerc_blob: int = 4

    def profile(self, base: Profile) -> Profile:
        return replace(
            base,
            codec=self.codec,
            level=self.level,
            predictor={"dtype": None, "none": 1, None: None}[self.predictor],
            lerc_inner=self.lerc_inner,
            lerc_blob=self.lerc_blob,
            max_error=base.max_error if self.codec == "lerc" else None,
            quality=None,
        )


#: Every candidate (ties in size go to the faster, then to the first).
CATALOG: tuple[Candidate, ...] = (
    Candidate("lerc", 3, None, "zstd", 120),
    Candidate("lerc", None, None, None, 110),
    Candidate("lerc", 9, None, "zstd", 64),
    Candidate("lerc", 9, None, "deflate", 57),
    Candidate("lerc", 12, None, "deflate", 33),
    Candidate("lerc", 19, None, "zstd", 7),
    Candidate("lerc", 3, None, "zstd", 100, lerc_blob=5),
    Candidate("lerc", None, None, None, 95, lerc_blob=5),
    Candidate("lerc", 9, None, "deflate", 45, lerc_blob=5),
    Candidate("lerc", 12, None, "deflate", 27, lerc_blob=5),
    Candidate("lerc", 19, None, "zstd", 6, lerc_blob=5),
    Candidate("lzw", None, "dtype", None, 90),
    Candidate("deflate", 6, "dtype", None, 75),
    Candidate("deflate", 9, "dtype", None, 58),
    Candidate("deflate", 9, "none", None, 60),
    Candidate("deflate", 12, "dtype", None, 7),
    Candidate("zstd", 1, "dtype", None, 420),
    Candidate("zstd", 3, "dtype", None, 170),
    Candidate("zstd", 9, "dtype", None, 45),
    Candidate("zstd", 9, "none", None, 42),
    Candidate("zstd", 19, "dtype", None, 4),
    Candidate("zstd", 22, "dtype", None, 2),
)  # fmt: skip


def candidates_for(
    profile: Profile, effort: Effort, dtype: str, only: str | None, info: RasterInfo | None = None
) -> list[Candidate]:
    """The candidates a scene whose starting profile is ``profile`` tries under ``effort``
    (``only``: the codec the user named; ``None``: any). A bounded profile tries LERC within
    its bound and every lossless candidate too (lossless meets any bound; on nearly
    constant data it can be the smaller). Complex data: none (the candidates are measured
    with the tile writer's codecs, which take no complex samples)."""
    floor = EFFORT_FLOOR[effort]
    if floor is None or is_complex(dtype):
        return []
    lerc_ok = dtype in (CODECS["lerc"].dtypes or ())
    found = []
    for c in CATALOG:
        if c.speed < floor or (c.codec == "lerc" and not lerc_ok):
            continue
        if only is not None and c.codec != only:
            continue
        # Lerc2 v5 differs from v4 by its band deltas (nothing to gain on one band), and
        # only compactor's tile writer writes it (GDAL's writes v4: GCP and RPC scenes).
        if c.lerc_blob != 4 and info is not None and (info.count < 2 or info.has_gcps_or_rpcs):
            continue
        found.append(c)
    return found


def sample_tiles(sample: Sample) -> list[np.ndarray]:
    """Up to :data:`MAX_TILES` tiles (rows, cols, bands) of the sample (edge tiles not yet
    padded: each codec pads them as the writers do)."""
    with rasterio.open(sample.path, driver="GTiff") as src:
        pixels = src.read()
    _, height, width = pixels.shape
    tiles = []
    for r in range(0, height, TILE):
        for c in range(0, width, TILE):
            block = np.moveaxis(pixels[:, r : r + TILE, c : c + TILE], 0, -1)
            tiles.append(block)
    if len(tiles) > MAX_TILES:  # spread over the sample
        step = len(tiles) / MAX_TILES
        tiles = [tiles[int(i * step)] for i in range(MAX_TILES)]
    return tiles


def search_encoding(
    sample: Sample,
    profile: Profile,
    effort: Effort,
    only: str | None = None,
    scene: RasterInfo | None = None,
) -> tuple[Profile, EncodingSearch | None]:
    """The smallest encoding of ``profile``'s kind on the sample, as :func:`pick` weighs
    size against speed (lossless stays lossless, a bounded profile keeps its bound or
    becomes lossless where that is smaller), and the record of the search (``None``:
    nothing to search)."""
    info = sample.info
    found = candidates_for(profile, effort, info.dtype, only, scene or info)
    if len(found) < 2 or not (profile.lossless or profile.bounded):
        return profile, None
    tiles = sample_tiles(sample)
    raw = len(tiles) * TILE * TILE * info.count * np.dtype(info.dtype).itemsize
    alpha = (info.alpha_index - 1) if info.alpha_index else None
    probes: list[tuple[int, float, Candidate]] = []
    for cand in found:
        chosen = cand.profile(profile)
        codec = TileCodec.from_profile(chosen, info.dtype, info.count, nodata=info.nodata,
                                       alpha=alpha)  # fmt: skip
        start = time.perf_counter()
        size = sum(len(codec.encode(pad_tile(t, fill=codec.pad_value))) for t in tiles)
        seconds = time.perf_counter() - start
        probes.append((size, raw / max(seconds, 1e-9) / 1e6, cand))
    best = pick([(size, cand) for size, _speed, cand in probes], EFFORT_WORTH[effort])
    kept = best.profile(profile)
    record = EncodingSearch(
        effort=effort,
        sample_pixels=sum(t.shape[0] * t.shape[1] for t in tiles),
        probes=[
            CodecProbe(
                label=replace(c.profile(profile), overviews="full").label,
                bytes=size,
                mb_per_s=round(speed, 1),
            )
            for size, speed, c in probes
        ],
        chosen=replace(kept, overviews="full").label,
    )
    log.debug("encoding search on %d tiles chose %s", len(tiles), kept.label)
    return kept, record


def pick(probes: list[tuple[int, Candidate]], worth: float) -> Candidate:
    """The candidate to keep from (sample bytes, candidate) pairs: from the fastest
    (declared speed) down, a slower one replaces the choice only when its sample is smaller
    by at least ``worth`` of the choice's size for each halving of the speed (0: any
    smaller one; equal sizes keep the faster)."""
    ordered = sorted(probes, key=lambda p: -p[1].speed)
    best_size, best = ordered[0]
    for size, cand in ordered[1:]:
        halvings = math.log2(best.speed / cand.speed) if cand.speed > 0 else math.inf
        if size < best_size and size <= best_size * (1 - worth * halvings):
            best_size, best = size, cand
    return best


@dataclass(frozen=True)
class Choice:
    """A scene's starting profile, the sample it was chosen on (``None``: none was needed),
    and the encoding search (``None``: none)."""

    profile: Profile
    sample: Sample | None
    search: EncodingSearch | None


def choose_encoding(
    src_path: str, info: RasterInfo, encoding: Encoding, scratch: Path, sample: Sample | None = None
) -> Choice:
    """The profile a scene starts with under the run's encoding settings: the codec policy,
    the error bound (relative bounds resolved on the sample), the overview policy, and for
    a lossless or bounded scene the smallest encoding on the sample (:func:`search_encoding`).
    A scene whose alpha band would become the mask has it read whole first: a graded alpha
    keeps its band, losslessly (:mod:`compactor.cog._alpha`).
    The sample is written once, only when something needs it. Call inside ``gdal_env``."""
    e = encoding
    only = e.codec if e.codec in CODECS else None

    def get_sample() -> Sample:
        nonlocal sample
        if sample is None:
            sample = write_sample(src_path, info, scratch / "sample")
        return sample

    ranges = None
    if needs_ranges(info, e.codec, e.max_error, e.overviews):
        ranges = valid_ranges(get_sample())
    profile = choose_profile(
        info, e.codec, e.quality, max_error=e.max_error, overviews=e.overviews, ranges=ranges
    )
    if profile.drop_alpha and alpha_is_graded(src_path, info):
        # The alpha band would become a 1-bit mask: only a binary one survives that.
        profile = choose_profile(
            info, e.codec, e.quality, max_error=e.max_error, overviews=e.overviews,
            ranges=ranges, graded_alpha=True,
        )  # fmt: skip
    profile = replace(profile, force_bigtiff=e.bigtiff == "yes")
    search = None
    if len(candidates_for(profile, e.effort, info.dtype, only)) > 1 and (
        profile.lossless or profile.bounded
    ):
        profile, search = search_encoding(get_sample(), profile, e.effort, only, info)
    return Choice(profile, sample, search)
