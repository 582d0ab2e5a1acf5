"""The checks of a chunked output before it becomes visible: the scene's fidelity from the
chunks' shares and their seams, the header, and (for a folder of parts) every tile's bytes."""

from __future__ import annotations

import io
import itertools
import math
import tempfile
import uuid
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio
import tifffile

from ..codec.profile import Profile, dtype_range
from ..codec.tile_writer import Part, TileJob
from ..errors import VerificationError
from ..fidelity.metrics import ErrorStats, Fidelity
from ..fidelity.ssim import HALO, ssim_sum
from ..fidelity.verify import check_metadata
from ..gdal.env import gdal_env
from ..gdal.info import RasterInfo, open_source
from .tasks import ChunkResult

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


def scene_quality(job: TileJob, chunks: list[ChunkResult]) -> Fidelity:
    """The scene's fidelity from the chunks' shares (and, for SSIM, their seams): exact
    outputs are identical, bounded ones give their errors (their SSIM is None), lossy ones
    their SSIM, PSNR and errors."""
    bands = len(job.keep_bands)
    errors = ErrorStats(bands)
    for c in chunks:
        if c.quality.errors is not None:
            errors.merge(c.quality.errors)
    if job.exact:
        return Fidelity.identical(bands)
    if job.bounded:
        return errors.fidelity(job.codec.dtype, None)
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
    return replace(errors.fidelity(job.codec.dtype, ssim), exact=exact, psnr=psnr)


def _image_ifds(tf: tifffile.TiffFile) -> list[tifffile.TiffPage]:
    """The full-resolution and overview IFDs (not the masks), in file order."""
    pages = [p for p in tf.pages if isinstance(p, tifffile.TiffPage)]
    return [p for p in pages if p.subfiletype in (0, 1)]


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
    with tifffile.TiffFile(io.BytesIO(header)) as tf:
        pages = [p for p in tf.pages if isinstance(p, tifffile.TiffPage)]
        last_ifd = max(p.offset for p in pages)
        for page in pages:
            offs, cnts = page.dataoffsets, page.databytecounts
            if min(offs) <= last_ifd or any(o + c > total for o, c in zip(offs, cnts, strict=True)):
                raise VerificationError("COG header: a tile lies outside the data area")
        firsts = [min(p.dataoffsets) for p in _image_ifds(tf)]
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


def check_tile_crcs(path: Path, parts: list[Part]) -> None:
    """Every tile's bytes at its offset have the CRC32 recorded when it was encoded."""
    crcs: dict[tuple[int, int], int] = {}
    for part in parts:
        for g in part.segments:
            for i, crc in enumerate(g.crcs):
                crcs[(g.level, g.first_tile + i)] = crc
    with tifffile.TiffFile(path) as tf:
        fh = tf.filehandle
        for level, page in enumerate(_image_ifds(tf)):
            tiles = zip(page.dataoffsets, page.databytecounts, strict=True)
            for t, (off, size) in enumerate(tiles):
                fh.seek(int(off))
                if zlib.crc32(fh.read(int(size))) != crcs.get((level, t)):
                    raise VerificationError(f"tile {t} of level {level} is not the bytes encoded")
