"""compactor's tile writer: a COG in GDAL's layout, encoded strip by strip in one pass.

**Strips.** A scene is cut into full-width strips of ``2^k`` tile rows (512 rows each) at
full resolution; strips start at multiples of 512 rows, so they never split a source block
of any power-of-two height. A strip is read with a windowed read, its full-resolution
tiles and the overview levels ``1..k`` it covers entirely are encoded (2x2 reduction), and
the level ``k+1`` pixels of the strip are handed on (a :class:`Leftover`).

**Merging.** Leftovers join pairwise, a binary tree: each node joins the half tile rows of
its two children into one tile row of the next level, encodes it, and hands half of it on;
the root encodes every remaining level.

**Parts.** Every (level, producer) owns a part number in file order (part 1 is the header,
then levels from the smallest); :func:`layout` places the segments into parts and computes
the header; a :class:`~compactor.storage.PartsWriter` makes the object visible whole.

**Overviews** follow the profile's policy: ``full`` encodes every level as the full
resolution, ``lossy`` encodes the overview levels with the profile's own overview profile
(their IFDs carry their own codec tags), ``none`` writes the full resolution only.

The same machinery runs in one process (:func:`write_local`, scenes small enough for one
task) and across many Dask tasks (:mod:`compactor.encode._chunk_tasks`, which adds the checks).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from rasterio.windows import Window

from .. import timing
from ..codecs import LOSSY
from ..cog import (
    TILE,
    CogSpec,
    EncodedCog,
    IfdCodec,
    Profile,
    TileBytes,
    TileCodec,
    encode_mask,
    frame,
    graded_values,
    halve,
    jpeg_tables,
    needs_bigtiff,
    pad_tile,
    pyramid,
    split_jpeg,
    template_tags,
)
from ..errors import EncodeError, UnsupportedCodecError, VerificationError
from ..fidelity import nodata_validity
from ..gdal import RasterInfo, gdal_env, open_source
from ..storage import DirectoryParts, PartSent, PartsWriter

#: Most full-resolution tile rows in one strip (8192 rows).
MAX_STRIP_TILES = 16
#: Sample types whose bands :func:`encode_rows` interleaves with OpenCV.
CV_INTERLEAVE = frozenset({"uint8", "int8", "uint16", "int16", "int32", "float32", "float64"})

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


# --- reading and encoding --------------------------------------------------------------------


def read_strip(job: TileJob, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Source rows r0:r1 of the written bands, and their validity. An alpha band dropped
    for the mask must be binary (0 or opaque): raises :class:`VerificationError` otherwise."""
    with gdal_env(dict(job.gdal)), open_source(job.source) as src:
        win = Window(0, r0, job.plan.width, r1 - r0)
        data = src.read(indexes=list(job.keep_bands), window=win)
        valid: np.ndarray | None = None
        if job.mask_source == "alpha" and job.alpha_index:
            if job.alpha_index in job.keep_bands:
                valid = data[job.keep_bands.index(job.alpha_index)] > 0
            else:
                alpha = src.read(job.alpha_index, window=win)
                graded = graded_values(alpha)
                if graded:  # the 1-bit mask would flatten it: never written
                    raise VerificationError(
                        f"the alpha band has {graded} partly transparent pixels in rows "
                        f"{r0}-{r1 - 1}; a 1-bit mask would lose them"
                    )
                valid = alpha > 0
        elif job.mask_source == "dataset":
            valid = src.read_masks(1, window=win) > 0
        elif job.mask_source == "nodata" and job.nodata is not None:
            # (with a nodata value every band is kept: no alpha to drop)
            valid = nodata_validity(data, job.nodata)
    return data, valid


#: Rows of a strip compared with nodata at a time: the comparison's temporary stays small
#: instead of the size of a band.


