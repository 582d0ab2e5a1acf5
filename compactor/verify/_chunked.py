"""The checks of a chunked output before it becomes visible: the scene's fidelity from the
chunks' shares and their seams, the header, and (for a folder of parts) every tile's bytes."""

from __future__ import annotations

import io
import math
import tempfile
import uuid
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio
import tifffile

from ..codecs import COMPRESSION
from ..cog import TILE, Profile, dtype_range, pyramid
from ..encode import ChunkResult, Part, TileJob
from ..errors import VerificationError
from ..fidelity import HALO, ErrorStats, Fidelity, ssim_sum
from ..gdal import RasterInfo, gdal_env, open_source
from ._verify import check_metadata

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


class SceneQuality:
    """The scene's fidelity from the chunks' shares (and, for SSIM, their seams), taken as
    the chunks finish in any order: exact outputs are identical, bounded ones give their
    errors (their SSIM is None), lossy ones their SSIM, PSNR and errors. A chunk's seam
    rows are measured against its neighbour's as soon as both are in and then dropped, so
    the scene task holds the seams of the chunks still waiting for a neighbour only."""

    def __init__(self, job: TileJob) -> None:
        self.job = job
        self.bands = len(job.keep_bands)
        self.errors = ErrorStats(self.bands)
        self.totals = [0.0] * self.bands
        self.count = 0
        self.sq, self.n, self.exact = 0.0, 0, True
        #: Seam rows (source, decoded, validity) waiting for the chunk below or above.
        self._bottoms: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._tops: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.received: set[int] = set()

    def add(self, chunk: ChunkResult) -> None:
        q = chunk.quality
        if chunk.chunk in self.received:
            raise VerificationError(f"chunk {chunk.chunk} reported twice")
        self.received.add(chunk.chunk)
        if q.errors is not None:
            self.errors.merge(q.errors)
        if self.job.exact or self.job.bounded:
            return
        for b in range(self.bands):
            self.totals[b] += q.ssim_total[b]
        self.count += q.ssim_count
        self.sq += q.sq_err
        self.n += q.n_valid
        self.exact &= q.exact
        assert q.top is not None
        assert q.bottom is not None
        self._tops[chunk.chunk], self._bottoms[chunk.chunk] = q.top, q.bottom
        q.top = q.bottom = None
        for upper in (chunk.chunk - 1, chunk.chunk):
            if upper in self._bottoms and upper + 1 in self._tops:
                self._seam(self._bottoms.pop(upper), self._tops.pop(upper + 1))

    def _seam(
        self,
        bottom: tuple[np.ndarray, np.ndarray, np.ndarray],
        top: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        rng = dtype_range(self.job.codec.dtype)
        src = np.concatenate([bottom[0], top[0]], axis=1)
        dec = np.concatenate([bottom[1], top[1]], axis=1)
        seam_valid = np.concatenate([bottom[2], top[2]], axis=0)
        # Count the rows within HALO of the boundary: those each side's strip left out.
        a = bottom[0].shape[1]
        lo = max(0, a - HALO - HALO)
        hi = min(src.shape[1], a + HALO + HALO)
        seam_count = 0
        for b in range(self.bands):
            t, seam_count = ssim_sum(src[b, lo:hi], dec[b, lo:hi], rng, valid=seam_valid[lo:hi])
            self.totals[b] += t
        self.count += seam_count

    def fidelity(self) -> Fidelity:
        missing = sorted(set(range(self.job.plan.nstrips)) - self.received)
        if missing:
            raise VerificationError(f"no result from chunks {missing}: the scene is not checked")
        if self.job.exact:
            return Fidelity.identical(self.bands)
        if self.job.bounded:
            return self.errors.fidelity(self.job.codec.dtype, None)
        # Every chunk in, every boundary measured: left are the scene's top and bottom edge.
        assert len(self._tops) == len(self._bottoms) == 1
        rng = dtype_range(self.job.codec.dtype)
        count, totals = self.count, self.totals
        ssim = min(t / count for t in totals) if count else (1.0 if self.exact else 0.0)
        sq, n = self.sq, self.n
        psnr = None if sq == 0 or n == 0 else 10 * math.log10(rng**2 / (sq / n))
        return replace(
            self.errors.fidelity(self.job.codec.dtype, ssim), exact=self.exact, psnr=psnr
        )


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
        with (
            gdal_env(gdal),
            open_source(src_path) as src,
            rasterio.open(probe, driver="GTiff") as out,
        ):
            check_metadata(src, out, info, profile)
    finally:
        probe.unlink(missing_ok=True)


def check_tile_crcs(path: Path, parts: list[Part], job: TileJob) -> None:
    """Every tile's bytes at its offset have the CRC32 recorded when it was encoded: the
    image tiles of every level and, where the output has masks, every mask tile; every tile
    encoded is in the file; and each IFD tells a reader to decode its tiles as they were
    encoded and checked (:func:`_check_decoding_tags`)."""
    crcs: dict[tuple[bool, int, int], int] = {}
    for part in parts:
        for g in part.segments:
            for i, crc in enumerate(g.crcs):
                crcs[(False, g.level, g.first_tile + i)] = crc
            masked = [g.first_tile + i for i, (_, m) in enumerate(g.sizes) if m is not None]
            for t, crc in zip(masked, g.mask_crcs, strict=True):
                crcs[(True, g.level, t)] = crc
    seen: set[tuple[bool, int, int]] = set()
    with tifffile.TiffFile(path) as tf:
        fh = tf.filehandle
        pages = [p for p in tf.pages if isinstance(p, tifffile.TiffPage)]
        masks = [p for p in pages if p.subfiletype in (4, 5)]
        _check_decoding_tags(_image_ifds(tf), masks, job)
        for is_mask, ifds in ((False, _image_ifds(tf)), (True, masks)):
            for level, page in enumerate(ifds):
                tiles = zip(page.dataoffsets, page.databytecounts, strict=True)
                for t, (off, size) in enumerate(tiles):
                    fh.seek(int(off))
                    seen.add((is_mask, level, t))
                    if zlib.crc32(fh.read(int(size))) != crcs.get((is_mask, level, t)):
                        what = "mask tile" if is_mask else "tile"
                        raise VerificationError(
                            f"{what} {t} of level {level} is not the bytes encoded"
                        )
    if missing := sorted(crcs.keys() - seen):
        is_mask, level, t = missing[0]
        what = "mask tile" if is_mask else "tile"
        raise VerificationError(
            f"{what} {t} of level {level} (and {len(missing) - 1} more) is not in the file"
        )


#: TIFF SampleFormat of a numpy dtype kind.
_SAMPLE_FORMAT = {"u": 1, "i": 2, "f": 3}
#: The TIFF tags that say how a tile's bytes become pixels, and their value when absent.
_DECODING_TAGS = {256: None, 257: None, 258: 1, 259: 1, 262: None, 266: 1, 277: 1, 284: 1,
                  317: 1, 322: None, 323: None, 339: 1, 347: None, 530: (2, 2),
                  50674: None}  # fmt: skip


def _tag(page: tifffile.TiffPage, code: int) -> object:
    tag = page.tags.get(code)
    if tag is None:
        return _DECODING_TAGS[code]
    value = tag.value
    if isinstance(value, tuple | list) and code in (258, 339) and len(set(value)) == 1:
        return int(value[0])  # one value per band, all the same
    return tuple(value) if isinstance(value, tuple | list) else value


def _expected_tags(job: TileJob, level: int, mask: bool) -> dict[int, object]:
    if mask:  # 1-bit DEFLATE, transparency mask
        return {258: 1, 259: COMPRESSION["deflate"], 262: 4, 277: 1, 317: 1, 339: 1}
    codec = job.codec_for(level)
    dt = np.dtype(codec.dtype)
    want: dict[int, object] = {
        258: dt.itemsize * 8,
        259: COMPRESSION[codec.codec],
        277: codec.bands,
        317: codec.predictor,
        339: _SAMPLE_FORMAT[dt.kind],
        50674: codec.lerc_parameters,
    }
    if codec.codec == "jpeg":
        want[347] = job.tables_for(level)
        if codec.ycbcr:  # (a gray JPEG's photometric does not change its pixels)
            want[262] = 6
            want[530] = (2, 2)
    return want


def _check_decoding_tags(
    images: list[tifffile.TiffPage], masks: list[tifffile.TiffPage], job: TileJob
) -> None:
    """Each IFD's tags decode its tiles as they were encoded (the in-memory checks decoded
    them with the job's codec): each level's size, compression, predictor, sample layout,
    tile size, JPEG tables and YCbCr subsampling, LERC parameters, fill order."""
    for mask, ifds in ((False, images), (True, masks)):
        for level, page in enumerate(ifds):
            size = pyramid(job.plan.width, job.plan.height)[level]
            want: dict[int, object] = {256: size.width, 257: size.height, 266: 1, 284: 1}
            want.update({322: TILE, 323: TILE, **_expected_tags(job, level, mask)})
            for code, value in want.items():
                have = _tag(page, code)
                if have != value:
                    what = "mask IFD" if mask else "IFD"
                    raise VerificationError(
                        f"{what} of level {level}: tag {code} is {have!r}, tiles encoded "
                        f"as {value!r}"
                    )
