"""Automatic quality: per scene, the lowest lossy quality (and, with ``--codec auto-lossy
--allow-webp``, the codec) whose output still meets the SSIM bar.

The search runs on a sample of the scene (:mod:`compactor.encode._sample`: up to four 512x512
windows; the whole scene when it is at most 1024x1024): each probe encodes the sample with
the output writer and measures SSIM exactly as verification does. Qualities are bisected
between :data:`QUALITY_MIN` and :data:`QUALITY_MAX`, so a search takes eight probes; the
quality kept passes and the one below it fails. A codec that misses the bar even at
:data:`QUALITY_MAX` is out; with no lossy codec left the scene is stored losslessly.

The whole output is then checked like any other (same SSIM definition). For a scene that
is its own sample the search is exact: the quality found is the one the whole output gets,
and it passes. A sampled scene adapts once (:class:`Ladder`): the first whole output gives
the offset between sample and scene, the sample is searched again with it, and a clearly
lower quality is tried on the whole scene; a whole output that misses goes up
(:func:`confirm_ladder`), then lossless.

For the report, the sample's JPEG size is measured at every quality from the one the scene
needs up to :data:`QUALITY_MAX`: what it would cost under a single fixed quality
(:func:`compare_fixed`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import rasterio

from ..codecs import LOSSY
from ..cog import TILE, Profile, TileCodec, pad_tile
from ..errors import SceneError, VerificationError
from ..fidelity import compare_pixels
from ..gdal import RasterInfo
from ..records import FixedQualityComparison, Probe, QualityComparison, QualitySearch, SceneResult
from ._choose import fallback_profiles, lossless_fallback, lossy_problem
from ._sample import Sample, write_sample
from ._tile_layout import same_source
from ._write import write_cog

log = logging.getLogger(__name__)

#: The quality range searched. Below 10 JPEG and WEBP fall apart on any imagery; above 95
#: a lossy output is rarely smaller than the lossless one (and 95 is the fixed ladder's top).
QUALITY_MIN = 10
QUALITY_MAX = 95
#: Steps up from the quality found, tried when a sampled scene's whole output misses the bar.
CONFIRM_STEPS = (2, 5, 10)
#: A sampled scene's passing output is re-encoded after calibration only for a quality at
#: least this much lower (each try is a whole-scene encode).
CALIBRATION_GAIN = 3

T = TypeVar("T")


@dataclass(frozen=True)
class QualityPolicy:
    """The run's codec and quality settings, as scene tasks need them."""

    codec: str
    #: A fixed quality, or ``"auto"`` to search one per scene.
    quality: int | str | None
    min_ssim: float
    allow_webp: bool = False

    @property
    def auto(self) -> bool:
        return self.quality == "auto"

    def lossy_codecs(self, profile: Profile, info: RasterInfo) -> list[str]:
        """The lossy codecs to search for a scene whose starting profile is ``profile``."""
        if self.codec == "auto-lossy":
            codecs = ["jpeg"] + (["webp"] if self.allow_webp else [])
            return [c for c in codecs if lossy_problem(c, info) is None]
        return [profile.codec]


class _Opened:
    """The sample's dataset, opened on first use: a probe whose source strips are all kept
    in ``sample.reference`` (every probe after the first) never reads the sample."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._ds: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._ds is None:
            self._ds = rasterio.open(self._path, driver="GTiff")
        return getattr(self._ds, name)

    def close(self) -> None:
        if self._ds is not None:
            self._ds.close()


def probe(sample: Sample, profile: Profile, scratch: Path) -> Probe:
    """Encode the sample with ``profile`` and measure it as verification would."""

    path = scratch / f"probe-{profile.codec}-{profile.quality}.tif"
    with same_source(sample.read):
        write_cog(str(sample.path), path, profile, sample.info)
    try:
        with (
            closing(_Opened(sample.path)) as src,
            rasterio.open(path, driver="GTiff") as out,
        ):
            fidelity = compare_pixels(
                src, out, sample.info, profile, ssim_only=True, reference=sample.reference
            )
        size = path.stat().st_size
    finally:
        path.unlink(missing_ok=True)
    return Probe(
        codec=profile.codec, quality=profile.quality or 0, bytes=size, ssim=fidelity.ssim or 0.0
    )


def bisect_quality(passes: Callable[[int], bool]) -> int | None:
    """The lowest quality in [QUALITY_MIN, QUALITY_MAX] that ``passes``, by bisection
    (``None`` when even QUALITY_MAX does not); the one below it was tried and failed."""
    if not passes(QUALITY_MAX):
        return None
    fail, ok = QUALITY_MIN - 1, QUALITY_MAX
    while ok - fail > 1:
        mid = (fail + ok) // 2
        if passes(mid):
            ok = mid
        else:
            fail = mid
    return ok


def lowest_quality(
    sample: Sample, profile: Profile, min_ssim: float, scratch: Path
) -> tuple[int | None, list[Probe]]:
    """Bisect the lowest quality of ``profile.codec`` whose sample SSIM is at least
    ``min_ssim``: (the quality, or ``None`` when even :data:`QUALITY_MAX` misses; the probes)."""
    probes: dict[int, Probe] = {}

    def passes(q: int) -> bool:
        if q not in probes:
            probes[q] = probe(sample, replace(profile, quality=q), scratch)
        return probes[q].ssim >= min_ssim

    found = bisect_quality(passes)
    return found, [probes[q] for q in sorted(probes)]


def colour_pixels(sample: Sample) -> np.ndarray:
    """The sample's colour bands (no alpha), as the tile encoder takes them."""

    with rasterio.open(sample.path, driver="GTiff") as src:
        return np.asarray(src.read(list(range(1, sample.info.colour_bands + 1))))