def encode_rows(
    job: TileJob,
    level: int,
    producer: int,
    data: np.ndarray,
    valid: np.ndarray | None,
    row_tiles: range,
    row0: int,
    check: TileCheck | None = None,
) -> Segment:
    """Encode tile rows ``row_tiles`` of ``level`` from ``data`` (bands, rows, cols), whose
    first row is level row ``row0``; ``check`` sees every tile as it is encoded."""
    codec = job.codec_for(level)
    tables = job.tables_for(level)
    lv = pyramid(job.plan.width, job.plan.height)[level]
    pixels = np.moveaxis(data, 0, -1)  # (rows, cols, bands)
    buffer = np.empty((TILE, TILE, pixels.shape[2]), dtype=pixels.dtype)  # reused per tile
    interleave = (
        2 <= pixels.shape[2] <= 4
        and pixels.dtype.name in CV_INTERLEAVE
        and data.strides[-1] == data.itemsize
    )
    out = bytearray()
    sizes: list[tuple[int, int | None]] = []
    crcs: list[int] = []
    for tr in row_tiles:
        y0 = tr * TILE - row0
        for tc in range(lv.across):
            x0 = tc * TILE
            block = pixels[y0 : y0 + TILE, x0 : x0 + TILE]
            if block.shape[:2] == (TILE, TILE):
                if interleave:  # OpenCV's SIMD interleave: ~10x numpy's strided copy
                    planes = [band[y0 : y0 + TILE, x0 : x0 + TILE] for band in data]
                    tile = np.asarray(cv2.merge(planes, buffer))  # into buffer when it can
                else:
                    np.copyto(buffer, block)
                    tile = buffer
            else:
                tile = pad_tile(block, fill=codec.pad_value)
            with timing.stage("encode"):
                encoded = codec.encode(tile)
            if codec.codec == "jpeg":
                dqt, encoded = split_jpeg(encoded)
                if tables is not None and jpeg_tables(dqt) != tables:
                    raise EncodeError("JPEG tables differ between tiles")
            out += frame(encoded)
            mask_tile, mask_bytes = None, None
            if job.has_mask:
                assert valid is not None
                vblock = valid[y0 : y0 + TILE, x0 : x0 + TILE]
                mask_tile = np.zeros((TILE, TILE), bool)
                mask_tile[: vblock.shape[0], : vblock.shape[1]] = vblock
                mask_bytes = encode_mask(mask_tile)
                out += frame(mask_bytes)
            sizes.append((len(encoded), len(mask_bytes) if mask_bytes is not None else None))
            crcs.append(zlib.crc32(encoded))
            if check is not None:
                check(level, tr, tc, block, encoded, mask_tile, mask_bytes)
    first_tile = row_tiles.start * lv.across if row_tiles else 0
    return Segment(level, producer, first_tile, sizes, crcs, len(out), bytes(out))


def decode_columns(
    job: TileJob, segment: Segment, c0: int, out: np.ndarray, buffer: np.ndarray
) -> None:
    """Decode the level-0 tiles of ``segment`` from column ``c0`` (a tile boundary) across
    ``out``'s width into ``out`` (bands, rows of the segment, columns), each band
    contiguous per row; ``buffer``: a reused (TILE, TILE, bands) tile buffer."""
    assert segment.data is not None
    assert c0 % TILE == 0
    _bands, rows, width = out.shape
    across = pyramid(job.plan.width, job.plan.height)[0].across
    first_row = segment.first_tile // across
    t0, t1 = c0 // TILE, -(-(c0 + width) // TILE)
    pos = 0
    for i, (size, mask_size) in enumerate(segment.sizes):
        tr, tc = divmod(segment.first_tile + i, across)
        start = pos + 4
        pos += 4 + size + 4 + (0 if mask_size is None else 4 + mask_size + 4)
        if not t0 <= tc < t1:
            continue
        decoded = job.codec.decode(segment.data[start : start + size], job.tables, out=buffer)
        y0, x0 = (tr - first_row) * TILE, tc * TILE - c0
        h, w = min(TILE, rows - y0), min(TILE, width - x0)
        np.copyto(out[:, y0 : y0 + h, x0 : x0 + w], np.moveaxis(decoded[:h, :w], -1, 0))


