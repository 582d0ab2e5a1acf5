"""Typed results: one :class:`SceneResult` per scene and the run's :class:`Report`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .html import render_html

Status = Literal["compacted", "skipped", "failed"]


class Attempt(BaseModel):
    """One encoding tried for a scene (lossy outputs below the SSIM bar are re-encoded)."""

    codec: str
    quality: int | None = None
    bytes: int | None = None
    ssim: float | None = None
    accepted: bool = False


class Probe(BaseModel):
    """One encoding of a scene's sample tried by the quality search."""

    codec: str
    quality: int
    #: Bytes of the sample's COG.
    bytes: int
    ssim: float


class QualitySearch(BaseModel):
    """How ``--quality auto`` chose a scene's codec and quality (on a sample of it)."""

    min_ssim: float
    #: The sample was the whole scene (then the search is exact).
    sample_whole: bool
    sample_pixels: int
    probes: list[Probe] = Field(default_factory=list)
    #: What the search chose; ``None`` when no lossy quality met the bar (lossless).
    codec: str | None = None
    quality: int | None = None
    #: The JPEG quality the scene needs (the one kept, or the sample's lowest passing one
    #: for a WEBP scene), and the sample's JPEG tile bytes at that quality and every one
    #: above it up to 95: the report's fixed-quality comparison.
    jpeg_quality: int | None = None
    jpeg_bytes: list[int] = Field(default_factory=list)
    #: The sample's tile bytes with the kept codec and quality (same measure).
    chosen_bytes: int | None = None


class SceneResult(BaseModel):
    source: str
    output: str | None = None
    archive: str | None = None
    status: Status
    reason: str | None = None
    codec: str | None = None
    quality: int | None = None
    lossless: bool | None = None
    #: Size of the original object as stored.
    bytes_in: int | None = None
    #: Size of the output object as stored.
    bytes_out: int | None = None
    ssim: float | None = None
    #: dB over valid pixels; ``None`` when the output is identical (infinite PSNR).
    psnr: float | None = None
    seconds: float = 0.0
    #: Last durable step reached (see :mod:`compactor.state`).
    step: str | None = None
    #: Storage class of the archive copy.
    storage_class: str | None = None
    width: int | None = None
    height: int | None = None
    bands: int | None = None
    dtype: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    chunked: bool = False
    chunks: int | None = None
    #: STAC item id and asset key when the scene came from a STAC search.
    item: str | None = None
    asset: str | None = None
    #: Hex SHA-256 of the output and of the archive copy, as recorded.
    output_sha256: str | None = None
    archive_sha256: str | None = None
    #: The quality search under ``--quality auto`` (``None`` for fixed qualities, lossless
    #: codecs, and scenes resumed past encoding).
    search: QualitySearch | None = None
    #: The version of the source (ETag|size|storage class) this run left finished: nothing
    #: more to do for it under these settings (``"-"``: archived and gone from the source).
    #: ``None`` while the scene needs another look. What the finished index records.
    finished_version: str | None = None

    @classmethod
    def refused(
        cls, source: str, reason: str, size: int | None = None, **fields: Any
    ) -> SceneResult:
        """A scene refused at discovery: failed with ``reason``, nothing read or written."""
        return cls(source=source, status="failed", reason=reason, bytes_in=size, **fields)

    @property
    def ratio(self) -> float | None:
        if self.bytes_in and self.bytes_out:
            return self.bytes_in / self.bytes_out
        return None


class Totals(BaseModel):
    scenes: int = 0
    compacted: int = 0
    skipped: int = 0
    failed: int = 0
    #: Sums over compacted scenes only.
    bytes_in: int = 0
    bytes_out: int = 0
    #: Scenes earlier runs finished: counted from the finished index, not run again.
    finished_earlier: int = 0

    @classmethod
    def of(cls, scenes: list[SceneResult]) -> Totals:
        done = [s for s in scenes if s.status == "compacted"]
        return cls(
            scenes=len(scenes),
            compacted=len(done),
            skipped=sum(s.status == "skipped" for s in scenes),
            failed=sum(s.status == "failed" for s in scenes),
            bytes_in=sum(s.bytes_in or 0 for s in done),
            bytes_out=sum(s.bytes_out or 0 for s in done),
        )


class CostLine(BaseModel):
    label: str
    gb: float
    usd_per_gb_month: float
    usd_month: float


class CostEstimate(BaseModel):
    """Estimated monthly storage cost of the compacted scenes, before and after."""

    region: str
    price_table_date: str
    price_source: str
    storage_class: str | None
    before_usd_month: float
    after_usd_month: float
    saving_usd_month: float
    lines: list[CostLine]
    #: Archive-class minimum storage duration (days) and what it commits to.
    minimum_days: int = 0
    minimum_commitment_usd: float = 0.0
    notes: list[str] = Field(default_factory=list)


class StacSummary(BaseModel):
    """What a run did to the STAC items of its scenes."""

    api: str
    #: Items with at least one compacted asset, written under ``location``.
    items: int = 0
    location: str | None = None
    #: Items written back to the API (``--stac-update``), and why not where it could not.
    updated: int = 0
    update_error: str | None = None


class QualityComparison(BaseModel):
    """``--quality auto`` against one fixed quality: the lowest fixed JPEG quality that keeps
    every searched scene at the bar, and what the same scenes would weigh with it."""

    min_ssim: float
    #: Compacted lossy scenes whose search found a JPEG quality (the ones compared).
    scenes: int
    fixed_codec: str
    fixed_quality: int
    bytes_auto: int
    #: Estimated from each scene's output size and its sample's JPEG size curve.
    bytes_fixed: int
    #: Fraction of ``bytes_fixed`` that automatic quality saves.
    saving: float
    #: How many scenes got each codec and quality.
    chosen: dict[str, int] = Field(default_factory=dict)


class Report(BaseModel):
    run_id: str
    started: str
    finished: str
    settings: dict[str, Any]
    totals: Totals
    scenes: list[SceneResult]
    cost: CostEstimate | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    #: Where report.json and report.html were written.
    location: str | None = None
    stac: StacSummary | None = None
    quality: QualityComparison | None = None

    @property
    def ok(self) -> bool:
        return self.totals.failed == 0

    def _repr_html_(self) -> str:
        return render_html(self, fragment=True)
