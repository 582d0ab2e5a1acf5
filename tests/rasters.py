"""Raster generators for tests: real texture (fractal terrain), small sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from compactor.demo import footprint as _footprint
from compactor.demo import fractal_surface, hillshade

CRS = "EPSG:32633"
TRANSFORM = from_origin(500000, 4200000, 10, 10)


def terrain(size: int, seed: int = 1) -> np.ndarray:
    return 200 + 1500 * fractal_surface(size, seed=seed)


def write(path: Path, data: np.ndarray, **profile: Any) -> Path:
    """Write ``data`` (bands, rows, cols) as a GeoTIFF (or another driver via ``driver=``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colorinterp = profile.pop("colorinterp", None)
    descriptions = profile.pop("descriptions", None)
    tags = profile.pop("tags", None)
    colormap = profile.pop("colormap", None)
    base: dict[str, Any] = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": CRS,
        "transform": TRANSFORM,
    }
    base.update(profile)
    with rasterio.open(path, "w", **base) as dst:
        dst.write(data)
        if colorinterp:
            dst.colorinterp = colorinterp
        if descriptions:
            dst.descriptions = descriptions
        if tags:
            dst.update_tags(**tags)
        if colormap:
            dst.write_colormap(1, colormap)
    return path


def gray(path: Path, size: int = 384, seed: int = 1, **profile: Any) -> Path:
    shade = hillshade(terrain(size, seed), 10.0)
    return write(path, (shade * 254 + 1).astype("uint8")[None], **profile)


def rgb(
    path: Path, size: int = 384, seed: int = 2, nodata_collar: bool = True, **profile: Any
) -> Path:
    """A textured RGB landscape with a rotated footprint and nodata=0 outside. JPEG q75
    misses SSIM 0.95 on its valid pixels (about 0.94) and q90 meets it (about 0.955)."""
    elev = fractal_surface(size, beta=4.2, seed=seed)
    shade = hillshade(200 + 600 * elev, 30.0)
    base = np.stack([60 + 120 * elev, 90 + 100 * (1 - elev), 50 + 60 * elev])
    img = base * (0.5 + 0.6 * shade[None])
    data = np.clip(img, 1, 255).astype("uint8")
    if nodata_collar:
        data[:, ~_footprint(size)] = 0
        profile.setdefault("nodata", 0)
    profile.setdefault("photometric", "RGB")
    return write(path, data, **profile)


def rgba(path: Path, size: int = 384, seed: int = 3) -> Path:
    rgb(path, size, seed, nodata_collar=False)
    with rasterio.open(path) as src:
        data = src.read()
    alpha = np.where(_footprint(size), 255, 0).astype("uint8")
    return write(
        path,
        np.concatenate([data, alpha[None]]),
        colorinterp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha],
    )


def uint16(path: Path, size: int = 320, bands: int = 4, seed: int = 4, **profile: Any) -> Path:
    rng = np.random.default_rng(seed)
    shade = hillshade(terrain(size, seed), 10.0)
    data = (
        np.stack(
            [
                (1000 + 3000 * shade * (1 + 0.2 * k) + rng.normal(0, 5, shade.shape))
                for k in range(bands)
            ]
        )
        .clip(1, 65535)
        .astype("uint16")
    )
    data[:, ~_footprint(size, angle_deg=-7)] = 0
    profile.setdefault("nodata", 0)
    return write(path, data, descriptions=tuple(f"band{k}" for k in range(bands)), **profile)


def float32_nan(path: Path, size: int = 300, seed: int = 5) -> Path:
    dem = np.round(terrain(size, seed), 1).astype("float32")  # decimetres, as DEMs ship
    dem[fractal_surface(size, 2.5, seed + 1) > 0.9] = np.nan
    return write(path, dem[None], nodata=float("nan"), tags={"UNITS": "metre"})


def int16(path: Path, size: int = 256, seed: int = 6) -> Path:
    dem = (terrain(size, seed) - 800).astype("int16")
    return write(path, dem[None], nodata=-32768)


def paletted(path: Path, size: int = 256) -> Path:
    classes = (fractal_surface(size, seed=7) * 5).astype("uint8")
    cmap = {
        0: (0, 0, 255, 255),
        1: (0, 255, 0, 255),
        2: (255, 255, 0, 255),
        3: (120, 60, 0, 255),
        4: (255, 255, 255, 255),
    }
    return write(path, classes[None], colormap=cmap, photometric="palette")


