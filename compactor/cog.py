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
from typing import Any

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
    from rasterio.shutil import copy as gdal_copy

    with open_source(src_path) as src:
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


#: The only GDAL drivers a source is opened with: formats that hold their own pixels.
#: Everything else is refused, above all VRT (and the many drivers like it) that can make
#: GDAL read other files, other buckets or URLs named inside the object.
SOURCE_DRIVERS = ("GTiff", "JP2OpenJPEG", "NITF", "HFA")
#: The same, as the README and error messages name them.
SOURCE_FORMATS = "a GeoTIFF, JPEG 2000, NITF or Erdas Imagine file"


def open_source(src_path: str) -> Any:
    """Open a source raster (a GDAL path) with :data:`SOURCE_DRIVERS` only, and refuse it
    unless every file GDAL opened for it is the object itself or a sidecar next to it with
    its name (an Erdas Imagine spill file, say). Every read of a source goes through here.
    Raises :class:`UnreadableSceneError` with a clear reason."""
    import rasterio.env
    from rasterio._path import _parse_path  # rasterio.open takes one driver, GDAL a list
    from rasterio.io import DatasetReader

    def opened() -> Any:
        return DatasetReader(_parse_path(src_path), driver=list(SOURCE_DRIVERS))

    try:
        ds = rasterio.env.ensure_env(opened)()
    except gdal_errors() as err:
        if "not recognized as being in a supported file format" in str(err):
            raise UnreadableSceneError(
                f"not a raster GDAL can open as {SOURCE_FORMATS} (other formats, such as "
                "GDAL VRT, can make GDAL read other files or URLs and are refused)"
            ) from err
        raise UnreadableSceneError(f"not a raster GDAL can open: {_clean(err)}") from err
    try:
        foreign = [f for f in ds.files if not _own_file(src_path, f)]
    except gdal_errors():
        foreign = []
    if foreign:
        ds.close()
        raise UnreadableSceneError(
            f"refused: the {ds.driver} dataset refers to files other than itself ({foreign[0]})"
        )
    return ds


def _own_file(src_path: str, name: str) -> bool:
    """Whether ``name`` (from GDAL's file list) is the source or a sidecar beside it that
    carries its name (``scene.img`` -> ``scene.ige``, ``scene.tif.aux.xml``)."""
    folder, _, base = src_path.rpartition("/")
    other_folder, _, other = name.rpartition("/")
    stem = base.rsplit(".", 1)[0]
    return name == src_path or (
        other_folder == folder and other.startswith((f"{base}.", f"{stem}.")) and ".." not in other
    )


def read_info(src_path: str) -> RasterInfo:
    """Open a source and describe it; unreadable sources raise a per-scene error."""
    try:
        with open_source(src_path) as ds:
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
