"""Writing Cloud-Optimized GeoTIFFs with GDAL's COG driver.

For lossy codecs the source is first wrapped in a VRT (a few hundred bytes of XML,
no pixels) whose dataset-level ``<MaskBand>`` says which pixels are valid:

* ``alpha``   - the alpha band itself, which is dropped from the image bands;
* ``dataset`` - the source's own per-dataset mask;
* ``nodata``  - a derived band, the maximum of the per-band nodata masks, so a pixel
  is valid where any band differs from nodata (rasterio's ``dataset_mask`` rule).

The COG driver writes such a mask as an internal 1-bit mask, stored losslessly, so
nodata areas come through a lossy codec exactly. The source is still read lazily
through the VRT (``/vsis3/`` range requests); nothing is downloaded first.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from .encode import Profile, RasterInfo
from .errors import EncodeError, UnreadableSceneError

log = logging.getLogger(__name__)


def gdal_errors() -> tuple[type[BaseException], ...]:
    """Exceptions GDAL failures arrive as through rasterio: ``RasterioError``, the
    ``CPLE_*`` family (not a subclass of it), and the ``SystemError`` rasterio raises
    when GDAL fails without a message."""
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    return (RasterioError, CPLE_BaseError, SystemError)


def _mask_band_xml(src_path: str, profile: Profile, info: RasterInfo) -> ET.Element:
    mask = ET.Element("MaskBand")
    band = ET.SubElement(mask, "VRTRasterBand", dataType="Byte")

    def source(parent: ET.Element, band_ref: str) -> None:
        s = ET.SubElement(parent, "SimpleSource")
        ET.SubElement(s, "SourceFilename", relativeToVRT="0").text = src_path
        ET.SubElement(s, "SourceBand").text = band_ref

    if profile.mask == "alpha":
        source(band, str(info.alpha_index))
    elif profile.mask == "dataset" or info.count == 1:
        source(band, "mask,1")
    else:  # nodata: valid where any band is valid
        # (A derived band needs two or more sources: the COG driver fails on one.)
        band.set("subClass", "VRTDerivedRasterBand")
        ET.SubElement(band, "PixelFunctionType").text = "max"
        for i in range(1, info.count + 1):
            source(band, f"mask,{i}")
    return mask


def masked_vrt(src_path: str, vrt_path: str, profile: Profile, info: RasterInfo) -> str:
    """Write a VRT of ``src_path`` carrying the profile's mask; returns ``vrt_path``."""
    import rasterio
    from rasterio.shutil import copy as gdal_copy

    with rasterio.open(src_path) as src:
        gdal_copy(src, vrt_path, driver="VRT")
    tree = ET.parse(vrt_path)
    root = tree.getroot()
    for existing in root.findall("MaskBand"):
        root.remove(existing)
    if profile.drop_alpha and info.alpha_index:
        for band in root.findall("VRTRasterBand"):
            if band.get("band") == str(info.alpha_index):
                root.remove(band)
    if profile.mask != "none":
        root.append(_mask_band_xml(src_path, profile, info))
    tree.write(vrt_path, encoding="unicode")
    return vrt_path


#: Codecs compactor's own tile writer encodes; the rest (LERC) go through GDAL's COG driver.
TILE_WRITER_CODECS = frozenset({"jpeg", "webp", "deflate", "zstd"})


def uses_tile_writer(profile: Profile, info: RasterInfo) -> bool:
    """Compactor's tile writer (libjpeg-turbo, libwebp, libdeflate, zstd; one pass) where it
    can; GDAL's COG driver for LERC and for GCP- or RPC-georeferenced scenes."""
    return profile.codec in TILE_WRITER_CODECS and not info.has_gcps_or_rpcs


def write_cog(src_path: str, dst: Path, profile: Profile, info: RasterInfo) -> Path:
    """Encode ``src_path`` (a GDAL path) as a COG at local path ``dst`` (in this process)."""
    if uses_tile_writer(profile, info):
        from .chunked import write_local

        try:
            return write_local(src_path, dst, profile, info)
        except gdal_errors() as err:
            dst.unlink(missing_ok=True)
            raise EncodeError(
                f"GDAL could not read the scene ({profile.label}): {_clean(err)}"
            ) from err
    return write_cog_gdal(src_path, dst, profile, info)


def write_cog_gdal(src_path: str, dst: Path, profile: Profile, info: RasterInfo) -> Path:
    """Encode with GDAL's COG driver."""
    import rasterio
    from rasterio.shutil import copy as gdal_copy

    dst.parent.mkdir(parents=True, exist_ok=True)
    for stale in (dst, dst.with_suffix(".vrt")):
        stale.unlink(missing_ok=True)
    source = src_path
    try:
        if profile.mask != "none" or profile.drop_alpha:
            source = masked_vrt(src_path, str(dst.with_suffix(".vrt")), profile, info)
        with rasterio.open(source) as src:
            gdal_copy(src, str(dst), driver="COG", **profile.creation_options())
    except gdal_errors() as err:
        dst.unlink(missing_ok=True)
        raise EncodeError(
            f"GDAL could not read or encode the scene ({profile.label}): {_clean(err)}"
        ) from err
    finally:
        if source != src_path:
            Path(source).unlink(missing_ok=True)
    if not dst.exists() or os.path.getsize(dst) == 0:
        raise EncodeError(f"GDAL wrote no output for {profile.label}")
    return dst


def read_info(src_path: str) -> RasterInfo:
    """Open a source and describe it; unreadable sources raise a per-scene error."""
    import rasterio

    try:
        with rasterio.open(src_path) as ds:
            return RasterInfo.from_dataset(ds)
    except gdal_errors() as err:
        raise UnreadableSceneError(f"not a raster GDAL can open: {_clean(err)}") from err


def _clean(err: BaseException) -> str:
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