def ship(job: TileJob, seg: Segment) -> Segment:
    """Put a segment as its own part when the sink takes parts that small (every segment
    of a folder of parts; those of at least 5 MiB on S3); the rest wait for :func:`layout`."""
    seg.part_number = job.part_number(seg.level, seg.producer)
    assert seg.data is not None
    if seg.length >= max(1, job.output.min_part):
        with timing.stage("write"):
            seg.sent = job.output.put(seg.part_number, seg.data)
        seg.data = None
    return seg


def encode_strip(
    job: TileJob,
    strip: int,
    data: np.ndarray,
    valid: np.ndarray | None,
    check: TileCheck | None = None,
    on_level0: Callable[[Segment], None] | None = None,
) -> tuple[list[Segment], Leftover | None]:
    """Encode strip ``strip`` (its pixels ``data``, ``valid``): the full-resolution tiles
    and every overview level up to ``k``; ``on_level0`` sees the full-resolution segment
    before it is shipped. Returns the shipped segments and the pixels handed up the tree."""
    plan = job.plan
    r0, _ = plan.rows(strip)
    segments: list[Segment] = []
    level_data, level_valid, level_row0 = data, valid, r0
    for level in range(min(plan.k, plan.nlevels - 1) + 1):
        rows = plan.tile_rows(level, strip)
        if rows:  # every strip has tile rows at every level up to k: producer == strip
            seg = encode_rows(
                job, level, strip, level_data, level_valid, rows, level_row0,
                check if level == 0 else None,
            )  # fmt: skip
            if level == 0 and on_level0 is not None:
                on_level0(seg)
            segments.append(ship(job, seg))
        if level + 1 < plan.nlevels:
            with timing.stage("overviews"):
                level_data, level_valid = halve(
                    level_data, level_valid, nearest=job.nearest, nodata=job.nodata
                )
            level_row0 //= 2
    leftover = None
    if plan.k + 1 < plan.nlevels:
        leftover = Leftover(plan.k + 1, level_row0, level_data, level_valid)
    return segments, leftover


def merge_node(
    job: TileJob, level: int, node: int, leftovers: list[Leftover]
) -> tuple[list[Segment], Leftover | None]:
    """Join the children's half tile rows into tile row ``node`` of ``level`` and encode
    it. Below the root, hand the next level's half row up; the root (the level's only
    tile row) encodes every coarser level too."""
    plan = job.plan
    parts = sorted(leftovers, key=lambda p: p.row0)
    data = np.concatenate([p.data for p in parts], axis=1)
    valid = None
    if job.has_mask or job.mask_source != "none":
        valid = np.concatenate([p.valid for p in parts if p.valid is not None], axis=0)
    row0 = parts[0].row0
    segments: list[Segment] = []
    lv = level
    while True:
        seg = encode_rows(job, lv, node, data, valid, range(node, node + 1), row0)
        segments.append(ship(job, seg))
        if lv + 1 >= plan.nlevels:
            return segments, None
        with timing.stage("overviews"):
            data, valid = halve(data, valid, nearest=job.nearest, nodata=job.nodata)
        row0 //= 2
        lv += 1
        if level < plan.root_level:
            return segments, Leftover(lv, row0, data, valid)
        node = 0  # the root: every coarser level has a single tile row


