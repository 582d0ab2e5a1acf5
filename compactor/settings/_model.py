"""Every option of a run, each declared once: its type, default, bounds, description and
(through :class:`~._meta.Opt`) its flag and environment variable."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..codecs import CHOICES, ErrorBound, codec_help, parse_max_error, parse_quality
from ..redact import is_secret_name, redact, secret_values
from ._cluster import ClusterSettings
from ._meta import DEFAULT_INCLUDE, SIZES, Effort, Opt, OutputClass, Overviews, StorageClass
from ._stac import StacSettings
from ._views import Encoding, Limits, Transfers

#: GDAL options that would send credentials with HTTP requests (prefixes).
HTTP_AUTH_OPTIONS = (
    "GDAL_HTTP_HEADER", "GDAL_HTTP_USERPWD", "GDAL_HTTP_AUTH", "GDAL_HTTP_BEARER",
    "GDAL_HTTP_COOKIE", "GDAL_HTTP_NETRC", "GDAL_HTTP_PROXYUSERPWD",
)  # fmt: skip

_URL = Opt("source", metavar="URL")
_TIME = Opt("source", metavar="TIME")
_SIZE = Opt("source", metavar="SIZE")


class Settings(BaseModel):
    """Every option of a run. Frozen: shipped to workers as data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Annotated[str | None, _URL] = Field(
        default=None,
        description="Where the originals are: s3://bucket/prefix/ or a local directory "
        "(recursive). With --inventory: the inventoried bucket (and a prefix in it), required.",
    )
    inventory: Annotated[str | None, _URL] = Field(
        default=None,
        description="List the source from an S3 Inventory report instead of listing it: "
        "s3://bucket/.../manifest.json (CSV, ORC or Parquet); how archives of millions "
        "of objects are backfilled. Needs --source s3://BUCKET/[PREFIX/]: the report "
        "must be the inventory of that bucket (its sourceBucket, and S3 Inventory's "
        "<prefix>/BUCKET/<configuration>/ layout), and only objects under --source "
        "are taken. The manifest never chooses the bucket.",
    )
    dest: Annotated[str | None, _URL] = Field(
        default=None,
        description="Where the COGs go, at the same relative keys with extension .tif.",
    )
    archive: Annotated[str | None, Opt("archive", metavar="URL|in-place")] = Field(
        default=None,
        description="Move originals here after their COG is verified: an s3:// prefix (copy "
        "in --storage-class, verify, delete the source), 'in-place' (change the storage "
        "class where they are), or a directory for local sources. Default: leave them.",
    )
    storage_class: Annotated[
        StorageClass, Opt("archive", case_sensitive=False, shown_default=True)
    ] = Field(default="GLACIER", description="Storage class of archived originals.")
    output_storage_class: Annotated[
        OutputClass, Opt("archive", case_sensitive=False, shown_default=True)
    ] = Field(default="STANDARD", description="Storage class of the COGs.")
    keep_versions: Annotated[bool, Opt("archive")] = Field(
        default=False,
        description="In a versioned source bucket, leave each archived original as a "
        "noncurrent version (still billed; the report names each one; a delete marker hides "
        "it) instead of deleting exactly that version.",
    )
    request_payer: Annotated[Literal["requester"] | None, Opt("source")] = Field(
        default=None,
        description="The source bucket is requester-pays: acknowledge that this account pays "
        "for its requests and transfer.",
    )
    sse_kms_key: Annotated[
        str | None,
        Opt(
            "archive",
            metavar="KEY",
            shown_default="COGs take the bucket's default, archive copies keep the original's",
        ),
    ] = Field(
        default=None,
        description="Encrypt the COGs and the archive copies with this KMS key (id or ARN).",
    )
    include: Annotated[tuple[str, ...], Opt("source", metavar="GLOB", shown_default=True)] = Field(
        default=DEFAULT_INCLUDE,
        description="File-name globs to take, case-insensitive (repeatable).",
    )
    exclude: Annotated[tuple[str, ...], Opt("source", metavar="GLOB")] = Field(
        default=(), description="Globs to leave out (repeatable)."
    )
    min_size: Annotated[int | None, _SIZE] = Field(
        default=None, ge=0, description="Only objects of at least this size."
    )
    max_size: Annotated[int | None, _SIZE] = Field(
        default=None, ge=0, description="Only objects of at most this size."
    )
    modified_since: Annotated[datetime | None, _TIME] = Field(
        default=None,
        description="Only objects last modified at or after this time: a date (2024-05-01) or "
        "an ISO 8601 time, UTC unless it says otherwise.",
    )
    modified_before: Annotated[datetime | None, _TIME] = Field(
        default=None, description="Only objects last modified before this time."
    )
    source_classes: Annotated[
        tuple[str, ...],
        Opt(
            "source",
            flag="--source-class",
            metavar="CLASS",
            shown_default="any; originals already in GLACIER or DEEP_ARCHIVE are skipped as "
            "unreadable",
        ),
    ] = Field(default=(), description="Only objects in this storage class (repeatable).")
    tasks_per_thread: Annotated[int, Opt("cluster", flag=None)] = Field(
        default=2,
        ge=1,
        description="Scene tasks in flight per worker thread: the fan-out submits more only "
        "as tasks finish, so the client and the scheduler hold a bounded number whatever the "
        "archive.",
    )
    codec: Annotated[
        str, Opt("encoding", choices=CHOICES, case_sensitive=False, shown_default=True)
    ] = Field(default="auto", description=codec_help() + ".")
    quality: Annotated[
        int | Literal["auto"] | None,
        Opt(
            "encoding",
            metavar="auto|1-100",
            kind="quality",
            shown_default="auto; 75 with --min-ssim 0",
        ),
    ] = Field(
        default=None,
        description="JPEG/WEBP quality. auto: per scene, the lowest quality whose output meets "
        "--min-ssim (searched on sampled windows, confirmed on the whole output). A number: "
        "that quality, raised where a scene misses --min-ssim.",
    )
    min_ssim: Annotated[float, Opt("encoding", shown_default=True)] = Field(
        default=0.95,
        ge=0.0,
        le=1.0,
        description="SSIM every lossy output must reach, else it is re-encoded at a higher "
        "quality and finally losslessly; 0 turns the bar off.",
    )
    allow_webp: Annotated[bool, Opt("encoding")] = Field(
        default=False,
        description="Let --codec auto-lossy choose WEBP where it is smaller (GDAL >= 2.4 and "
        "most COG readers decode it; some older TIFF readers do not).",
    )
    max_error: Annotated[
        ErrorBound | None, Opt("encoding", metavar="E", shown_default="none: lossless")
    ] = Field(
        default=None,
        description="Bounded error for 16-bit and float scenes (LERC): the largest error "
        "allowed on any valid pixel, in data units (one value, or one per band: 2,2,1,1), or "
        "relative to each band's valid range (0.1%), or noise[:F]: per band from the sensor "
        "noise σ estimated on the scene's sample, the added error's RMS at most F·σ "
        "(default 0.3; checked on the output). Every valid pixel is checked; nodata and NaN "
        "stay exact; integers with E < 0.5 are lossless. 8-bit imagery keeps the SSIM bar.",
    )
    effort: Annotated[Effort, Opt("encoding", shown_default=True)] = Field(
        default="default",
        description="The lossless search: fast (ZSTD with the data type's predictor), default "
        "(ZSTD, DEFLATE, LERC and LZW at a few levels on the scene's sample, the smallest "
        "fast enough), max (every candidate).",
    )
    overviews: Annotated[Overviews, Opt("encoding", shown_default=True)] = Field(
        default="lossy",
        description="full: overviews in the full resolution's encoding; lossy: a lossless or "
        "bounded scene's overviews, which are derived data, in a lossy encoding (JPEG for "
        "8-bit greyscale/RGB, LERC within 0.5% of each band's range for the rest; dropped "
        "where they alone would leave the scene as it is); none: no overviews.",
    )
    min_saving: Annotated[float, Opt("encoding", shown_default=True)] = Field(
        default=0.0,
        ge=-100.0,
        lt=1.0,
        description="Replace a scene only if its COG is at least this fraction smaller than "
        "the original (0.1 = 10 %); otherwise skip it and leave it as it is. Negative values "
        "accept larger COGs (-1: up to twice the size).",
    )
    payback_months: Annotated[float, Opt("cost", metavar="MONTHS", shown_default=True)] = Field(
        default=12.0,
        ge=0,
        description="Move an original to --storage-class only if its monthly saving repays "
        "the move (the archive-class COPY, a HEAD, Glacier's 40 KiB per object, minimum "
        "sizes) within this many months; smaller originals stay where they are. 0: always "
        "archive.",
    )
    node_hour_price: Annotated[
        float | None, Opt("cost", metavar="USD", shown_default="compute not counted")
    ] = Field(
        default=None,
        ge=0,
        description="USD per worker-node hour, to count the cluster's compute in the report's "
        "one-time cost.",
    )
    price_region: Annotated[
        str | None,
        Opt("cost", metavar="REGION", shown_default="the run's region, else us-east-1"),
    ] = Field(
        default=None,
        description="Region whose S3 list prices the cost estimate uses "
        "(compactor/pricing/prices.json{regions}).",
    )
    report: Annotated[
        str | None,
        Opt("run", metavar="URL", shown_default="<dest>/_compactor/runs/<run-id>/"),
    ] = Field(default=None, description="Where report.json and report.html go.")
    endpoint_url: Annotated[
        str | None, Opt("s3", flag=None, env=("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"))
    ] = Field(
        default=None,
        description="S3 endpoint of an S3-compatible store (the service-specific variable "
        "wins over the general one).",
    )
    region: Annotated[
        str | None, Opt("s3", flag=None, env=("AWS_DEFAULT_REGION", "AWS_REGION"))
    ] = Field(default=None, description="AWS region (AWS_REGION wins over AWS_DEFAULT_REGION).")
    s3_max_attempts: int = Field(
        default=8,
        ge=1,
        description="Attempts per S3 request (boto/s3fs standard retry mode: exponential "
        "backoff with jitter).",
    )
    lease_ttl: Annotated[float, Opt("run", low=1, shown_default=True)] = Field(
        default=120.0,
        gt=0,
        description="Seconds a scene's lease lasts unrenewed: the longest a rerun waits for "
        "the scenes of a crashed run.",
    )
    multipart_copy_threshold: int = Field(
        default=5 * 1024**3,
        ge=5 * 1024**2,
        description="Archive copies of originals larger than this use a multipart copy (S3's "
        "single CopyObject stops at 5 GiB).",
    )
    multipart_copy_part_size: int = Field(
        default=512 * 1024**2, ge=5 * 1024**2, description="Part size of multipart copies."
    )
    chunk_threshold: Annotated[int, Opt("encoding", metavar="SIZE", shown_default=True)] = Field(
        default=256 * 1024**2,
        ge=0,
        description="Scenes with more raw pixel data than this (e.g. 256MiB) are split "
        "into chunk tasks encoded in parallel into one COG.",
    )
    # Limits checked from a scene's header before any pixel is read: a scene declaring more
    # fails with that reason (a 4 KB file can declare terabytes). The defaults take the
    # largest real scenes (orthomosaics of 100,000 x 100,000 pixels, hyperspectral cubes of
    # several hundred bands).
    max_pixels: Annotated[int, Opt("limits", shown_default=True)] = Field(
        default=10_000_000_000,
        ge=1,
        description="Refuse scenes whose header declares more pixels (width x height), before "
        "reading any.",
    )
    max_bands: Annotated[int, Opt("limits", shown_default=True)] = Field(
        default=1000, ge=1, description="Refuse scenes with more bands."
    )
    max_raw_size: Annotated[int, Opt("limits", metavar="SIZE", shown_default=True)] = Field(
        default=256 * 1024**3,
        ge=1,
        description="Refuse scenes with more raw pixel data (width x height x bands x bytes "
        "per sample), e.g. 64GiB.",
    )
    bigtiff: Annotated[Literal["auto", "yes"], Opt("encoding", shown_default=True)] = Field(
        default="auto",
        description="auto: BigTIFF only when an output may pass 4 GiB; yes: always.",
    )
    multipart_upload_threshold: int = Field(
        default=64 * 1024**2,
        ge=5 * 1024**2,
        description="Outputs larger than this are uploaded in parts.",
    )
    gdal_options: dict[str, str] = Field(
        default_factory=dict,
        description="Extra GDAL configuration options applied on every worker (override the "
        "defaults). No secrets here: they would travel in every task. GDAL reads its options "
        "from the workers' environment too: set secret ones there (a Kubernetes Secret on "
        "EKS).",
    )
    http_headers: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Headers sent with HTTP(S) reads of STAC assets, per host (as in "
        "stac.allow_hosts): {host: {header: value}}. Secret headers (Authorization, cookies, "
        "API keys) must name an environment variable of the workers, ${VAR}, never hold the "
        "value.",
    )
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    stac: StacSettings = Field(default_factory=StacSettings)

    @field_validator("include", "exclude", "source_classes", mode="before")
    @classmethod
    def _split_globs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part for part in value.replace(",", " ").split() if part)
        return value

    @field_validator(*SIZES, mode="before")
    @classmethod
    def _bytes(cls, value: Any) -> Any:
        if isinstance(value, str):
            from dask.utils import parse_bytes  # dask only when a size is written out

            return parse_bytes(value)
        return value

    @field_validator("quality", mode="before")
    @classmethod
    def _quality(cls, value: Any) -> Any:
        return None if value is None else parse_quality(value)

    @field_validator("max_error", mode="before")
    @classmethod
    def _max_error(cls, value: Any) -> Any:
        return parse_max_error(value)

    @field_validator("codec")
    @classmethod
    def _known_codec(cls, value: str) -> str:
        if value not in CHOICES:
            raise ValueError(f"unknown codec {value!r} (one of {', '.join(CHOICES)})")
        return value

    @field_validator("gdal_options")
    @classmethod
    def _no_secret_gdal_options(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            upper = name.upper()
            if upper.startswith(HTTP_AUTH_OPTIONS):
                raise ValueError(
                    f"{name}: GDAL never makes HTTP requests for compactor except to S3; "
                    "headers for STAC asset hosts go in http_headers: {host: {header: value}}"
                )
            if is_secret_name(name):
                raise ValueError(
                    f"{name} holds a secret: it would travel in every task and show in "
                    "reports; set it in the workers' environment instead (GDAL reads its "
                    "options from there), or use the AWS credential chain"
                )
        return value

    @field_validator("http_headers")
    @classmethod
    def _secret_headers_from_env(
        cls, value: dict[str, dict[str, str]]
    ) -> dict[str, dict[str, str]]:
        for host, headers in value.items():
            for name, text in headers.items():
                if is_secret_name(name) and not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", text):
                    raise ValueError(
                        f"http_headers: {name} for {host} is a secret; give the name of an "
                        f"environment variable set on the workers, e.g. ${{{_env_name(name)}}}"
                    )
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _no_credentials_in_endpoint(cls, value: str | None) -> str | None:
        if value and "@" in value.partition("://")[2].partition("/")[0]:
            raise ValueError(
                "endpoint_url must not hold credentials (user:password@): S3 takes them "
                "from the AWS credential chain"
            )
        return value

    @model_validator(mode="after")
    def _auto_needs_bar(self) -> Settings:
        if self.quality == "auto" and self.min_ssim == 0:
            raise ValueError(
                "quality auto searches for the lowest quality that meets min_ssim; "
                "it needs min_ssim > 0"
            )
        if self.max_error is not None and self.codec not in ("auto", "auto-lossy", "lerc"):
            raise ValueError(
                f"max_error bounds LERC's error; codec {self.codec} is "
                + ("lossy (held to min_ssim)" if self.codec in ("jpeg", "webp") else "lossless")
                + ": use codec auto or lerc with it"
            )
        return self

    @property
    def quality_mode(self) -> int | Literal["auto"] | None:
        """The quality scene tasks work to: ``"auto"``, a fixed quality, or ``None`` (75)."""
        if self.quality is None:
            return "auto" if self.min_ssim > 0 else None
        return self.quality

    @field_validator("storage_class", "output_storage_class", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("price_region", mode="before")
    @classmethod
    def _lower_region(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @field_validator("source_classes")
    @classmethod
    def _upper_classes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.upper() for v in value)

    @field_validator("codec", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @property
    def encoding(self) -> Encoding:
        """What decides how a scene is encoded and whether its output is kept."""
        return Encoding(
            codec=self.codec, quality=self.quality_mode, min_ssim=self.min_ssim,
            allow_webp=self.allow_webp, min_saving=self.min_saving,
            chunk_threshold=self.chunk_threshold, bigtiff=self.bigtiff,
            max_error=self.max_error, effort=self.effort, overviews=self.overviews,
        )  # fmt: skip

    @property
    def limits(self) -> Limits:
        return Limits(
            max_pixels=self.max_pixels, max_bands=self.max_bands, max_raw_size=self.max_raw_size
        )

    @property
    def transfers(self) -> Transfers:
        return Transfers(
            multipart_copy_threshold=self.multipart_copy_threshold,
            multipart_copy_part_size=self.multipart_copy_part_size,
            multipart_upload_threshold=self.multipart_upload_threshold,
            output_storage_class=self.output_storage_class,
            sse_kms_key=self.sse_kms_key,
            keep_versions=self.keep_versions,
        )

    def redacted(self) -> dict[str, Any]:
        """Settings as recorded in reports and logs: plain data with every secret masked
        (:func:`compactor.redact.redact`: secret names, URL passwords)."""
        redacted: dict[str, Any] = redact(self.model_dump(mode="json"))
        return redacted

    def secrets(self) -> set[str]:
        """Secret values anywhere in the settings, for masking them by value in logs."""
        return secret_values(self.model_dump(mode="json"))


def _env_name(header: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", header.upper()).strip("_")