def sample_bytes(pixels: np.ndarray, codec: str, quality: int) -> int:
    """Bytes of the sample's full-resolution tiles (``pixels``: :func:`colour_pixels`)
    encoded with ``codec`` at ``quality`` (tiles only: a like-for-like measure across
    qualities, cheap enough for a curve)."""

    bands, height, width = pixels.shape
    tiles = TileCodec.for_profile(codec, quality, pixels.dtype.name, bands)
    total = 0
    for r in range(0, height, TILE):
        for c in range(0, width, TILE):
            block = np.moveaxis(pixels[:, r : r + TILE, c : c + TILE], 0, -1)
            total += len(tiles.encode(np.ascontiguousarray(pad_tile(block))))
    return total


def search(
    sample: Sample, profile: Profile, info: RasterInfo, policy: QualityPolicy, scratch: Path
) -> tuple[Profile, QualitySearch]:
    """The profile a scene starts with under ``--quality auto``: the smallest sample output
    among the lossy codecs at their lowest passing quality, or lossless when none passes."""
    scratch.mkdir(parents=True, exist_ok=True)
    probes: list[Probe] = []
    best: tuple[int, Profile] | None = None
    jpeg_quality: int | None = None
    for codec in policy.lossy_codecs(profile, info):
        start = replace(profile, codec=codec)
        quality, tried = lowest_quality(sample, start, policy.min_ssim, scratch)
        probes += tried
        if codec == "jpeg":
            jpeg_quality = quality
        if quality is None:
            continue
        size = next(p.bytes for p in tried if p.quality == quality)
        if best is None or size < best[0]:
            best = (size, replace(start, quality=quality))
    record = QualitySearch(
        min_ssim=policy.min_ssim,
        sample_whole=sample.whole,
        sample_pixels=sample.info.width * sample.info.height,
        probes=probes,
        jpeg_quality=jpeg_quality,
    )
    if best is None:
        chosen = lossless_fallback(profile)
        log.info("no lossy quality meets SSIM %.3f on the sample; lossless", policy.min_ssim)
        return chosen, record
    chosen = best[1]
    assert chosen.quality is not None
    record.codec, record.quality = chosen.codec, chosen.quality
    return chosen, record


def confirm_ladder(chosen: Profile) -> list[Profile]:
    """What to try after the searched profile when the whole output misses the bar: a few
    qualities up, then lossless."""
    if chosen.lossless:
        return []
    assert chosen.quality is not None
    ups = sorted({min(QUALITY_MAX, chosen.quality + s) for s in CONFIRM_STEPS} - {chosen.quality})
    return [replace(chosen, quality=q) for q in ups] + [lossless_fallback(chosen)]


