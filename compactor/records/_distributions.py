"""How a run's scenes are spread, in bounded memory: fixed-bin histograms of one measure
(:class:`Distribution`) and the run's set of them (:class:`Distributions`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ._bins import Bins


class Bin(BaseModel):
    """One non-empty bin of a histogram: ``lo <= value < hi``."""

    lo: float
    hi: float
    count: int


class Distribution(BaseModel):
    """A fixed-bin histogram of one measure over a run's scenes, with its exact count, min,
    max and mean, and quantiles estimated from the bins (exact to within one bin).

    The bins are fixed before the run (``bins`` bins from ``lo`` to ``hi``, equal widths on
    a ``linear`` scale, equal ratios on a ``log`` one), so the memory a run needs for them
    does not grow with its scenes; values outside are counted in ``under`` and ``over``.
    Only non-empty bins are listed in ``histogram``.
    """

    #: What is measured, e.g. ``"compression ratio"``.
    measure: str
    #: Unit of the values (``""`` for ratios and SSIM).
    unit: str = ""
    scale: Literal["linear", "log"]
    lo: float
    hi: float
    bins: int
    count: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    #: Values below ``lo`` and at or above ``hi`` (counted, not binned).
    under: int = 0
    over: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    histogram: list[Bin] = Field(default_factory=list)

    @property
    def binning(self) -> Bins:
        """The fixed bins the values were counted in."""
        return Bins(self.lo, self.hi, self.bins, self.scale)


class Distributions(BaseModel):
    """How a run's scenes are spread: histograms and counts, bounded whatever its size."""

    #: Compression ratio (original bytes / output bytes) of compacted scenes.
    ratio: Distribution
    #: SSIM of compacted lossy scenes.
    ssim: Distribution
    #: Seconds a scene took (every scene that did any work).
    seconds: Distribution
    #: Size of the original as stored (every scene whose size is known).
    bytes_in: Distribution
    #: Compacted scenes per codec kept, per codec and quality (``"jpeg q75"``, ``"zstd"``).
    codecs: dict[str, int] = Field(default_factory=dict)
    codec_quality: dict[str, int] = Field(default_factory=dict)
    #: Compacted scenes stored losslessly and lossily.
    lossless: int = 0
    lossy: int = 0
    #: Compacted scenes that took the chunked path.
    chunked: int = 0
