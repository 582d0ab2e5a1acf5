"""Checks an output must pass before its original may be archived.

1. It opens and ``rio_cogeo.cog_validate`` reports no errors; GDAL decodes every overview
   level, and there are none where the profile says so.
2. It keeps width, height, dtype, CRS, transform, GCPs, RPCs, nodata (of every band), band
   descriptions, units, colour interpretation, colour table, scales and offsets, and
   exactly the items of every metadata domain of the dataset and of each band that a
   GeoTIFF carries (the default domain with ``STATISTICS_*`` and ``TIFFTAG_*`` items,
   ``IMD``, custom domains; not the structural ones,
   :data:`~compactor.cog._layout.STRUCTURAL_DOMAINS`). Masks as GDAL sees them
   (``mask_flag_enums``): an exact or bounded output has the source's kind of mask on
   every band, a lossy one a mask wherever the source has one. The band count may drop by
   one where a binary alpha band became the mask.
3. Pixels, against what GDAL reads from the source (its dataset mask: per-band nodata, an
   alpha band, an internal or sidecar ``.msk`` mask; not what the scene's ``RasterInfo``
   assumed): lossless codecs equal the source everywhere (NaN equals NaN) and have its
   masks; bounded codecs (LERC with an error) keep the source's masks, nodata, NaN,
   infinities and alpha band exactly, and every valid value within its band's bound
   (:mod:`compactor.fidelity._metrics`); their largest error per band, RMSE and PSNR are
   over the valid pixels. Lossy codecs have exactly the source's dataset mask (an alpha
   band they dropped must have been binary: only 0 and 255), and their SSIM, PSNR and
   errors are over the pixels it says are valid. Every pixel of every band is read.

SSIM is ``skimage.metrics.structural_similarity`` with its default 7x7 window, per
band, ``data_range`` the dtype's range, invalid pixels set to 0 in both images; a
scene's SSIM is the minimum over bands. It is computed in strips of rows with a
3-row halo (:mod:`compactor.fidelity._ssim`), so memory stays bounded while the result equals
the whole-image value: each local SSIM value depends only on its 7x7 neighbourhood,
and the strips partition the rows skimage averages over (all but 3 at each edge).
"""

from __future__ import annotations

import logging
import math
import re
from itertools import pairwise
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate

from .. import capture, timing
from ..cog import Profile, carried_domains
from ..errors import VerificationError
from ..fidelity import (
    ALL_VALID,
    STRIP_PIXELS,
    Fidelity,
    check_noise_rmse,
    compare_pixels,
    kept_bands,
    mask_kind,
    same_nodata,
)
from ..gdal import RasterInfo, clean, gdal_errors, open_source, restrict_drivers

__all__ = ["check_metadata", "check_output", "validate_cog"]

log = logging.getLogger(__name__)


def validate_cog(path: str) -> None:
    """Raise :class:`VerificationError` unless ``path`` is a valid COG. ``cog_validate``
    opens the path with no driver named (an output read back may be forged): in a GDAL
    without the drivers that read other files, and only once GDAL's GeoTIFF driver opened
    it (a TIFF no driver registered before GeoTIFF's takes)."""

    try:
        restrict_drivers()
        with rasterio.open(path, driver="GTiff"):
            pass
    except gdal_errors() as err:
        raise VerificationError(f"output is not a GeoTIFF: {clean(err)}") from err
    try:
        valid, errors, _warnings = cog_validate(path, quiet=True)
    except Exception as err:
        raise VerificationError(f"output cannot be validated as a COG: {err}") from err
    if errors and all(e.startswith("Invalid Decimation") for e in errors) and _decimates(path):
        valid, errors = True, []
    if errors and all(_NOT_TILED.fullmatch(e) for e in errors) and _narrow_blocks(path, errors):
        valid, errors = True, []
    if not valid or errors:
        raise VerificationError("output is not a valid COG: " + "; ".join(errors or ["invalid"]))


#: rio-cogeo's "not tiled" errors: a level above 512 pixels whose block is as wide as it.
_NOT_TILED = re.compile(r"Overview of index (\d+) is not tiled")

