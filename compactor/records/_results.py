"""Typed results: one :class:`SceneResult` per scene and the run's :class:`Report`.

A report stays the same size however many scenes a run has: totals, distributions (fixed-bin
histograms), the failed and skipped scenes, and where the **scene log** is (every scene's
full result, in gzipped NDJSON parts next to the report; :mod:`compactor.records._scene_log`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from ..redact import redact_text, redact_url
from ..storage import S3Options
from ._cost_estimate import CostEstimate
from ._distributions import Distributions

if TYPE_CHECKING:  # pandas is imported only when a DataFrame is asked for
    import pandas as pd

#: ``held``: compacted and archived, but the original could not be deleted (Object Lock
#: legal hold or retention, or a delete the bucket denied); a later run finishes it.
Status = Literal["compacted", "skipped", "failed", "held"]


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


class CodecProbe(BaseModel):
    """One encoding tried on a scene's sample by the encoding search."""

    label: str
    bytes: int
    #: Encode speed measured on the sample, MB/s of raw pixels (one core).
    mb_per_s: float


class EncodingSearch(BaseModel):
    """The search for a scene's smallest lossless (or bounded) encoding on its sample
    (:mod:`compactor.encode._lossless`)."""

    effort: str
    sample_pixels: int
    probes: list[CodecProbe]
    chosen: str


class BandNoise(BaseModel):
    """One band under ``--max-error noise``: the noise σ estimated on the scene's sample
    (``None``: none could be; ``reason`` says why the band stayed lossless, or why its bound
    was lowered on the sample), the error
    bound chosen from it (0: lossless), the RMS error measured on the output's valid
    pixels and allowed (``fraction``·σ), and the band's saving on the sample (LERC within
    the bound against LERC lossless)."""

    sigma: float | None
    bound: float
    max_rmse: float | None = None
    rmse: float | None = None
    saving: float | None = None
    reason: str = ""