class Ladder:
    """The profiles a scene tries in order, until one meets the bar on the whole output.

    Under ``--quality auto`` on a sampled scene it adapts once: the first lossy output's
    whole-scene SSIM against its sample's gives the offset between the two (a nodata collar
    outside the sample raises the whole scene's SSIM; texture outside it lowers it), and the
    sample is searched again for the lowest quality that meets the bar shifted by that
    offset. A passing output is replaced only by one at least :data:`CALIBRATION_GAIN`
    qualities lower that passes too; a missing one is followed by the corrected quality.
    """

    def __init__(
        self,
        profiles: list[Profile],
        search: QualitySearch | None = None,
        sample: Sample | None = None,
        min_ssim: float = 0.0,
        scratch: Path | None = None,
    ):
        self.profiles = profiles
        self.search = search
        self.sample = sample
        self.min_ssim = min_ssim
        self.scratch = scratch
        self._probes = {(p.codec, p.quality): p for p in search.probes} if search else {}

    @property
    def first(self) -> Profile:
        return self.profiles[0]

    def _sample_ssim(self, profile: Profile) -> float:
        assert self.sample is not None
        assert self.scratch is not None
        key = (profile.codec, profile.quality or 0)
        if key not in self._probes:
            self._probes[key] = probe(self.sample, profile, self.scratch)
        return self._probes[key].ssim

    def calibrated(self, tried: Profile, whole_ssim: float) -> Profile | None:
        """The lowest quality whose sample SSIM plus the offset measured at ``tried`` meets
        the bar; ``None`` without a sample to search or when no quality does."""
        if self.sample is None or self.sample.whole or tried.lossless or tried.quality is None:
            return None
        target = self.min_ssim - (whole_ssim - self._sample_ssim(tried))
        found = bisect_quality(lambda q: self._sample_ssim(replace(tried, quality=q)) >= target)
        if self.search is not None:
            self.search.probes = sorted(self._probes.values(), key=lambda p: (p.codec, p.quality))
        return None if found is None else replace(tried, quality=found)

    def record_kept(self, kept: Profile) -> None:
        """Complete the search record for the report's fixed-quality comparison: the JPEG
        quality this scene needs (the one kept, or the sample's for a WEBP scene), and the
        sample's JPEG size at it and every quality above it, next to the kept output's."""
        record, sample = self.search, self.sample
        if record is None or sample is None or kept.lossless or kept.quality is None:
            return
        need = kept.quality if kept.codec == "jpeg" else record.jpeg_quality
        if need is None:
            return
        pixels = colour_pixels(sample)  # read once for the whole curve
        record.jpeg_quality = need
        record.jpeg_bytes = [sample_bytes(pixels, "jpeg", q) for q in range(need, QUALITY_MAX + 1)]
        record.chosen_bytes = (
            record.jpeg_bytes[0]
            if kept.codec == "jpeg"
            else sample_bytes(pixels, kept.codec, kept.quality)
        )

    def walk(
        self,
        attempt: Callable[[Profile], tuple[bool, float | None, T]],
        discard: Callable[[T], None],
    ) -> tuple[Profile, T]:
        """Try profiles with ``attempt`` (-> passed, whole SSIM, a handle on the output) and
        return the one kept with its handle, its search record completed
        (:meth:`record_kept`); ``discard`` drops an output not kept."""
        kept, handle = self._climb(attempt, discard)
        self.record_kept(kept)
        return kept, handle

    def _climb(
        self,
        attempt: Callable[[Profile], tuple[bool, float | None, T]],
        discard: Callable[[T], None],
    ) -> tuple[Profile, T]:
        queue = list(self.profiles)
        adapted = False
        while queue:
            profile = queue.pop(0)
            ok, ssim, handle = attempt(profile)
            if not adapted and ssim is not None and not profile.lossless:
                adapted = True
                better = self.calibrated(profile, ssim)
                assert profile.quality is not None
                if better is not None and better.quality is not None:
                    if ok and better.quality <= profile.quality - CALIBRATION_GAIN:
                        try:
                            ok_lower, _, lower = attempt(better)
                        except SceneError as err:  # the passing output stays the answer
                            log.warning("trying %s failed (%s); keeping %s", better.label,
                                        err, profile.label)  # fmt: skip
                            return profile, handle
                        except BaseException:
                            discard(handle)
                            raise
                        if ok_lower:
                            discard(handle)
                            return better, lower
                        discard(lower)
                    elif not ok and better.quality > profile.quality:
                        queue = [better, *confirm_ladder(better)]
            if ok:
                return profile, handle
            discard(handle)
        raise VerificationError("no encoding met the SSIM bar")  # lossless always does


def candidates(
    src_path: str,
    info: RasterInfo,
    profile: Profile,
    policy: QualityPolicy,
    scratch: Path,
    sample: Sample | None = None,
) -> Ladder:
    """The profiles to try for a scene, in order, with the quality search when there was one.

    Fixed quality: the profile, then the fixed ladder (higher qualities, lossless) when an
    SSIM bar is set. ``--quality auto``: the searched profile, then :func:`confirm_ladder`;
    a sampled scene whose sample met the bar at no quality still tries the best codec at
    :data:`QUALITY_MAX` on the whole scene before lossless (its collar or quieter parts may
    carry it), and adapts from there (:class:`Ladder`).
    """

    if profile.lossless or profile.codec not in LOSSY:
        return Ladder([profile])
    if not policy.auto:
        ladder = [profile]
        if policy.min_ssim > 0:
            ladder += fallback_profiles(profile, info)
        return Ladder(ladder)
    if sample is None:
        sample = write_sample(src_path, info, scratch / "sample")
    probes_dir = scratch / "probes"
    chosen, record = search(sample, profile, info, policy, probes_dir)
    if chosen.lossless and not sample.whole and record.probes:
        top = max((p for p in record.probes if p.quality == QUALITY_MAX), key=lambda p: p.ssim)
        first = replace(profile, codec=top.codec, quality=QUALITY_MAX)
        profiles = [first, chosen]
    else:
        profiles = [chosen, *confirm_ladder(chosen)]
    return Ladder(profiles, record, sample, policy.min_ssim, probes_dir)


def compare_fixed(scenes: Iterable[SceneResult], min_ssim: float) -> QualityComparison | None:
    """The run against a single fixed JPEG quality: the lowest one that keeps every scene
    searched at the bar (on its sample), and what the same scenes would weigh with it.

    Counts the compacted scenes whose search found a JPEG quality; each scene's size at the
    fixed quality is estimated from its own output size and its sample's JPEG size curve.
    A run accumulates the same figures one result at a time
    (:class:`~compactor.records._aggregate.FixedQualityComparison`); this is it over a list.
    """
    comparison = FixedQualityComparison(min_ssim)
    for s in scenes:
        comparison.add(s)
    return comparison.result()
