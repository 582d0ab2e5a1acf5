"""Options and helpers shared by subcommands."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, get_args

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..codecs import CHOICES, codec_help, parse_quality
from ..errors import CompactorError, ConfigError, DiscoveryError
from ..pricing import known_regions
from ..records import SceneResult
from ..redact import RedactingFilter
from ..settings import OutputClass, Settings, StorageClass, resolve_settings

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes: 0 nothing failed, 1 a scene failed, 2 usage error.
EXIT_FAILED_SCENES = 1
EXIT_USAGE = 2

# stdout prints data (keys, URLs, reasons): never interpret it as Rich markup.
stdout = Console(highlight=False, soft_wrap=True, markup=False)
stderr = Console(stderr=True, highlight=False)


class QualityType(click.ParamType):  # type: ignore[type-arg]
    """``auto`` or a quality from 1 to 100 (:func:`compactor.codecs.parse_quality`)."""

    name = "quality"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        try:
            return parse_quality(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


QUALITY = QualityType()
STORAGE_CLASSES = list(get_args(StorageClass))
OUTPUT_CLASSES = list(get_args(OutputClass))


def default(name: str) -> str:
    """``[default: ...]`` for a setting, read from :class:`Settings` (the one place
    defaults are declared); sizes in binary units."""
    value = Settings.model_fields[name].default
    if isinstance(value, tuple):
        value = " ".join(value)
    elif name in _SIZES:
        value = next(f"{value // size}{unit}" for unit, size in _UNITS if value % size == 0)
    return f"  [default: {value}]"


_SIZES = {"chunk_threshold", "max_raw_size", "multipart_copy_threshold",
          "multipart_upload_threshold"}  # fmt: skip
_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024), ("B", 1))


def selection_options(func: F) -> F:
    """Options that say which scenes and how to encode them (run and plan)."""
    options = [
        click.option(
            "--source",
            metavar="URL",
            help="Where the originals are: s3://bucket/prefix/ or a local directory (recursive). "
            "With --inventory: the inventoried bucket (and a prefix in it), required.",
        ),
        click.option(
            "--inventory",
            metavar="URL",
            help="List the source from an S3 Inventory report instead of listing it: "
            "s3://bucket/.../manifest.json (CSV, ORC or Parquet); how archives of millions "
            "of objects are backfilled. Needs --source s3://BUCKET/[PREFIX/]: the report "
            "must be the inventory of that bucket (its sourceBucket, and S3 Inventory's "
            "<prefix>/BUCKET/<configuration>/ layout), and only objects under --source "
            "are taken. The manifest never chooses the bucket.",
        ),
        click.option(
            "--dest",
            metavar="URL",
            help="Where the COGs go, at the same relative keys with extension .tif.",
        ),
        click.option(
            "--archive",
            metavar="URL|in-place",
            help="Move originals here after their COG is verified: an s3:// prefix (copy in "
            "--storage-class, verify, delete the source), 'in-place' (change the storage "
            "class where they are), or a directory for local sources. Default: leave them.",
        ),
        click.option(
            "--storage-class",
            type=click.Choice(STORAGE_CLASSES, case_sensitive=False),
            help="Storage class of archived originals." + default("storage_class"),
        ),
        click.option(
            "--output-storage-class",
            type=click.Choice(OUTPUT_CLASSES, case_sensitive=False),
            help="Storage class of the COGs." + default("output_storage_class"),
        ),
        click.option(
            "--keep-versions",
            is_flag=True,
            default=None,
            help="In a versioned source bucket, leave each archived original as a noncurrent "
            "version (still billed; the report names each one) instead of deleting exactly "
            "that version.",
        ),
        click.option(
            "--request-payer",
            type=click.Choice(["requester"]),
            help="The source bucket is requester-pays: acknowledge that this account pays "
            "for its requests and transfer.",
        ),
        click.option(
            "--sse-kms-key",
            metavar="KEY",
            help="Encrypt the COGs and the archive copies with this KMS key (id or ARN).  "
            "[default: COGs take the bucket's default, archive copies keep the original's]",
        ),
        click.option(
            "--include",
            multiple=True,
            metavar="GLOB",
            help="File-name globs to take, case-insensitive (repeatable)." + default("include"),
        ),
        click.option(
            "--exclude", multiple=True, metavar="GLOB", help="Globs to leave out (repeatable)."
        ),
        click.option(
            "--modified-since",
            metavar="TIME",
            help="Only objects last modified at or after this time: a date (2024-05-01) or an "
            "ISO 8601 time, UTC unless it says otherwise.",
        ),
        click.option(
            "--modified-before",
            metavar="TIME",
            help="Only objects last modified before this time.",
        ),
        click.option("--min-size", metavar="SIZE", help="Only objects of at least this size."),
        click.option("--max-size", metavar="SIZE", help="Only objects of at most this size."),
        click.option(
            "--source-class",
            "source_classes",
            multiple=True,
            metavar="CLASS",
            help="Only objects in this storage class (repeatable).  [default: any; originals "
            "already in GLACIER or DEEP_ARCHIVE are skipped as unreadable]",
        ),
        click.option(
            "--codec",
            type=click.Choice(CHOICES, case_sensitive=False),
            help=codec_help() + "." + default("codec"),
        ),
        click.option(
            "--quality",
            type=QUALITY,
            metavar="auto|1-100",
            help="JPEG/WEBP quality. auto: per scene, the lowest quality whose output meets "
            "--min-ssim (searched on sampled windows, confirmed on the whole output). A number: "
            "that quality, raised where a scene misses --min-ssim.  "
            "[default: auto; 75 with --min-ssim 0]",
        ),
        click.option(
            "--min-ssim",
            type=click.FloatRange(0, 1),
            help="SSIM every lossy output must reach, else it is re-encoded at a higher quality "
            "and finally losslessly; 0 turns the bar off." + default("min_ssim"),
        ),
        click.option(
            "--allow-webp",
            is_flag=True,
            default=None,
            help="Let --codec auto-lossy choose WEBP where it is smaller (GDAL >= 2.4 and most "
            "COG readers decode it; some older TIFF readers do not).",
        ),
        click.option(
            "--max-error",
            metavar="E",
            help="Bounded error for 16-bit and float scenes (LERC): the largest error allowed "
            "on any valid pixel, in data units (one value, or one per band: 2,2,1,1), or "
            "relative to each band's valid range (0.1%). Every valid pixel is checked; nodata "
            "and NaN stay exact; integers with E < 0.5 are lossless. 8-bit imagery keeps the "
            "SSIM bar.  [default: none: lossless]",
        ),
        click.option(
            "--effort",
            type=click.Choice(["fast", "default", "max"]),
            help="The lossless search: fast (ZSTD with the data type's predictor), default "
            "(ZSTD, DEFLATE, LERC and LZW at a few levels on the scene's sample, the smallest "
            "fast enough), max (every candidate)." + default("effort"),
        ),
        click.option(
            "--overviews",
            type=click.Choice(["full", "lossy", "none"]),
            help="full: overviews in the full resolution's encoding; lossy: a lossless or "
            "bounded scene's overviews, which are derived data, in a lossy encoding (JPEG for "
            "8-bit greyscale/RGB, LERC within 0.5% of each band's range for the rest; dropped "
            "where they alone would leave the scene as it is); none: no overviews."
            + default("overviews"),
        ),
        click.option(
            "--min-saving",
            type=click.FloatRange(-100, 1, max_open=True),
            help="Replace a scene only if its COG is at least this fraction smaller than the "
            "original (0.1 = 10 %); otherwise skip it and leave it as it is. Negative values "
            "accept larger COGs (-1: up to twice the size)." + default("min_saving"),
        ),
        click.option(
            "--payback-months",
            type=click.FloatRange(0),
            metavar="MONTHS",
            help="Move an original to --storage-class only if its monthly saving repays the "
            "move (the archive-class COPY, a HEAD, Glacier's 40 KiB per object, minimum "
            "sizes) within this many months; smaller originals stay where they are. 0: "
            "always archive." + default("payback_months"),
        ),
        click.option(
            "--node-hour-price",
            type=click.FloatRange(0),
            metavar="USD",
            help="USD per worker-node hour, to count the cluster's compute in the report's "
            "one-time cost.  [default: compute not counted]",
        ),
        click.option(
            "--price-region",
            metavar="REGION",
            help="Region whose S3 list prices the cost estimate uses (compactor/report/"
            f"prices.json: {', '.join(known_regions())}).  [default: the run's region, "
            "else us-east-1]",
        ),
        click.option(
            "--chunk-threshold",
            metavar="SIZE",
            help="Scenes with more raw pixel data than this (e.g. 256MiB) are split into chunk "
            "tasks encoded in parallel into one COG." + default("chunk_threshold"),
        ),
        click.option(
            "--max-pixels",
            type=click.IntRange(1),
            help="Refuse scenes whose header declares more pixels (width x height), before "
            "reading any." + default("max_pixels"),
        ),
        click.option(
            "--max-bands",
            type=click.IntRange(1),
            help="Refuse scenes with more bands." + default("max_bands"),
        ),
        click.option(
            "--max-raw-size",
            metavar="SIZE",
            help="Refuse scenes with more raw pixel data (width x height x bands x bytes per "
            "sample), e.g. 64GiB." + default("max_raw_size"),
        ),
        click.option(
            "--bigtiff",
            type=click.Choice(["auto", "yes"]),
            help="auto: BigTIFF only when an output may pass 4 GiB; yes: always."
            + default("bigtiff"),
        ),
        click.option(
            "--workers",
            type=click.IntRange(1),
            help="Worker processes of the local Dask cluster.  [default: one per core]",
        ),
        click.option(
            "--worker-memory",
            metavar="SIZE",
            help="Memory limit per local worker, e.g. 2GiB.",
        ),
        click.option(
            "--cluster",
            "cluster_kind",
            type=click.Choice(["local", "address", "kubernetes"]),
            help="Where the Dask work runs: a LocalCluster on this machine, an existing "
            "scheduler (--scheduler), or an ephemeral DaskCluster on Kubernetes through the "
            "dask-kubernetes operator (image, workers, resources from the config file's "
            "cluster: section; see compactor k8s-spec).  [default: local]",
        ),
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            help="Use an existing Dask scheduler (tcp://host:8786) instead of a local cluster.",
        ),
    ]
    for option in reversed(options + stac_options()):
        func = option(func)
    return func


def stac_options() -> list[Callable[[F], F]]:
    """A STAC API search instead of --source (run and plan)."""
    return [
        click.option(
            "--stac",
            metavar="URL",
            help="Take the scenes from a STAC API search instead of --source: the API's root "
            "URL. Outputs go to <dest>/<collection>/<item id>/<asset key>.tif and the "
            "updated items next to the report.",
        ),
        click.option(
            "--collection",
            metavar="ID",
            multiple=True,
            help="STAC collection to search (repeatable; required with --stac).",
        ),
        click.option(
            "--bbox",
            metavar="MINX,MINY,MAXX,MAXY",
            help="Items intersecting this WGS84 box (--bbox=-10,40,5,50 for negative values).",
        ),
        click.option(
            "--intersects",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help="Items intersecting the geometry in this GeoJSON file.",
        ),
        click.option(
            "--datetime",
            metavar="RANGE",
            help="An instant or interval, e.g. 2020-01-01/2021-12-31 or 2020-06-01/..",
        ),
        click.option(
            "--query",
            metavar="EXPR",
            multiple=True,
            help="Query extension expression, e.g. 'eo:cloud_cover<10' (repeatable; the API "
            "must support it).",
        ),
        click.option(
            "--filter",
            metavar="CQL2-JSON|@FILE",
            help="A CQL2-JSON filter, inline or @file.json (the API must support Filter).",
        ),
        click.option(
            "--max-items",
            type=click.IntRange(1),
            help="Stop after this many items.",
        ),
        click.option(
            "--allow-host",
            metavar="HOST[:PORT]",
            multiple=True,
            help="Also read HTTP(S) asset hrefs at this host (repeatable; *.domain for its "
            "subdomains, public addresses only).  [default: only the STAC API's own host]",
        ),
        click.option(
            "--allow-bucket",
            "--source-prefix",
            "allow_bucket",
            metavar="BUCKET[/PREFIX/]",
            multiple=True,
            help="Archive and delete s3:// assets only inside these buckets or prefixes "
            "(repeatable); assets elsewhere are compacted and left in place.  [default: the "
            "buckets the searched collections declare in storage:schemes]",
        ),
        click.option(
            "--asset",
            metavar="KEY",
            multiple=True,
            help="Asset keys to compact (repeatable).  [default: the items' GeoTIFF, COG and "
            "JPEG 2000 data assets; thumbnails, overviews and metadata never]",
        ),
    ]


def resolve(ctx: click.Context, **flags: Any) -> Settings:
    """Settings from defaults < environment < --config file < these flags. Every secret
    they hold (URL passwords, say) is masked in log output from here on."""
    args = {k: v for k, v in flags.items() if v not in (None, ())}
    settings = resolve_settings(args, config_file=ctx.obj.get("config_file") if ctx.obj else None)
    mask_in_logs(settings.secrets())
    return settings


def mask_in_logs(secrets: set[str]) -> None:
    """Mask ``secrets`` (and URL passwords) in every record the CLI's log handlers print."""
    for handler in logging.getLogger().handlers:
        found = [f for f in handler.filters if isinstance(f, RedactingFilter)]
        if found:
            found[0].add(secrets)
        else:
            handler.addFilter(RedactingFilter(secrets))