#: Blocks at most this wide are not a strip layout by GDAL's reference COG validator
#: (``validate_cloud_optimized_geotiff.py``: ``block_size[0] == XSize and block_size[0] >
#: 1024``).
MAX_UNTILED_WIDTH = 1024


def _narrow_blocks(path: str, errors: list[str]) -> bool:
    """Whether every overview rio-cogeo calls "not tiled" has blocks at most
    :data:`MAX_UNTILED_WIDTH` wide. rio-cogeo flags any level above 512 pixels whose block
    is as wide as the level: an overview 512 wide and 1024 high, tiled 512 x 512 (the
    overview of a 1024 x 2048 scene, GDAL's own COGs too), is one column of tiles and
    passes GDAL's reference validator, which only calls blocks wider than 1024 a strip."""
    for e in errors:
        match = _NOT_TILED.fullmatch(e)
        if match is None:
            return False
        with rasterio.open(path, OVERVIEW_LEVEL=int(match.group(1))) as ovr:
            if not ovr.block_shapes or ovr.block_shapes[0][1] > MAX_UNTILED_WIDTH:
                return False
    return True


def _decimates(path: str) -> bool:
    """Whether every overview level of ``path`` is smaller than the one before along its
    width or its height. rio-cogeo measures a level's decimation along the width alone
    (rasterio's ``overviews()``), which is 1 at every level of a scene 1 pixel wide (GDAL's
    own COG of a 1 x 65537 scene fails its check): its ``Invalid Decimation`` errors are
    dismissed when the heights decimate."""
    with rasterio.open(path) as out:
        sizes = [(out.width, out.height)]
        for level in range(len(out.overviews(1))):
            with rasterio.open(path, OVERVIEW_LEVEL=level) as ovr:
                sizes.append((ovr.width, ovr.height))
    steps = pairwise(sizes)
    return all(w <= pw and h <= ph and (w < pw or h < ph) for (pw, ph), (w, h) in steps)


def check_metadata(src: Any, out: Any, info: RasterInfo, profile: Profile) -> None:
    """Compare everything but pixels; raise listing every difference."""
    bands = kept_bands(info, profile)
    problems = _dataset_problems(src, out, info, bands)
    if out.count == len(bands):
        problems += _band_problems(src, out, info, profile, bands)
    problems += _lost_items(src, out, "dataset", None, None)
    problems += _georeferencing(src, out)
    if problems:
        raise VerificationError("output metadata differs from the source: " + "; ".join(problems))


def _dataset_problems(src: Any, out: Any, info: RasterInfo, bands: list[int]) -> list[str]:
    """Size, band count, data type, CRS, transform and nodata of the whole dataset."""
    problems: list[str] = []
    if (out.width, out.height) != (src.width, src.height):
        problems.append(f"size {out.width}x{out.height} != {src.width}x{src.height}")
    if out.count != len(bands):
        problems.append(f"band count {out.count} != {len(bands)}")
    if set(out.dtypes) != {info.dtype}:
        problems.append(f"dtype {out.dtypes[0]} != {info.dtype}")
    if src.crs is not None and out.crs is None:
        name = src.crs.to_dict().get("proj") or src.crs.to_string()[:60]
        problems.append(
            f"the CRS ({name}) cannot be stored in GeoTIFF keys (GDAL keeps such a CRS in a "
            ".aux.xml sidecar; compactor writes one self-contained object per scene)"
        )
    elif (src.crs is None) != (out.crs is None) or not same_crs(src.crs, out.crs):
        problems.append(f"CRS {out.crs} != {src.crs}")
    if not np.allclose(tuple(src.transform), tuple(out.transform), rtol=1e-12, atol=1e-9):
        problems.append(f"transform {tuple(out.transform)} != {tuple(src.transform)}")
    if not same_nodata(src.nodata, out.nodata):
        problems.append(f"nodata {out.nodata} != {src.nodata}")
    return problems


