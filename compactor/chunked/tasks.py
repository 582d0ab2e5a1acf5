"""The Dask tasks of a large scene: chunk tasks that encode one strip each and check their
own work, and the merge tree above them.

A chunk task reads its strip (``/vsis3/`` range requests; never the whole file), encodes
it with the tile writer (:mod:`compactor.codec.tile_writer`) and checks every tile it
encoded: lossless tiles must decode to the source exactly, mask tiles to the source mask;
bounded tiles (LERC with an error) must keep nodata, NaN and the mask exactly and every
valid value within its band's bound (:func:`compactor.fidelity.metrics.check_band`, the
definition whole outputs are verified by), and give their error statistics; for lossy
codecs it decodes its full-resolution tiles again and returns its share of the SSIM sums
plus the rows at each of its edges, from which the seams between chunks are computed
(:func:`compactor.chunked.checks.scene_quality`): the scene's SSIM is exactly the
whole-image value.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from dataclasses import replace as dataclasses_replace
from typing import Any

import cv2
import numpy as np

from .. import failpoints, timing
from ..codec.profile import dtype_range
from ..codec.tile_writer import (
    Leftover,
    Segment,
    TileJob,
    decode_strip,
    encode_strip,
    merge_node,
    read_strip,
    tree,
)
from ..codec.tiles import TILE, decode_mask
from ..errors import CompactorError, EncodeError, VerificationError
from ..fidelity.metrics import ErrorStats, check_band
from ..fidelity.ssim import HALO, ssim_sum

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
        if not np.array_equal(decoded, block, equal_nan=block.dtype.kind == "f"):
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


def encode_chunk(job: TileJob, chunk: int) -> ChunkResult:
    """Dask task: one strip of the scene, its overview levels up to k, its checks."""
    failpoints.hit("chunk-encode")
    with timing.collecting() as stages:
        segments, leftover, quality = _encode_chunk(job, chunk)
    return ChunkResult(chunk, segments, leftover, quality, dict(stages))


def _encode_chunk(job: TileJob, chunk: int) -> tuple[list[Segment], Leftover | None, Quality]:
    with timing.stage("read"):
        data, valid = read_strip(job, *job.plan.rows(chunk))
    quality = Quality(errors=ErrorStats(len(job.keep_bands)))

    def measure(seg: Segment) -> None:
        if not job.lossy:
            return
        with timing.stage("verification decode"):
            decoded = decode_strip(job, seg, data.shape)
        if valid is not None:
            # Invalid pixels count as 0 in SSIM; the overviews made from the strip next
            # weight them 0 anyway, so the strip is zeroed in place (no copy).
            np.multiply(data, valid, out=data, casting="unsafe")
            np.multiply(decoded, valid, out=decoded, casting="unsafe")
        _measure(job, data, decoded, valid, quality)

    def check(level: int, tr: int, tc: int, block: np.ndarray, encoded: bytes,
              mask_tile: np.ndarray | None, mask_bytes: bytes | None) -> None:  # fmt: skip
        with timing.stage("tile checks"):
            _check_tile(job, level, tr, tc, block, encoded, mask_tile, mask_bytes, quality.errors)

    segments, leftover = encode_strip(job, chunk, data, valid, check=check, on_level0=measure)
    return segments, leftover, quality


def _measure(
    job: TileJob, src: np.ndarray, dec: np.ndarray, valid: np.ndarray | None, q: Quality
) -> None:
    """SSIM sums over this strip's interior rows, seam rows, and squared error (``src`` and
    ``dec`` already hold 0 at invalid pixels)."""
    rng = dtype_range(job.codec.dtype)
    with timing.stage("SSIM"):
        for b in range(src.shape[0]):
            total, count = ssim_sum(src[b], dec[b], rng, valid=valid)
            q.ssim_total.append(total)
            q.ssim_count = count
    with timing.stage("compare"):
        _errors(src, dec, valid, q)


def _errors(src: np.ndarray, dec: np.ndarray, valid: np.ndarray | None, q: Quality) -> None:
    """Squared error, error statistics and seam rows of a strip."""
    rows = src.shape[1]
    # Squared error band by band (OpenCV sums integer data exactly, in one SIMD pass).
    sq = 0
    for b in range(src.shape[0]):
        sq += int(cv2.norm(src[b], dec[b], cv2.NORM_L2SQR))
    q.sq_err += float(sq)
    q.exact = q.exact and sq == 0
    q.n_valid += src.shape[0] * (int(valid.sum()) if valid is not None else src[0].size)
    if q.errors is not None:
        for b in range(src.shape[0]):
            if src.dtype == np.uint8:
                q.errors.add_uint8(b, src[b], dec[b], valid)  # no copies of the strip
                continue
            a = src[b] if valid is None else src[b][valid]
            d = dec[b] if valid is None else dec[b][valid]
            q.errors.add(b, a.astype(np.float64).ravel(), d.astype(np.float64).ravel())
    keep = min(SEAM, rows)

    def seam(rows_: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ok = np.ones((keep, src.shape[2]), bool) if valid is None else valid[rows_].copy()
        return src[:, rows_].copy(), dec[:, rows_].copy(), ok

    q.top, q.bottom = seam(slice(0, keep)), seam(slice(rows - keep, rows))


def merge(job: TileJob, level: int, node: int, *children: ChunkResult | MergeResult) -> MergeResult:
    """Dask task: one node of the merge tree (:func:`~compactor.codec.tile_writer.merge_node`)."""
    handed = [c.leftover for c in children if c.leftover is not None]
    with timing.collecting() as stages:
        segments, leftover = merge_node(job, level, node, handed)
    return MergeResult(segments, leftover, dict(stages))


def light(result: ChunkResult | MergeResult) -> ChunkResult | MergeResult:
    """A result without the pixels handed up the tree: what the assembler needs."""
    return dataclasses_replace(result, leftover=None)


def run_tasks(job: TileJob, client: Any) -> tuple[list[ChunkResult], list[MergeResult]]:
    """Chunk tasks and the merge tree, on Dask if ``client`` is given, else in this process."""
    plan = job.plan
    if client is None:
        chunks = [encode_chunk(job, c) for c in range(plan.nstrips)]
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
    try:
        results = client.gather(summaries)
    except CompactorError:
        raise
    except Exception as err:
        # A chunk or merge task that failed its retries fails the scene (the caller aborts
        # the upload): the documented end of the chunked path, whatever the task raised.
        raise EncodeError(f"a chunk task failed for good: {type(err).__name__}: {err}") from err
    finally:
        client.cancel(summaries)
    return results[: plan.nstrips], results[plan.nstrips :]


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