def noisy_gray(path: Path, size: int = 256, seed: int = 8) -> Path:
    """Random noise: the one thing JPEG cannot keep close (drives the SSIM fallback)."""
    rng = np.random.default_rng(seed)
    return write(path, rng.integers(0, 256, (1, size, size), dtype="uint8"))


def truncated(path: Path, source: Path, keep: float = 0.5) -> Path:
    """A GeoTIFF cut short: its header opens, its pixels do not."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def gray_collar(path: Path, size: int = 352, seed: int = 3) -> Path:
    """A hillshade with a rotated footprint and nodata=0 outside (a validity mask)."""
    shade = hillshade(terrain(size, seed), 10.0)
    data = (shade * 254 + 1).astype("uint8")
    data[~_footprint(size)] = 0
    return write(path, data[None], nodata=0)


def smooth_rgb(path: Path, size: int = 320, seed: int = 5) -> Path:
    """A noiseless RGB landscape of gentle relief with a nodata collar: JPEG (4:2:0) reaches
    SSIM 0.95 on it, WEBP at a smaller size."""
    elev = fractal_surface(size, beta=4.8, seed=seed)
    shade = hillshade(200 + 600 * elev, 30.0)
    base = np.stack([60 + 120 * elev, 90 + 100 * (1 - elev), 50 + 60 * elev])
    data = np.clip(base * (0.5 + 0.6 * shade[None]), 1, 255).astype("uint8")
    data[:, ~_footprint(size)] = 0
    return write(path, data, nodata=0, photometric="RGB")


def patchy(path: Path, size: int = 1600, seed: int = 9) -> Path:
    """A gray scene that is smooth where the quality search samples it (four 512x512
    windows at a quarter and three quarters of each axis) and grainy everywhere else, so the
    sample says a low quality is enough and the whole scene says it is not."""
    from compactor.encode._sample import sample_windows

    rng = np.random.default_rng(seed)
    smooth = hillshade(terrain(size, seed), 10.0) * 200 + 30
    grainy = smooth + rng.normal(0, 18, (size, size))
    data = grainy
    for col, row, w, h in sample_windows(size, size):
        data[row : row + h, col : col + w] = smooth[row : row + h, col : col + w]
    return write(path, np.clip(data, 1, 255).astype("uint8")[None])


def declared(path: Path, width: int, height: int, bands: int = 1, bits: int = 8) -> Path:
    """A tiny classic TIFF whose header declares ``width`` x ``height`` x ``bands`` and holds
    no pixel at all: one strip of 0 bytes, which GDAL reads as sparse (all zeros)."""
    import struct

    tags: dict[int, tuple[int, list[int]]] = {
        256: (4, [width]), 257: (4, [height]), 258: (3, [bits] * bands), 259: (3, [1]),
        262: (3, [1]), 273: (4, [0]), 277: (3, [bands]), 278: (4, [height]), 279: (4, [0]),
        284: (3, [1]), 339: (3, [1] * bands),
    }  # fmt: skip
    if bands > 1:
        tags[338] = (3, [0] * (bands - 1))  # the extra bands are unspecified samples
    data_at = 8 + 2 + 12 * len(tags) + 4
    entries, extra = b"", b""
    for tag, (typ, values) in sorted(tags.items()):
        raw = struct.pack("<" + ("H" if typ == 3 else "I") * len(values), *values)
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack("<I", data_at + len(extra))
            extra += raw + b"\0" * (len(raw) % 2)
        entries += struct.pack("<HHI", tag, typ, len(values)) + field
    header = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + entries
    path.write_bytes(header + b"\0\0\0\0" + extra)
    return path


def with_gcps(path: Path, size: int = 256) -> Path:
    """A gray scene georeferenced by ground control points instead of a geotransform."""
    from rasterio.control import GroundControlPoint
    from rasterio.crs import CRS as RioCRS

    shade = hillshade(terrain(size, 11), 10.0)
    gcps = [
        GroundControlPoint(row=r, col=c, x=500000 + 10 * c, y=4200000 - 10 * r)
        for r, c in ((0, 0), (0, size), (size, 0), (size, size))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8",
        gcps=gcps, crs=RioCRS.from_string(CRS),
    ) as dst:  # fmt: skip
        dst.write((shade * 254 + 1).astype("uint8")[None])
    return path


# --- real-world shapes that once aborted a run (issue 23) ------------------------------------


def _write_first(path: Path, data: np.ndarray, colorinterp: Any = None, **profile: Any) -> Path:
    """:func:`write` with the colour interpretation (and colour table) set before the pixels:
    GTiff records an alpha band's ExtraSamples only until pixels are written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colormap = profile.pop("colormap", None)
    base: dict[str, Any] = {
        "driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
        "count": data.shape[0], "dtype": data.dtype.name, "crs": CRS, "transform": TRANSFORM,
    }  # fmt: skip
    base.update(profile)
    with rasterio.open(path, "w", **base) as dst:
        if colorinterp:
            dst.colorinterp = colorinterp
        if colormap:
            dst.write_colormap(1, colormap)
        dst.write(data)
    return path


