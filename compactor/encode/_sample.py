"""Samples of a scene: a few windows read from the source and put side by side in one
small GeoTIFF, so that encoding it tells what encoding the whole scene would give.

Used by the dry run (size estimates), the automatic quality search and
:func:`compactor.compare`. A scene no larger than ``2 * SAMPLE`` on each side is its own
sample: every pixel of it, so what the sample says holds exactly for the scene.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagecodecs as ic
import numpy as np
import rasterio
from rasterio.windows import Window

from ..errors import UnreadableSceneError
from ..fidelity import NoiseEstimate, estimate_noise
from ..gdal import RasterInfo, gdal_errors, open_source, read_info
from ..gdal import clean as _clean

#: Side of a sample window, in pixels (the output's tile size).
SAMPLE = 512

Window4 = tuple[int, int, int, int]


def sample_windows(width: int, height: int, size: int = SAMPLE) -> list[Window4]:
    """Up to four ``size``-square windows spread over the image, as (col, row, w, h); the
    whole image when it is at most ``2 * size`` on each side."""
    if width <= 2 * size and height <= 2 * size:
        return [(0, 0, width, height)]
    cols = sorted({int(f * max(0, width - size)) for f in (0.25, 0.75)})
    rows = sorted({int(f * max(0, height - size)) for f in (0.25, 0.75)})
    return [(c, r, min(size, width), min(size, height)) for r in rows for c in cols]


@dataclass(frozen=True)
class Sample:
    """A sample written to local scratch: ``path`` is a GeoTIFF with the source's bands,
    data type, nodata, colour interpretation and mask."""

    path: Path
    info: RasterInfo
    #: Uncompressed bytes of the sample's pixels.
    raw_bytes: int
    #: The windows of the source it holds (col, row, w, h).
    windows: tuple[Window4, ...]
    #: Its pixels as :func:`~compactor.verify._verify.compare_pixels` reads them for
    #: lossy outputs, kept across the probes of a quality search.
    reference: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    #: Its template tags and strips as the tile writer read them
    #: (:func:`~._tile_layout.same_source`), kept across the probes of a quality search.
    read: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def whole(self) -> bool:
        """The sample is the whole scene."""
        return len(self.windows) == 1 and self.windows[0][:2] == (0, 0)


def write_sample(
    src_path: str, info: RasterInfo, scratch: Path, windows: list[Window4] | None = None
) -> Sample:
    """Read ``windows`` (default :func:`sample_windows`) of ``src_path`` and write them as a
    2x2 mosaic GeoTIFF under ``scratch``. Call inside :func:`compactor.gdal.gdal_env`."""

    windows = windows or sample_windows(info.width, info.height)
    try:
        with open_source(src_path) as src:
            tiles = [src.read(window=Window(*w)) for w in windows]
            masks = (
                [src.read_masks(1, window=Window(*w)) for w in windows]
                if info.has_dataset_mask
                else None
            )
            profile_kw: dict[str, Any] = {
                "driver": "GTiff",
                "count": info.count,
                "dtype": info.dtype,
                "nodata": info.nodata,
                "crs": src.crs,
                "transform": src.transform,
            }
            colorinterp = src.colorinterp
            colormap = src.colormap(1) if info.has_colormap else None
    except gdal_errors() as err:
        raise UnreadableSceneError(
            f"GDAL could not read the scene's pixels: {_clean(err)}"
        ) from err
    h = max(t.shape[1] for t in tiles)
    w = max(t.shape[2] for t in tiles)
    # Side by side as they lie in the scene: 2x2, or 1x2 / 2x1 where the scene is too short
    # or too narrow for two rows or columns of windows (never a filler that would count as
    # pixels).
    ncols = len({win[0] for win in windows})
    nrows = max(1, len(windows) // ncols)
    cells = [divmod(i, ncols) for i in range(len(tiles))]
    if len(tiles) == 1:
        mosaic = tiles[0]
    else:
        fill = info.nodata if info.nodata is not None else 0
        mosaic = np.full((info.count, nrows * h, ncols * w), fill, dtype=info.dtype)
        for (r, c), t in zip(cells, tiles, strict=True):
            mosaic[:, r * h : r * h + t.shape[1], c * w : c * w + t.shape[2]] = t
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / "sample.tif"
    with rasterio.open(
        path, "w", width=mosaic.shape[2], height=mosaic.shape[1], **profile_kw
    ) as dst:
        # Before the pixels: GTiff takes an alpha band's ExtraSamples only until then.
        dst.colorinterp = colorinterp
        if colormap is not None:
            dst.write_colormap(1, colormap)
        dst.write(mosaic)
        if masks is not None:
            full = np.zeros(mosaic.shape[1:], dtype="uint8")
            for (r, c), m in zip(cells, masks, strict=True):
                full[r * h : r * h + m.shape[0], c * w : c * w + m.shape[1]] = m
            dst.write_mask(full)
    return Sample(
        path=path, info=read_info(str(path)), raw_bytes=int(mosaic.nbytes), windows=tuple(windows)
    )


class SampleRanges(list[tuple[float, float]]):
    """:func:`valid_ranges`: each band's (smallest, largest) valid value on the sample, and
    on demand (``--max-error noise``) each band's noise estimated on it (or given)."""

    def __init__(
        self,
        ranges: list[tuple[float, float]],
        sample: Sample | None = None,
        noise: list[NoiseEstimate] | None = None,
    ) -> None:
        super().__init__(ranges)
        self._sample = sample
        self._noise = noise

    def savings(self, bounds: tuple[float, ...]) -> list[float | None]:
        """Each band's saving on the sample under its bound (:func:`band_savings`; ``None``
        where there is no sample)."""
        if self._sample is None:
            return [None] * len(bounds)
        return band_savings(self._sample, bounds)

    def lerc_rms(self, bound: float) -> list[float | None]:
        """Each band's RMS error on the sample through LERC within ``bound``
        (:func:`band_lerc_rms`; ``None`` where there is no sample)."""
        if self._sample is None:
            return [None] * len(self)
        return band_lerc_rms(self._sample, bound)

    def noise(self) -> list[NoiseEstimate]:
        """Each band's noise on the sample (:func:`band_noise`), estimated once."""
        if self._noise is None:
            if self._sample is None:
                raise ValueError("no sample to estimate the noise on")
            self._noise = band_noise(self._sample)
        return self._noise