class SceneResult(BaseModel):
    source: str
    output: str | None = None
    archive: str | None = None
    status: Status
    reason: str | None = None
    #: For a scene failed by an unexpected exception: its traceback (the scene log keeps it;
    #: the reason is its one line).
    traceback: str | None = None
    #: What libraries warned about while the scene was handled (GDAL through rasterio,
    #: tifffile: a TIFF without a geotransform, a nodata tag its type cannot hold, a broken
    #: second IFD GDAL skipped), one line each (:mod:`compactor.capture`), kept here rather
    #: than printed on a worker's stderr.
    warnings: list[str] = Field(default_factory=list)
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
    #: Where the task's seconds went, by stage (:mod:`compactor.timing`: read, encode,
    #: verification decode, SSIM ...; exclusive, so they add up to at most ``seconds``).
    stages: dict[str, float] = Field(default_factory=dict)
    #: A chunked scene's chunk and merge tasks: their seconds by stage, summed over the
    #: tasks (worker time, spent while the scene's own stage "chunk tasks" waited).
    task_stages: dict[str, float] | None = None
    #: Last durable step reached (see :mod:`compactor.records._state`).
    step: str | None = None
    #: Storage class of the archive copy.
    storage_class: str | None = None
    #: Storage class of the original as listed (``None``: STANDARD), what it costs before.
    source_class: str | None = None
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
    #: The item's collection: items are told apart by (collection, id).
    collection: str | None = None
    #: Hex SHA-256 of the output and of the archive copy, as recorded.
    output_sha256: str | None = None
    archive_sha256: str | None = None
    #: How the output is encoded beyond its codec: compression level, TIFF predictor (1 none,
    #: 2 horizontal, 3 floating point), LERC's inner codec, the overview policy.
    level: int | None = None
    predictor: int | None = None
    lerc_inner: str | None = None
    #: LERC's blob version (4: Lerc2 v4, GDAL's; 5: bands delta-coded, liblerc 2.1+).
    lerc_blob: int | None = None
    overviews: str | None = None
    #: ``--max-error`` as applied, per band in data units (``None``: lossless or SSIM-bound).
    max_error: list[float] | None = None
    #: Largest error measured on the valid pixels of each band, and the RMSE over them all.
    error_max: list[float] | None = None
    rmse: float | None = None
    #: ``--max-error noise``: the fraction of each band's noise σ its RMS error may reach,
    #: and each band's noise, bound, RMS error and saving.
    noise_fraction: float | None = None
    band_noise: list[BandNoise] | None = None
    #: Tile bytes of the output at full resolution and in its overviews (the rest of
    #: ``bytes_out`` is the header).
    bytes_full: int | None = None
    bytes_overviews: int | None = None
    #: The search for the smallest lossless or bounded encoding on the sample.
    encoding_search: EncodingSearch | None = None
    #: The quality search under ``--quality auto`` (``None`` for fixed qualities, lossless
    #: codecs, and scenes resumed past encoding).
    search: QualitySearch | None = None
    #: S3 requests this scene's task made, by operation (``GetObject``, ``PutObject``,
    #: ``CopyObject`` ...; GDAL's own range reads of a chunked scene are not counted).
    requests: dict[str, int] = Field(default_factory=dict)
    #: With ``--keep-versions`` on a versioned bucket: the version of the original left in
    #: the source bucket (a noncurrent version, still billed at its class).
    kept_version: str | None = None
    #: Why the original was not moved to the archive class although ``--archive`` was
    #: given (e.g. too small to pay back within ``--payback-months``).
    archive_skipped: str | None = None
    #: The version of the source (ETag|size|storage class) this run left finished: nothing
    #: more to do for it under these settings (``"-"``: archived and gone from the source).
    #: ``None`` while the scene needs another look. What the finished index records.
    finished_version: str | None = None
    #: With ``finished_version``: the ETag of the scene's state record as the task left it
    #: (``None``: no record), what the index entry is confirmed against on later runs.
    finished_record: str | None = None

    @field_validator("source")
    @classmethod
    def _redacted_source(cls, value: str) -> str:
        """A source URL as every reader of a result sees it (report, scene log, finished
        index, updated STAC items, the CLI): signatures, keys and tokens masked."""
        return redact_url(value)

    @field_validator("reason", "traceback")
    @classmethod
    def _redacted_reason(cls, value: str | None) -> str | None:
        return None if value is None else redact_text(value, ())

    @field_validator("warnings")
    @classmethod
    def _redacted_warnings(cls, value: list[str]) -> list[str]:
        return [redact_text(v, ()) for v in value]

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

    @property
    def encoding(self) -> str:
        """The encoding in a few words: ``lerc+zstd L9 ±2``, ``zstd L9 p2``, ``jpeg q82``."""
        if self.codec is None:
            return ""
        blob = f" v2.{self.lerc_blob}" if self.lerc_blob and self.lerc_blob != 4 else ""
        parts = [self.codec + blob + (f"+{self.lerc_inner}" if self.lerc_inner else "")]
        if self.quality is not None:
            parts.append(f"q{self.quality}")
        if self.level is not None:
            parts.append(f"L{self.level}")
        if self.predictor is not None:
            parts.append(f"p{self.predictor}")
        if self.max_error:
            parts.append("±" + "/".join(f"{e:g}" for e in self.max_error))
        if self.overviews and self.overviews != "full":
            parts.append(f"(overviews {self.overviews})")
        return " ".join(parts)


class Totals(BaseModel):
    """Counts of a run, kept up to date one result at a time (:meth:`add`)."""

    #: Scenes this run took a result for (compacted + held + skipped + failed).
    scenes: int = 0
    compacted: int = 0
    skipped: int = 0
    failed: int = 0
    #: Compacted and archived, but the original is still at its source (its delete was
    #: refused); not a failure: a later run finishes it.
    held: int = 0
    #: Sums over compacted and held scenes (their outputs exist).
    bytes_in: int = 0
    bytes_out: int = 0
    #: Scenes earlier runs finished, so this run did not take them up: counted by
    #: discovery from the finished index, not in ``scenes``.
    finished_earlier: int = 0

    def add(self, result: SceneResult) -> None:
        self.scenes += 1
        if result.status in ("compacted", "held"):
            if result.status == "compacted":
                self.compacted += 1
            else:
                self.held += 1
            self.bytes_in += result.bytes_in or 0
            self.bytes_out += result.bytes_out or 0
        elif result.status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1


