"""The layout of a Cloud-Optimized GeoTIFF, as GDAL's COG driver writes it.

::

    TIFF header (8 bytes, or 16 for BigTIFF)
    GDAL's ghost area: GDAL_STRUCTURAL_METADATA_SIZE=... LAYOUT=IFDS_BEFORE_DATA,
        BLOCK_ORDER=ROW_MAJOR, BLOCK_LEADER=SIZE_AS_UINT4,
        BLOCK_TRAILER=LAST_4_BYTES_REPEATED, KNOWN_INCOMPATIBLE_EDITION=NO
        [, MASK_INTERLEAVED_WITH_IMAGERY=YES]
    every IFD, each followed by its small out-of-line values: full resolution, its mask,
        then each overview (largest first) and its mask
    the tile offset and byte-count arrays of every IFD
    (a gap: zero bytes, unreferenced, legal)
    tile data: the smallest overview first, full resolution last; in each level tiles in
        row-major order, each framed as [uint32 size][bytes][its last 4 bytes again], and
        with a mask, each image tile directly followed by its mask tile

GeoTIFF keys, GDAL metadata (band descriptions, colour interpretation, scales and offsets,
units, every metadata domain of the dataset and its bands but the structural ones, LERC's
``MAX_Z_ERROR``), the baseline TIFF text tags GDAL reports as ``TIFFTAG_*`` items, the
nodata value and colour table are copied from a one-pixel template that GDAL writes with the
same georeferencing and metadata, so they are what GDAL would write.

Overview IFDs may be encoded differently from the full resolution (a lossy codec for derived
data): each IFD carries its own Compression, Photometric, Predictor, JPEGTables and
LercParameters tags.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import tifffile
from rasterio.io import MemoryFile

from ..codecs import COMPRESSION
from ._tiles import TILE

#: The media type of a COG (STAC, S3 Content-Type).
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"

GHOST_LINES = (
    "LAYOUT=IFDS_BEFORE_DATA\n"
    "BLOCK_ORDER=ROW_MAJOR\n"
    "BLOCK_LEADER=SIZE_AS_UINT4\n"
    "BLOCK_TRAILER=LAST_4_BYTES_REPEATED\n"
    "KNOWN_INCOMPATIBLE_EDITION=NO\n "
)
MASK_LINE = "MASK_INTERLEAVED_WITH_IMAGERY=YES\n"

#: Tags copied from GDAL's template: GeoTIFF (scale, tiepoint, transformation, keys,
#: double and ASCII params), GDAL_METADATA, GDAL_NODATA, ColorMap, ExtraSamples, and the
#: baseline tags GDAL reads as ``TIFFTAG_*`` metadata items (DocumentName, ImageDescription,
#: Min/MaxSampleValue, X/YResolution, ResolutionUnit, Software, DateTime, Artist,
#: HostComputer, Copyright).
TEMPLATE_TAGS_MAIN = (
    33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113, 320, 338,
    269, 270, 280, 281, 282, 283, 296, 305, 306, 315, 316, 33432,
)  # fmt: skip
TEMPLATE_TAGS_OVERVIEW = (42113, 320, 338)
#: TIFF tag of LERC's parameters: (Lerc2 version, inner codec 0 none/1 deflate/2 zstd).
LERC_PARAMETERS = 50674

#: Metadata domains that describe a file's structure or are derived by GDAL, not carried
#: from the source: neither copied nor compared. ``xml:`` domains (single XML documents)
#: are not carried either; RPC and GEOLOCATION belong to scenes GDAL's COG driver writes.
STRUCTURAL_DOMAINS = frozenset(
    {"IMAGE_STRUCTURE", "DERIVED_SUBDATASETS", "SUBDATASETS", "GEOLOCATION", "RPC",
     "COLOR_PROFILE", "TIFF"}
)  # fmt: skip


def carried_domains(names: Sequence[str]) -> list[str]:
    """The metadata domains among ``names`` that an output carries from its source."""
    return [n for n in names if n and n not in STRUCTURAL_DOMAINS and not n.startswith("xml:")]


# TIFF types
SHORT, LONG, RATIONAL, UNDEFINED, LONG8 = 3, 4, 5, 7, 16
TYPE_SIZE = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    16: 8,
    17: 8,
    18: 8,
}

SAMPLE_FORMAT = {"u": 1, "i": 2, "f": 3}


@dataclass(frozen=True)
class TileBytes:
    """Bytes of tile data in a COG (image and mask tiles, as their TileByteCounts say; not
    the 8 bytes of leader and trailer around each), at full resolution and in overviews."""

    full: int
    overview: int

    @property
    def total(self) -> int:
        return self.full + self.overview


@dataclass(frozen=True)
class EncodedCog:
    """A COG written to local scratch: where, its size, and its tile bytes by level."""

    path: Path
    size: int
    #: Tile bytes of the full resolution (image and mask tiles).
    full_bytes: int
    #: Tile bytes of every overview level (image and mask tiles).
    overview_bytes: int


def tile_bytes(path: str | Path) -> TileBytes:
    """Sum the TileByteCounts of a TIFF's IFDs: full resolution (and its mask) apart from
    the overviews (and theirs). Works on any writer's output."""
    full = overview = 0
    with tifffile.TiffFile(path) as tf:
        for page in tf.pages:
            assert isinstance(page, tifffile.TiffPage)
            n = int(sum(page.databytecounts))
            if page.subfiletype & 1:  # FILETYPE_REDUCEDIMAGE: an overview or its mask
                overview += n
            else:
                full += n
    return TileBytes(full, overview)


