"""One crop of a scene before and after a profile: :func:`preview` encodes it (in this
process or as a Dask task) and :class:`Preview` holds the images, the measures and the
crop as an ``xarray.Dataset``.
"""

from __future__ import annotations

import base64
import builtins
import math
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import rasterio
import xarray as xr
from affine import Affine

from ..codecs import LOSSY
from ..cog import Profile, dtype_range
from ..display import esc, human_bytes, short_name
from ..encode import (
    Window4,
    write_cog,
    write_sample,
)
from ..errors import ConfigError
from ..fidelity import ssim_map
from ..gdal import RasterInfo, gdal_env, scratch_dir
from ..scene import RunContext
from ..settings import Settings
from ..storage import Location
from ..verify import check_output
from ._profiles import parse_spec, spec_profile
from ._settings import _context, _parse_source, _resolve

# --- preview ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Preview:
    """One crop of a scene before and after a profile, as 8-bit images (rows x cols, or
    rows x cols x 3 for colour): :attr:`original`, :attr:`compressed`, and
    :attr:`difference`, the absolute difference times :attr:`gain` (largest over the
    bands, clipped to 255). 16-bit and float scenes are shown with a 2-98 % stretch."""

    scene: str
    #: The profile as encoded, e.g. ``jpeg q75``.
    profile: str
    #: The crop, as (col, row, width, height) in the scene.
    window: Window4
    gain: float
    original: np.ndarray = field(repr=False)
    compressed: np.ndarray = field(repr=False)
    difference: np.ndarray = field(repr=False)
    ssim: float | None
    psnr: float | None
    #: Size of the crop's COG, and of its raw pixels.
    bytes: int
    raw_bytes: int
    #: The compressed crop equals the original pixel for pixel.
    exact: bool
    #: The images are a 2-98 % stretch of 16-bit or float data.
    stretched: bool = False
    #: A bounded profile's bound (the difference image is then the error map: error over
    #: bound, white at the bound) and the largest error in the crop, in data units.
    max_error: float | None = None
    error_max: float | None = None
    #: The crop in data units, with the scene's coordinates: ``original``, ``compressed``,
    #: ``difference`` (compressed - original) and ``ssim`` (the local SSIM map, the measure
    #: verification averages), each (band, y, x) and NaN where the source has no data:
    #: ``p.data.difference.sel(band=1).plot()``.
    data: xr.Dataset | None = field(default=None, repr=False)

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.bytes if self.bytes else math.nan

    def png(self, which: str = "compressed") -> builtins.bytes:
        """One of the images (``original``, ``compressed``, ``difference``) as PNG."""

        if which not in ("original", "compressed", "difference"):
            raise ConfigError(f"which must be original, compressed or difference, not {which!r}")
        return bytes(imagecodecs.png_encode(np.ascontiguousarray(getattr(self, which))))

    def _repr_html_(self) -> str:
        h, w = self.original.shape[:2]
        figures = []
        for which, caption in (
            ("original", "original"),
            ("compressed", self.profile),
            (
                "difference",
                f"error map (white: at ±{self.max_error:g})"
                if self.max_error
                else f"difference ×{self.gain:g}",
            ),
        ):
            data = base64.b64encode(self.png(which)).decode("ascii")
            figures.append(
                f'<figure style="margin:0;flex:1 1 0;min-width:0;max-width:{w}px">'
                f'<img src="data:image/png;base64,{data}" width="{w}" height="{h}" '
                f'alt="{esc(caption)}" '
                'style="image-rendering:pixelated;width:100%;height:auto;display:block">'
                f'<figcaption style="text-align:center">{esc(caption)}</figcaption></figure>'
            )
        col, row, cw, ch = self.window
        if self.exact:
            fidelity = "identical to the original"
        elif self.max_error:
            fidelity = f"max error {self.error_max or 0:g} (bound {self.max_error:g})" + (
                f" · PSNR {self.psnr:.1f} dB" if self.psnr else ""
            )
        else:
            fidelity = f"SSIM {self.ssim:.4f}" + (
                f" · PSNR {self.psnr:.1f} dB" if self.psnr else ""
            )
        stretch = " · shown with a 2–98 % stretch" if self.stretched else ""
        return (
            (
                '<div class="compactor-preview" style="font-family:system-ui,sans-serif;'
                'font-size:13px">'
                '<div style="display:flex;gap:12px;align-items:flex-start">'
                + "".join(figures)
                + "</div>"
                f"<p>{esc(short_name(self.scene))}, {cw}×{ch} pixels at column {col}, row {row} · "
                f"{esc(self.profile)}: {esc(human_bytes(self.bytes))} "
                f"(raw {esc(human_bytes(self.raw_bytes))}, {self.ratio:.1f}×) · "
                f"{fidelity}{stretch}</p></div>"
            )
            .encode("ascii", "xmlcharrefreplace")
            .decode("ascii")
        )


