"""GDAL's COG driver as a writer: for scenes georeferenced by GCPs or RPCs.

Samples are written whole (``NBITS`` of the data type): GDAL would otherwise carry a
source's ``NBITS=15`` (Sentinel-2) into the output, where libtiff refuses the horizontal
predictor and LERC on it (GDAL issue #11457). A bounded LERC float output is asked for its
bound less one ULP of the scene's largest magnitude, as the tile writer does, because
liblerc rounds its dequantised values to the data type (half an ULP past the bound). LERC
keeps a nodata value exact only as the smallest value of its blocks, and rounds valid values
within the bound of it onto it: a bounded output of a scene with a nodata value is asked for
a bound under the distance of its lowest valid value (lossless if nodata is not below every
valid value), where the tile writer tightens the tiles it must. Every metadata domain of the
source is asked for where GDAL can copy them (``COPY_SRC_MDD``, see
:func:`_needs_every_domain`).

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

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.shutil import copy as gdal_copy
from rasterio.windows import Window

from ..errors import EncodeError, UnsupportedCodecError
from ..gdal.errors import clean, gdal_errors
from ..gdal.info import RasterInfo, is_complex, open_source
from .layout import carried_domains
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
    ovr = profile.overview if profile.overviews == "lossy" else None
    if ovr is not None and ovr.codec == "lerc" and profile.codec != "lerc":
        # GDAL's COG driver fails on them ("LERCPostEncode:lerc_encode() failed", GDAL 3.10).
        raise UnsupportedCodecError(
            f"GDAL's COG driver (scenes georeferenced by GCPs or RPCs) writes LERC overviews "
            f"only under LERC at full resolution, not under {profile.codec.upper()}"
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    for stale in (dst, dst.with_suffix(".vrt")):
        stale.unlink(missing_ok=True)
    source = src_path
    try:
        if profile.mask != "none" or profile.drop_alpha:
            source = masked_vrt(src_path, str(dst.with_suffix(".vrt")), profile, info)
        with rasterio.open(source) as src:
            gdal_copy(src, str(dst), driver="COG", **creation_options(src, profile, info))
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


def creation_options(src: Any, profile: Profile, info: RasterInfo) -> dict[str, str]:
    """The profile's COG creation options for this source: whole samples, the source's
    metadata domains where GDAL can copy them, and LERC bounds that hold after liblerc's
    rounding and keep a nodata value exact."""
    opts = profile.creation_options()
    if _needs_every_domain(src):
        opts["COPY_SRC_MDD"] = "YES"
    kind = "c" if is_complex(info.dtype) else np.dtype(info.dtype).kind
    if kind in "uif":
        opts["NBITS"] = str(np.dtype(info.dtype).itemsize * 8)
    bounded = [
        key
        for key, p in (("MAX_Z_ERROR", profile), ("MAX_Z_ERROR_OVERVIEW", profile.overview))
        if key in opts and p is not None and p.bounded
    ]
    nodata = info.nodata if info.nodata is not None and not math.isnan(info.nodata) else None
    if bounded and (kind == "f" or nodata is not None):
        top, lowest = _scan(src, nodata)
        for key in bounded:
            bound = float(opts[key])
            if nodata is not None and lowest is not None:
                bound = _nodata_bound(bound, lowest, nodata, kind)
            if kind == "f" and bound > 0:
                bound -= float(np.spacing(np.asarray(top + bound, dtype=info.dtype)))
            opts[key] = f"{max(0.0, bound):.17g}"
    return opts


def _needs_every_domain(src: Any) -> bool:
    """Whether GDAL is asked to copy every metadata domain (``COPY_SRC_MDD=YES``; by default
    the COG driver copies the default domains only): when the source carries other domains,
    of the dataset or of a band. Not when a band has items in its default domain: under
    ``YES`` GDAL's GTiff ``CreateCopy`` copies every band domain but the default one (GDAL
    3.10, and its master branch in 2026), so such a scene keeps its bands' default items
    (``STATISTICS_*``) and loses its other domains, which verification reports."""
    bands = range(1, src.count + 1)
    other = bool(carried_domains(src.tag_namespaces())) or any(
        carried_domains(src.tag_namespaces(b)) for b in bands
    )
    return other and not any(src.tags(b) for b in bands)


def _nodata_bound(bound: float, lowest: float, nodata: float, kind: str) -> float:
    """The bound GDAL is given so that a nodata value stays exact and no valid value becomes
    it. LERC encodes nodata as a value (GDAL gives liblerc no mask for it): the smallest
    value of a block comes back exactly, any other only within the bound. So nodata must lie
    below every valid value (else: lossless), and the bound must stay under the distance of
    the lowest valid value (``lowest``), or a value could come back as nodata (liblerc
    floors integer bounds)."""
    margin = lowest - nodata
    if margin <= 0:
        return 0.0
    return min(bound, margin - 1 if kind in "ui" else margin / 2)


def _scan(src: Any, nodata: float | None) -> tuple[float, float | None]:
    """One pass over the source (strips of rows): the largest finite absolute value of any
    band, and the lowest finite value that is not ``nodata`` (None: none)."""
    rows = max(1, 4_000_000 // max(1, src.width * src.count))
    top = 0.0
    lowest: float | None = None
    for r0 in range(0, src.height, rows):
        data = src.read(window=Window(0, r0, src.width, min(rows, src.height - r0)))
        finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data.ravel()
        if data.dtype.kind == "f" and finite.size:
            top = max(top, float(np.abs(finite).max()))
        if nodata is not None:
            valid = finite[finite != np.asarray(nodata).astype(data.dtype)]
            if valid.size:
                low = float(valid.min())
                lowest = low if lowest is None else min(lowest, low)
    return top, lowest
