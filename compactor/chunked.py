"""Large scenes: per-chunk tasks that read windows lazily and encode in parallel into one COG.

**Plan.** A scene is cut into full-width strips of ``2^k`` tile rows (512 rows each) at full
resolution, ``k`` as large as the worker's memory budget allows while leaving at least three
chunks per worker thread; strips start at multiples of 512 rows, so they never split a
source block of any power-of-two height.

**Chunk task.** Reads its strip (``/vsis3/`` range requests; never the whole file), builds the
validity mask, encodes the full-resolution tiles and the overview levels ``1..k`` its strip
covers entirely (2x2 reduction), and hands the level ``k+1`` pixels of its strip up. It checks
its own work: every tile is decoded again; lossless tiles must equal the source exactly,
masks must be identical, and for lossy codecs it returns its share of the SSIM sums plus the
6 rows at each of its edges, from which the seams between chunks are computed: the scene's
SSIM is exactly the whole-image value.

**Merge tasks.** A binary tree: each node joins the half tile rows of its two children into
one tile row of the next level, encodes it, and hands half of it up; the root encodes every
remaining level. No task holds more than one strip (or one tile row of a level).

**Assembly.** Every (level, producer) pair owns a multipart part number, in layout order
(part 1 is the header). On S3, a producer uploads a segment of at least 5 MiB itself; runs of
smaller segments are joined (and, if still short and not last, zero-padded to 5 MiB: a legal
gap) by the assembler; the header is computed last, uploaded as part 1 (padded to 5 MiB),
the parts are checked with ListParts, and the upload completed, or aborted on any failure.
Locally, each segment goes to its own file and the output is their concatenation. The
output becomes visible only after every check passed and the caller accepted it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import math
import os
import shutil
import tempfile
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import replace as dataclasses_replace
from pathlib import Path
from typing import Any

import numpy as np

from . import failpoints
from .cog import open_source
from .cogwriter import CogSpec, frame, needs_bigtiff, pyramid, template_tags
from .encode import Profile, RasterInfo, dtype_range
from .errors import EncodeError, SceneTooLargeError, StorageError, VerificationError
from .ssim import HALO, ssim_sum
from .storage import MIN_PART_SIZE, Location, S3Options, S3Store, b64
from .tiles import (
    TILE,
    TileCodec,
    decode_mask,
    encode_mask,
    halve,
    jpeg_tables,
    pad_tile,
    split_jpeg,
)

log = logging.getLogger(__name__)

#: Working memory of a chunk task relative to its raw strip (measured 3.6x): the strip,
#: its decoded copy, masks, the first overview, encoded bytes and temporaries.
MEMORY_FACTOR = 4
#: Chunks per worker thread at least, so the work spreads and stragglers are short.
CHUNKS_PER_THREAD = 3
#: Seam rows each chunk hands over for the SSIM between chunks.
SEAM = 2 * HALO


# --- the plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkPlan:
    width: int
    height: int
    #: Full-resolution tile rows per chunk (a power of two, 2**k).
    strip_tiles: int
    nlevels: int

    @property
    def k(self) -> int:
        return int(math.log2(self.strip_tiles))

    @property
    def strip_rows(self) -> int:
        return self.strip_tiles * TILE

    @property
    def nchunks(self) -> int:
        return -(-self.height // self.strip_rows)

    def rows(self, chunk: int) -> tuple[int, int]:
        r0 = chunk * self.strip_rows
        return r0, min(self.height, r0 + self.strip_rows)

    def producers(self, level: int) -> int:
        """How many tasks produce tile rows of ``level``."""
        levels = pyramid(self.width, self.height)
        if level <= self.k:
            return sum(1 for c in range(self.nchunks) if self.tile_rows(level, c))
        return levels[level].down

    def tile_rows(self, level: int, chunk: int) -> range:
        """Tile rows of ``level`` that chunk ``chunk`` encodes (``level <= k``)."""
        per = self.strip_tiles >> level
        down = pyramid(self.width, self.height)[level].down
        return range(min(down, chunk * per), min(down, (chunk + 1) * per))

    @property
    def root_level(self) -> int:
        """The first level with one tile row above the chunk levels (its producer is the
        tree's root, which also makes every coarser level)."""
        levels = pyramid(self.width, self.height)
        for level in range(self.k + 1, len(levels)):
            if levels[level].down == 1:
                return level
        return len(levels)

    def part_numbers(self) -> dict[tuple[int, int], int]:
        """(level, producer index) -> multipart part number, in file order: part 1 is the
        header, then levels from the smallest, producers top to bottom."""
        numbers: dict[tuple[int, int], int] = {}
        n = 2
        for level in reversed(range(self.nlevels)):
            for p in range(self.producers(level)):
                numbers[(level, p)] = n
                n += 1
        return numbers


def plan_chunks(info: RasterInfo, *, budget: int, threads: int) -> ChunkPlan:
    """Strips as tall as ``budget`` bytes of working memory allow (with MEMORY_FACTOR),
    with at least CHUNKS_PER_THREAD chunks per thread, at most 8192 full-res rows."""
    row_bytes = info.width * info.count * np.dtype(info.dtype).itemsize
    levels = pyramid(info.width, info.height)
    smallest = TILE * row_bytes * MEMORY_FACTOR
    if smallest > budget:
        raise SceneTooLargeError(
            f"even its smallest chunk (one row of {TILE}-pixel tiles, {info.width} pixels wide "
            f"with {info.count} bands) needs about {smallest / 2**20:,.0f} MiB, more than a "
            f"worker thread's {budget / 2**20:,.0f} MiB: give workers more memory "
            "(--worker-memory) to take it"
        )
    strip_tiles = 1
    while strip_tiles < 16:
        bigger = strip_tiles * 2
        fits = bigger * TILE * row_bytes * MEMORY_FACTOR <= budget
        enough = -(-info.height // (bigger * TILE)) >= CHUNKS_PER_THREAD * max(1, threads)
        if not (fits and enough):
            break
        strip_tiles = bigger
    return ChunkPlan(info.width, info.height, strip_tiles, len(levels))


# --- what producers hand over ------------------------------------------------------------------


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
    #: The bytes, unless the producer uploaded or wrote them itself.
    data: bytes | None = None
    sha256_b64: str | None = None
    part_number: int = 0


@dataclass
class Leftover:
    """Level ``level`` pixels of a span of rows, handed up the tree."""

    level: int
    row0: int
    data: np.ndarray  # (bands, rows, cols)
    valid: np.ndarray | None


@dataclass
class Quality:
    """A chunk's share of the fidelity checks."""

    ssim_total: list[float] = field(default_factory=list)
    ssim_count: int = 0
    sq_err: float = 0.0
    n_valid: int = 0
    exact: bool = True
    #: Seam rows (masked source and decoded, per band; validity) at the top and bottom edge.
    top: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    bottom: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


@dataclass
class ChunkResult:
    chunk: int
    segments: list[Segment]
    leftover: Leftover | None
    quality: Quality


@dataclass(frozen=True)
class Output:
    """Where the segments go: a multipart upload on S3, or a folder of part files."""

    dest: str
    s3: S3Options
    upload_id: str | None = None
    parts_dir: str | None = None


@dataclass(frozen=True)
class ChunkJob:
    """Everything a chunk or merge task needs: plain, picklable data."""

    source: str  # GDAL path
    plan: ChunkPlan
    codec: TileCodec
    has_mask: bool
    mask_source: str  # "none", "nodata", "alpha", "dataset"
    keep_bands: tuple[int, ...]  # 1-based source bands written
    alpha_index: int | None
    nodata: float | None
    nearest: bool
    gdal: tuple[tuple[str, str], ...]
    output: Output
    parts: tuple[tuple[tuple[int, int], int], ...]
    #: JPEG quantisation tables every tile must share (None for other codecs).
    tables: bytes | None = None
    #: Decode and check every tile (off when GDAL checks the whole output afterwards).
    verify: bool = True

    def part_number(self, level: int, producer: int) -> int:
        return dict(self.parts)[(level, producer)]


# --- encoding a level's tile rows --------------------------------------------------------------


def _encode_rows(
    job: ChunkJob,
    level: int,
    producer: int,
    data: np.ndarray,
    valid: np.ndarray | None,
    row_tiles: range,
    row0: int,
    verify: Quality | None,
) -> Segment:
    """Encode tile rows ``row_tiles`` of ``level`` from ``data`` (bands, rows, cols), whose
    first row is level row ``row0``. With ``verify``, decode each tile and check it."""
    codec = job.codec
    lv = pyramid(job.plan.width, job.plan.height)[level]
    pixels = np.moveaxis(data, 0, -1)  # (rows, cols, bands)
    buffer = np.empty((TILE, TILE, pixels.shape[2]), dtype=pixels.dtype)  # reused per tile
    out = bytearray()
    sizes: list[tuple[int, int | None]] = []
    crcs: list[int] = []
    for tr in row_tiles:
        y0 = tr * TILE - row0
        for tc in range(lv.across):
            x0 = tc * TILE
            block = pixels[y0 : y0 + TILE, x0 : x0 + TILE]
            if block.shape[:2] == (TILE, TILE):
                np.copyto(buffer, block)
                tile = buffer
            else:
                tile = pad_tile(block)
            encoded = codec.encode(tile)
            if codec.codec == "jpeg":
                dqt, encoded = split_jpeg(encoded)
                if job.tables is not None and jpeg_tables(dqt) != job.tables:
                    raise EncodeError("JPEG tables differ between tiles")
            out += frame(encoded)
            mask_bytes = None
            if job.has_mask:
                assert valid is not None
                vblock = valid[y0 : y0 + TILE, x0 : x0 + TILE]
                mask_tile = np.zeros((TILE, TILE), bool)
                mask_tile[: vblock.shape[0], : vblock.shape[1]] = vblock
                mask_bytes = encode_mask(mask_tile)
                out += frame(mask_bytes)
                if verify is not None and not np.array_equal(decode_mask(mask_bytes), mask_tile):
                    raise VerificationError("a mask tile does not decode to the source mask")
            sizes.append((len(encoded), len(mask_bytes) if mask_bytes is not None else None))
            crcs.append(zlib.crc32(encoded))
            if verify is not None and level == 0 and codec.codec not in ("jpeg", "webp"):
                decoded = codec.decode(encoded)[: block.shape[0], : block.shape[1]]
                if not np.array_equal(decoded, block, equal_nan=block.dtype.kind == "f"):
                    raise VerificationError(
                        f"lossless tile ({tr}, {tc}) does not decode to the source pixels"
                    )
    first_tile = row_tiles.start * lv.across if row_tiles else 0
    return Segment(level, producer, first_tile, sizes, crcs, len(out), bytes(out))


def _decode_strip(job: ChunkJob, segment: Segment, shape: tuple[int, int, int]) -> np.ndarray:
    """Decode a level-0 segment back into (bands, rows, cols), each band contiguous (the
    SSIM filters read bands; one transposing copy per tile is cheaper than strided reads)."""
    assert segment.data is not None
    bands, rows, cols = shape
    lv = pyramid(job.plan.width, job.plan.height)[0]
    out = np.empty((bands, rows, cols), dtype=job.codec.dtype)
    buffer = np.empty((TILE, TILE, bands), dtype=job.codec.dtype)  # reused per tile
    pos = 0
    for i, (size, mask_size) in enumerate(segment.sizes):
        tile_index = segment.first_tile + i
        tr, tc = divmod(tile_index, lv.across)
        pos += 4
        data = segment.data[pos : pos + size]
        pos += size + 4
        if mask_size is not None:
            pos += 4 + mask_size + 4
        decoded = job.codec.decode(data, job.tables, out=buffer)
        y0 = tr * TILE - segment.first_tile // lv.across * TILE
        x0 = tc * TILE
        h, w = min(TILE, rows - y0), min(TILE, cols - x0)
        np.copyto(out[:, y0 : y0 + h, x0 : x0 + w], np.moveaxis(decoded[:h, :w], -1, 0))
    return out


# --- shipping segments ---------------------------------------------------------------------


def _ship(job: ChunkJob, seg: Segment) -> Segment:
    """Upload a big segment as its own part (S3) or write any segment to its part file."""
    assert seg.data is not None
    number = job.part_number(seg.level, seg.producer)
    seg.part_number = number
    out = job.output
    if out.parts_dir is not None:
        path = Path(out.parts_dir, f"part-{number:05d}")
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(seg.data)
        os.replace(tmp, path)
        seg.data = None
        return seg
    if seg.length >= MIN_PART_SIZE:
        assert out.upload_id is not None
        digest = hashlib.sha256(seg.data).digest()
        S3Store(out.s3).upload_part(
            Location.parse(out.dest), out.upload_id, number, seg.data, digest
        )
        seg.sha256_b64 = b64(digest)
        seg.data = None
    return seg


# --- tasks ---------------------------------------------------------------------------------------


def _read_strip(job: ChunkJob, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Source rows r0:r1 of the written bands, and their validity."""
    from rasterio.windows import Window

    from .gdal_env import gdal_env

    with gdal_env(dict(job.gdal)), open_source(job.source) as src:
        win = Window(0, r0, job.plan.width, r1 - r0)
        data = src.read(indexes=list(job.keep_bands), window=win)
        valid: np.ndarray | None = None
        if job.mask_source == "alpha" and job.alpha_index:
            if job.alpha_index in job.keep_bands:
                valid = data[job.keep_bands.index(job.alpha_index)] > 0
            else:
                valid = src.read(job.alpha_index, window=win) > 0
        elif job.mask_source == "dataset":
            valid = src.read_masks(1, window=win) > 0
        elif job.mask_source == "nodata" and job.nodata is not None:
            # (with a nodata value every band is kept: no alpha to drop)
            valid = np.zeros(data.shape[1:], dtype=bool)
            nd = job.nodata
            for band in data:
                valid |= ~np.isnan(band) if math.isnan(nd) else band != np.asarray(nd, band.dtype)
    return data, valid


def encode_chunk(job: ChunkJob, chunk: int) -> ChunkResult:
    """Dask task: one strip of the scene, its overview levels up to k, its checks."""
    failpoints.hit("chunk-encode")
    plan = job.plan
    r0, r1 = plan.rows(chunk)
    data, valid = _read_strip(job, r0, r1)
    quality = Quality()
    lossy = job.codec.codec in ("jpeg", "webp")
    segments: list[Segment] = []
    level_data, level_valid, level_row0 = data, valid, r0
    for level in range(min(plan.k, plan.nlevels - 1) + 1):
        rows = plan.tile_rows(level, chunk)
        if rows:  # every chunk has tile rows at every level up to k: producer == chunk
            seg = _encode_rows(
                job, level, chunk, level_data, level_valid, rows, level_row0,
                quality if level == 0 and job.verify else None,
            )  # fmt: skip
            if level == 0 and lossy and job.verify:
                decoded = _decode_strip(job, seg, data.shape)
                if valid is not None:
                    # Invalid pixels count as 0 in SSIM; the overviews weight them 0 anyway.
                    np.multiply(data, valid, out=data, casting="unsafe")
                    np.multiply(decoded, valid, out=decoded, casting="unsafe")
                _measure(job, data, decoded, valid, quality)
            segments.append(_ship(job, seg))
        if level + 1 < plan.nlevels:
            level_data, level_valid = halve(
                level_data, level_valid, nearest=job.nearest, nodata=job.nodata
            )
            level_row0 //= 2
    leftover = None
    if plan.k + 1 < plan.nlevels:
        leftover = Leftover(plan.k + 1, level_row0, level_data, level_valid)
    return ChunkResult(chunk, segments, leftover, quality)


def _measure(
    job: ChunkJob, src: np.ndarray, dec: np.ndarray, valid: np.ndarray | None, q: Quality
) -> None:
    """SSIM sums over this strip's interior rows, seam rows, and squared error (``src`` and
    ``dec`` already hold 0 at invalid pixels)."""
    import cv2

    rng = dtype_range(job.codec.dtype)
    rows = src.shape[1]
    for b in range(src.shape[0]):
        total, count = ssim_sum(src[b], dec[b], rng, valid=valid)
        q.ssim_total.append(total)
        q.ssim_count = count
    # Squared error band by band (OpenCV sums integer data exactly, in one SIMD pass).
    sq = 0
    for b in range(src.shape[0]):
        sq += int(cv2.norm(src[b], dec[b], cv2.NORM_L2SQR))
    q.sq_err += float(sq)
    q.exact = q.exact and sq == 0
    q.n_valid += src.shape[0] * (int(valid.sum()) if valid is not None else src[0].size)
    keep = min(SEAM, rows)
    if valid is None:
        valid = np.ones(src.shape[1:], dtype=bool)
    q.top = (src[:, :keep].copy(), dec[:, :keep].copy(), valid[:keep].copy())
    q.bottom = (
        src[:, rows - keep :].copy(), dec[:, rows - keep :].copy(), valid[rows - keep :].copy()
    )  # fmt: skip


@dataclass
class MergeResult:
    segments: list[Segment]
    leftover: Leftover | None


def merge(
    job: ChunkJob, level: int, node: int, *children: ChunkResult | MergeResult
) -> MergeResult:
    """Dask task: join the children's half tile rows into tile row ``node`` of ``level``
    and encode it. Below the root, hand the next level's half row up; the root (the
    level's only tile row) encodes every coarser level too."""
    plan = job.plan
    parts = [c.leftover for c in children if c.leftover is not None]
    parts.sort(key=lambda p: p.row0)
    data = np.concatenate([p.data for p in parts], axis=1)
    valid = None
    if job.has_mask or job.mask_source != "none":
        valid = np.concatenate([p.valid for p in parts if p.valid is not None], axis=0)
    row0 = parts[0].row0
    segments: list[Segment] = []
    lv = level
    while True:
        seg = _encode_rows(job, lv, node, data, valid, range(node, node + 1), row0, None)
        segments.append(_ship(job, seg))
        if lv + 1 >= plan.nlevels:
            return MergeResult(segments, None)
        data, valid = halve(data, valid, nearest=job.nearest, nodata=job.nodata)
        row0 //= 2
        lv += 1
        if level < plan.root_level:
            return MergeResult(segments, Leftover(lv, row0, data, valid))
        node = 0  # the root: every coarser level has a single tile row


# --- orchestration ---------------------------------------------------------------------------


#: The chunk tasks measure SSIM on libjpeg-turbo's decoding through imagecodecs; GDAL's
#: libtiff/libjpeg decodes pixels up to 3 levels apart. A lossy chunked output must clear the
#: bar by this much, so it holds whichever decoder reads it (gray JPEG and WEBP measure no
#: gap at all).
DECODER_MARGIN = 0.002


def decoder_margin(profile: Profile, info: RasterInfo) -> float:
    """How far a chunked output's SSIM must clear the bar. For YCbCr JPEG the two decoders'
    chroma upsampling differs, more at low qualities: measured (generated RGB textures, with
    and without nodata, 1200 px, q10-95) the chunk tasks' SSIM exceeds GDAL's by up to
    0.0099 at q10-15, 0.0070 at q25, 0.0055 at q40, 0.0025 at q60, 0.0017 at q80, 0.0014 at
    q95; this margin is above each of those by 0.0006 or more."""
    if profile.codec == "jpeg" and info.colour_bands == 3 and profile.quality is not None:
        return max(DECODER_MARGIN, 0.0125 - 0.000125 * profile.quality)
    return DECODER_MARGIN


@dataclass
class ChunkedOutput:
    """What the chunked path produced, before it is made visible."""

    size: int
    fidelity_ssim: float | None
    fidelity_psnr: float | None
    exact: bool
    chunks: int
    finish: Callable[[], dict[str, Any]]
    discard: Callable[[], None]


def _photometric(info: RasterInfo, profile: Profile, bands: list[int]) -> tuple[int, str | None]:
    """(TIFF Photometric, what the GDAL template is told) for the written bands."""
    ci = [info.colorinterp[b - 1] for b in bands]
    if profile.codec == "jpeg" and len(bands) == 3:
        return 6, "RGB"
    if info.has_colormap and len(bands) == 1:
        return 3, None
    if len(ci) >= 3 and ci[:3] == ["red", "green", "blue"]:
        return 2, "RGB"
    if profile.codec == "webp":
        return 2, "RGB"
    return 1, "MINISBLACK"


def build_job(
    src_path: str,
    info: RasterInfo,
    profile: Profile,
    plan: ChunkPlan,
    gdal: dict[str, str],
    output: Output,
) -> tuple[ChunkJob, CogSpec]:

    from .gdal_env import gdal_env

    bands = [
        b for b in range(1, info.count + 1) if not (profile.drop_alpha and b == info.alpha_index)
    ]
    lossy = not profile.lossless
    mask_source = profile.mask if lossy else ("dataset" if info.has_dataset_mask else "none")
    if not lossy and mask_source == "none":
        # Overviews still skip nodata and transparent pixels when averaging.
        mask_source = (
            "alpha" if info.alpha_index else ("nodata" if info.nodata is not None else "none")
        )
    has_mask = (lossy and profile.mask != "none") or (not lossy and info.has_dataset_mask)
    codec = TileCodec.for_profile(profile.codec, profile.quality, info.dtype, len(bands))
    tables = None
    if codec.codec == "jpeg":
        probe = np.zeros((TILE, TILE, len(bands)), dtype=info.dtype)
        tables = jpeg_tables(split_jpeg(codec.encode(probe))[0])
    photometric, template_photo = _photometric(info, profile, bands)
    with gdal_env(gdal), open_source(src_path) as src:
        template = template_tags(src, bands, template_photo)
    spec = CogSpec(
        width=info.width,
        height=info.height,
        bands=len(bands),
        dtype=info.dtype,
        codec=profile.codec,
        photometric=photometric,
        predictor=codec.predictor,
        has_mask=has_mask,
        bigtiff=profile.force_bigtiff
        or needs_bigtiff(info.width, info.height, len(bands), info.dtype),
        jpeg_tables=tables,
        template=template,
    )
    job = ChunkJob(
        source=src_path,
        plan=plan,
        codec=codec,
        has_mask=has_mask,
        mask_source=mask_source,
        keep_bands=tuple(bands),
        alpha_index=info.alpha_index,
        nodata=info.nodata,
        nearest=profile.resampling == "NEAREST",
        gdal=tuple(sorted(gdal.items())),
        output=output,
        parts=tuple(sorted(plan.part_numbers().items())),
        tables=tables,
    )
    return job, spec


def light(result: ChunkResult | MergeResult) -> ChunkResult | MergeResult:
    """A result without the pixels handed up the tree: what the assembler needs."""
    return dataclasses_replace(result, leftover=None)


def run_tasks(job: ChunkJob, client: Any) -> tuple[list[ChunkResult], list[MergeResult]]:
    """Chunk tasks and the merge tree, on Dask if ``client`` is given, else in this process."""
    plan = job.plan
    key = uuid.uuid4().hex[:10]
    if client is None:
        chunks = [encode_chunk(job, c) for c in range(plan.nchunks)]
        merges: list[MergeResult] = []
        below: list[Any] = list(chunks)
        for level in range(plan.k + 1, min(plan.root_level, plan.nlevels - 1) + 1):
            nodes = [
                merge(job, level, m, *below[2 * m : 2 * m + 2]) for m in range(-(-len(below) // 2))
            ]
            merges += nodes
            below = nodes
        return chunks, merges
    summaries = _submit_graph(job, client, key)
    n = plan.nchunks
    try:
        results = client.gather(summaries)
    finally:
        client.cancel(summaries)
    return results[:n], results[n:]


def _submit_graph(job: ChunkJob, client: Any, key: str) -> list[Any]:
    """Submit chunk tasks, the merge tree and a summary of each; return only the summary
    futures. Holding no other future lets Dask release the pixels each node hands up as
    soon as its parent has merged them, instead of keeping every strip's overview alive."""
    plan = job.plan
    below: list[Any] = [
        client.submit(encode_chunk, job, c, key=f"chunk-{key}-{c}", retries=2, pure=False)
        for c in range(plan.nchunks)
    ]
    summaries = [client.submit(light, f, key=f"summary-{f.key}", pure=False) for f in below]
    for level in range(plan.k + 1, min(plan.root_level, plan.nlevels - 1) + 1):
        below = [
            client.submit(merge, job, level, m, *below[2 * m : 2 * m + 2],
                          key=f"merge-{key}-{level}-{m}", retries=2, pure=False)
            for m in range(-(-len(below) // 2))
        ]  # fmt: skip
        summaries += [client.submit(light, f, key=f"summary-{f.key}", pure=False) for f in below]
    return summaries


def scene_quality(
    job: ChunkJob, chunks: list[ChunkResult]
) -> tuple[float | None, float | None, bool]:
    """(SSIM, PSNR, exact) of the scene from the chunks' shares and their seams."""
    lossy = job.codec.codec in ("jpeg", "webp")
    if not lossy:
        return 1.0, None, True
    bands = len(job.keep_bands)
    rng = dtype_range(job.codec.dtype)
    totals = [0.0] * bands
    count = 0
    sq, n, exact = 0.0, 0, True
    for c in chunks:
        q = c.quality
        for b in range(bands):
            totals[b] += q.ssim_total[b]
        count += q.ssim_count
        sq += q.sq_err
        n += q.n_valid
        exact &= q.exact
    for upper, lower in itertools.pairwise(chunks):
        assert upper.quality.bottom is not None
        assert lower.quality.top is not None
        src = np.concatenate([upper.quality.bottom[0], lower.quality.top[0]], axis=1)
        dec = np.concatenate([upper.quality.bottom[1], lower.quality.top[1]], axis=1)
        seam_valid = np.concatenate([upper.quality.bottom[2], lower.quality.top[2]], axis=0)
        # Count the rows within HALO of the boundary: those each side's strip left out.
        a = upper.quality.bottom[0].shape[1]
        lo = max(0, a - HALO - HALO)
        hi = min(src.shape[1], a + HALO + HALO)
        seam_count = 0
        for b in range(bands):
            t, seam_count = ssim_sum(src[b, lo:hi], dec[b, lo:hi], rng, valid=seam_valid[lo:hi])
            totals[b] += t
        count += seam_count
    ssim = min(t / count for t in totals) if count else (1.0 if exact else 0.0)
    psnr = None if sq == 0 or n == 0 else 10 * math.log10(rng**2 / (sq / n))
    return ssim, psnr, exact


@dataclass
class Part:
    """One part of the output, in file order: the header (part 1 only), segments, padding."""

    number: int
    segments: list[Segment]
    pad: int = 0
    header: bytes = b""

    @property
    def length(self) -> int:
        return len(self.header) + sum(g.length for g in self.segments) + self.pad

    @property
    def shipped(self) -> bool:
        """Already uploaded (or written) by its producer."""
        return len(self.segments) == 1 and self.segments[0].data is None and not self.header


#: Target size of the parts the assembler joins from small segments.
PART_TARGET = 16 * 1024 * 1024


def _group(run: list[Segment], first_number: int | None, minimum: int) -> list[Part]:
    """Cut a run of small segments into parts of at least ``minimum`` bytes (aiming at
    PART_TARGET); a short last piece joins the previous part. ``first_number`` forces the
    number of the first part (1: the header's part)."""
    parts: list[Part] = []
    current: list[Segment] = []
    size = 0
    for g in run:
        current.append(g)
        size += g.length
        if size >= PART_TARGET:
            parts.append(Part(0, current))
            current, size = [], 0
    if current:
        if parts and size < minimum:
            parts[-1].segments += current
        else:
            parts.append(Part(0, current))
    for i, part in enumerate(parts):
        g0 = part.segments[0]
        part.number = first_number if (i == 0 and first_number is not None) else _number(g0)
    return parts


def _number(g: Segment) -> int:
    return g.part_number


def layout(
    job: ChunkJob, spec: CogSpec, segments: list[Segment], s3: bool
) -> tuple[list[Part], int]:
    """Place every segment into parts in file order, compute the header (into part 1) and
    the total size. On S3 every part but the last has at least 5 MiB."""
    for g in segments:
        g.part_number = job.part_number(g.level, g.producer)
    ordered = sorted(segments, key=lambda g: g.part_number)
    minimum = MIN_PART_SIZE if s3 else 0
    parts: list[Part] = []
    run: list[Segment] = []

    def close() -> None:
        """Group the pending run of unshipped segments; the very first group is part 1,
        which also carries the header."""
        grouped = _group(run, None if parts else 1, minimum)
        if not parts and not grouped:
            grouped = [Part(1, [])]
        parts.extend(grouped)
        run.clear()

    for g in ordered:
        if not s3 or g.data is None:  # written by its producer, or shipped: its own part
            if run or not parts:
                close()
            parts.append(Part(g.part_number, [g]))
        else:
            run.append(g)
    if run or not parts:
        close()

    header_len = spec.header_size()
    parts[0].header = b"\0" * header_len
    # Pad parts that are short and not last (S3's minimum part size); a legal gap.
    for part in parts[:-1]:
        if s3 and part.length < minimum:
            part.pad = minimum - part.length
    offsets: dict[tuple[int, bool], list[int]] = {}
    counts: dict[tuple[int, bool], list[int]] = {}
    for level, lv in enumerate(pyramid(spec.width, spec.height)):
        for is_mask in (False, True) if spec.has_mask else (False,):
            offsets[(level, is_mask)] = [0] * lv.ntiles
            counts[(level, is_mask)] = [0] * lv.ntiles
    pos = 0
    for part in parts:
        pos += len(part.header)
        for g in part.segments:
            p = pos
            for i, (size, mask_size) in enumerate(g.sizes):
                t = g.first_tile + i
                offsets[(g.level, False)][t] = p + 4
                counts[(g.level, False)][t] = size
                p += 4 + size + 4
                if mask_size is not None:
                    offsets[(g.level, True)][t] = p + 4
                    counts[(g.level, True)][t] = mask_size
                    p += 4 + mask_size + 4
            pos += g.length
        pos += part.pad
    parts[0].header = spec.header(offsets, counts)
    assert len(parts[0].header) == header_len
    return parts, pos


def compact_chunked(
    src_path: str,
    dest: Location,
    info: RasterInfo,
    profile: Profile,
    *,
    gdal: dict[str, str],
    s3: S3Options,
    client: Any,
    budget: int,
    threads: int,
    metadata: dict[str, str] | None = None,
    scratch: Path | None = None,
    abort_stale: bool = True,
) -> ChunkedOutput:
    """Encode ``src_path`` as one COG at ``dest`` with chunk tasks. Nothing is visible at
    ``dest`` until the returned object's ``finish()`` is called; ``discard()`` (or any
    error) leaves nothing behind. ``abort_stale``: first abort uploads to ``dest`` left by
    crashed runs (not while this scene holds another candidate output in flight)."""
    plan = plan_chunks(info, budget=budget, threads=threads)
    store = S3Store(s3) if dest.is_s3 else None
    if store is not None:
        if abort_stale:
            store.abort_stale_uploads(dest)
        upload_id = store.create_upload(
            dest,
            ContentType="image/tiff; application=geotiff; profile=cloud-optimized",
            Metadata=metadata or {},
        )
        output = Output(dest.url, s3, upload_id=upload_id)
    else:
        base = scratch if scratch is not None else Path(dest.key).parent
        parts_dir = base / f".{Path(dest.key).name}.compactor-{uuid.uuid4().hex[:8]}"
        parts_dir.mkdir(parents=True)
        output = Output(dest.url, s3, parts_dir=str(parts_dir))

    def discard() -> None:
        if store is not None and output.upload_id:
            store.abort_upload(dest, output.upload_id)
        if output.parts_dir:
            shutil.rmtree(output.parts_dir, ignore_errors=True)

    try:
        job, spec = build_job(src_path, info, profile, plan, gdal, output)
        chunks, merges = run_tasks(job, client)
        ssim, psnr, exact = scene_quality(job, chunks)
        segments = [g for c in chunks for g in c.segments] + [g for m in merges for g in m.segments]
        parts, total = layout(job, spec, segments, s3=store is not None)
        header = parts[0].header
        check_header(src_path, header, total, info, profile, gdal, scratch)
    except BaseException:
        discard()
        raise

    def finish() -> dict[str, Any]:
        try:
            if store is not None:
                return _finish_s3(store, dest, output, parts, total)
            return _finish_local(dest, output, parts, total)
        except BaseException:
            discard()
            raise

    return ChunkedOutput(total, ssim, psnr, exact, plan.nchunks, finish, discard)


def check_header(
    src_path: str,
    header: bytes,
    total: int,
    info: RasterInfo,
    profile: Profile,
    gdal: dict[str, str],
    scratch: Path | None,
) -> None:
    """Before anything becomes visible: the header is a well-formed COG header (IFDs before
    data, every tile inside the file, overviews before full resolution), and GDAL reads the
    same metadata from it as from the source (a sparse probe file: header, then holes)."""
    import io

    import rasterio

    from .gdal_env import gdal_env
    from .tiff import TAG_TILE_BYTE_COUNTS, TAG_TILE_OFFSETS, read_structure
    from .verify import check_metadata

    tf = read_structure(io.BytesIO(header))
    last_ifd = max(ifd.offset for ifd in tf.ifds)
    firsts = []
    for ifd in tf.ifds:
        offs = ifd.value(TAG_TILE_OFFSETS)
        cnts = ifd.value(TAG_TILE_BYTE_COUNTS)
        assert isinstance(offs, tuple)
        assert isinstance(cnts, tuple)
        if min(offs) <= last_ifd or any(o + c > total for o, c in zip(offs, cnts, strict=True)):
            raise VerificationError("COG header: a tile lies outside the data area")
        if ifd.first(254) in (0, 1):
            firsts.append(min(offs))
    if firsts != sorted(firsts, reverse=True):
        raise VerificationError("COG header: overview data must come before full resolution")
    base = scratch if scratch is not None else Path(tempfile.gettempdir())
    probe = base / f"probe-{uuid.uuid4().hex[:8]}.tif"
    try:
        with open(probe, "wb") as fh:
            fh.write(header)
            fh.truncate(total)
        with gdal_env(gdal), open_source(src_path) as src, rasterio.open(probe) as out:
            check_metadata(src, out, info, profile)
    finally:
        probe.unlink(missing_ok=True)


def _finish_s3(
    store: S3Store, dest: Location, output: Output, parts: list[Part], total: int
) -> dict[str, Any]:
    assert output.upload_id is not None
    expected: dict[int, tuple[int, str]] = {}
    for part in parts:
        if part.shipped:
            g = part.segments[0]
            assert g.sha256_b64 is not None
            expected[part.number] = (g.length, g.sha256_b64)
            continue
        body = part.header + b"".join(g.data or b"" for g in part.segments) + b"\0" * part.pad
        digest = hashlib.sha256(body).digest()
        store.upload_part(dest, output.upload_id, part.number, body, digest)
        expected[part.number] = (len(body), b64(digest))
    listed = {p["PartNumber"]: p for p in store.list_parts(dest, output.upload_id)}
    wrong = [
        n for n, (size, _sha) in expected.items() if n not in listed or listed[n]["Size"] != size
    ]
    if wrong or set(listed) != set(expected):
        raise StorageError(f"multipart upload of {dest.url}: parts {wrong} are not as sent")
    complete = [
        {"PartNumber": n, "ETag": listed[n]["ETag"], "ChecksumSHA256": expected[n][1]}
        for n in sorted(expected)
    ]
    failpoints.hit("before-complete")
    store.complete_upload(dest, output.upload_id, complete)
    joined = b"".join(base64.b64decode(expected[n][1]) for n in sorted(expected))
    composite = b64(hashlib.sha256(joined).digest())
    info = store.head(dest)
    if info is None or info.size != total:
        raise StorageError(f"{dest.url} is not the planned {total} bytes after completion")
    reported = (info.checksum_sha256 or "").split("-")[0]
    if reported and reported != composite:
        raise StorageError(f"{dest.url}: the stored checksum differs from the parts sent")
    return {"size": info.size, "etag": info.etag, "checksum": info.checksum_sha256, "sha256": None}


def _finish_local(dest: Location, output: Output, parts: list[Part], total: int) -> dict[str, Any]:
    assert output.parts_dir is not None
    target = Path(dest.key)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
    sha = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                if part.header:
                    out.write(part.header)
                    sha.update(part.header)
                for g in part.segments:
                    with open(Path(output.parts_dir, f"part-{g.part_number:05d}"), "rb") as fh:
                        while block := fh.read(8 * 1024 * 1024):
                            out.write(block)
                            sha.update(block)
            out.flush()
            os.fsync(out.fileno())
        if tmp.stat().st_size != total:
            raise StorageError(f"{target} is {tmp.stat().st_size} bytes, planned {total}")
        _check_tile_crcs(tmp, parts)
        from .verify import validate_cog

        validate_cog(str(tmp))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(output.parts_dir, ignore_errors=True)
    return {"size": total, "etag": None, "checksum": None, "sha256": sha.hexdigest()}


def _check_tile_crcs(path: Path, parts: list[Part]) -> None:
    """Every tile's bytes at its offset have the CRC32 recorded when it was encoded."""
    from .tiff import TAG_TILE_BYTE_COUNTS, TAG_TILE_OFFSETS, read_structure

    with open(path, "rb") as fh:
        tf = read_structure(fh)
        crcs: dict[tuple[int, int], int] = {}
        for part in parts:
            for g in part.segments:
                for i, crc in enumerate(g.crcs):
                    crcs[(g.level, g.first_tile + i)] = crc
        image_ifds = [ifd for ifd in tf.ifds if ifd.first(254) in (0, 1)]
        for level, ifd in enumerate(image_ifds):
            offsets = ifd.value(TAG_TILE_OFFSETS)
            sizes = ifd.value(TAG_TILE_BYTE_COUNTS)
            assert isinstance(offsets, tuple)
            assert isinstance(sizes, tuple)
            for t, (off, size) in enumerate(zip(offsets, sizes, strict=True)):
                fh.seek(int(off))
                if zlib.crc32(fh.read(int(size))) != crcs.get((level, t)):
                    raise VerificationError(f"tile {t} of level {level} is not the bytes encoded")


def write_local(src_path: str, dst: Path, profile: Profile, info: RasterInfo) -> Path:
    """The tile writer in this process, for a scene small enough for one task: the same
    plan and layout as the chunked path, written to ``dst`` (the caller verifies it with GDAL)."""
    plan = plan_chunks(info, budget=1 << 62, threads=1)
    dst.parent.mkdir(parents=True, exist_ok=True)
    out = Output(
        str(dst),
        S3Options(),
        parts_dir=str(dst.parent / f".{dst.name}.parts-{uuid.uuid4().hex[:8]}"),
    )
    Path(out.parts_dir or "").mkdir()
    try:
        job, spec = build_job(src_path, info, profile, plan, {}, out)
        job = dataclasses_replace(job, verify=False)
        chunks, merges = run_tasks(job, None)
        segments = [g for c in chunks for g in c.segments] + [g for m in merges for g in m.segments]
        parts, total = layout(job, spec, segments, s3=False)
        _finish_local(Location.parse(str(dst)), out, parts, total)
    finally:
        shutil.rmtree(out.parts_dir or "", ignore_errors=True)
    return dst