def complex_int16(path: Path, size: int = 200, seed: int = 12) -> Path:
    """A CInt16 GeoTIFF (a SAR single-look complex scene, like rio-cogeo's ``slc.tif``):
    numpy has no complex integer type; rasterio reads it as complex64."""
    rng = np.random.default_rng(seed)
    shade = hillshade(terrain(size, seed), 10.0)
    re = (2000 * shade - 1000).round()
    im = rng.integers(-3000, 3000, (size, size))
    data = (re + 1j * im).astype("complex64")[None]
    return _write_first(path, data, dtype="complex_int16")


def grey_alpha(path: Path, size: int = 256, seed: int = 13) -> Path:
    """8-bit grey + a graded alpha band (PHOTOMETRIC=MINISBLACK, ALPHA=YES): transparent
    outside a footprint, an anti-aliased ramp of every value 1-254 inside its edge."""
    grey = (hillshade(terrain(size, seed), 10.0) * 254 + 1).astype("uint8")
    ramp = np.clip(np.arange(size) * 2 - 64, 0, 255)
    alpha = np.broadcast_to(ramp, (size, size)).astype("uint8")
    return _write_first(
        path, np.stack([grey, alpha]), colorinterp=[ColorInterp.gray, ColorInterp.alpha],
        photometric="MINISBLACK", alpha="YES",
    )  # fmt: skip


def palette_alpha(path: Path, size: int = 256) -> Path:
    """Palette indices with a colour table and a graded alpha band (Pillow's ``rdf.tif``)."""
    classes = (fractal_surface(size, seed=14) * 5).astype("uint8")
    alpha = np.broadcast_to(np.clip(np.arange(size) * 3 - 100, 0, 255), (size, size))
    cmap = {i: (40 * i, 255 - 40 * i, 30 * i, 255) for i in range(5)}
    return _write_first(
        path, np.stack([classes, alpha.astype("uint8")]),
        colorinterp=[ColorInterp.palette, ColorInterp.alpha], colormap=cmap,
        photometric="palette",
    )  # fmt: skip


def one_bit(path: Path, width: int, height: int, seed: int = 15) -> Path:
    """A bilevel image, ``NBITS=1`` and CCITT G4 (a fax scan, image-tiff's ``big_g4.tif``):
    runs of black and white (GDAL gives it a black and white colour table)."""
    rng = np.random.default_rng(seed)
    flips = np.cumsum(rng.random(width * height) < 0.02) % 2
    data = flips.astype("uint8").reshape(1, height, width)
    return _write_first(path, data, nbits=1, compress="CCITTFAX4")


def strip(path: Path, width: int, height: int) -> Path:
    """An 8-bit scene one pixel high or wide (a profile, node-gdal's ``sample_bigtiff.tif``)."""
    values = (128 + 100 * np.sin(np.arange(width * height) / 300)).astype("uint8")
    return _write_first(path, values.reshape(1, height, width))


def nitf_without_image(path: Path) -> Path:
    """A NITF 2.1 file header and nothing else (``NUMI=000``: no image segment; nitro's
    ``test_blank.ntf``). GDAL opens it as a dataset of no band."""
    security = b" " * (2 + 11 + 2 + 20 + 2 + 8 + 4 + 1 + 8 + 43 + 1 + 40 + 1 + 8 + 15)
    fields = [
        b"NITF", b"02.10", b"03", b"BF01", b"COMPACTOR ", b"20240101000000", b" " * 80,
        b"U", security, b"00000", b"00000", b"0", b"\0\0\0", b" " * 24, b" " * 18,
    ]  # fmt: skip
    # NUMI, NUMS, NUMX, NUMT, NUMDES, NUMRES all 000; no user or extended header data.
    counts = b"000" * 6 + b"00000" + b"00000"
    size = sum(map(len, fields)) + 12 + 6 + len(counts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(fields) + b"%012d" % size + b"%06d" % size + counts)
    return path
