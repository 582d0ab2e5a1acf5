"""The Dask tasks of a large scene: chunk tasks that encode one strip each and check their
own work, and the merge tree above them.

A chunk task reads its strip (``/vsis3/`` range requests; never the whole file), encodes
it with the tile writer (:mod:`compactor.encode._tile_writer`) and checks every tile it
encoded: lossless tiles must decode to the source exactly, mask tiles to the source mask;
bounded tiles (LERC with an error) must keep nodata, NaN and the mask exactly and every
valid value within its band's bound (:func:`compactor.fidelity._metrics.check_band`, the
definition whole outputs are verified by), and give their error statistics; for lossy
codecs it decodes its full-resolution tiles again and returns its share of the SSIM sums
plus the rows at each of its edges, from which the seams between chunks are computed
(:class:`compactor.verify._chunked.SceneQuality`): the scene's SSIM is exactly the
whole-image value.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import replace as dataclasses_replace
from typing import Any

import cv2
import numpy as np
from distributed import as_completed

from .. import failpoints, timing
from ..capture import capturing
from ..cog import TILE, decode_mask, dtype_range
from ..errors import CompactorError, EncodeError, VerificationError
from ..fidelity import HALO, ErrorStats, check_band, ssim_sum
from ._strips import Leftover, Segment, TileJob
from ._tile_writer import (
    CV_INTERLEAVE,
    decode_columns,
    encode_strip,
    merge_node,
    read_strip,
    tree,
)

#: Seam rows each chunk hands over for the SSIM between chunks.
SEAM = 2 * HALO


@dataclass
class Quality:
    """A chunk's share of the fidelity checks."""

    ssim_total: list[float] = field(default_factory=list)
    ssim_count: int = 0
    sq_err: float = 0.0
    n_valid: int = 0
    exact: bool = True
    #: Errors of each band over its valid pixels (bounded and lossy codecs).
    errors: ErrorStats | None = None
    #: Seam rows (masked source and decoded, per band; validity) at the top and bottom edge.
    top: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    bottom: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


@dataclass
class ChunkResult:
    chunk: int
    segments: list[Segment]
    leftover: Leftover | None
    quality: Quality
    #: Where the task's seconds went (:mod:`compactor.timing`).
    stages: dict[str, float] = field(default_factory=dict)
    #: What libraries warned about in the task (:mod:`compactor.capture`).
    warnings: list[str] = field(default_factory=list)


@dataclass
class MergeResult:
    segments: list[Segment]
    leftover: Leftover | None
    stages: dict[str, float] = field(default_factory=dict)


def _check_tile(
    job: TileJob,
    level: int,
    tr: int,
    tc: int,
    block: np.ndarray,
    encoded: bytes,
    mask_tile: np.ndarray | None,
    mask_bytes: bytes | None,
    errors: ErrorStats | None = None,
) -> None:
    """Every full-resolution tile as it is encoded: its mask decodes to the source mask; a
    lossless tile decodes to the source pixels exactly (NaN equal to NaN); a bounded tile
    keeps nodata, NaN, infinities and transparency exactly and every valid value within its
    band's bound, counted in ``errors``."""
    if mask_bytes is not None:
        assert mask_tile is not None
        if not np.array_equal(decode_mask(mask_bytes), mask_tile):
            raise VerificationError("a mask tile does not decode to the source mask")
    if job.lossy:
        return
    h, w = block.shape[:2]
    decoded = job.codec.decode(encoded)[:h, :w]
    if job.exact:
        if not _same_pixels(decoded, block):
            raise VerificationError(
                f"lossless tile ({tr}, {tc}) does not decode to the source pixels"
            )
        return
    valid = None if mask_tile is None else mask_tile[:h, :w]
    alpha = job.codec.alpha
    if valid is None and alpha is not None:
        valid = block[..., alpha] > 0
        if not np.array_equal(valid, decoded[..., alpha] > 0):
            raise VerificationError(f"tile ({tr}, {tc}): transparent pixels differ")
    for k, band in enumerate(job.keep_bands):
        a, b = check_band(
            block[..., k], decoded[..., k], valid, job.nodata, job.codec.band_error(k),
            f"band {band}", tr * TILE, tc * TILE,
        )  # fmt: skip
        if errors is not None:
            errors.add(k, a, b)


