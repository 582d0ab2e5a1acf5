"""Decoding lossy tiles with GDAL's own libraries, as GDAL reads them from the written COG.

GDAL's JPEG comes from its bundled libjpeg (IJG 9 in the rasterio wheels), whose chroma
upsampling differs from libjpeg-turbo's (imagecodecs): YCbCr tiles decode up to ~23 levels
apart. A one-task scene's fidelity is measured on the pixels GDAL would read back, so its
JPEG and WEBP tiles are read by GDAL's GeoTIFF driver itself (:func:`gdal_read_tiles`): a
strip's tiles as they lie in the strip's bytes, behind a TIFF header with the output's own
full-resolution tags (its :class:`~compactor.cog.CogSpec`, one level of the strip's
height) - the read the written file gets, one dataset a strip rather than one a tile (the
same CPU for the decode itself: it is libjpeg's).

:func:`gdal_decode` decodes one tile with GDAL's JPEG or WEBP driver (the tile with its
JPEGTables spliced back is a whole JPEG stream; a WEBP tile is one already): the same
pixels (tests/verify/test_memory_verify.py pins both against a read of the written COG).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.windows import Window

from .. import capture
from ..cog import CogSpec, TileCodec, pyramid
from ..errors import VerificationError
from ..gdal import clean, gdal_errors

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


def gdal_read_tiles(
    spec: CogSpec, rows: int, data: bytes, starts: Sequence[int], sizes: Sequence[int],
    c0: int, width: int,
) -> np.ndarray:  # fmt: skip
    """Columns ``c0 : c0 + width`` of a band of ``rows`` full-resolution rows, read by
    GDAL's GeoTIFF driver from its tiles (row-major; tile ``i`` is ``data[starts[i]:
    starts[i] + sizes[i]]``): (bands, rows, width)."""
    band = replace(spec, height=rows, nlevels=1, has_mask=False, bigtiff=False, overview=None)
    if len(starts) != pyramid(spec.width, rows)[0].ntiles:
        raise VerificationError(f"{len(starts)} tiles for a band of {rows} rows")
    if not all(sizes):
        # GDAL reads a tile of 0 bytes as a sparse one (zeros), decoding nothing.
        raise VerificationError("an encoded full-resolution tile is empty")
    key = (0, False)
    head = band.header_size()
    header = band.header({key: [head + s for s in starts]}, {key: list(sizes)})
    if len(header) != head:
        raise VerificationError(f"a band's header is {len(header)} bytes, not {head}")
    # The band alone has no geotransform: said on every open, of no interest.
    try:
        with (
            capture.unheard(NotGeoreferencedWarning),
            MemoryFile(header + data) as mem,
            mem.open(driver="GTiff") as ds,
        ):
            if ds.count != spec.bands:
                raise VerificationError(f"a band of tiles reads as {ds.count} bands")
            out: np.ndarray = ds.read(window=Window(c0, 0, width, rows))
    except gdal_errors() as err:  # the output's own tiles: not the source's read error
        raise VerificationError(f"GDAL could not decode the output's tiles: {clean(err)}") from err
    return out
