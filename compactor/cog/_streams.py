"""Tile bytes besides a codec's own: JPEG streams split into their quantisation tables
(the ``JPEGTables`` tag, as libtiff's ``JPEGTABLESMODE=1``) and the tile, and the 1-bit
mask tiles (rows packed most significant bit first, DEFLATE-compressed).
"""

from __future__ import annotations

import struct

import imagecodecs as ic
import numpy as np

from ._tiles import TILE

# --- JPEG streams ------------------------------------------------------------------


def split_jpeg(stream: bytes) -> tuple[bytes, bytes]:
    """Split a JPEG stream into (its DQT segments, the stream without APPn and DQT).

    The tile keeps SOI, SOF, its own DHT, SOS, the data and EOI; the quantisation tables,
    equal for every tile of a level at one quality, go to the JPEGTables tag."""
    if stream[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream")
    tables = bytearray()
    out = bytearray(b"\xff\xd8")
    i = 2
    while i < len(stream):
        if stream[i] != 0xFF:
            raise ValueError("corrupt JPEG marker sequence")
        marker = stream[i + 1]
        if marker == 0xDA:  # SOS: the rest is entropy-coded data and EOI
            out += stream[i:]
            break
        (length,) = struct.unpack(">H", stream[i + 2 : i + 4])
        segment = stream[i : i + 2 + length]
        if marker == 0xDB:
            tables += segment
        elif not 0xE0 <= marker <= 0xEF:  # drop APPn (JFIF): TIFF carries the colour model
            out += segment
        i += 2 + length
    return bytes(tables), bytes(out)


def jpeg_tables(dqt: bytes) -> bytes:
    """The JPEGTables tag value: an abbreviated stream holding the quantisation tables."""
    return b"\xff\xd8" + dqt + b"\xff\xd9"


# --- masks ---------------------------------------------------------------------------


#: DEFLATE level of mask tiles: 9 makes the 1-bit tiles of a jagged nodata collar a quarter
#: smaller than GDAL's 6 at 0.6 ms a tile (libdeflate's 10-12 take 50x longer for 7 % more).
MASK_LEVEL = 9


def encode_mask(valid: np.ndarray) -> bytes:
    """A 1-bit mask tile (``valid``: bool (rows, cols), full tile size), DEFLATE."""

    packed = np.packbits(valid.astype(np.uint8), axis=1)  # rows padded to whole bytes
    return bytes(ic.deflate_encode(packed.tobytes(), level=MASK_LEVEL))


def decode_mask(data: bytes, rows: int = TILE, cols: int = TILE) -> np.ndarray:

    raw = np.frombuffer(ic.deflate_decode(data), np.uint8).reshape(rows, -1)
    return np.unpackbits(raw, axis=1)[:, :cols].astype(bool)
