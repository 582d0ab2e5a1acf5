"""compactor's tile writer: a COG in GDAL's layout, encoded strip by strip in one pass.

**Strips.** A scene is cut into full-width strips of ``2^k`` tile rows (512 rows each) at
full resolution; strips start at multiples of 512 rows, so they never split a source block
of any power-of-two height. A strip is read with a windowed read, its full-resolution
tiles and the overview levels ``1..k`` it covers entirely are encoded (2x2 reduction), and
the level ``k+1`` pixels of the strip are handed on (a
:class:`~compactor.encode._strips.Leftover`).

**Merging.** Leftovers join pairwise, a binary tree: each node joins the half tile rows of
its two children into one tile row of the next level, encodes it, and hands half of it on;
the root encodes every remaining level.

**Parts.** Every (level, producer) owns a part number in file order (part 1 is the header,
then levels from the smallest); :func:`~compactor.encode._tile_layout.layout` places the
segments into parts and computes the header; a :class:`~compactor.storage.PartsWriter`
makes the object visible whole.

**Overviews** follow the profile's policy: ``full`` encodes every level as the full
resolution, ``lossy`` encodes the overview levels with the profile's own overview profile
(their IFDs carry their own codec tags), ``none`` writes the full resolution only.

The same machinery runs in one process (:func:`write_local`, scenes small enough for one
task) and across many Dask tasks (:mod:`compactor.encode._chunk_tasks`, which adds the checks).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
from rasterio.windows import Window

from .. import timing
from ..cog import (
    TILE,
    CogSpec,
    EncodedCog,
    Profile,
    encode_mask,
    frame,
    graded_values,
    halve,
    jpeg_tables,
    pad_tile,
    pyramid,
    split_jpeg,
)
from ..errors import EncodeError, VerificationError
from ..fidelity import nodata_validity
from ..gdal import RasterInfo, gdal_env, open_source
from ..storage import DirectoryParts, Written
from ._gdal_decode import gdal_read_tiles
from ._strips import Leftover, Segment, StripPlan, TileCheck, TileJob
from ._tile_layout import Part, build_job, layout, level_bytes, put_parts, read_once

#: Sample types whose bands :func:`encode_rows` interleaves with OpenCV.
CV_INTERLEAVE = frozenset({"uint8", "int8", "uint16", "int16", "int32", "float32", "float64"})


# --- reading and encoding --------------------------------------------------------------------


Strip = tuple[np.ndarray, np.ndarray | None]


def read_strip(job: TileJob, r0: int, r1: int) -> Strip:
    """Source rows r0:r1 of the written bands, and their validity (read once within
    :func:`~._tile_layout.same_source`). An alpha band dropped for the mask must be binary
    (0 or opaque): raises :class:`VerificationError` otherwise."""
    key = ("strip", job.source, r0, r1, job.plan.width, job.keep_bands, job.mask_source,
           job.alpha_index, job.nodata, job.gdal)  # fmt: skip
    return read_once(key, lambda: _read_strip(job, r0, r1), _copied)


def _copied(strip: Strip) -> Strip:
    data, valid = strip
    return data.copy(), None if valid is None else valid.copy()


def _read_strip(job: TileJob, r0: int, r1: int) -> Strip:
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
    mask_crcs: list[int] = []
    for tr in row_tiles:
        y0 = tr * TILE - row0
        for tc in range(lv.across):
            x0 = tc * TILE
            block = pixels[y0 : y0 + TILE, x0 : x0 + TILE]
            full = block.shape[:2] == (TILE, TILE)
            if interleave:  # OpenCV's SIMD interleave: ~10x numpy's strided copy
                planes = [band[y0 : y0 + TILE, x0 : x0 + TILE] for band in data]
                if full:
                    tile = np.asarray(cv2.merge(planes, buffer))  # into buffer when it can
                else:  # an edge tile: interleaved, then padded from contiguous pixels
                    tile = pad_tile(np.asarray(cv2.merge(planes)), fill=codec.pad_value)
            elif full:
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
            if mask_bytes is not None:
                mask_crcs.append(zlib.crc32(mask_bytes))
            if check is not None:
                check(level, tr, tc, block, encoded, mask_tile, mask_bytes)
    first_tile = row_tiles.start * lv.across if row_tiles else 0
    return Segment(
        level, producer, first_tile, sizes, crcs, len(out), bytes(out), mask_crcs=mask_crcs
    )


def decode_columns(
    job: TileJob, segment: Segment, c0: int, out: np.ndarray, buffer: np.ndarray
) -> None:
    """Decode the level-0 tiles of ``segment`` from column ``c0`` (a tile boundary) across
    ``out``'s width into ``out`` (bands, rows of the segment, columns), each band
    contiguous per row; ``buffer``: a reused (TILE, TILE, bands) tile buffer. With
    ``job.gdal_decode``, GDAL's GeoTIFF driver reads them (:func:`gdal_read_tiles`)."""
    assert segment.data is not None
    assert c0 % TILE == 0
    _bands, rows, width = out.shape
    across = pyramid(job.plan.width, job.plan.height)[0].across
    first_row = segment.first_tile // across
    t0, t1 = c0 // TILE, -(-(c0 + width) // TILE)
    starts: list[int] = []
    pos = 0
    for size, mask_size in segment.sizes:
        starts.append(pos + 4)
        pos += 4 + size + 4 + (0 if mask_size is None else 4 + mask_size + 4)
    if job.gdal_decode is not None:
        sizes = [size for size, _ in segment.sizes]
        read = gdal_read_tiles(job.gdal_decode, rows, segment.data, starts, sizes, c0, width)
        np.copyto(out, read)
        return
    for i, (size, _mask_size) in enumerate(segment.sizes):
        tr, tc = divmod(segment.first_tile + i, across)
        if not t0 <= tc < t1:
            continue
        decoded = job.codec.decode(
            segment.data[starts[i] : starts[i] + size], job.tables, out=buffer
        )
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


# --- in one process ----------------------------------------------------------------------------


def merge_and_write(
    job: TileJob,
    spec: CogSpec,
    output: DirectoryParts,
    segments: list[Segment],
    leftovers: list[Leftover | None],
) -> tuple[Written, list[Part]]:
    """The strips' leftovers merged up the overview tree in this process (their tiles added
    to ``segments``), then every segment laid out and written to ``output``."""
    below = leftovers
    for level, nodes in tree(job.plan):
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
        return output.complete(put_parts(job, parts), total), parts


def write_local(src_path: str, dst: Path, profile: Profile, info: RasterInfo) -> EncodedCog:
    """The tile writer in this process, for a scene small enough for one task: the same
    strips, tree and layout as the chunked path, written to ``dst`` (the caller verifies
    it with GDAL)."""
    output = DirectoryParts.create(dst, durable=False)  # scratch, read back here
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
        written, _parts = merge_and_write(job, spec, output, segments, leftovers)
    finally:
        output.abort()
    tiles = level_bytes(segments)
    return EncodedCog(dst, written.size, tiles.full, tiles.overview)
