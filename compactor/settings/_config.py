"""Settings, and the one place they are resolved.

Precedence, lowest first: built-in defaults < environment (``COMPACTOR_*`` and
the standard ``AWS_*`` variables) < config file (YAML, ``--config``) < explicit
arguments (CLI flags or keyword arguments of the Python API). Arguments whose
value is ``None`` do not override anything, so a CLI flag that was not given
never masks a config-file value.

Nothing here reads the environment at import time: :func:`resolve_settings`
takes it as an argument (``os.environ`` by default).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from dask.utils import parse_bytes
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..codecs import CHOICES, ErrorBound, parse_max_error, parse_quality
from ..errors import ConfigError
from ..keys import key_problem
from ..redact import is_secret_name, redact, secret_values

StorageClass = Literal[
    "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "STANDARD_IA", "INTELLIGENT_TIERING", "STANDARD"
]
#: Classes outputs may be written in (readable at once).
OutputClass = Literal["STANDARD", "STANDARD_IA", "INTELLIGENT_TIERING", "GLACIER_IR"]
ClusterKind = Literal["local", "address", "kubernetes"]

#: Default ``--include`` globs (matched case-insensitively against the key's file name).
#: The GDAL drivers sources are opened with (:data:`compactor.gdal._info.SOURCE_DRIVERS`)
#: and the file extensions each reads: GDAL's own (``DMD_EXTENSIONS``: tif tiff, jp2 j2k,
#: ntf, img) and the others their files are found under (GeoTIFF's .gtif; JPEG 2000's .jpx,
#: .jpf, .jpc, .j2c; NITF's .nitf and NATO's .nsf).
SOURCE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "GTiff": ("tif", "tiff", "gtif"),
    "JP2OpenJPEG": ("jp2", "j2k", "jpx", "jpf", "jpc", "j2c"),
    "NITF": ("ntf", "nitf", "nsf"),
    "HFA": ("img",),
}

#: What is listed by default: every extension :data:`SOURCE_EXTENSIONS` names.
DEFAULT_INCLUDE: tuple[str, ...] = tuple(
    f"*.{ext}" for exts in SOURCE_EXTENSIONS.values() for ext in exts
)

#: Folder under the destination holding compactor's own records (state, runs).
META_PREFIX = "_compactor"


class WorkerRange(BaseModel):
    """Adaptive worker count: between ``min`` and ``max`` workers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: int = Field(default=0, ge=0)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> WorkerRange:
        if self.min > self.max:
            raise ValueError("workers.min must not exceed workers.max")
        return self