def _same_pixels(decoded: np.ndarray, block: np.ndarray) -> bool:
    """Whether a decoded tile (rows, cols, bands) holds the source block's pixels (NaN equal
    to NaN). ``block`` is a view of the strip's band planes: compared with a
    pixel-interleaved tile directly, every sample is a strided read (~1 ms a 512 x 512 RGB
    tile); so integer tiles of 2-4 bands are split into band planes by OpenCV (its SIMD
    de-interleave) and each compared with the source plane's rows, 2-3x faster."""
    if decoded.shape != block.shape:
        return False
    if (
        2 <= decoded.shape[-1] <= 4
        and decoded.dtype.kind in "ui"
        and decoded.dtype.name in CV_INTERLEAVE
        and decoded.flags.c_contiguous
    ):
        planes, source = cv2.split(decoded), np.moveaxis(block, -1, 0)
        return all(np.array_equal(p, q) for p, q in zip(planes, source, strict=True))
    return bool(np.array_equal(decoded, block, equal_nan=block.dtype.kind == "f"))


def encode_chunk(job: TileJob, chunk: int) -> ChunkResult:
    """Dask task: one strip of the scene, its overview levels up to k, its checks."""
    failpoints.hit("chunk-encode")
    said: list[str] = []
    with capturing(said), timing.collecting() as stages:
        segments, leftover, quality = _encode_chunk(job, chunk)
    return ChunkResult(chunk, segments, leftover, quality, dict(stages), said)


def _encode_chunk(job: TileJob, chunk: int) -> tuple[list[Segment], Leftover | None, Quality]:
    with timing.stage("read"):
        data, valid = read_strip(job, *job.plan.rows(chunk))
    quality = Quality(errors=ErrorStats(len(job.keep_bands)))

    def measure(seg: Segment) -> None:
        if not job.lossy:
            return
        if valid is not None:
            # Invalid pixels count as 0 in SSIM; the overviews made from the strip next
            # weight them 0 anyway, so the strip is zeroed in place (no copy).
            np.multiply(data, valid, out=data, casting="unsafe")
        _measure(job, seg, data, valid, quality)

    def check(level: int, tr: int, tc: int, block: np.ndarray, encoded: bytes,
              mask_tile: np.ndarray | None, mask_bytes: bytes | None) -> None:  # fmt: skip
        with timing.stage("tile checks"):
            _check_tile(job, level, tr, tc, block, encoded, mask_tile, mask_bytes, quality.errors)

    segments, leftover = encode_strip(job, chunk, data, valid, check=check, on_level0=measure)
    return segments, leftover, quality


#: Tile columns decoded and compared at a time: the decoded pixels of a block, not of the
#: whole strip, are in memory, and still in the cache when the SSIM reads them.
BLOCK_TILES = 4


def _measure(
    job: TileJob, seg: Segment, src: np.ndarray, valid: np.ndarray | None, q: Quality
) -> None:
    """Decode the strip's full-resolution tiles block of tile columns by block and measure
    them against ``src`` (which holds 0 at invalid pixels already): the SSIM sums over the
    strip's interior rows, squared error, error statistics and the seam rows. Each block
    keeps the last ``WIN - 1`` decoded columns of the one before as context, so every SSIM
    window of the strip is counted exactly once."""
    bands, rows, cols = src.shape
    rng = dtype_range(job.codec.dtype)
    context = 2 * HALO
    width = BLOCK_TILES * TILE
    dec = np.empty((bands, rows, context + width), dtype=src.dtype)
    tile = np.empty((TILE, TILE, bands), dtype=src.dtype)
    keep = min(SEAM, rows)
    seams = [np.empty((bands, keep, cols), dtype=src.dtype) for _ in range(2)]
    totals = [0.0] * bands
    count = 0
    ctx = used = 0  # decoded columns carried over from the block before; columns in use
    for c0 in range(0, cols, width):
        c1 = min(cols, c0 + width)
        if ctx:
            dec[:, :, :ctx] = dec[:, :, used - ctx : used]
        used = ctx + c1 - c0
        with timing.stage("verification decode"):
            decode_columns(job, seg, c0, dec[:, :, ctx:used], tile)
        x, y = src[:, :, c0 - ctx : c1], dec[:, :, :used]
        ok = None if valid is None else valid[:, c0 - ctx : c1]
        if ok is not None:
            np.multiply(y[:, :, ctx:], ok[:, ctx:], out=y[:, :, ctx:], casting="unsafe")
        with timing.stage("SSIM"):
            for b in range(bands):
                total, n = ssim_sum(x[b], y[b], rng, valid=ok)
                totals[b] += total
            count += n
        with timing.stage("compare"):
            new = slice(ctx, used)
            _errors(x[:, :, new], y[:, :, new], None if ok is None else ok[:, new], q)
            seams[0][:, :, c0:c1] = y[:, :keep, new]
            seams[1][:, :, c0:c1] = y[:, rows - keep :, new]
        ctx = min(context, used)
    q.ssim_total, q.ssim_count = totals, count
    ones = np.ones((keep, cols), bool)
    q.top = (src[:, :keep].copy(), seams[0], ones if valid is None else valid[:keep].copy())
    q.bottom = (
        src[:, rows - keep :].copy(), seams[1],
        ones if valid is None else valid[rows - keep :].copy(),
    )  # fmt: skip