def _valid(src: Any, info: RasterInfo, band: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    ok = np.isfinite(band) if band.dtype.kind == "f" else np.ones(band.shape, bool)
    if info.nodata is not None and not np.isnan(info.nodata):
        ok &= band != np.asarray(info.nodata).astype(band.dtype)
    if mask is not None:
        ok &= mask
    return ok


def _sample_mask(src: Any, info: RasterInfo) -> np.ndarray | None:
    return src.dataset_mask() > 0 if info.has_dataset_mask or info.alpha_index else None


def valid_ranges(sample: Sample) -> SampleRanges:
    """Each band's smallest and largest valid value on the sample (nodata, NaN, infinities
    and masked pixels left out; (0, 0) for a band with none): what a relative error bound
    is a fraction of."""
    info = sample.info
    out = []
    with rasterio.open(sample.path, driver="GTiff") as src:
        mask = _sample_mask(src, info)
        for b in range(1, info.count + 1):
            band = src.read(b)
            values = band[_valid(src, info, band, mask)]
            out.append((float(values.min()), float(values.max())) if values.size else (0.0, 0.0))
    return SampleRanges(out, sample)


def band_noise(sample: Sample) -> list[NoiseEstimate]:
    """Each band's noise σ on the sample's valid pixels
    (:func:`~compactor.fidelity.estimate_noise`), no 3x3 window across the seams between
    the sample's windows."""
    info = sample.info
    with rasterio.open(sample.path, driver="GTiff") as src:
        mask = _sample_mask(src, info)
        seams = np.ones((src.height, src.width), bool)
        if not sample.whole:
            rows = max(win[3] for win in sample.windows)
            cols = max(win[2] for win in sample.windows)
            seams[rows::rows, :] = False
            seams[:, cols::cols] = False
        mask = seams if mask is None else mask & seams
        return [
            estimate_noise(band, _valid(src, info, band, mask))
            for band in (src.read(b) for b in range(1, info.count + 1))
        ]


def band_savings(sample: Sample, bounds: tuple[float, ...]) -> list[float | None]:
    """Each band of the sample encoded alone with LERC+ZSTD within its bound, against the
    same lossless: the fraction of its bytes the bound saves (``None`` where the bound is 0
    or the band has no valid pixel). What ``--max-error noise`` reports per band; the
    scene's own saving is measured on its output."""
    info = sample.info
    out: list[float | None] = []
    with rasterio.open(sample.path, driver="GTiff") as src:
        mask = _sample_mask(src, info)
        for b, bound in enumerate(bounds, start=1):
            band = src.read(b)
            valid = _valid(src, info, band, mask)
            if bound <= 0 or not valid.any():
                out.append(None)
                continue
            data = np.where(valid, band, 0).astype(band.dtype)
            sizes = [
                len(ic.zstd_encode(ic.lerc_encode(data, level=e, masks=valid), level=9))
                for e in (0.0, bound)
            ]
            out.append(1 - sizes[1] / sizes[0])
    return out


def band_lerc_rms(sample: Sample, bound: float) -> list[float | None]:
    """Each band of the sample through LERC within ``bound`` and back: the RMS error on its
    valid pixels (``None`` where it has none). What ``--max-error noise`` checks its bound
    against before it writes: LERC's error is uniform only on dense values, and data on a
    coarser lattice (scaled DN, floats near their precision) can add more."""
    info = sample.info
    out: list[float | None] = []
    with rasterio.open(sample.path, driver="GTiff") as src:
        mask = _sample_mask(src, info)
        for b in range(1, info.count + 1):
            band = src.read(b)
            valid = _valid(src, info, band, mask)
            if not valid.any():
                out.append(None)
                continue
            data = np.where(valid, band, 0).astype(band.dtype)
            back = ic.lerc_decode(ic.lerc_encode(data, level=bound, masks=valid))
            d = back[valid].astype(np.float64) - data[valid].astype(np.float64)
            out.append(float(np.sqrt(np.dot(d, d) / d.size)))
    return out