class ClusterSettings(BaseModel):
    """Where the Dask work runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClusterKind = "local"
    #: Scheduler address for ``kind: address`` (``--scheduler``).
    address: str | None = None
    #: Number of workers (``--workers``), or ``{min, max}`` for an adaptive Kubernetes
    #: cluster; default: one per core locally.
    workers: int | WorkerRange | None = None
    threads_per_worker: int = Field(default=1, ge=1)
    #: Memory limit per worker, e.g. ``"2GiB"`` (``--worker-memory``); default: Dask's share.
    #: On Kubernetes also the worker pods' memory request and limit.
    worker_memory: str | None = None
    # --- kind: kubernetes (an ephemeral DaskCluster through the dask-kubernetes operator)
    #: Container image of the scheduler and workers (the same as the runner's).
    image: str | None = None
    namespace: str | None = None
    #: Service account of the scheduler and worker pods (IRSA gives them AWS access).
    service_account: str | None = None
    #: CPU request and limit of a worker pod, e.g. ``"2"`` or ``"1500m"``.
    worker_cpu: str | None = None
    #: Size limit of a worker pod's scratch volume (the ``emptyDir`` at ``/tmp``: ``TMPDIR``,
    #: Dask's local directory and its spill), a Kubernetes quantity, e.g. ``"20Gi"``; the
    #: kubelet evicts a worker that writes more (its tasks rerun elsewhere) instead of letting
    #: it fill the node's disk. ``null``: no limit.
    worker_scratch: str | None = "20Gi"
    #: Node selector and tolerations of the worker pods (e.g. spot nodes).
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    #: Node selector of the scheduler pod (keep it on on-demand nodes).
    scheduler_node_selector: dict[str, str] = Field(default_factory=dict)
    #: Extra environment of the scheduler and worker pods: plain settings only. The pod
    #: spec is printed by ``compactor k8s-spec`` and stored in the cluster, so a variable
    #: whose name marks a secret is refused (use IRSA, or ``secret_env``).
    env: dict[str, str] = Field(default_factory=dict)
    #: Environment of the scheduler and worker pods taken from Kubernetes Secrets:
    #: ``{VARIABLE: "<secret name>/<key>"}``, rendered as ``valueFrom.secretKeyRef`` (the
    #: value itself never appears in the spec).
    secret_env: dict[str, str] = Field(default_factory=dict)
    #: Labels of the DaskCluster and of its scheduler and worker pods (the Helm chart sets
    #: the release's, which its NetworkPolicy selects on).
    labels: dict[str, str] = Field(default_factory=dict)
    #: Prefix of the DaskCluster's name.
    name: str = Field(default="compactor", pattern=r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")

    @field_validator("worker_cpu", mode="before")
    @classmethod
    def _cpu(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("worker_scratch", mode="before")
    @classmethod
    def _scratch(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not re.fullmatch(
            r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?", value.strip()
        ):
            raise ValueError(
                f"worker_scratch {value!r} is not a Kubernetes quantity (e.g. 20Gi, 500Mi)"
            )
        return value.strip() if isinstance(value, str) else value

    @field_validator("env")
    @classmethod
    def _no_secrets_in_env(cls, value: dict[str, str]) -> dict[str, str]:

        secret = sorted(name for name in value if is_secret_name(name))
        if secret:
            raise ValueError(
                f"{', '.join(secret)} looks like a secret and cannot go into cluster.env "
                "(pod specs are printed and stored in the cluster as plain text): give the "
                "pods AWS access through IRSA (the service account's IAM role), and any other "
                "secret through a Kubernetes Secret with cluster.secret_env "
                "({NAME: <secret name>/<key>})"
            )
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret_refs(cls, value: dict[str, str]) -> dict[str, str]:
        ref = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/[-._a-zA-Z0-9]{1,253}$")
        for name, target in value.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if not isinstance(target, str) or not ref.fullmatch(target):
                raise ValueError(
                    f"cluster.secret_env.{name} must be '<secret name>/<key>' "
                    "(a Kubernetes Secret in the cluster's namespace and one of its keys)"
                )
        return value

    @property
    def fixed_workers(self) -> int | None:
        """The worker count when it is fixed (``None`` when adaptive or unset)."""
        return self.workers if isinstance(self.workers, int) else None


class StacSettings(BaseModel):
    """A STAC API search as the source of scenes (``--stac`` and its options)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Root URL of the STAC API (``--stac``).
    url: str | None = None
    collections: tuple[str, ...] = ()
    #: minx, miny, maxx, maxy in WGS84 (``--bbox=a,b,c,d``).
    bbox: tuple[float, float, float, float] | None = None
    #: A GeoJSON geometry (or Feature) file the items must intersect.
    intersects: str | None = None
    #: RFC 3339 instant or interval, e.g. ``2020-01-01/2021-12-31`` (``--datetime``).
    datetime: str | None = None
    #: Query extension expressions, e.g. ``eo:cloud_cover<10`` (``--query``, repeatable).
    query: tuple[str, ...] = ()
    #: A CQL2-JSON filter: the JSON text, or ``@file.json``.
    filter: str | None = None
    max_items: int | None = Field(default=None, ge=1)
    #: Items per page the API is asked for (the search follows ``next`` links).
    limit: int = Field(default=100, ge=1, le=10000)
    #: Asset keys to compact; default: the data assets that are GeoTIFF, COG or JPEG 2000.
    assets: tuple[str, ...] = ()
    #: Write the updated items back through the Transactions extension.
    update: bool = False
    #: HTTP(S) hosts asset hrefs may be read from (``host``, ``host:port``, ``*.domain``),
    #: besides the API's own host (``--allow-host``, repeatable). Never followed: redirects.
    allow_hosts: tuple[str, ...] = ()
    #: Buckets (``bucket`` or ``bucket/prefix/``) whose ``s3://`` assets may be archived and
    #: deleted (``--allow-bucket``, repeatable); assets elsewhere are compacted but left in
    #: place. Default: the buckets the searched collections declare in ``storage:schemes``.
    allow_buckets: tuple[str, ...] = ()

    @field_validator("allow_buckets", mode="after")
    @classmethod
    def _buckets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for raw in value:
            bucket, _, prefix = raw.removeprefix("s3://").partition("/")
            if not bucket or (prefix and key_problem(prefix)):
                raise ValueError(f"allow_buckets: {raw!r} is not bucket or bucket/prefix/")
            out.append(f"{bucket}/{prefix}" if prefix else bucket)
        return tuple(out)

    @field_validator("collections", "assets", "query", "allow_hosts", "allow_buckets",
                     mode="before")  # fmt: skip
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part for part in value.split(",") if part) if value else ()
        return value

    @field_validator("bbox", mode="before")
    @classmethod
    def _bbox(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p for p in value.replace(" ", "").split(",") if p]
            if len(parts) != 4:
                raise ValueError("bbox takes four numbers: minx,miny,maxx,maxy")
            return tuple(float(p) for p in parts)
        return value


