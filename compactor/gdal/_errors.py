"""GDAL's failures as rasterio raises them, and their messages made short and clean."""

from __future__ import annotations

from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError


def gdal_errors() -> tuple[type[BaseException], ...]:
    """Exceptions GDAL failures arrive as through rasterio: ``RasterioError``, the
    ``CPLE_*`` family (not a subclass of it), and the ``SystemError`` rasterio raises
    when GDAL fails without a message."""

    return (RasterioError, CPLE_BaseError, SystemError)


def clean(err: BaseException) -> str:
    """GDAL's own message, short and on one line. rasterio often raises "Read failed. See
    previous exception for details." with GDAL's reason chained as the cause: use that."""
    seen: BaseException | None = err
    text = str(err)
    while seen is not None:
        message = str(seen)
        if message and "previous exception" not in message:
            text = message
            break
        seen = seen.__cause__ or seen.__context__
    return " ".join(text.split())[:300]