class SceneLog(BaseModel):
    """Where every scene's full result is: ``parts`` gzipped NDJSON files
    ``part-00000.ndjson.gz`` ... in ``location`` (one :class:`SceneResult` per line, in
    the order the scenes finished). Read them with
    :func:`compactor.records._scene_log.read_scene_log` or :meth:`Report.scene_results`."""

    location: str
    parts: int = 0
    scenes: int = 0

    @property
    def part_names(self) -> list[str]:
        from ._scene_log import part_name

        return [part_name(i) for i in range(self.parts)]


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
    """A run's report (``report.json``): its size does not grow with the number of
    compacted scenes. Every scene's result is in the scene log (:attr:`scene_log`,
    :meth:`scene_results`, :meth:`scenes_dataframe`); failed, skipped and held scenes, the
    exceptions, are listed here in full."""

    run_id: str
    started: str
    finished: str
    settings: dict[str, Any]
    totals: Totals
    distributions: Distributions
    #: Every failed, every skipped and every held scene of the run.
    failed: list[SceneResult] = Field(default_factory=list)
    skipped: list[SceneResult] = Field(default_factory=list)
    held: list[SceneResult] = Field(default_factory=list)
    scene_log: SceneLog | None = None
    cost: CostEstimate | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    #: Where the run's wall time went on the client, in seconds: ``preflight``, ``listing``
    #: (the first page), ``cluster start``, ``scenes`` (first task submitted to last result,
    #: listing the rest included), ``cluster stop``.
    stages: dict[str, float] = Field(default_factory=dict)
    #: Where report.json and report.html were written.
    location: str | None = None
    #: Why the run stopped before every scene was done (Ctrl-C, the cluster lost, an
    #: error in the client); ``None``: it ran to the end. The scenes finished before the
    #: stop are in the totals and the scene log; rerunning finishes the rest.
    interrupted: str | None = None
    stac: StacSummary | None = None
    quality: QualityComparison | None = None
    #: Every scene of a small run (at most :data:`~compactor.report._html.TABLE_LIMIT`),
    #: for report.html's per-scene table; empty above that. Never in report.json (the scene
    #: log has them all).
    table: list[SceneResult] = Field(default_factory=list, exclude=True, repr=False)

    @property
    def ok(self) -> bool:
        """No scene failed. Held scenes are not failures: their originals are safe in the
        archive and at their source, and a later run deletes them."""
        return self.totals.failed == 0

    def s3_options(self) -> S3Options:
        """How to reach the run's store, as the run did (endpoint and region are in its
        settings; credentials come from the AWS chain, as always)."""
        s = self.settings
        return S3Options(
            endpoint_url=s.get("endpoint_url"),
            region=s.get("region"),
            max_attempts=int(s.get("s3_max_attempts") or 8),
        )

    def scene_results(self, s3: S3Options | None = None) -> Iterator[SceneResult]:
        """Every scene's result, read back from the scene log part by part (a run of
        millions of scenes is never all in memory unless you make it a list)."""
        if self.scene_log is None:
            return iter(())
        from ._scene_log import read_scene_log

        return read_scene_log(self.scene_log.location, s3 or self.s3_options())

    def scenes_dataframe(self, s3: S3Options | None = None) -> pd.DataFrame:
        """Every scene as a row of a pandas DataFrame (the scalar fields of
        :class:`SceneResult` and ``ratio``; ``attempts`` and ``search`` stay in
        :meth:`scene_results`)."""
        from ._scene_log import scenes_dataframe

        return scenes_dataframe(self.scene_results(s3))

    def _repr_html_(self) -> str:
        # Jupyter's display hook: the one import of the presentation layer from the model,
        # made when a notebook shows a report (the layers contract names it).
        from ..report import render_html

        return render_html(self, fragment=True)
