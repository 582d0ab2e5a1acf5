"""A small TIFF structure reader: IFDs and their tags, classic TIFF and BigTIFF.

Used to check what was really written (the JPEG quantisation tables behind the
quality, the order of IFDs and tile data) without trusting GDAL's own metadata.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

#: TIFF field type -> (struct code, size in bytes)
TYPES: dict[int, tuple[str, int]] = {
    1: ("B", 1),  # BYTE
    2: ("c", 1),  # ASCII
    3: ("H", 2),  # SHORT
    4: ("I", 4),  # LONG
    5: ("II", 8),  # RATIONAL
    6: ("b", 1),  # SBYTE
    7: ("B", 1),  # UNDEFINED
    8: ("h", 2),  # SSHORT
    9: ("i", 4),  # SLONG
    10: ("ii", 8),  # SRATIONAL
    11: ("f", 4),  # FLOAT
    12: ("d", 8),  # DOUBLE
    16: ("Q", 8),  # LONG8
    17: ("q", 8),  # SLONG8
    18: ("Q", 8),  # IFD8
}

TAG_NEW_SUBFILE_TYPE = 254
TAG_IMAGE_WIDTH = 256
TAG_IMAGE_LENGTH = 257
TAG_COMPRESSION = 259
TAG_PHOTOMETRIC = 262
TAG_TILE_WIDTH = 322
TAG_TILE_LENGTH = 323
TAG_TILE_OFFSETS = 324
TAG_TILE_BYTE_COUNTS = 325
TAG_JPEG_TABLES = 347


@dataclass
class IFD:
    offset: int
    tags: dict[int, tuple[int, int, bytes | tuple[int | float, ...]]]

    def value(self, tag: int) -> tuple[int | float, ...] | bytes | None:
        entry = self.tags.get(tag)
        return entry[2] if entry else None

    def first(self, tag: int, default: int = 0) -> int:
        v = self.value(tag)
        if v is None:
            return default
        if isinstance(v, bytes):
            return v[0]
        return int(v[0])


@dataclass
class TiffFile:
    byteorder: str
    bigtiff: bool
    ifds: list[IFD]
    first_ifd_offset: int


def read_structure(fh: BinaryIO, max_ifds: int = 1024) -> TiffFile:
    """Parse the header and every IFD of a TIFF file (tag values included)."""
    fh.seek(0)
    head = fh.read(16)
    if head[:2] == b"II":
        bo = "<"
    elif head[:2] == b"MM":
        bo = ">"
    else:
        raise ValueError("not a TIFF file")
    (magic,) = struct.unpack(bo + "H", head[2:4])
    if magic == 42:
        big = False
        (first,) = struct.unpack(bo + "I", head[4:8])
    elif magic == 43:
        big = True
        (first,) = struct.unpack(bo + "Q", head[8:16])
    else:
        raise ValueError(f"bad TIFF magic {magic}")
    ifds: list[IFD] = []
    offset = first
    while offset and len(ifds) < max_ifds:
        fh.seek(offset)
        if big:
            (n,) = struct.unpack(bo + "Q", fh.read(8))
            entry_size, count_fmt, off_fmt, inline = 20, "Q", "Q", 8
        else:
            (n,) = struct.unpack(bo + "H", fh.read(2))
            entry_size, count_fmt, off_fmt, inline = 12, "I", "I", 4
        raw = fh.read(n * entry_size)
        (next_off,) = struct.unpack(bo + off_fmt, fh.read(8 if big else 4))
        tags: dict[int, tuple[int, int, bytes | tuple[int | float, ...]]] = {}
        for i in range(n):
            e = raw[i * entry_size : (i + 1) * entry_size]
            tag, typ = struct.unpack(bo + "HH", e[:4])
            (count,) = struct.unpack(bo + count_fmt, e[4 : 4 + (8 if big else 4)])
            payload = e[4 + (8 if big else 4) :]
            code, size = TYPES.get(typ, ("B", 1))
            nbytes = size * count
            if nbytes <= inline:
                data = payload[:nbytes]
            else:
                (voff,) = struct.unpack(bo + off_fmt, payload)
                pos = fh.tell()
                fh.seek(voff)
                data = fh.read(nbytes)
                fh.seek(pos)
            if typ in (2, 7):
                tags[tag] = (typ, count, bytes(data))
            else:
                n_items = count * (2 if typ in (5, 10) else 1)
                item = code[0]
                tags[tag] = (typ, count, struct.unpack(bo + item * n_items, data))
        ifds.append(IFD(offset=offset, tags=tags))
        offset = next_off
    return TiffFile(byteorder=bo, bigtiff=big, ifds=ifds, first_ifd_offset=first)


# --- JPEG quantisation tables ---------------------------------------------------

#: IJG's standard luminance quantisation table (ITU T.81 K.1), natural order.
_STD_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip

#: zig-zag scan order: position k in a DQT segment -> natural index.
_ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip


def jpeg_quant_tables(stream: bytes) -> dict[int, tuple[int, ...]]:
    """Quantisation tables (id -> 64 values, natural order) in a JPEG stream."""
    tables: dict[int, tuple[int, ...]] = {}
    i = 2 if stream[:2] == b"\xff\xd8" else 0
    while i + 4 <= len(stream):
        if stream[i] != 0xFF:
            i += 1
            continue
        marker = stream[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xD9:
            break
        (length,) = struct.unpack(">H", stream[i + 2 : i + 4])
        seg = stream[i + 4 : i + 2 + length]
        if marker == 0xDB:
            j = 0
            while j < len(seg):
                pq, tq = seg[j] >> 4, seg[j] & 0x0F
                j += 1
                n = 2 if pq else 1
                values = [
                    int.from_bytes(seg[j + k * n : j + (k + 1) * n], "big") for k in range(64)
                ]
                natural = [0] * 64
                for k, v in enumerate(values):
                    natural[_ZIGZAG[k]] = v
                tables[tq] = tuple(natural)
                j += 64 * n
        if marker == 0xDA:
            break
        i += 2 + length
    return tables


def ijg_table(quality: int, base: tuple[int, ...] = _STD_LUMA) -> tuple[int, ...]:
    """The table libjpeg's ``jpeg_set_quality`` derives from ``base`` at ``quality``."""
    q = max(1, min(100, quality))
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return tuple(max(1, min(255, (b * scale + 50) // 100)) for b in base)


def jpeg_quality(stream: bytes) -> int | None:
    """The IJG quality whose luminance table the stream carries, or ``None``."""
    tables = jpeg_quant_tables(stream)
    luma = tables.get(0)
    if luma is None:
        return None
    for q in range(1, 101):
        if ijg_table(q) == luma:
            return q
    return None


def tiff_jpeg_quality(path: str) -> int | None:
    """Quality of the JPEG tiles of a TIFF's first IFD (from its JPEGTables tag, or the
    first tile when tables are inline)."""
    with open(path, "rb") as fh:
        tf = read_structure(fh, max_ifds=1)
        ifd = tf.ifds[0]
        tables = ifd.value(TAG_JPEG_TABLES)
        if isinstance(tables, bytes):
            q = jpeg_quality(tables)
            if q is not None:
                return q
        offsets = ifd.value(TAG_TILE_OFFSETS)
        counts = ifd.value(TAG_TILE_BYTE_COUNTS)
        if not offsets or not counts or isinstance(offsets, bytes) or isinstance(counts, bytes):
            return None
        fh.seek(int(offsets[0]))
        return jpeg_quality(fh.read(int(counts[0])))