@contextmanager
def clean_errors() -> Iterator[None]:
    """Turn compactor's errors into one-line messages and exit codes at the CLI edge."""
    try:
        yield
    except (ConfigError, DiscoveryError) as err:
        stderr.print(f"[bold red]Error:[/] {escape(str(err))}")
        sys.exit(EXIT_USAGE)
    except CompactorError as err:
        stderr.print(f"[bold red]Error:[/] {escape(str(err))}")
        sys.exit(EXIT_FAILED_SCENES)
    except KeyboardInterrupt:
        stderr.print(
            "[yellow]Interrupted.[/] Nothing is lost: rerun the same command to finish; "
            "completed scenes are not redone."
        )
        sys.exit(130)


class SceneProgress:
    """A progress bar over scenes (to stderr), with failed and held scenes printed as they
    happen (a held original needs someone to look at its Object Lock or bucket policy)."""

    def __init__(self, label: str, enabled: bool = True):
        self.enabled = enabled
        self.label = label
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr,
            disable=not enabled,
        )
        self.task: Any = None
        self.counts = {"compacted": 0, "held": 0, "skipped": 0, "failed": 0}

    def __enter__(self) -> SceneProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def start(self, total: int) -> None:
        """The number of scenes known so far (it grows while the listing streams in)."""
        if self.task is None:
            self.task = self.progress.add_task(self.label, total=total, counts="")
        else:
            self.progress.update(self.task, total=total)

    def dashboard(self, link: str) -> None:
        if self.enabled:
            self.progress.console.print(f"Dask dashboard: {escape(link)}")

    def advance(self, result: SceneResult | dict[str, Any]) -> None:
        status = result.status if isinstance(result, SceneResult) else str(result.get("action"))
        self.counts[status] = self.counts.get(status, 0) + 1
        if isinstance(result, SceneResult) and result.status == "failed" and self.enabled:
            self.progress.console.print(
                f"[red]failed[/] {escape(result.source)}: {escape(result.reason or '')}"
            )
        elif isinstance(result, SceneResult) and result.status == "held" and self.enabled:
            self.progress.console.print(
                f"[yellow]held[/] {escape(result.source)} (archived, not deleted): "
                f"{escape(result.reason or '')}"
            )
        text = " ".join(f"{k} {v}" for k, v in self.counts.items() if v)
        if self.task is not None:
            self.progress.update(self.task, advance=1, counts=text)