def _band_problems(
    src: Any, out: Any, info: RasterInfo, profile: Profile, bands: list[int]
) -> list[str]:
    """Each kept band against its source band: colour interpretation, description, scale
    and offset, colour table, units, nodata, mask and metadata items."""
    problems: list[str] = []
    src_ci = [src.colorinterp[b - 1].name for b in bands]
    out_ci = [ci.name for ci in out.colorinterp]
    # A source band that declares no interpretation ("undefined") matches whatever the
    # output declares (a YCbCr JPEG necessarily says red, green, blue).
    if any(s not in ("undefined", o) for s, o in zip(src_ci, out_ci, strict=True)):
        problems.append(f"colour interpretation {out_ci} != {src_ci}")
    src_desc = [src.descriptions[b - 1] or None for b in bands]
    out_desc = [d or None for d in out.descriptions]
    if out_desc != src_desc:
        problems.append(f"band descriptions {out_desc} != {src_desc}")
    src_so = [(src.scales[b - 1], src.offsets[b - 1]) for b in bands]
    out_so = list(zip(out.scales, out.offsets, strict=True))
    if out_so != src_so:
        problems.append(f"scales/offsets {out_so} != {src_so}")
    if info.has_colormap:
        problems += _colour_table(src, out)
    src_units = [(src.units[b - 1] or None) if src.units else None for b in bands]
    out_units = [u or None for u in out.units] if out.units else [None] * len(bands)
    if out_units != src_units:
        problems.append(f"units {out_units} != {src_units}")
    src_nodata = [src.nodatavals[b - 1] for b in bands]
    if not all(same_nodata(a, o) for a, o in zip(src_nodata, out.nodatavals, strict=True)):
        problems.append(f"nodata of each band {list(out.nodatavals)} != {src_nodata}")
    problems += _mask_problems(src, out, bands, lossy=not (profile.lossless or profile.bounded))
    for i, b in enumerate(bands, start=1):
        problems += _lost_items(src, out, f"band {b}", b, i)
    return problems


def _mask_problems(src: Any, out: Any, bands: list[int], *, lossy: bool) -> list[str]:
    """The masks GDAL sees (``mask_flag_enums``) on each kept band: an exact or bounded
    output has the source's kind of mask on every band (nodata, an alpha band, a per-dataset
    or a per-band mask); a lossy one a mask (its internal mask, which holds the source's
    nodata, alpha or mask) wherever the source has one. Their pixels are compared by
    :func:`compare_pixels`."""
    problems: list[str] = []
    src_flags = [frozenset(src.mask_flag_enums[b - 1]) for b in bands]
    out_flags = [frozenset(f) for f in out.mask_flag_enums]
    for b, s_f, o_f in zip(bands, src_flags, out_flags, strict=True):
        if lossy and s_f != ALL_VALID and o_f == ALL_VALID:
            problems.append(f"band {b} lost its mask (the source's: {mask_kind(s_f)})")
        elif not lossy and s_f != o_f:
            problems.append(f"band {b}: mask {mask_kind(o_f)} != the source's {mask_kind(s_f)}")
    return problems


def _colour_table(src: Any, out: Any) -> list[str]:
    """The output's colour table must hold every entry of the source's. A TIFF colour map
    has an entry for every value of the data type (256 for 8 bits), so a shorter table
    (the black and white one GDAL gives a 1-bit image) comes back padded with the entries
    GDAL writes for the rest, opaque black; any other entry past the source's differs."""
    try:
        ours = out.colormap(1)
    except ValueError:  # rasterio: "NULL color table"
        return ["colour table lost"]
    theirs = src.colormap(1)
    padded = {**dict.fromkeys(ours, (0, 0, 0, 255)), **theirs}
    return [] if ours == padded else ["colour table differs"]


def same_crs(a: Any, b: Any) -> bool:
    """Whether the output's CRS is the source's as GeoTIFF keys can hold it: equal, or the
    same PROJ definition where only what keys cannot carry differs (an ESRI name's
    underscores, parameters at their default value: GDAL's own COG writes the same)."""
    if a is None or b is None:
        return a is None and b is None
    if a == b:
        return True
    with capture.unheard(UserWarning):  # PROJ strings "may lose information": compared whole
        pa, pb = a.to_proj4(), b.to_proj4()
    return bool(pa) and pa == pb and "+proj=ob_tran" not in pa


#: GDAL writes RPC coefficients with 15 significant digits (``%.15g``), its own COG driver
#: too: an RPC read from a ``.RPB`` with 17 comes back within this relative difference.
RPC_DIGITS = 1e-14


