"""Frozen task specs: what one scene task needs, as plain data with a deterministic key.

:class:`RunContext` is the per-run part (codec policy, stores, GDAL options) and
:class:`SceneSpec` the per-scene part. Both are immutable and hashable, so a task
retried by Dask or resubmitted by a rerun is the same task with the same key.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from dask.utils import parse_bytes

from ..encode import QualityPolicy
from ..gdal import RasterInfo, cache_mb_for, check_limits, gdal_options, read_info
from ..pricing import PriceTable, prices_for
from ..settings import Encoding, Limits, Settings, Transfers
from ..storage import HttpPolicy, Location, ObjectInfo, S3Options, readable_path

ArchiveMode = Literal["none", "in-place", "prefix"]

#: Extensions that keep their name; everything else gets ``.tif``.
TIFF_SUFFIX = ".tif"


@dataclass(frozen=True)
class RunContext:
    """Per-run settings every scene task gets, as views of :class:`Settings` (which holds
    every default). No credentials: each process uses the AWS chain."""

    run_id: str
    dest: str
    archive: str | None
    archive_mode: ArchiveMode
    storage_class: str
    encoding: Encoding
    limits: Limits
    transfers: Transfers
    lease_ttl: float
    s3: S3Options
    gdal: tuple[tuple[str, str], ...]
    #: Which HTTP(S) hosts STAC assets may be read from, and their headers (no secrets).
    http: HttpPolicy
    #: The S3 prices the run uses (plain data), and ``--payback-months``: what the walk
    #: needs to decide whether an original is worth archiving (``pricing.worth_archiving``).
    prices: PriceTable
    payback_months: float
    #: Memory limit per worker in bytes when known from the settings (else read from Dask).
    worker_memory: int | None = None

    @property
    def quality_policy(self) -> QualityPolicy:
        e = self.encoding
        return QualityPolicy(e.codec, e.quality, e.min_ssim, e.allow_webp)

    @property
    def gdal_options(self) -> dict[str, str]:
        return dict(self.gdal)

    @property
    def dest_location(self) -> Location:
        return Location.parse(self.dest)

    def read_source(
        self, src: Location, scratch: Path, local: Path | None = None
    ) -> tuple[str, RasterInfo]:
        """What GDAL opens for ``src`` and its header, checked against the size limits:
        ``local``, a copy already read whole, or the source itself (an HTTP(S) source is
        fetched into ``scratch`` first, bounded by the one-task size). Call inside
        :func:`~compactor.gdal._env.gdal_env` with this run's options."""
        if local is not None:
            path = str(local)
        else:
            path = readable_path(src, scratch / "source", self.http, self.encoding.chunk_threshold)
        info = read_info(path)
        check_limits(info, self.limits)
        return path, info

    def finish_digest(self) -> str:
        """Hash of where a compacted scene's original goes: a scene compacted with
        originals left has work left for a run that archives them."""
        where = {
            "archive": self.archive, "mode": self.archive_mode, "class": self.storage_class,
            "keep_versions": self.transfers.keep_versions,
            "payback_months": self.payback_months,
        }  # fmt: skip
        return hashlib.sha256(json.dumps(where, sort_keys=True).encode()).hexdigest()[:12]

    def policy_digest(self) -> str:
        """Hash of everything that changes what a scene task produces."""
        e = self.encoding
        policy = {
            "dest": self.dest,
            "archive": self.archive,
            "storage_class": self.storage_class,
            "codec": e.codec,
            "quality": e.quality,
            "min_ssim": e.min_ssim,
            "min_saving": e.min_saving,
        }
        if e.allow_webp and e.codec == "auto-lossy":  # the only codec it changes
            policy["allow_webp"] = True
        if e.max_error is not None:
            policy["max_error"] = e.max_error.text()
        # Always: scenes left as they are before the encoding search and the overview
        # policy existed are tried again once (they may be smaller now).
        policy["effort"] = e.effort
        policy["overviews"] = e.overviews
        return hashlib.sha256(json.dumps(policy, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_settings(cls, settings: Settings, run_id: str) -> RunContext:
        if settings.dest is None:
            raise ValueError("dest is required")
        mode: ArchiveMode = "none"
        if settings.archive:
            mode = "in-place" if settings.archive == "in-place" else "prefix"
        archive = settings.archive
        if mode == "prefix" and archive:
            archive = Location.parse(archive).as_prefix().url
        memory = settings.cluster.worker_memory
        return cls(
            run_id=run_id,
            dest=Location.parse(settings.dest).as_prefix().url,
            archive=archive,
            archive_mode=mode,
            storage_class=settings.storage_class,
            encoding=settings.encoding,
            limits=settings.limits,
            transfers=settings.transfers,
            lease_ttl=settings.lease_ttl,
            worker_memory=int(parse_bytes(memory)) if memory else None,
            http=http_policy(settings),
            prices=prices_for(settings.price_region, settings.region, settings.endpoint_url),
            payback_months=settings.payback_months,
            s3=S3Options(
                endpoint_url=settings.endpoint_url,
                region=settings.region,
                max_attempts=settings.s3_max_attempts,
                request_payer=settings.request_payer,
            ),
            gdal=tuple(
                sorted(
                    gdal_options(
                        endpoint_url=settings.endpoint_url,
                        region=settings.region,
                        cache_mb=cache_mb_for(int(parse_bytes(memory)) if memory else None),
                        request_payer=settings.request_payer,
                        overrides=settings.gdal_options,
                    ).items()
                )
            ),
        )


def http_policy(settings: Settings) -> HttpPolicy:
    """The hosts STAC assets may be read from: the API's own host (as host:port) and
    ``--allow-host``; the headers configured per host."""
    hosts = list(settings.stac.allow_hosts)
    if settings.stac.url:
        parts = urlsplit(settings.stac.url)
        if parts.hostname:
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                port = None
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            hosts.insert(0, f"{host}:{port}" if port else host)
    headers = tuple(
        (host, name, value)
        for host, named in sorted(settings.http_headers.items())
        for name, value in sorted(named.items())
    )
    return HttpPolicy(hosts=tuple(dict.fromkeys(hosts)), headers=headers)


@dataclass(frozen=True)
class SceneSpec:
    """One scene: where it is, where its output and archive copy go."""

    source: str
    relative: str
    output: str
    #: Archive URL of the original (``None`` when originals stay; the source URL for in-place).
    archive: str | None
    #: What the listing said; ``None`` for a scene known only from its state record
    #: (its source is gone, e.g. archived by an earlier run).
    listed: ObjectInfo | None = field(default=None, compare=False)
    #: STAC item id, asset key and collection when the scene came from a STAC search.
    item: str | None = None
    asset: str | None = None
    collection: str | None = None
    #: Why the original is only read, never archived or deleted (a STAC href outside the
    #: buckets the run may archive from, or an HTTP(S) href).
    read_only: str | None = None
    #: The URLs of the sidecars listed beside the source that GDAL reads for it
    #: (:mod:`compactor.gdal._sidecars`): read with it, archived and deleted with it.
    sidecars: tuple[str, ...] = ()
    #: What the listing said of each sidecar, in the order of :attr:`sidecars` (empty when
    #: unknown): its size bounds its read (:func:`~compactor.scene._sidecars.fetch_sidecars`),
    #: its ETag is the version a scene read without fetching it whole is pinned to.
    sidecar_sizes: tuple[int, ...] = ()
    sidecar_etags: tuple[str | None, ...] = ()

    def key(self, context: RunContext) -> str:
        """Deterministic Dask key: within a run, the same scene version and policy always
        get the same key (a resubmission is the same task). The run id is part of it, so a
        later run on a long-lived cluster never receives an earlier run's cached result."""
        version = self.listed.etag if self.listed else "state-only"
        raw = f"{self.source}\0{version}\0{context.policy_digest()}"
        return f"compact-{context.run_id}-{hashlib.sha256(raw.encode()).hexdigest()[:20]}"


def output_relative(relative: str) -> str:
    """Output key below ``--dest`` for a source key below ``--source``: the same key with
    extension ``.tif`` (``a/b.jp2`` -> ``a/b.tif``; ``a/b.TIFF`` -> ``a/b.tif``)."""
    head, name = posixpath.split(relative)
    stem = posixpath.splitext(name)[0] or name
    return posixpath.join(head, stem + TIFF_SUFFIX) if head else stem + TIFF_SUFFIX


def assign_outputs(relatives: list[str]) -> dict[str, str]:
    """Output keys for a set of source keys, without collisions.

    Where several sources map to one output (``a.tif`` and ``a.jp2``), a source
    already named ``.tif`` keeps the plain name and the others keep their full
    name plus ``.tif`` (``a.jp2.tif``), which is deterministic whatever the order.
    """
    groups: dict[str, list[str]] = {}
    for rel in relatives:
        groups.setdefault(output_relative(rel), []).append(rel)
    result: dict[str, str] = {}
    for out, members in groups.items():
        if len(members) == 1:
            result[members[0]] = out
            continue
        keeper = next((m for m in sorted(members) if m.endswith(TIFF_SUFFIX)), None)
        for m in members:
            result[m] = out if m == keeper else m + TIFF_SUFFIX
    return result
