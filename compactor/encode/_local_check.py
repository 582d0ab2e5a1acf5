"""The tile writer in one process with the chunk tasks' checks: a one-task scene encoded and
checked in memory as it is written, the source read once.

Each strip is read once (:func:`~compactor.encode._tile_writer.read_strip`) and encoded as a
chunk task encodes it (:func:`~compactor.encode._chunk_tasks._encode_chunk`): every
full-resolution tile is decoded in memory and checked against the strip's pixels (exact,
within its bound, or its share of the SSIM sums, errors and seams; lossy tiles decoded by
GDAL's own drivers, :mod:`compactor.encode._gdal_decode`), every mask tile against the
strip's validity. Every tile's CRC-32 is kept, so the file's check
(:func:`compactor.verify.check_written`) proves its bytes are the ones checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as dataclasses_replace
from pathlib import Path

from .. import timing
from ..cog import EncodedCog, Profile
from ..errors import EncodeError
from ..gdal import RasterInfo, clean, gdal_errors
from ..storage import DirectoryParts
from ._chunk_tasks import ChunkResult, _encode_chunk
from ._strips import Leftover, Segment, StripPlan, TileJob
from ._tile_layout import Part, build_job, level_bytes
from ._tile_writer import merge_and_write


@dataclass
class CheckedWrite:
    """A one-task output written with its in-memory checks: the COG, the job, each strip's
    share of the checks (in strip order, without pixels) and the parts (every tile's CRC)."""

    cog: EncodedCog
    job: TileJob
    chunks: list[ChunkResult]
    parts: list[Part]


def write_checked(src_path: str, dst: Path, profile: Profile, info: RasterInfo) -> CheckedWrite:
    """Write ``src_path`` to ``dst`` with the tile writer, checking every full-resolution
    tile in memory (raises :class:`~compactor.errors.VerificationError` on the first that
    fails). GDAL read errors of the source raise :class:`~compactor.errors.EncodeError`."""
    try:
        return _write_checked(src_path, dst, profile, info)
    except gdal_errors() as err:
        dst.unlink(missing_ok=True)
        raise EncodeError(f"GDAL could not read the scene ({profile.label}): {clean(err)}") from err


def _write_checked(src_path: str, dst: Path, profile: Profile, info: RasterInfo) -> CheckedWrite:
    output = DirectoryParts.create(dst, durable=False)  # scratch, read back here
    try:
        with timing.stage("encode setup"):
            job, spec = build_job(src_path, info, profile, StripPlan.sized(info), {}, output)
        job = dataclasses_replace(job, gdal_decode=spec)
        plan = job.plan
        chunks: list[ChunkResult] = []
        segments: list[Segment] = []
        below: list[Leftover | None] = []
        for strip in range(plan.nstrips):
            with timing.stage("tiling"):
                done, leftover, quality = _encode_chunk(job, strip)
            chunks.append(ChunkResult(strip, done, None, quality))
            segments += done
            below.append(leftover)
        written, parts = merge_and_write(job, spec, output, segments, below)
    finally:
        output.abort()
    tiles = level_bytes(segments)
    cog = EncodedCog(dst, written.size, tiles.full, tiles.overview)
    return CheckedWrite(cog, job, chunks, parts)
