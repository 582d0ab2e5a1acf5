"""The demo's scenes, generated rather than downloaded: fractal terrain (spectral synthesis)
gives real-looking texture, which compresses like real imagery where random noise would
not. Four scenes of 1-2 thousand pixels a side:

* ``hillshade.tif``  - uint8, 1 band, LZW (like an SRTM hillshade)
* ``landscape.tif``  - uint8 RGB with a rotated footprint and a nodata collar (Landsat-like),
  uncompressed and striped as many archives are
* ``multiband.tif``  - uint16, 4 bands of reflectance with nodata, uncompressed
* ``dem.tif``        - float32 elevation with nodata holes, tiled, uncompressed
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

CRS = "EPSG:32633"


def fractal_surface(size: int, beta: float = 3.8, seed: int = 0) -> np.ndarray:
    """A square fractal surface in [0, 1] with power spectrum ~ 1/f^beta."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** (beta / 2)
    spectrum[0, 0] = 0
    z = np.fft.irfft2(spectrum, s=(size, size))
    z -= z.min()
    out: np.ndarray = (z / z.max()).astype(np.float64)
    return out


def hillshade(
    elev: np.ndarray, cellsize: float, azimuth: float = 315, altitude: float = 45
) -> np.ndarray:
    dy, dx = np.gradient(elev, cellsize)
    slope = np.arctan(np.hypot(dx, dy))
    aspect = np.arctan2(-dx, dy)
    az, alt = np.radians(360 - azimuth + 90), np.radians(altitude)
    shade = np.sin(alt) * np.cos(slope) + np.cos(alt) * np.sin(slope) * np.cos(az - aspect)
    return np.asarray(np.clip(shade, 0, 1))


def footprint(size: int, angle_deg: float = 12.0, margin: float = 0.1) -> np.ndarray:
    """A rotated square footprint (True inside), like a satellite path's scene."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    c = (size - 1) / 2
    a = np.radians(angle_deg)
    u = (xx - c) * np.cos(a) + (yy - c) * np.sin(a)
    v = -(xx - c) * np.sin(a) + (yy - c) * np.cos(a)
    half = size * (0.5 - margin)
    return np.asarray((np.abs(u) <= half) & (np.abs(v) <= half))


def landscape_rgb(elev: np.ndarray, shade: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stops = np.array([0.0, 0.28, 0.32, 0.55, 0.75, 0.9, 1.0])
    colours = np.array(
        [
            [20, 50, 110],
            [40, 90, 150],
            [190, 180, 130],
            [70, 120, 50],
            [110, 100, 70],
            [140, 135, 130],
            [245, 245, 250],
        ],
        dtype=np.float64,
    )
    rgb = np.stack([np.interp(elev, stops, colours[:, k]) for k in range(3)])
    fields = fractal_surface(elev.shape[0], beta=2.6, seed=seed + 7)  # fields and forests
    rgb *= 0.8 + 0.4 * fields[None]
    rgb *= 0.45 + 0.75 * shade[None]
    rgb += rng.normal(0, 0.5, size=rgb.shape)  # sensor noise
    return np.asarray(np.clip(rgb, 1, 255), dtype=np.uint8)  # 0 is reserved for nodata


def make_scenes(folder: Path, size: int = 1536, seed: int = 42) -> list[Path]:
    """Write the demo scenes into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    cell = 30.0
    transform = from_origin(400000, 5200000, cell, cell)
    elev01 = fractal_surface(size, seed=seed)
    elev = 200 + 2800 * elev01**1.6
    shade = hillshade(elev, cell)
    base = {"crs": CRS, "transform": transform, "width": size, "height": size}
    paths = []

    p = folder / "hillshade.tif"
    with rasterio.open(p, "w", driver="GTiff", count=1, dtype="uint8", compress="lzw", **base) as d:
        d.write((shade * 254 + 1).astype(np.uint8), 1)
        d.update_tags(SOURCE="compactor demo: synthetic hillshade")
    paths.append(p)

    p = folder / "landscape.tif"
    rgb = landscape_rgb(elev01, shade, seed)
    rgb[:, ~footprint(size)] = 0
    with rasterio.open(
        p, "w", driver="GTiff", count=3, dtype="uint8", nodata=0, photometric="RGB", **base
    ) as d:
        d.write(rgb)
        d.update_tags(SENSOR="synthetic", CLOUD_COVER="3.2")
        d.descriptions = ("red", "green", "blue")
    paths.append(p)

    p = folder / "multiband.tif"
    rng = np.random.default_rng(seed + 1)
    bands = []
    for k, gain in enumerate((0.6, 0.8, 1.0, 1.6)):
        refl = (
            0.05 + 0.25 * shade * gain + 0.1 * fractal_surface(size, 3.0, seed + 10 + k)
        ) * 10000
        bands.append(np.clip(refl + rng.normal(0, 6, refl.shape), 1, 65535))
    ms = np.stack(bands).astype(np.uint16)
    ms[:, ~footprint(size, angle_deg=-8)] = 0
    with rasterio.open(p, "w", driver="GTiff", count=4, dtype="uint16", nodata=0, **base) as d:
        d.write(ms)
        d.descriptions = ("blue", "green", "red", "nir")
        d.update_tags(SCALE_FACTOR="0.0001")
    paths.append(p)

    p = folder / "dem.tif"
    dem = np.round(elev, 1).astype(np.float32)  # decimetre precision, as DEM products ship
    holes = fractal_surface(size, 2.5, seed + 3) > 0.93
    dem[holes] = -9999.0
    with rasterio.open(
        p, "w", driver="GTiff", count=1, dtype="float32", nodata=-9999.0, tiled=True,
        blockxsize=256, blockysize=256, **base,
    ) as d:  # fmt: skip
        d.write(dem, 1)
        d.set_band_description(1, "elevation")
        d.update_tags(1, units="m")
    paths.append(p)
    return paths
