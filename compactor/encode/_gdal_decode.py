"""Decoding a lossy tile with GDAL's own libraries, as GDAL reads it from the written COG.

GDAL's JPEG comes from its bundled libjpeg (IJG 9 in the rasterio wheels), whose chroma
upsampling differs from libjpeg-turbo's (imagecodecs): YCbCr tiles decode up to ~23 levels
apart. A one-task scene's fidelity is measured on the pixels GDAL would read back, so its
JPEG and WEBP tiles are decoded by GDAL's JPEG and WEBP drivers from memory: the tile with
its JPEGTables spliced back is a whole JPEG stream (a WEBP tile is one already), and the
pixels are those GDAL's GeoTIFF driver reads (tests/encode/test_memory_verify.py pins it).
"""

from __future__ import annotations

import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

from .. import capture
from ..cog import TileCodec
from ..errors import VerificationError

#: GDAL's driver for each lossy tile codec.
DRIVERS = {"jpeg": "JPEG", "webp": "WEBP"}


def jpeg_stream(data: bytes, tables: bytes | None) -> bytes:
    """A whole JPEG stream from a tile without its tables (SOI ... EOI) and the shared
    JPEGTables (SOI, DQT/DHT, EOI): the tables' markers before the tile's."""
    if not tables:
        return data
    return tables[:-2] + data[2:]


def gdal_decode(codec: TileCodec, data: bytes, tables: bytes | None) -> np.ndarray:
    """A JPEG or WEBP tile decoded by GDAL: (rows, cols, bands)."""
    driver = DRIVERS[codec.codec]
    stream = jpeg_stream(data, tables) if codec.codec == "jpeg" else data
    # A tile alone has no geotransform: said on every open, of no interest.
    with capture.unheard(NotGeoreferencedWarning), MemoryFile(stream) as mem:
        ds = mem.open(driver=driver)
        with ds:
            if ds.count < codec.bands:
                raise VerificationError(f"a {driver} tile decodes to {ds.count} bands")
            decoded = ds.read(indexes=list(range(1, codec.bands + 1)))
    return np.moveaxis(decoded, 0, -1)
