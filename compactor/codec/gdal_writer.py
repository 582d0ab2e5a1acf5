"""GDAL's COG driver as a writer: for the codecs compactor's tile writer does not encode
(LERC) and for scenes georeferenced by GCPs or RPCs.

Masks are given to the driver through a VRT of the source carrying a ``<MaskBand>``:

* ``alpha``: the alpha band itself (and the alpha band is dropped from the bands);
* ``dataset``: the source's per-dataset mask;
* ``nodata``: for one band its nodata mask; for several bands a derived band, the maximum
  of the per-band nodata masks, so a pixel is valid where any band differs from nodata
  (rasterio's ``dataset_mask`` rule).

The COG driver writes such a mask as an internal 1-bit mask, stored losslessly, so nodata
areas come through a lossy codec exactly. The source is still read lazily through the VRT.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import rasterio
from rasterio.shutil import copy as gdal_copy

from ..errors import EncodeError
from ..gdal.errors import clean, gdal_errors
from ..gdal.info import RasterInfo, open_source
from .profile import Profile


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


def write_cog_gdal(src_path: str, dst: Path, profile: Profile, info: RasterInfo) -> Path:
    """Encode with GDAL's COG driver."""
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
            f"GDAL could not read or encode the scene ({profile.label}): {clean(err)}"
        ) from err
    finally:
        if source != src_path:
            Path(source).unlink(missing_ok=True)
    if not dst.exists() or os.path.getsize(dst) == 0:
        raise EncodeError(f"GDAL wrote no output for {profile.label}")
    return dst
