"""GDAL's COG driver as a writer: for scenes georeferenced by GCPs or RPCs.

Samples are written whole (``NBITS`` of the data type): GDAL would otherwise carry a
source's ``NBITS=15`` (Sentinel-2) into the output, where libtiff refuses the horizontal
predictor and LERC on it (GDAL issue #11457). A bounded LERC float output is asked for its
bound less one ULP of the scene's largest magnitude, as the tile writer does, because
liblerc rounds its dequantised values to the data type (half an ULP past the bound). LERC
keeps a nodata value exact only as the smallest value of its blocks, and rounds valid values
within the bound of it onto it: a bounded output of a scene with a nodata value is asked for
a bound under the distance of its lowest valid value (lossless if nodata is not below every
valid value), where the tile writer tightens the tiles it must. A scene with an alpha band is
written with no error at all: GDAL has one bound for every band, and alpha stays exact. Every
metadata domain of the source is asked for where GDAL can copy them (``COPY_SRC_MDD``, see
:func:`_needs_every_domain`).

The source is opened once, by :func:`~compactor.gdal._info.open_source`, and the driver
is given that dataset: never its path (GDAL would open it again with any driver it has) and
never a GDAL VRT naming it (the VRT driver is not even registered: :mod:`compactor.gdal._drivers`).
Where the profile asks for a mask, the driver is given a local GeoTIFF written from that
dataset strip by strip: the kept bands, the source's metadata, GCPs and RPCs, and an
internal mask:

* ``alpha``: the alpha band itself (and the alpha band is dropped from the bands);
* ``dataset``: the source's per-dataset mask;
* ``nodata``: valid where any band differs from nodata (rasterio's ``dataset_mask`` rule).

The COG driver writes such a mask as an internal 1-bit mask, stored losslessly, so nodata
areas come through a lossy codec exactly.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.shutil import copy as gdal_copy
from rasterio.windows import Window

from ..cog import Profile, carried_domains, copy_metadata
from ..errors import EncodeError, UnsupportedCodecError
from ..fidelity import nodata_validity
from ..gdal import RasterInfo, clean, gdal_errors, is_complex, open_source

#: Pixels per strip while the masked copy is written.
COPY_PIXELS = 4_000_000


def masked_copy(src: Any, path: str, profile: Profile, info: RasterInfo) -> str:
    """Write a local GeoTIFF of the opened source ``src`` with the profile's mask and
    without a dropped alpha band; returns ``path``."""
    bands = [
        b for b in range(1, info.count + 1) if not (profile.drop_alpha and b == info.alpha_index)
    ]
    gcps, gcp_crs = src.gcps
    kw: dict[str, Any] = {
        "driver": "GTiff", "width": info.width, "height": info.height, "count": len(bands),
        "dtype": info.dtype, "nodata": src.nodata, "tiled": True, "blockxsize": 512,
        "blockysize": 512, "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    if gcps:
        kw.update(gcps=gcps, crs=gcp_crs)
    elif not src.transform.is_identity or src.crs is not None:
        kw.update(crs=src.crs, transform=src.transform)
    if bands == [1] and info.has_colormap:
        kw["photometric"] = "palette"
    rows = max(1, COPY_PIXELS // max(1, info.width * info.count))
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **kw) as dst:
        copy_metadata(src, dst, bands)
        if src.rpcs is not None:
            dst.rpcs = src.rpcs
        for r0 in range(0, info.height, rows):
            win = Window(0, r0, info.width, min(rows, info.height - r0))
            data = src.read(window=win)
            dst.write(data[[b - 1 for b in bands]], window=win)
            if profile.mask != "none":
                dst.write_mask(_valid(src, data, win, profile, info), window=win)
    return path


def _valid(src: Any, data: np.ndarray, win: Window, profile: Profile, info: RasterInfo) -> Any:
    """The profile's mask of one strip of the source (255: valid)."""
    if profile.mask == "alpha" and info.alpha_index:
        valid = data[info.alpha_index - 1] > 0
    elif profile.mask == "dataset":
        valid = src.read_masks(1, window=win) > 0
    else:
        assert info.nodata is not None
        valid = nodata_validity(data, info.nodata)
    return np.where(valid, 255, 0).astype("uint8")


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
    masked = dst.with_name(dst.name + ".masked.tif")
    for stale in (dst, masked):
        stale.unlink(missing_ok=True)
    try:
        with open_source(src_path) as src:
            if profile.mask != "none" or profile.drop_alpha:
                with rasterio.open(masked_copy(src, str(masked), profile, info),
                                   driver="GTiff") as copy:  # fmt: skip
                    gdal_copy(copy, str(dst), driver="COG", **creation_options(copy, profile, info))
            else:
                gdal_copy(src, str(dst), driver="COG", **creation_options(src, profile, info))
    except gdal_errors() as err:
        dst.unlink(missing_ok=True)
        raise EncodeError(
            f"GDAL could not read or encode the scene ({profile.label}): {clean(err)}"
        ) from err
    finally:
        masked.unlink(missing_ok=True)
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
    if info.alpha_index and "MAX_Z_ERROR" in opts:
        # GDAL gives LERC one bound for every band, and an alpha band must stay exact.
        opts["MAX_Z_ERROR"] = "0"
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