Effort = Literal["fast", "default", "max"]
Overviews = Literal["full", "lossy", "none"]


class Encoding(BaseModel):
    """How scenes are encoded (a view of :class:`Settings`: its defaults are the settings')."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    codec: str
    #: ``"auto"``, a fixed quality, or ``None`` (the codec's default).
    quality: int | Literal["auto"] | None
    min_ssim: float
    allow_webp: bool
    min_saving: float
    chunk_threshold: int
    bigtiff: Literal["auto", "yes"]
    max_error: ErrorBound | None = None
    effort: Effort = "default"
    overviews: Overviews = "lossy"


class Limits(BaseModel):
    """What a scene's header may declare (a view of :class:`Settings`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_pixels: int
    max_bands: int
    max_raw_size: int


class Transfers(BaseModel):
    """How objects are written, copied and deleted: multipart thresholds and part sizes,
    the outputs' class and encryption, old versions (a view of :class:`Settings`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    multipart_copy_threshold: int
    multipart_copy_part_size: int
    multipart_upload_threshold: int
    output_storage_class: str = "STANDARD"
    sse_kms_key: str | None = None
    keep_versions: bool = False


class Settings(BaseModel):
    """Every option of a run. Frozen: shipped to workers as data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str | None = None
    #: An S3 Inventory report listing the source instead of a listing:
    #: ``s3://bucket/.../manifest.json`` (CSV, ORC or Parquet). ``source`` is required with
    #: it: the inventoried bucket (and a prefix in it), which the manifest must name.
    inventory: str | None = None
    dest: str | None = None
    #: ``s3://bucket/prefix/``, ``in-place``, a local directory, or ``None`` (leave originals).
    archive: str | None = None
    storage_class: StorageClass = "GLACIER"
    #: Storage class of the outputs.
    output_storage_class: OutputClass = "STANDARD"
    #: In a versioned source bucket, leave the archived version as a noncurrent version
    #: (a delete marker hides it) instead of deleting exactly that version.
    keep_versions: bool = False
    #: ``requester``: the source bucket is requester-pays (acknowledged on every request).
    request_payer: Literal["requester"] | None = None
    #: A KMS key (id or ARN) to encrypt outputs and archive copies with (SSE-KMS);
    #: default: outputs take the bucket's default, archive copies keep the original's.
    sse_kms_key: str | None = None
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = ()
    #: Filters on what the listing says of each object: size in bytes (units accepted),
    #: last-modified window (``modified_since`` <= mtime < ``modified_before``; a date or an
    #: ISO 8601 time, UTC unless it says otherwise), storage classes (default: any).
    min_size: int | None = Field(default=None, ge=0)
    max_size: int | None = Field(default=None, ge=0)
    modified_since: datetime | None = None
    modified_before: datetime | None = None
    source_classes: tuple[str, ...] = ()
    #: Scene tasks in flight per worker thread: the fan-out submits more only as tasks
    #: finish, so the client and the scheduler hold a bounded number whatever the archive.
    tasks_per_thread: int = Field(default=2, ge=1)
    #: A codec of :data:`compactor.codecs.CODECS`, or a policy (``auto``, ``auto-lossy``).
    codec: str = "auto"
    #: Lossy quality: 1-100 fixed, or ``"auto"``: per scene, the lowest that meets
    #: ``min_ssim`` (:mod:`compactor.encode._quality`). ``None``: auto while an SSIM bar is set,
    #: else 75.
    quality: int | Literal["auto"] | None = None
    #: SSIM bar for lossy outputs; 0 turns it off.
    min_ssim: float = Field(default=0.95, ge=0.0, le=1.0)
    #: Let ``codec: auto-lossy`` choose WEBP where it is smaller at the bar (some TIFF
    #: readers cannot decode WEBP tiles).
    allow_webp: bool = False
    #: Bounded error for 16-bit and float scenes (LERC): the largest error allowed on any
    #: valid pixel, in data units (one value, or one per band: ``2,2,1,1``), or relative to
    #: each band's valid range (``0.1%``). ``None``: lossless. 8-bit imagery keeps the SSIM
    #: bar.
    max_error: ErrorBound | None = None
    #: How hard the lossless search works: ``fast`` (ZSTD with the dtype's predictor, no
    #: search), ``default`` (a few codecs and levels on the sample, none slower than
    #: :data:`~compactor.encode._lossless.EFFORT_FLOOR`), ``max`` (every candidate).
    effort: Effort = "default"
    #: Overviews: ``full`` (the full resolution's encoding), ``lossy`` (a lossy encoding:
    #: overviews are derived data; dropped where they alone would leave a scene as it is),
    #: ``none``. docs/data-types.md tells why ``lossy`` is the default.
    overviews: Overviews = "lossy"
    #: A scene is only replaced when its COG is at least this fraction smaller than the
    #: original as stored; otherwise it is skipped and left as it is. 0: any saving;
    #: negative values accept larger outputs (-1: up to twice the size).
    min_saving: float = Field(default=0.0, ge=-100.0, lt=1.0)
    #: An original is moved to ``storage_class`` only if the monthly saving repays what the
    #: move costs (the archive-class COPY, a HEAD, the per-object overhead) within this many
    #: months; smaller ones stay where they are. 0: always archive.
    payback_months: float = Field(default=12.0, ge=0)
    #: USD per worker-node hour, to count the cluster's compute in the run's cost
    #: (``None``: compute is not counted).
    node_hour_price: float | None = Field(default=None, ge=0)
    #: Region whose S3 prices the cost uses (``compactor/report/prices.json``); default:
    #: ``region``, else us-east-1.
    price_region: str | None = None
    #: Where the run report goes; default ``<dest>/_compactor/runs/<run-id>/``.
    report: str | None = None
    #: S3 endpoint of an S3-compatible store (from ``AWS_ENDPOINT_URL[_S3]``).
    endpoint_url: str | None = None
    region: str | None = None
    #: Attempts per S3 request (boto/s3fs standard retry mode: exponential backoff with jitter).
    s3_max_attempts: int = Field(default=8, ge=1)
    #: Seconds a scene's lease lasts unrenewed; the longest a rerun waits for a crashed run.
    lease_ttl: float = Field(default=120.0, gt=0)
    #: Archive copies of originals larger than this use a multipart copy (S3's single
    #: CopyObject stops at 5 GiB). Sizes accept units: "5GiB", "512MiB".
    multipart_copy_threshold: int = Field(default=5 * 1024**3, ge=5 * 1024**2)
    multipart_copy_part_size: int = Field(default=512 * 1024**2, ge=5 * 1024**2)
    #: Scenes whose raw pixels exceed this take the chunked path (many tasks, one COG).
    chunk_threshold: int = Field(default=256 * 1024**2, ge=0)
    #: Limits checked from a scene's header before any pixel is read: a scene declaring
    #: more fails with that reason (a 4 KB file can declare terabytes). The defaults take
    #: the largest real scenes (orthomosaics of 100,000 x 100,000 pixels, hyperspectral
    #: cubes of several hundred bands).
    max_pixels: int = Field(default=10_000_000_000, ge=1)
    max_bands: int = Field(default=1000, ge=1)
    max_raw_size: int = Field(default=256 * 1024**3, ge=1)
    #: "auto": BigTIFF only where an output may pass 4 GiB (decided up front); "yes": always.
    bigtiff: Literal["auto", "yes"] = "auto"
    #: Outputs larger than this are uploaded in parts.
    multipart_upload_threshold: int = Field(default=64 * 1024**2, ge=5 * 1024**2)
    #: Extra GDAL configuration options applied on every worker (override the defaults).
    #: No secrets here: they would travel in every task. GDAL reads its options from the
    #: workers' environment too: set secret ones there (a Kubernetes Secret on EKS).
    gdal_options: dict[str, str] = Field(default_factory=dict)
    #: Headers sent with HTTP(S) reads of STAC assets, per host (as in ``allow_hosts``):
    #: ``{host: {header: value}}``. Secret headers (Authorization, cookies, API keys) must
    #: name an environment variable of the workers, ``${VAR}``, never hold the value.
    http_headers: dict[str, dict[str, str]] = Field(default_factory=dict)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    stac: StacSettings = Field(default_factory=StacSettings)

    @field_validator("include", "exclude", "source_classes", mode="before")
    @classmethod
    def _split_globs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part for part in value.replace(",", " ").split() if part)
        return value

    @field_validator(
        "multipart_copy_threshold",
        "multipart_copy_part_size",
        "multipart_upload_threshold",
        "chunk_threshold",
        "max_raw_size",
        "min_size",
        "max_size",
        mode="before",
    )
    @classmethod
    def _bytes(cls, value: Any) -> Any:
        if isinstance(value, str):
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