def same_rpcs(a: Any, b: Any) -> bool:
    """Whether two rasterio RPCs are the same model, as GDAL stores it (15 digits; an
    unknown error term is -1)."""
    da, db = a.to_dict(), b.to_dict()
    if da.keys() != db.keys():
        return False
    for key, va in da.items():
        vb = db[key]
        xs = va if isinstance(va, list) else [va]
        ys = vb if isinstance(vb, list) else [vb]
        if len(xs) != len(ys):
            return False
        for x, y in zip(xs, ys, strict=True):
            # An unknown error (None) is -1 where GDAL writes it (ERR_BIAS, ERR_RAND).
            fx, fy = (-1.0 if v is None else float(v) for v in (x, y))
            if not math.isclose(fx, fy, rel_tol=RPC_DIGITS, abs_tol=1e-300):
                return False
    return True


def _lost_items(
    src: Any, out: Any, what: str, src_band: int | None, out_band: int | None
) -> list[str]:
    """Items of the default domain and every carried domain of the dataset (band ``None``)
    or of a band that the output lost or changed. GTiff does not store empty items, so only
    non-empty values must survive."""
    problems: list[str] = []
    src_ns = src.tag_namespaces() if src_band is None else src.tag_namespaces(src_band)
    for ns in [None, *carried_domains(src_ns)]:
        theirs = src.tags(src_band, ns=ns) if src_band else src.tags(ns=ns)
        ours = out.tags(out_band, ns=ns) if out_band else out.tags(ns=ns)
        lost = sorted(k for k, v in theirs.items() if v not in ("", None) and ours.get(k) != v)
        if lost:
            domain = f"domain {ns}" if ns else "default domain"
            problems.append(f"{what} {domain}: items lost or changed: {lost[:10]}")
    return problems


def _georeferencing(src: Any, out: Any) -> list[str]:
    """GCPs and RPCs (scenes GDAL's COG driver writes) must come back as they were."""
    problems: list[str] = []
    src_gcps, src_gcp_crs = src.gcps
    if src_gcps:
        out_gcps, out_gcp_crs = out.gcps

        def key(gcps: Any) -> list[tuple[float, ...]]:
            return [(g.row, g.col, g.x, g.y, g.z or 0.0) for g in gcps]

        if key(out_gcps) != key(src_gcps) or out_gcp_crs != src_gcp_crs:
            problems.append("ground control points differ")
    if src.rpcs is not None and (out.rpcs is None or not same_rpcs(src.rpcs, out.rpcs)):
        problems.append("RPCs differ")
    return problems


def check_overviews(path: str, profile: Profile) -> None:
    """GDAL decodes every overview level of ``path`` whole (strip by strip), and there are
    none where the profile says so. Raises :class:`VerificationError`."""
    with rasterio.open(path, driver="GTiff") as out:
        factors = out.overviews(1)
        big = out.width > 512 or out.height > 512
    if profile.overviews == "none" and factors:
        raise VerificationError(f"output has overviews {factors}; the profile says none")
    if profile.overviews != "none" and big and not factors:
        raise VerificationError("output has no overviews")
    for level in range(len(factors)):
        with rasterio.open(path, driver="GTiff", OVERVIEW_LEVEL=level) as ovr:
            rows = max(1, STRIP_PIXELS // max(1, ovr.width * ovr.count))
            for r0 in range(0, ovr.height, rows):
                ovr.read(window=Window(0, r0, ovr.width, min(rows, ovr.height - r0)))


def check_output(src_path: str, out_path: str, info: RasterInfo, profile: Profile) -> Fidelity:
    """Run every check of this module on a local output; raise on the first failure."""

    with timing.stage("validate COG"):
        validate_cog(out_path)
    try:
        with timing.stage("verify decode"):
            check_overviews(out_path, profile)
        with (
            timing.stage("metadata"),
            open_source(src_path) as src,
            rasterio.open(out_path, driver="GTiff") as out,
        ):
            check_metadata(src, out, info, profile)
            with timing.stage("compare"):
                fidelity = compare_pixels(src, out, info, profile)
            check_noise_rmse(fidelity, profile.noise)  # --max-error noise: RMS ≤ F·σ
            return fidelity
    except gdal_errors() as err:
        raise VerificationError(f"reading back failed: {clean(err)}") from err
