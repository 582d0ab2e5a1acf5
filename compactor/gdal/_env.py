"""GDAL configuration as data.

The client builds one dict of GDAL config options per run (:func:`gdal_options`) and
ships it to every worker inside each task; the worker applies it with
:func:`gdal_env`. Each option carries the reason it is set.

Credentials never go in here. GDAL finds them itself through the standard AWS
chain of the worker process (environment, shared config/credentials files, web
identity token for IRSA, instance metadata), and ``DummySession`` stops rasterio
from copying boto3's credentials into GDAL's config.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

import rasterio
from distributed import get_worker
from rasterio.session import DummySession

from ._drivers import UNSAFE_DRIVERS, restrict_drivers

#: option -> (value, why). Values are strings, as GDAL wants them.
BASE_OPTIONS: dict[str, tuple[str, str]] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": (
        "EMPTY_DIR",
        "opening /vsis3/ files must not LIST the prefix looking for sidecars (.aux.xml, .ovr):"
        " on a bucket of millions of objects that listing costs more than the read",
    ),
    "GDAL_HTTP_MAX_RETRY": (
        "6",
        "retry throttling (503 SlowDown), 5xx and dropped connections on range reads",
    ),
    "GDAL_HTTP_RETRY_CODES": (
        "429,500,502,503,504",
        "throttling and server errors are transient on S3 (GDAL's default list omits 500)",
    ),
    "GDAL_HTTP_RETRY_DELAY": (
        "0.5",
        "first retry delay in seconds; GDAL doubles it on each further attempt (backoff)",
    ),
    "GDAL_HTTP_TIMEOUT": ("60", "a stuck range request fails and is retried instead of hanging"),
    "GDAL_HTTP_CONNECTTIMEOUT": ("10", "fail fast on an unreachable endpoint"),
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": (
        "YES",
        "adjacent block reads become one HTTP range request",
    ),
    "GDAL_HTTP_MULTIPLEX": ("YES", "HTTP/2 multiplexing where the endpoint offers it"),
    "CPL_VSIL_CURL_CHUNK_SIZE": (
        str(2 * 1024 * 1024),
        "we read whole scenes sequentially: 2 MiB ranges instead of 16 KiB means ~100x"
        " fewer requests per scene",
    ),
    "CPL_VSIL_CURL_CACHE_SIZE": (
        str(64 * 1024 * 1024),
        "per-process cache of recently read ranges while a dataset is open",
    ),
    "CPL_VSIL_CURL_NON_CACHED": (
        "/vsis3/",
        "forget an object's size and bytes once its dataset closes: workers live across runs,"
        " and outputs are rewritten and sources replaced in place; a stale cache would verify"
        " or encode bytes that are no longer there",
    ),
    "VSI_CACHE": ("TRUE", "cache /vsis3/ reads per open file"),
    "VSI_CACHE_SIZE": (str(32 * 1024 * 1024), "bounded per open file"),
    "GDAL_TIFF_INTERNAL_MASK": (
        "YES",
        "masks go inside the COG (one object per scene), never in a .msk sidecar",
    ),
    "GDAL_NUM_THREADS": (
        "1",
        "parallelism comes from Dask tasks; GDAL's own threads would oversubscribe the cores",
    ),
    "CPL_LOG_ERRORS": ("ON", "GDAL errors reach Python logging through rasterio"),
    "GDAL_VRT_ENABLE_RAWRASTERBAND": (
        "NO",
        "a VRT's raw raster band reads any file by name; sources are never opened as VRT"
        " (compactor.gdal._info.SOURCE_DRIVERS), and this closes the door again where"
        " GDAL >= 3.11 knows the option",
    ),
    "GDAL_SKIP": (
        " ".join(UNSAFE_DRIVERS),
        "drivers whose files name other files or URLs are never registered (and are"
        " deregistered where GDAL registered them before: compactor.gdal._drivers)",
    ),
}


def endpoint_options(endpoint_url: str | None) -> dict[str, str]:
    """GDAL's spelling of an S3-compatible endpoint.

    boto3 and s3fs take ``AWS_ENDPOINT_URL``; GDAL needs host[:port] in
    ``AWS_S3_ENDPOINT``, the scheme in ``AWS_HTTPS`` and path-style addressing
    (``AWS_VIRTUAL_HOSTING=FALSE``), which MinIO, Ceph and moto expect.
    """
    if not endpoint_url:
        return {}
    parts = urlsplit(endpoint_url if "://" in endpoint_url else f"https://{endpoint_url}")
    host = parts.netloc + (parts.path.rstrip("/") if parts.path not in ("", "/") else "")
    return {
        "AWS_S3_ENDPOINT": host,
        "AWS_HTTPS": "YES" if parts.scheme == "https" else "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
    }


#: GDAL's block cache per worker process: this share of the worker's memory limit, within
#: bounds. Compactor reads each source block once (strips in order), so the cache only has
#: to hold the blocks of the window being read; more is memory a small worker lacks (a
#: strip of blocks would otherwise sit in the cache beside its copy in the task's array).
CACHE_SHARE = 0.05
CACHE_MB = (16, 256)


def cache_mb_for(worker_memory: int | None) -> int:
    """``GDAL_CACHEMAX`` (MB) for workers with ``worker_memory`` bytes (None: unknown)."""
    low, high = CACHE_MB
    if not worker_memory:
        return high
    return max(low, min(high, int(worker_memory * CACHE_SHARE / 2**20)))


def gdal_options(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    cache_mb: int = CACHE_MB[1],
    request_payer: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The GDAL options a run ships to its workers.

    ``GDAL_CACHEMAX`` is set per worker process (the block cache is per process,
    and GDAL's default of 5 % of RAM is per process too: with several workers per
    node that adds up past the pod's memory limit). ``CPL_TMPDIR`` is set on the
    worker itself (see :func:`gdal_env`) because the temp dir is a property of the
    worker, not of the run.
    """
    opts = {name: value for name, (value, _why) in BASE_OPTIONS.items()}
    opts["GDAL_CACHEMAX"] = str(cache_mb)  # MB; bounded per worker process, see above
    opts.update(endpoint_options(endpoint_url))
    if region:
        opts["AWS_REGION"] = region  # not a secret; GDAL signs requests for this region
    if request_payer:
        opts["AWS_REQUEST_PAYER"] = request_payer  # a requester-pays source: we pay its reads
    if overrides:
        opts.update({str(k): str(v) for k, v in overrides.items()})
    return opts


@contextmanager
def gdal_env(options: Mapping[str, str], tmpdir: str | None = None) -> Iterator[None]:
    """Apply ``options`` (and ``CPL_TMPDIR``) for the duration of a block on a worker."""

    opts: dict[str, str | int] = dict(options)
    if "GDAL_CACHEMAX" in opts:
        # rasterio applies this one with GDALSetCacheMax64, which takes bytes as an integer.
        opts["GDAL_CACHEMAX"] = int(opts["GDAL_CACHEMAX"]) * 1024 * 1024
    if tmpdir:
        # GDAL's own temp files (COG driver overview passes) go to the worker's local
        # scratch directory, not to the current directory or a small /tmp.
        opts["CPL_TMPDIR"] = tmpdir
    with rasterio.Env(session=DummySession(), **opts):
        restrict_drivers()
        yield


def scratch_dir() -> str:
    """The worker-local scratch directory (Dask worker's local directory if any)."""
    try:
        base = get_worker().local_directory
    except (ImportError, ValueError):
        base = tempfile.gettempdir()
    path = os.path.join(base, "compactor")
    os.makedirs(path, exist_ok=True)
    return path
