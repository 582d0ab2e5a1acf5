"""Fixed histogram bins: the report's distributions are counted in bins decided before a
run, so their memory does not grow with its scenes, and drawn from the same bins."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

#: A rounding guard: a value computed to sit a hair below a bin edge (0.95 / 0.0005 is
#: 1899.9999999999998) belongs to the bin that starts at the edge.
_EDGE = 1e-9


@dataclass(frozen=True)
class Bins:
    """``count`` fixed bins from ``lo`` to ``hi``: equal widths (``linear``) or equal
    ratios (``log``). Bin ``i`` holds ``edge(i) <= value < edge(i + 1)``; ``hi`` itself
    falls in the last bin, so an SSIM of exactly 1.0 is binned."""

    lo: float
    hi: float
    count: int
    scale: Literal["linear", "log"]

    def position(self, value: float) -> float:
        """Where ``value`` sits in bin units (0 at ``lo``, ``count`` at ``hi``)."""
        if self.scale == "log":
            return math.log(value / self.lo) / math.log(self.hi / self.lo) * self.count
        return (value - self.lo) / (self.hi - self.lo) * self.count

    def index(self, value: float) -> int:
        """The bin of ``value``: -1 below ``lo`` (and for non-positive values on a log
        scale), ``count`` above ``hi``."""
        if value < self.lo or (self.scale == "log" and value <= 0):
            return -1
        if value == self.hi:
            return self.count - 1
        return min(self.count, max(0, math.floor(self.position(value) + _EDGE)))

    def edge(self, i: float) -> float:
        """The lower edge of bin ``i`` (``edge(count)`` is ``hi``); fractional ``i``
        interpolates on the bins' scale."""
        if self.scale == "log":
            value = self.lo * (self.hi / self.lo) ** (i / self.count)
        else:
            value = self.lo + (self.hi - self.lo) * i / self.count
        return float(f"{value:.12g}")  # 32768.0, not 32767.999999999996


#: Compression ratio: 20 bins per decade from 0.1 (outputs kept larger with a negative
#: --min-saving) to 1000.
RATIO_BINS = Bins(0.1, 1000.0, 80, "log")
#: SSIM: bins of 0.0005 over [0, 1], fine enough for the bar (0.95 by default) and for
#: quantiles, and aligned with the report's chart (which shows 20 bars from a whole
#: hundredth below the lowest value to 1).
SSIM_BINS = Bins(0.0, 1.0, 2000, "linear")
#: Seconds per scene: 10 bins per decade from 10 ms to about 28 hours.
SECONDS_BINS = Bins(0.01, 100_000.0, 70, "log")
#: Size of an original: powers of two from 1 KiB to 1 PiB.
BYTES_BINS = Bins(1024.0, float(1024**5), 40, "log")