def tree(plan: StripPlan) -> Iterator[tuple[int, list[range]]]:
    """The merge tree bottom up, one layer per level: (level, for each node the indices of
    its children in the layer below, the strips first). A node makes one tile row of its
    level, so a level has as many as it has tile rows: where halving drops an odd last row
    (a last strip of one row, 65537 = 8 x 8192 + 1), the last children hold only rows past
    the level's end and have no node."""
    levels = pyramid(plan.width, plan.height)
    below = plan.nstrips
    for level in plan.merge_levels:
        count = min(-(-below // 2), levels[level].down)
        nodes = [range(2 * m, min(below, 2 * m + 2)) for m in range(count)]
        yield level, nodes
        below = len(nodes)


# --- the job and the layout ------------------------------------------------------------------


def _photometric(info: RasterInfo, codec: str, bands: list[int]) -> tuple[int, str | None]:
    """(TIFF Photometric, what the GDAL template is told) for the written bands."""
    ci = [info.colorinterp[b - 1] for b in bands]
    if codec == "jpeg" and len(bands) == 3:
        return 6, "RGB"
    if info.has_colormap and bands[0] == 1 and all(c == "alpha" for c in ci[1:]):
        return 3, None  # a palette band, alone or with alpha (as layout.template_tags)
    if len(ci) >= 3 and ci[:3] == ["red", "green", "blue"]:
        return 2, "RGB"
    if codec == "webp":
        return 2, "RGB"
    return 1, "MINISBLACK"


def _probe_tables(codec: TileCodec) -> bytes | None:
    """The JPEGTables every tile of a JPEG codec shares (None for other codecs)."""
    if codec.codec != "jpeg":
        return None
    probe = np.zeros((TILE, TILE, codec.bands), dtype=codec.dtype)
    return jpeg_tables(split_jpeg(codec.encode(probe))[0])


def _overview_codec(
    profile: Profile, info: RasterInfo, bands: list[int], alpha: int | None
) -> TileCodec | None:
    """The overviews' own tile codec under ``overviews="lossy"`` (None: as full resolution)."""
    if not profile.lossy_overviews:
        return None
    ovr = profile.overview
    assert ovr is not None
    if ovr.codec in LOSSY:
        problem = _lossy_overview_problem(ovr.codec, info.dtype, len(bands))
        if problem:
            raise UnsupportedCodecError(f"{ovr.codec.upper()} overviews: {problem}")
    return TileCodec.from_profile(ovr, info.dtype, len(bands), nodata=info.nodata, alpha=alpha)


def _lossy_overview_problem(codec: str, dtype: str, bands: int) -> str | None:
    if dtype != "uint8":
        return f"{codec.upper()} encodes 8-bit data only; this scene is {dtype}"
    allowed = (1, 3) if codec == "jpeg" else (3,)
    if bands not in allowed:
        return f"{codec.upper()} encodes {' or '.join(map(str, allowed))} bands, not {bands}"
    return None


def build_job(
    src_path: str,
    info: RasterInfo,
    profile: Profile,
    plan: StripPlan,
    gdal: dict[str, str],
    output: PartsWriter,
) -> tuple[TileJob, CogSpec]:
    """The tile job and the COG's header spec for writing ``src_path`` with ``profile``.
    The job's plan (not ``plan``) is the one to follow: without overviews it has one level."""
    bands = [
        b for b in range(1, info.count + 1) if not (profile.drop_alpha and b == info.alpha_index)
    ]
    if profile.overviews == "none":
        plan = replace(plan, nlevels=1)
    # JPEG/WEBP carry the profile's mask; exact and bounded codecs keep the source's
    # dataset mask, and their overviews still skip nodata and transparent pixels.
    lossy = profile.codec in LOSSY
    mask_source = profile.mask if lossy else ("dataset" if info.has_dataset_mask else "none")
    if not lossy and mask_source == "none":
        mask_source = (
            "alpha" if info.alpha_index else ("nodata" if info.nodata is not None else "none")
        )
    has_mask = (lossy and profile.mask != "none") or (not lossy and info.has_dataset_mask)
    alpha = bands.index(info.alpha_index) if info.alpha_index in bands else None
    codec = TileCodec.from_profile(profile, info.dtype, len(bands), nodata=info.nodata, alpha=alpha)
    overview_codec = _overview_codec(profile, info, bands, alpha) if plan.nlevels > 1 else None
    tables = _probe_tables(codec)
    overview_tables = _probe_tables(overview_codec) if overview_codec is not None else None
    photometric, template_photo = _photometric(info, profile.codec, bands)
    overview_ifd = None
    if overview_codec is not None:
        overview_ifd = IfdCodec(
            overview_codec.codec,
            _photometric(info, overview_codec.codec, bands)[0],
            overview_codec.predictor,
            overview_tables,
            overview_codec.lerc_parameters,
        )
    max_z_error = None
    if codec.codec == "lerc":
        max_z_error = min(codec.max_error) if codec.bounded else 0.0
    with gdal_env(gdal), open_source(src_path) as src:
        template = template_tags(src, bands, template_photo, max_z_error=max_z_error)
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
        lerc=codec.lerc_parameters,
        overview=overview_ifd,
        nlevels=plan.nlevels,
    )
    job = TileJob(
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
        overview_codec=overview_codec,
        overview_tables=overview_tables,
    )
    return job, spec


def level_bytes(segments: Iterable[Segment]) -> TileBytes:
    """Bytes of the tiles (image and mask tiles, without their leaders and trailers) at full
    resolution and in the overviews: together, every tile byte of the file."""
    full = overview = 0
    for g in segments:
        n = sum(size + (mask or 0) for size, mask in g.sizes)
        if g.level:
            overview += n
        else:
            full += n
    return TileBytes(full, overview)


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
        """Already put by its producer."""
        return len(self.segments) == 1 and self.segments[0].sent is not None and not self.header

    def body(self) -> bytes:
        return self.header + b"".join(g.data or b"" for g in self.segments) + b"\0" * self.pad


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
        part.number = first_number if (i == 0 and first_number is not None) else g0.part_number
    return parts


def layout(job: TileJob, spec: CogSpec, segments: list[Segment]) -> tuple[list[Part], int]:
    """Place every segment into parts in file order, compute the header (into part 1) and
    the total size. Every part but the last holds at least the sink's minimum part size."""
    for g in segments:
        g.part_number = job.part_number(g.level, g.producer)
    ordered = sorted(segments, key=lambda g: g.part_number)
    minimum = job.output.min_part
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
        if g.sent is not None:  # put by its producer: its own part
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
        if part.length < minimum:
            part.pad = minimum - part.length
    offsets: dict[tuple[int, bool], list[int]] = {}
    counts: dict[tuple[int, bool], list[int]] = {}
    for level, lv in enumerate(spec.levels):
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


def put_parts(job: TileJob, parts: list[Part]) -> list[PartSent]:
    """Put every part its producers did not (the header's among them); every part sent."""
    return [
        part.segments[0].sent if part.shipped and part.segments[0].sent else
        job.output.put(part.number, part.body())
        for part in parts
    ]  # fmt: skip


# --- in one process ----------------------------------------------------------------------------


def write_local(src_path: str, dst: Path, profile: Profile, info: RasterInfo) -> EncodedCog:
    """The tile writer in this process, for a scene small enough for one task: the same
    strips, tree and layout as the chunked path, written to ``dst`` (the caller verifies
    it with GDAL)."""
    output = DirectoryParts.create(dst)
    try:
        with timing.stage("encode setup"):
            job, spec = build_job(src_path, info, profile, StripPlan.sized(info), {}, output)
        plan = job.plan
        segments: list[Segment] = []
        leftovers: list[Leftover | None] = []
        for strip in range(plan.nstrips):
            with timing.stage("read"):
                data, valid = read_strip(job, *plan.rows(strip))
            with timing.stage("tiling"):
                done, leftover = encode_strip(job, strip, data, valid)
            segments += done
            leftovers.append(leftover)
        below = leftovers
        for level, nodes in tree(plan):
            layer: list[Leftover | None] = []
            for node, children in enumerate(nodes):
                handed = [c for i in children if (c := below[i]) is not None]
                with timing.stage("tiling"):
                    done, leftover = merge_node(job, level, node, handed)
                segments += done
                layer.append(leftover)
            below = layer
        with timing.stage("write"):
            parts, total = layout(job, spec, segments)
            written = output.complete(put_parts(job, parts), total)
    finally:
        output.abort()
    tiles = level_bytes(segments)
    return EncodedCog(dst, written.size, tiles.full, tiles.overview)