#: GDAL options that would send credentials with HTTP requests (prefixes).
HTTP_AUTH_OPTIONS = (
    "GDAL_HTTP_HEADER", "GDAL_HTTP_USERPWD", "GDAL_HTTP_AUTH", "GDAL_HTTP_BEARER",
    "GDAL_HTTP_COOKIE", "GDAL_HTTP_NETRC", "GDAL_HTTP_PROXYUSERPWD",
)  # fmt: skip


def _env_name(header: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", header.upper()).strip("_")


#: Environment variable -> settings path. ``AWS_*`` are the standard SDK variables.
ENV_VARS: dict[str, str] = {
    "COMPACTOR_SOURCE": "source",
    "COMPACTOR_INVENTORY": "inventory",
    "COMPACTOR_DEST": "dest",
    "COMPACTOR_ARCHIVE": "archive",
    "COMPACTOR_STORAGE_CLASS": "storage_class",
    "COMPACTOR_OUTPUT_STORAGE_CLASS": "output_storage_class",
    "COMPACTOR_KEEP_VERSIONS": "keep_versions",
    "COMPACTOR_REQUEST_PAYER": "request_payer",
    "COMPACTOR_SSE_KMS_KEY": "sse_kms_key",
    "COMPACTOR_INCLUDE": "include",
    "COMPACTOR_EXCLUDE": "exclude",
    "COMPACTOR_MIN_SIZE": "min_size",
    "COMPACTOR_MAX_SIZE": "max_size",
    "COMPACTOR_MODIFIED_SINCE": "modified_since",
    "COMPACTOR_MODIFIED_BEFORE": "modified_before",
    "COMPACTOR_SOURCE_CLASS": "source_classes",
    "COMPACTOR_TASKS_PER_THREAD": "tasks_per_thread",
    "COMPACTOR_CODEC": "codec",
    "COMPACTOR_QUALITY": "quality",
    "COMPACTOR_MIN_SSIM": "min_ssim",
    "COMPACTOR_ALLOW_WEBP": "allow_webp",
    "COMPACTOR_MIN_SAVING": "min_saving",
    "COMPACTOR_MAX_ERROR": "max_error",
    "COMPACTOR_EFFORT": "effort",
    "COMPACTOR_OVERVIEWS": "overviews",
    "COMPACTOR_PAYBACK_MONTHS": "payback_months",
    "COMPACTOR_NODE_HOUR_PRICE": "node_hour_price",
    "COMPACTOR_PRICE_REGION": "price_region",
    "COMPACTOR_REPORT": "report",
    "COMPACTOR_LEASE_TTL": "lease_ttl",
    "COMPACTOR_CHUNK_THRESHOLD": "chunk_threshold",
    "COMPACTOR_MAX_PIXELS": "max_pixels",
    "COMPACTOR_MAX_BANDS": "max_bands",
    "COMPACTOR_MAX_RAW_SIZE": "max_raw_size",
    "COMPACTOR_BIGTIFF": "bigtiff",
    "COMPACTOR_SCHEDULER": "cluster.address",
    "COMPACTOR_WORKERS": "cluster.workers",
    "COMPACTOR_WORKER_MEMORY": "cluster.worker_memory",
    "COMPACTOR_STAC": "stac.url",
    "COMPACTOR_STAC_COLLECTION": "stac.collections",
    # S3-compatible stores: the service-specific variable wins over the general one.
    "AWS_ENDPOINT_URL": "endpoint_url",
    "AWS_ENDPOINT_URL_S3": "endpoint_url",
    "AWS_REGION": "region",
}


def _set_path(target: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if rest:
        _set_path(target.setdefault(head, {}), rest, value)
    else:
        target[head] = value


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        values["region"] = region
    for var, path in ENV_VARS.items():
        if var in ("AWS_REGION",):
            continue
        raw = environ.get(var)
        if raw:
            _set_path(values, path, raw)
    if environ.get("COMPACTOR_SCHEDULER"):
        _set_path(values, "cluster.kind", "address")
    return values


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into plain data (keys as in :class:`Settings`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return data


def _normalise_cluster(data: dict[str, Any]) -> dict[str, Any]:
    """``cluster.address`` implies ``kind: address`` unless a kind was given with it."""
    cluster = data.get("cluster")
    if isinstance(cluster, dict) and cluster.get("address") and "kind" not in cluster:
        data = dict(data)
        data["cluster"] = {**cluster, "kind": "address"}
    return data


#: Flat argument names (CLI flags, keyword arguments) of the STAC search settings.
STAC_FLAGS: dict[str, str] = {
    "stac": "url",
    "collection": "collections",
    "collections": "collections",
    "bbox": "bbox",
    "intersects": "intersects",
    "datetime": "datetime",
    "query": "query",
    "filter": "filter",
    "max_items": "max_items",
    "asset": "assets",
    "assets": "assets",
    "stac_update": "update",
    "allow_host": "allow_hosts",
    "allow_hosts": "allow_hosts",
    "allow_bucket": "allow_buckets",
    "allow_buckets": "allow_buckets",
}


def resolve_settings(
    arguments: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings: defaults < environment < config file < arguments.

    ``arguments`` uses :class:`Settings` field names; nested cluster options may be
    given flat as ``scheduler``, ``workers`` and ``worker_memory``, STAC search options as
    ``stac`` (the API URL), ``collection``, ``bbox``, ``datetime``, ... (:data:`STAC_FLAGS`).
    """
    env = os.environ if environ is None else environ
    layers: list[dict[str, Any]] = [_from_env(env)]
    if config_file is not None:
        layers.append(_normalise_cluster(load_config_file(config_file)))
    args = dict(arguments or {})
    cluster_args: dict[str, Any] = dict(args.pop("cluster", None) or {})
    for flat, nested in (
        ("cluster_kind", "kind"),
        ("scheduler", "address"),
        ("workers", "workers"),
        ("worker_memory", "worker_memory"),
    ):
        if args.get(flat) is not None:
            cluster_args[nested] = args[flat]
        args.pop(flat, None)
    if cluster_args.get("address"):
        cluster_args.setdefault("kind", "address")
    args["cluster"] = cluster_args
    stac_args: dict[str, Any] = {}
    if isinstance(args.get("stac"), Mapping):
        stac_args.update(args.pop("stac"))
    for flat, nested in STAC_FLAGS.items():
        if args.get(flat) not in (None, ()):
            stac_args[nested] = args[flat]
        args.pop(flat, None)
    args["stac"] = stac_args
    layers.append(args)

    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _deep_merge(merged, layer)
    try:
        return Settings.model_validate(merged)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from err