def _crop_window(info: RasterInfo, window: Sequence[int] | None, size: int) -> Window4:
    if window is None:
        if size < 1:
            raise ConfigError(f"size must be at least 1 pixel, not {size}")
        w, h = min(size, info.width), min(size, info.height)
        return ((info.width - w) // 2, (info.height - h) // 2, w, h)
    if len(window) != 4:
        raise ConfigError(f"window is (col, row, width, height), not {tuple(window)}")
    col, row, w, h = (int(v) for v in window)
    if w < 1 or h < 1 or col < 0 or row < 0 or col + w > info.width or row + h > info.height:
        raise ConfigError(
            f"window {(col, row, w, h)} is not inside the scene ({info.width}×{info.height})"
        )
    return (col, row, w, h)


def _display_bands(info: RasterInfo) -> list[int]:
    """0-based bands shown: red, green, blue when the scene names them, else the first
    three colour bands, else the first band (grey)."""
    colour = [i for i in range(info.count) if i + 1 != info.alpha_index]
    if len(colour) < 3:
        return colour[:1]
    named: dict[str, int] = {}
    for i in colour:
        for name in (info.colorinterp[i], (info.descriptions[i] or "")):
            key = str(name).strip().lower()
            if key in ("red", "green", "blue"):
                named.setdefault(key, i)
    if len(named) == 3:
        return [named["red"], named["green"], named["blue"]]
    return colour[:3]


def _images(
    a: np.ndarray, b: np.ndarray, valid: np.ndarray, info: RasterInfo, profile: Profile,
    gain: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:  # fmt: skip
    """(original, compressed, difference) as uint8 images, and whether stretched."""
    kept = [i for i in range(info.count) if not (profile.drop_alpha and i + 1 == info.alpha_index)]
    colour = [i for i in range(info.count) if i + 1 != info.alpha_index]
    stretched = info.dtype != "uint8"
    scale: dict[int, tuple[float, float]] = {}
    for i in colour:
        if not stretched:
            scale[i] = (0.0, 1.0)
            continue
        values = a[i][valid & np.isfinite(a[i])]
        lo, hi = np.percentile(values, [2, 98]) if values.size else (0.0, 1.0)
        lo, hi = float(lo), float(hi)
        scale[i] = (lo, 255.0 / (hi - lo) if hi > lo else 1.0)

    def show(data: np.ndarray, band: int) -> np.ndarray:
        lo, k = scale[band]
        out = np.nan_to_num((data.astype(np.float64) - lo) * k, nan=0.0, posinf=255, neginf=0)
        out = np.clip(np.rint(out), 0, 255)
        out[~valid] = 0
        return out.astype(np.uint8)

    bands = _display_bands(info)
    original = np.stack([show(a[i], i) for i in bands], axis=-1)
    compressed = np.stack([show(b[kept.index(i)], i) for i in bands], axis=-1)
    diff = np.zeros(valid.shape, dtype=np.float64)
    for i in colour:
        d = np.abs(a[i].astype(np.float64) - b[kept.index(i)].astype(np.float64))
        # A bounded scene's error map: white where a pixel's error reaches its band's bound.
        k = 255.0 / profile.band_error(kept.index(i)) if profile.bounded else scale[i][1] * gain
        diff = np.maximum(diff, np.nan_to_num(d * k, nan=0.0, posinf=255))
    diff[~valid] = 0
    difference = np.clip(np.rint(diff), 0, 255).astype(np.uint8)
    if len(bands) == 1:
        original, compressed = original[..., 0], compressed[..., 0]
    return original, compressed, difference, stretched


def preview_scene(
    source: str,
    profile_text: str,
    window: Sequence[int] | None,
    size: int,
    gain: float,
    context: RunContext,
) -> Preview:
    """Task (Dask or in-process): encode one crop of ``source`` with a profile."""

    src = Location.parse(source)
    scratch = Path(scratch_dir()) / f"preview-{uuid.uuid4().hex}"
    try:
        scratch.mkdir(parents=True)
        with gdal_env(context.gdal_options, tmpdir=str(scratch)):
            path, info = context.read_source(src, scratch)
            crop = _crop_window(info, window, size)
            sample = write_sample(path, info, scratch, [crop])
            spec = parse_spec(profile_text)
            if spec.auto and spec.codec in LOSSY:
                raise ConfigError(
                    f"{profile_text!r} is searched per scene by compare(); give a fixed "
                    "quality here (compare's row for it names the quality found)"
                )
            profile = spec_profile(spec, info, sample)
            out = write_cog(str(sample.path), scratch / "preview.cog.tif", profile, sample.info)
            fidelity = check_output(str(sample.path), str(out), sample.info, profile)
            with (
                rasterio.open(sample.path, driver="GTiff") as s,
                rasterio.open(out, driver="GTiff") as o,
            ):
                a, b = s.read(), o.read()
                valid = s.dataset_mask() > 0
                # The sample keeps the scene's georeferencing: the crop starts at its window.
                transform, crs = s.transform * Affine.translation(crop[0], crop[1]), s.crs
            nbytes = out.stat().st_size
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    original, compressed, difference, stretched = _images(a, b, valid, info, profile, gain)
    data = crop_dataset(a, b, valid, info, profile, transform, crs)
    return Preview(
        scene=source,
        profile=profile.label,
        window=crop,
        gain=gain,
        original=original,
        compressed=compressed,
        difference=difference,
        ssim=fidelity.ssim,
        psnr=fidelity.psnr,
        bytes=nbytes,
        raw_bytes=sample.raw_bytes,
        exact=fidelity.exact,
        stretched=stretched,
        data=data,
        max_error=profile.smallest_error if profile.bounded else None,
        error_max=max(fidelity.max_error) if fidelity.max_error else None,
    )


def crop_dataset(
    a: np.ndarray,
    b: np.ndarray,
    valid: np.ndarray,
    info: RasterInfo,
    profile: Profile,
    transform: Any,
    crs: Any,
) -> xr.Dataset:
    """The crop before and after, their difference and the local SSIM map, as an
    ``xarray.Dataset`` on the crop's x/y coordinates (pixel centres), NaN where the source
    has no data. Bands are those the output keeps (an alpha band becomes the mask)."""
    kept = [i for i in range(info.count) if not (profile.drop_alpha and i + 1 == info.alpha_index)]
    rows, cols = valid.shape
    xs = transform.c + transform.a * (np.arange(cols) + 0.5)
    ys = transform.f + transform.e * (np.arange(rows) + 0.5)
    before = np.where(valid, a[kept].astype(np.float64), np.nan)
    after = np.where(valid, b.astype(np.float64), np.nan)
    rng = dtype_range(info.dtype)
    local = np.stack([
        ssim_map(np.where(valid, a[i], 0), np.where(valid, b[k], 0), rng)
        for k, i in enumerate(kept)
    ])  # fmt: skip
    local[:, ~valid] = np.nan
    dims = ("band", "y", "x")
    coords = {"band": [i + 1 for i in kept], "y": ys, "x": xs}
    return xr.Dataset(
        {
            "original": (dims, before),
            "compressed": (dims, after),
            "difference": (dims, after - before),
            "ssim": (dims, local),
        },
        coords=coords,
        attrs={"crs": str(crs) if crs else "", "profile": profile.label},
    )


def preview(
    scene: str,
    profile: str,
    *,
    window: Sequence[int] | None = None,
    size: int = 384,
    gain: float = 8,
    client: Any = None,
    settings: Settings | None = None,
    config_file: str | None = None,
    **arguments: Any,
) -> Preview:
    """Encode one crop of ``scene`` with ``profile`` (``"jpeg:75"`` ...) and return the
    original, the compressed crop and the difference times ``gain`` as images.

    The crop is ``window`` = (col, row, width, height), or a ``size``-square window at the
    scene's centre. It runs in this process (one crop is cheap), or on ``client``'s
    cluster when given. Settings by name (``endpoint_url=`` ...) resolve as for
    :func:`compactor.run`; the S3 endpoint and GDAL options are the run's. Raises
    :class:`~compactor.errors.CompactorError` when the scene cannot be read or the
    profile cannot encode it."""
    spec = parse_spec(profile)
    resolved = _resolve(settings, config_file, dict(arguments))
    _parse_source(scene)
    context = _context(resolved)
    if client is not None:
        fut = client.submit(
            preview_scene, str(scene), spec.text, window, size, gain, context,
            key=f"preview-{uuid.uuid4().hex[:12]}", pure=False,
        )  # fmt: skip
        result: Preview = fut.result()
        return result
    return preview_scene(str(scene), spec.text, window, size, gain, context)