def _errors(src: np.ndarray, dec: np.ndarray, valid: np.ndarray | None, q: Quality) -> None:
    """Error statistics of a block of a strip, and from them its squared error and valid
    count (``src`` and ``dec`` hold 0 at invalid pixels, so all-pixel and valid-pixel sums
    agree)."""
    errors = q.errors
    assert errors is not None
    sq0, n0 = sum(errors.sq), sum(errors.n)
    for b in range(src.shape[0]):
        if src.dtype == np.uint8:
            errors.add_uint8(b, src[b], dec[b], valid)  # no copies of the block
            continue
        a = src[b] if valid is None else src[b][valid]
        d = dec[b] if valid is None else dec[b][valid]
        errors.add(b, a.astype(np.float64).ravel(), d.astype(np.float64).ravel())
    sq = sum(errors.sq) - sq0
    q.sq_err += sq
    q.exact = q.exact and sq == 0
    q.n_valid += sum(errors.n) - n0


def merge(job: TileJob, level: int, node: int, *children: ChunkResult | MergeResult) -> MergeResult:
    """Dask task: one node of the merge tree (:func:`~compactor.encode._tile_writer.merge_node`)."""
    handed = [c.leftover for c in children if c.leftover is not None]
    with capturing([]), timing.collecting() as stages:  # off stderr; overviews of checked tiles
        segments, leftover = merge_node(job, level, node, handed)
    return MergeResult(segments, leftover, dict(stages))


def light(result: ChunkResult | MergeResult) -> ChunkResult | MergeResult:
    """A result without the pixels handed up the tree: what the assembler needs."""
    return dataclasses_replace(result, leftover=None)


def run_tasks(
    job: TileJob, client: Any, on_chunk: Callable[[ChunkResult], None]
) -> tuple[list[ChunkResult], list[MergeResult]]:
    """Chunk tasks and the merge tree, on Dask if ``client`` is given, else in this process.
    ``on_chunk`` sees each chunk's result as it arrives (in any order), before the rest."""
    plan = job.plan
    if client is None:
        chunks = [encode_chunk(job, c) for c in range(plan.nstrips)]
        for chunk in chunks:
            on_chunk(chunk)
        merges: list[MergeResult] = []
        below: list[ChunkResult | MergeResult] = list(chunks)
        for level, nodes in tree(plan):
            layer = [
                merge(job, level, m, *(below[i] for i in children))
                for m, children in enumerate(nodes)
            ]
            merges += layer
            below = list(layer)
        return chunks, merges
    summaries = _submit_graph(job, client, uuid.uuid4().hex[:10])
    done: dict[str, ChunkResult | MergeResult] = {}
    try:
        for future in as_completed(summaries):
            # result() raises for a task that failed, was cancelled or whose data was lost.
            result = future.result()
            if not isinstance(result, ChunkResult | MergeResult):
                raise EncodeError(f"chunk task {future.key} returned {type(result).__name__}")
            if isinstance(result, ChunkResult):
                on_chunk(result)
            done[future.key] = result
    except CompactorError:
        raise
    except Exception as err:
        # A chunk or merge task that failed its retries fails the scene (the caller aborts
        # the upload): the documented end of the chunked path, whatever the task raised.
        raise EncodeError(f"a chunk task failed for good: {type(err).__name__}: {err}") from err
    finally:
        client.cancel(summaries)
    results = [done[f.key] for f in summaries]
    chunks = [r for r in results[: plan.nstrips] if isinstance(r, ChunkResult)]
    merges = [r for r in results[plan.nstrips :] if isinstance(r, MergeResult)]
    return chunks, merges


def _submit_graph(job: TileJob, client: Any, key: str) -> list[Any]:
    """Submit chunk tasks, the merge tree and a summary of each; return only the summary
    futures. Holding no other future lets Dask release the pixels each node hands up as
    soon as its parent has merged them, instead of keeping every strip's overview alive."""
    plan = job.plan
    below: list[Any] = [
        client.submit(encode_chunk, job, c, key=f"chunk-{key}-{c}", retries=2, pure=False)
        for c in range(plan.nstrips)
    ]
    summaries = [client.submit(light, f, key=f"summary-{f.key}", pure=False) for f in below]
    for level, nodes in tree(plan):
        below = [
            client.submit(merge, job, level, m, *(below[i] for i in children),
                          key=f"merge-{key}-{level}-{m}", retries=2, pure=False)
            for m, children in enumerate(nodes)
        ]  # fmt: skip
        summaries += [client.submit(light, f, key=f"summary-{f.key}", pure=False) for f in below]
    return summaries
