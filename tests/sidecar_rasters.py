"""Rasters whose georeferencing, RPCs or mask live in sidecar files beside them, as GDAL
writes and reads them (``.aux.xml``, ``.RPB``, ``.msk``)."""

from __future__ import annotations

from pathlib import Path

import rasterio
from rasterio.crs import CRS

from . import rasters


def crs_in_aux_xml(path: Path) -> Path:
    """A GeoTIFF with no georeferencing of its own; CRS (EPSG:4326) and geotransform in its
    ``<name>.aux.xml`` (as GDAL's PAM writes them)."""
    rasters.gray(path, crs=None, transform=rasterio.Affine.identity())
    wkt = CRS.from_epsg(4326).to_wkt()
    Path(f"{path}.aux.xml").write_text(
        "<PAMDataset>\n"
        f'  <SRS dataAxisToSRSAxisMapping="2,1">{wkt}</SRS>\n'
        "  <GeoTransform>  7.0,  1.0e-3,  0.0,  46.0,  0.0, -1.0e-3</GeoTransform>\n"
        "</PAMDataset>\n"
    )
    return path


def _coefs(*first: float) -> str:
    """20 RPC coefficients: ``first``, then zeros."""
    values = list(first) + [0.0] * (20 - len(first))
    return "(\n" + ",\n".join(f"\t\t\t{v:+.6e}" for v in values) + ")"


def rpcs_in_rpb(path: Path) -> Path:
    """A GeoTIFF with no georeferencing of its own and its RPCs in ``<stem>.RPB``."""
    rasters.gray(path, crs=None, transform=rasterio.Affine.identity())
    size = 384
    Path(path).with_suffix(".RPB").write_text(
        'satId = "TEST";\nbandId = "P";\nSpecId = "RPC00B";\nBEGIN_GROUP = IMAGE\n'
        "\terrBias = 1.0;\n\terrRand = 0.5;\n"
        f"\tlineOffset = {size // 2};\n\tsampOffset = {size // 2};\n"
        "\tlatOffset = 46.0;\n\tlongOffset = 7.0;\n\theightOffset = 500;\n"
        f"\tlineScale = {size // 2};\n\tsampScale = {size // 2};\n"
        "\tlatScale = 0.01;\n\tlongScale = 0.01;\n\theightScale = 500;\n"
        f"\tlineNumCoef = {_coefs(0.0, -1.0)};\n"
        f"\tlineDenCoef = {_coefs(1.0, 0.0)};\n"
        f"\tsampNumCoef = {_coefs(0.0, 0.0, 1.0)};\n"
        f"\tsampDenCoef = {_coefs(1.0, 0.0)};\n"
        "END_GROUP = IMAGE\nEND;\n"
    )
    return path


def mask_in_msk(path: Path) -> Path:
    """A GeoTIFF whose mask band is in ``<name>.msk`` (a quarter of it masked out)."""
    rasters.gray(path)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False), rasterio.open(path, "r+") as ds:
        mask = ds.read(1) * 0 + 255
        mask[: ds.height // 2, : ds.width // 2] = 0
        ds.write_mask(mask)
    return path
