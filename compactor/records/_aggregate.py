"""Bounded accumulators of a run's results, fed one :class:`SceneResult` at a time.

A run of a million scenes cannot keep every result in the client to summarise at the end.
Each accumulator here holds a fixed amount of state however many results it is given:
fixed-bin histograms (:class:`Histogram`), counts per codec (:class:`RunDistributions`),
and the fixed-quality comparison of ``--quality auto`` (:class:`FixedQualityComparison`).
The storage cost has its own accumulator in :mod:`compactor.pricing._costs`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ._bins import BYTES_BINS, RATIO_BINS, SECONDS_BINS, SSIM_BINS, Bins
from ._distributions import Bin, Distribution, Distributions
from ._results import QualityComparison, SceneResult

log = logging.getLogger(__name__)


@dataclass
class Histogram:
    """Counts of values in fixed :class:`Bins`, with the exact count, min, max and sum."""

    bins: Bins
    measure: str
    unit: str = ""
    counts: list[int] = field(init=False)
    n: int = 0
    under: int = 0
    over: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        self.counts = [0] * self.bins.count

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.low = value if self.low is None else min(self.low, value)
        self.high = value if self.high is None else max(self.high, value)
        i = self.bins.index(value)
        if i < 0:
            self.under += 1
        elif i >= self.bins.count:
            self.over += 1
        else:
            self.counts[i] += 1

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile estimated from the bins: interpolated inside the bin that
        holds it (on the bins' scale), clamped to the exact min and max; values outside
        the bins count as the min (below) and the max (above)."""
        if not self.n or self.low is None or self.high is None:
            return None
        target = q * self.n
        if target <= self.under:
            return self.low
        seen = float(self.under)
        for i, c in enumerate(self.counts):
            if c and seen + c >= target:
                value = self.bins.edge(i + (target - seen) / c)
                return min(self.high, max(self.low, value))
            seen += c
        return self.high

    def summary(self) -> Distribution:
        return Distribution(
            measure=self.measure,
            unit=self.unit,
            scale=self.bins.scale,
            lo=self.bins.lo,
            hi=self.bins.hi,
            bins=self.bins.count,
            count=self.n,
            min=self.low,
            max=self.high,
            mean=self.total / self.n if self.n else None,
            under=self.under,
            over=self.over,
            p50=self.quantile(0.5),
            p90=self.quantile(0.9),
            p99=self.quantile(0.99),
            histogram=[
                Bin(lo=self.bins.edge(i), hi=self.bins.edge(i + 1), count=c)
                for i, c in enumerate(self.counts)
                if c
            ],
        )


class RunDistributions:
    """The distributions of :class:`~compactor.records._results.Distributions`, accumulated."""

    def __init__(self) -> None:
        self.ratio = Histogram(RATIO_BINS, "compression ratio")
        self.ssim = Histogram(SSIM_BINS, "SSIM")
        self.seconds = Histogram(SECONDS_BINS, "seconds per scene", "s")
        self.bytes_in = Histogram(BYTES_BINS, "size of the original", "bytes")
        self.codecs: dict[str, int] = {}
        self.codec_quality: dict[str, int] = {}
        self.lossless = 0
        self.lossy = 0
        self.chunked = 0

    def add(self, s: SceneResult) -> None:
        if s.seconds > 0:  # refused scenes did no work
            self.seconds.add(s.seconds)
        if s.bytes_in is not None:
            self.bytes_in.add(s.bytes_in)
        if s.status not in ("compacted", "held"):  # held: its output exists
            return
        if s.ratio is not None:
            self.ratio.add(s.ratio)
        if s.lossless is False and s.ssim is not None:
            self.ssim.add(s.ssim)
        if s.codec:
            self.codecs[s.codec] = self.codecs.get(s.codec, 0) + 1
            label = s.codec if s.quality is None else f"{s.codec} q{s.quality}"
            self.codec_quality[label] = self.codec_quality.get(label, 0) + 1
        if s.lossless is True:
            self.lossless += 1
        elif s.lossless is False:
            self.lossy += 1
        if s.chunked:
            self.chunked += 1

    def summary(self) -> Distributions:
        return Distributions(
            ratio=self.ratio.summary(),
            ssim=self.ssim.summary(),
            seconds=self.seconds.summary(),
            bytes_in=self.bytes_in.summary(),
            codecs=dict(sorted(self.codecs.items(), key=lambda kv: (-kv[1], kv[0]))),
            codec_quality=dict(sorted(self.codec_quality.items(), key=lambda kv: (-kv[1], kv[0]))),
            lossless=self.lossless,
            lossy=self.lossy,
            chunked=self.chunked,
        )


#: Qualities a JPEG/WEBP scene can be given (the comparison's table is indexed by them).
_QUALITIES = 101


class FixedQualityComparison:
    """``--quality auto`` against the lowest single fixed JPEG quality that keeps every
    searched scene at the bar, accumulated: for each fixed quality ``Q`` (0-100) the sum of
    what each scene would weigh at ``Q``, over the scenes whose sample curve reaches ``Q``.

    A scene's size at ``Q`` is estimated from its own output size and its sample's JPEG
    size curve (``search.jpeg_bytes``: the sample's bytes at its own JPEG quality ``q`` and
    every quality above it): ``bytes_out * curve[Q - q] / chosen_bytes``. The fixed quality
    compared is the highest quality any scene needs, so every scene's curve reaches it and
    the sum at that quality is the whole estimate.
    """

    def __init__(self, min_ssim: float):
        self.min_ssim = min_ssim
        self.scenes = 0
        self.fixed_quality: int | None = None
        self.bytes_auto = 0
        self.bytes_at = [0] * _QUALITIES
        #: Scenes counted in ``bytes_at[Q]`` (all of them, for the quality compared).
        self.covered = [0] * _QUALITIES
        self.chosen: dict[str, int] = {}

    def add(self, s: SceneResult) -> None:
        found = s.search
        if not (
            s.status in ("compacted", "held")
            and s.lossless is False
            and s.bytes_out
            and found is not None
            and found.jpeg_quality is not None
            and found.jpeg_bytes
            and found.chosen_bytes
        ):
            return
        q, curve, chosen = found.jpeg_quality, found.jpeg_bytes, found.chosen_bytes
        self.scenes += 1
        self.fixed_quality = q if self.fixed_quality is None else max(self.fixed_quality, q)
        self.bytes_auto += s.bytes_out
        for offset, size in enumerate(curve[: max(0, _QUALITIES - q)]):
            self.bytes_at[q + offset] += round(s.bytes_out * size / chosen)
            self.covered[q + offset] += 1
        label = f"{s.codec} q{s.quality}"
        self.chosen[label] = self.chosen.get(label, 0) + 1

    def result(self) -> QualityComparison | None:
        """The comparison; ``None`` without a searched lossy scene."""
        fixed = self.fixed_quality
        if fixed is None:
            return None
        if self.covered[fixed] != self.scenes:  # a scene's curve stops short of ``fixed``
            log.warning(
                "fixed-quality comparison skipped: %d of %d scenes have no sample size at q%d",
                self.scenes - self.covered[fixed], self.scenes, fixed,
            )  # fmt: skip
            return None
        fixed_total = self.bytes_at[fixed]
        return QualityComparison(
            min_ssim=self.min_ssim,
            scenes=self.scenes,
            fixed_codec="jpeg",
            fixed_quality=fixed,
            bytes_auto=self.bytes_auto,
            bytes_fixed=fixed_total,
            saving=1 - self.bytes_auto / fixed_total if fixed_total else 0.0,
            chosen=dict(sorted(self.chosen.items())),
        )