def frame(tile: bytes) -> bytes:
    """A tile as stored: its size (uint32), its bytes, its last 4 bytes repeated."""
    return struct.pack("<I", len(tile)) + tile + tile[-4:].rjust(4, b"\0")


@dataclass(frozen=True)
class Level:
    """One resolution level: its size in pixels and tile grid."""

    width: int
    height: int

    @property
    def across(self) -> int:
        return -(-self.width // TILE)

    @property
    def down(self) -> int:
        return -(-self.height // TILE)

    @property
    def ntiles(self) -> int:
        return self.across * self.down


def pyramid(width: int, height: int) -> list[Level]:
    """Full resolution and GDAL's COG overview levels: each half the previous, rounded
    down (at least 1), until one tile holds a level."""
    levels = [Level(width, height)]
    while levels[-1].width > TILE or levels[-1].height > TILE:
        last = levels[-1]
        levels.append(Level(max(1, last.width // 2), max(1, last.height // 2)))
    return levels


@dataclass
class Entry:
    tag: int
    type: int
    count: int
    data: bytes  # little-endian value bytes


def _entry(tag: int, typ: int, values: Sequence[int | float]) -> Entry:
    if typ == RATIONAL:
        flat: list[int] = []
        for v in values:
            if float(v).is_integer():
                flat += [int(v), 1]
            else:
                flat += [round(float(v) * 1_000_000), 1_000_000]
        return Entry(tag, typ, len(values), struct.pack("<" + "I" * len(flat), *flat))
    code = {SHORT: "H", LONG: "I", LONG8: "Q"}[typ]
    return Entry(tag, typ, len(values), struct.pack("<" + code * len(values), *values))


@dataclass(frozen=True)
class IfdCodec:
    """How the tiles of an IFD are encoded, as its tags say."""

    codec: str
    photometric: int
    predictor: int = 1
    jpeg_tables: bytes | None = None
    #: LercParameters (LERC only): (Lerc2 version, inner codec).
    lerc: tuple[int, int] | None = None


@dataclass
class CogSpec:
    """Everything that determines the header, fixed before any tile is encoded."""

    width: int
    height: int
    bands: int
    dtype: str
    codec: str
    photometric: int
    predictor: int = 1
    has_mask: bool = False
    bigtiff: bool = False
    jpeg_tables: bytes | None = None
    #: (tag, type, count, raw little-endian bytes) copied from GDAL's template.
    template: dict[int, tuple[int, int, bytes]] = field(default_factory=dict)
    #: LercParameters of the full resolution (LERC only).
    lerc: tuple[int, int] | None = None
    #: How overview levels are encoded, where it differs from the full resolution.
    overview: IfdCodec | None = None
    #: Levels written, full resolution included (None: GDAL's whole pyramid; 1: none).
    nlevels: int | None = None

    @property
    def levels(self) -> list[Level]:
        return pyramid(self.width, self.height)[: self.nlevels]

    def ifd_codec(self, level: int) -> IfdCodec:
        """The encoding of ``level``'s image IFD."""
        if level and self.overview is not None:
            return self.overview
        return IfdCodec(self.codec, self.photometric, self.predictor, self.jpeg_tables, self.lerc)

    # -- IFDs ------------------------------------------------------------------------

    def _image_entries(self, level: int) -> list[Entry]:
        lv = self.levels[level]
        dt = np.dtype(self.dtype)
        how = self.ifd_codec(level)
        size_type = SHORT if max(lv.width, lv.height) < 65536 else LONG
        e = [
            _entry(256, size_type, [lv.width]),
            _entry(257, size_type, [lv.height]),
            _entry(258, SHORT, [dt.itemsize * 8] * self.bands),
            _entry(259, SHORT, [COMPRESSION[how.codec]]),
            _entry(262, SHORT, [how.photometric]),
            _entry(277, SHORT, [self.bands]),
            _entry(284, SHORT, [1]),
            _entry(322, SHORT, [TILE]),
            _entry(323, SHORT, [TILE]),
            _entry(339, SHORT, [SAMPLE_FORMAT[dt.kind]] * self.bands),
        ]
        if level:
            e.append(_entry(254, LONG, [1]))
        if how.predictor > 1:
            e.append(_entry(317, SHORT, [how.predictor]))
        if how.codec == "jpeg" and how.jpeg_tables:
            e.append(Entry(347, UNDEFINED, len(how.jpeg_tables), how.jpeg_tables))
        if how.lerc is not None:
            e.append(_entry(LERC_PARAMETERS, LONG, list(how.lerc)))
        if how.photometric == 6:  # YCbCr JPEG, 4:2:0
            e.append(_entry(530, SHORT, [2, 2]))
            e.append(_entry(532, RATIONAL, [0, 255, 128, 255, 128, 255]))
        for tag in TEMPLATE_TAGS_OVERVIEW if level else TEMPLATE_TAGS_MAIN:
            if tag in self.template:
                typ, count, raw = self.template[tag]
                e.append(Entry(tag, typ, count, raw))
        return e

    def _mask_entries(self, level: int) -> list[Entry]:
        lv = self.levels[level]
        size_type = SHORT if max(lv.width, lv.height) < 65536 else LONG
        return [
            _entry(254, LONG, [5 if level else 4]),
            _entry(256, size_type, [lv.width]),
            _entry(257, size_type, [lv.height]),
            _entry(258, SHORT, [1]),
            _entry(259, SHORT, [COMPRESSION["deflate"]]),
            _entry(262, SHORT, [4]),
            _entry(277, SHORT, [1]),
            _entry(284, SHORT, [1]),
            _entry(322, SHORT, [TILE]),
            _entry(323, SHORT, [TILE]),
            _entry(339, SHORT, [1]),
        ]

    def ifd_list(self) -> list[tuple[int, bool]]:
        """(level, is_mask) in file order: each level's image IFD, then its mask."""
        out = []
        for level in range(len(self.levels)):
            out.append((level, False))
            if self.has_mask:
                out.append((level, True))
        return out

    # -- the header ---------------------------------------------------------------------

    def ghost(self) -> bytes:
        body = GHOST_LINES + (MASK_LINE if self.has_mask else "")
        return f"GDAL_STRUCTURAL_METADATA_SIZE={len(body):06d} bytes\n{body}".encode("ascii")

    def header(
        self, offsets: dict[tuple[int, bool], list[int]], counts: dict[tuple[int, bool], list[int]]
    ) -> bytes:
        """The header: TIFF header, ghost area, IFDs, tile arrays. ``offsets``/``counts``
        give, per (level, is_mask), every tile's data offset and size (row-major)."""
        big = self.bigtiff
        word = 8 if big else 4
        count_fmt, off_fmt = ("Q", "Q") if big else ("I", "I")
        entry_size = 20 if big else 12
        head_size = 16 if big else 8
        ghost = self.ghost()
        pos = head_size + len(ghost)
        pos += pos % 2
        ifds = self.ifd_list()
        first_ifd = pos

        # Lay out: each IFD then its small out-of-line values; then all tile arrays.
        blocks: list[tuple[int, list[Entry]]] = []
        array_type = LONG8 if big else LONG
        tile_arrays: list[tuple[int, Entry, Entry]] = []
        for key in ifds:
            level, is_mask = key
            entries = self._mask_entries(level) if is_mask else self._image_entries(level)
            n = self.levels[level].ntiles
            offs = offsets.get(key, [0] * n)
            cnts = counts.get(key, [0] * n)
            if len(offs) != n or len(cnts) != n:
                raise ValueError(f"IFD {key} needs {n} tiles, got {len(offs)}")
            to = _entry(324, array_type, offs)
            tc = _entry(325, array_type, cnts)
            entries = sorted([*entries, to, tc], key=lambda x: x.tag)
            blocks.append((pos, entries))
            size = (8 if big else 2) + len(entries) * entry_size + word
            extra = sum(
                _padded(len(e.data))
                for e in entries
                if len(e.data) > word and e.tag not in (324, 325)
            )
            pos += size + extra
            tile_arrays.append((len(blocks) - 1, to, tc))
        array_pos: dict[tuple[int, int], int] = {}
        for idx, to, tc in tile_arrays:
            for entry in (to, tc):
                if len(entry.data) > word:
                    array_pos[(idx, entry.tag)] = pos
                    pos += _padded(len(entry.data))
        total = pos

        out = bytearray(total)
        if big:
            out[0:16] = b"II" + struct.pack("<HHHQ", 43, 8, 0, first_ifd)
        else:
            out[0:8] = b"II" + struct.pack("<HI", 42, first_ifd)
        out[head_size : head_size + len(ghost)] = ghost
        for i, (at, entries) in enumerate(blocks):
            next_ifd = blocks[i + 1][0] if i + 1 < len(blocks) else 0
            value_pos = at + (8 if big else 2) + len(entries) * entry_size + word
            p = at
            out[p : p + (8 if big else 2)] = struct.pack("<" + ("Q" if big else "H"), len(entries))
            p += 8 if big else 2
            for e in entries:
                struct.pack_into("<HH" + count_fmt, out, p, e.tag, e.type, e.count)
                field_at = p + 4 + (8 if big else 4)
                if len(e.data) <= word:
                    out[field_at : field_at + len(e.data)] = e.data
                else:
                    where = array_pos.get((i, e.tag))
                    if where is None:
                        where = value_pos
                        out[where : where + len(e.data)] = e.data
                        value_pos += _padded(len(e.data))
                    else:
                        out[where : where + len(e.data)] = e.data
                    struct.pack_into("<" + off_fmt, out, field_at, where)
                p += entry_size
            struct.pack_into("<" + off_fmt, out, p, next_ifd)
        return bytes(out)

    def header_size(self) -> int:
        n = {k: [0] * self.levels[k[0]].ntiles for k in self.ifd_list()}
        return len(self.header(n, n))


def _padded(n: int) -> int:
    return n + (n % 2)


def needs_bigtiff(width: int, height: int, bands: int, dtype: str) -> bool:
    """Whether the output may pass 4 GiB: decided up front from the uncompressed size of
    every level (a bound, as lossless data can expand slightly), plus headroom."""
    raw = width * height * bands * np.dtype(dtype).itemsize
    return raw * 4 / 3 * 1.05 + 64 * 1024**2 > 0xFFFFFFFF


def template_tags(
    src: Any, bands: list[int], photometric: str | None, *, max_z_error: float | None = None
) -> dict[int, tuple[int, int, bytes]]:
    """Tags GDAL writes for ``src``'s georeferencing and metadata, for the output's bands:
    from a 1x1 GeoTIFF written to memory with the same CRS, transform, nodata, band
    descriptions, colour interpretation, scales, offsets, units, colour table, tags of every
    carried domain (dataset and bands) and baseline text tags. ``max_z_error``: a LERC
    output's bound, which GDAL records as ``MAX_Z_ERROR`` in ``IMAGE_STRUCTURE``."""

    dtype = src.dtypes[0]
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": 1,
        "height": 1,
        "count": len(bands),
        "dtype": dtype,
        "crs": src.crs,
        "transform": src.transform,
        "nodata": src.nodata,
    }
    if photometric:
        profile["photometric"] = photometric
    palette = _palette(src, bands)
    if palette:
        profile["photometric"] = "palette"
    if max_z_error is not None:
        profile.update(compress="LERC", max_z_error=max_z_error)
    with MemoryFile() as mem:
        with rasterio.open(mem.name, "w", **profile) as dst:
            copy_metadata(src, dst, bands)
        raw = mem.read()
    return {tag: value for tag, value in raw_tags(raw).items() if tag in TEMPLATE_TAGS_MAIN}


def copy_metadata(src: Any, dst: Any, bands: list[int]) -> None:
    """Give ``dst`` (open for writing, with ``len(bands)`` bands) the metadata of ``src``'s
    ``bands``: the tags of the default and every carried domain (dataset and bands), colour
    interpretation, descriptions, units, scales, offsets and the colour table of a palette
    band (alone or with alpha bands after it)."""
    dst.update_tags(**src.tags())
    for ns in carried_domains(src.tag_namespaces()):
        dst.update_tags(ns=ns, **src.tags(ns=ns))
    dst.colorinterp = [src.colorinterp[b - 1] for b in bands]
    for i, b in enumerate(bands, start=1):
        if src.descriptions[b - 1]:
            dst.set_band_description(i, src.descriptions[b - 1])
        if src.units and src.units[b - 1]:
            dst.set_band_unit(i, src.units[b - 1])
        band_tags = src.tags(b)
        if band_tags:
            dst.update_tags(i, **band_tags)
        for ns in carried_domains(src.tag_namespaces(b)):
            dst.update_tags(i, ns=ns, **src.tags(b, ns=ns))
    dst.scales = [src.scales[b - 1] for b in bands]
    dst.offsets = [src.offsets[b - 1] for b in bands]
    if _palette(src, bands):
        dst.write_colormap(1, src.colormap(1))


def raw_tags(data: bytes, page: int = 0) -> dict[int, tuple[int, int, bytes]]:
    """Every tag of one IFD of a little-endian TIFF in memory: (TIFF type, count, the
    value's bytes exactly as stored), read with tifffile."""

    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        found = tf.pages[page]
        assert isinstance(found, tifffile.TiffPage)
        return {
            tag.code: (
                int(tag.dtype),
                tag.count,
                data[tag.valueoffset : tag.valueoffset + tag.count * TYPE_SIZE[int(tag.dtype)]],
            )
            for tag in found.tags.values()
        }


def _palette(src: Any, bands: list[int]) -> bool:
    """Whether the output's bands are the source's palette band, alone or with alpha bands
    after it (a TIFF palette image with extra samples): the colour table is written."""
    alpha = all(src.colorinterp[b - 1].name == "alpha" for b in bands[1:])
    return bands[:1] == [1] and alpha and _has_colormap(src)


def _has_colormap(src: Any) -> bool:
    try:
        return bool(src.colormap(1))
    except ValueError:
        return False
