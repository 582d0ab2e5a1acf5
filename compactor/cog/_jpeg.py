"""JPEG quantisation tables: which IJG quality a stream (or a TIFF's JPEG tiles) was
written at. tifffile reads the TIFF; reading the quality back from the tables is the part
it lacks. The tests use it to prove that the quality asked is the quality written."""

from __future__ import annotations

import struct

import tifffile

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
    first tile when the tables are inline)."""
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        assert isinstance(page, tifffile.TiffPage)
        tables = page.jpegtables
        if isinstance(tables, bytes):
            found = jpeg_quality(tables)
            if found is not None:
                return found
        if not page.dataoffsets:
            return None
        fh = tf.filehandle
        fh.seek(page.dataoffsets[0])
        return jpeg_quality(fh.read(page.databytecounts[0]))
