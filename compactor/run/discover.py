"""Finding scenes: a recursive listing of ``--source`` filtered by globs.

Keys are used exactly as listed (s3fs decodes the listing; GDAL and boto3 encode
each key themselves), so spaces, unicode, ``+`` and ``%`` round-trip. Scenes an
earlier run already moved away still have a state record under the destination;
they are included so a rerun reports them instead of forgetting them.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..config import META_PREFIX, Settings
from ..errors import ConfigError, DiscoveryError, ObjectNotFound, StorageError, UnsafeKeyError
from ..keys import key_problem
from ..report.models import SceneResult
from ..safety.spec import RunContext, SceneSpec, assign_outputs
from ..safety.state import StateStore
from ..storage import Location, ObjectInfo, S3Store, store_for
from .stac import discover_stac

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Discovery:
    #: The listed prefix (``None`` for a STAC search).
    source: Location | None
    scenes: list[SceneSpec]
    listed: int
    excluded: int
    #: The original STAC items by id (a STAC search only).
    items: dict[str, Any] = field(default_factory=dict)
    #: Objects or assets refused at discovery (unsafe keys or ids, hrefs out of bounds):
    #: failed scenes with the reason, never turned into tasks.
    rejected: list[SceneResult] = field(default_factory=list)


def _matches(relative: str, patterns: Iterable[str]) -> bool:
    """Case-insensitive glob match on the file name, or on the whole relative key when
    the pattern has a ``/``."""
    rel = relative.lower()
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        p = pattern.lower()
        if fnmatch.fnmatchcase(rel if "/" in p else name, p):
            return True
    return False


def check_locations(settings: Settings) -> None:
    """Usage errors in source/dest/archive, raised before anything is touched."""
    if settings.stac.url:
        check_stac_locations(settings)
        return
    if not settings.source:
        raise ConfigError(
            "a source is required (--source s3://bucket/prefix/ or a directory, or --stac URL)"
        )
    if not settings.dest:
        raise ConfigError("a destination is required (--dest s3://bucket/prefix/ or a directory)")
    try:
        source = Location.parse(settings.source)
        dest = Location.parse(settings.dest)
        archive = (
            Location.parse(settings.archive)
            if settings.archive and settings.archive != "in-place"
            else None
        )
    except ValueError as err:
        raise ConfigError(str(err)) from err
    for what, loc in (("--source", source), ("--dest", dest), ("--archive", archive)):
        if loc is not None and loc.is_http:
            raise ConfigError(
                f"{what} must be an s3:// prefix or a directory (HTTP(S) sources come from "
                "a STAC search: --stac URL)"
            )
        _check_prefix_key(what, loc)
    if dest.as_prefix() == source.as_prefix():
        raise ConfigError("--dest must differ from --source (outputs would be listed as sources)")
    if settings.archive == "in-place" and not source.is_s3:
        raise ConfigError("--archive in-place changes an S3 storage class; the source is local")
    if archive is not None:
        if source.is_s3 != archive.is_s3:
            raise ConfigError(
                "--archive must be an s3:// prefix for an S3 source, a directory for a local one"
            )
        if archive.as_prefix() == source.as_prefix():
            raise ConfigError("--archive must differ from --source (use --archive in-place)")
        if archive.as_prefix() == dest.as_prefix():
            raise ConfigError("--archive must differ from --dest")
        # Nested, an output key could equal an archive key and replace an original.
        if archive.as_prefix().is_under(dest.as_prefix()) or dest.as_prefix().is_under(
            archive.as_prefix()
        ):
            raise ConfigError("--archive and --dest must not be inside one another")


def _check_prefix_key(what: str, loc: Location | None) -> None:
    """An S3 prefix given by the user must be a safe key itself (see :func:`key_problem`)."""
    if loc is not None and loc.is_s3 and loc.key:
        problem = key_problem(loc.key)
        if problem:
            raise ConfigError(f"{what} {loc.url}: {problem}")


def _parse_writable(what: str, url: str) -> Location:
    try:
        loc = Location.parse(url)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if loc.is_http:
        raise ConfigError(f"{what} must be an s3:// prefix or a directory, not {url}")
    _check_prefix_key(what, loc)
    return loc


def check_stac_locations(settings: Settings) -> None:
    """Usage errors of a STAC run: a destination, an S3 archive, no --source as well."""
    if settings.source:
        raise ConfigError("give either --source or --stac, not both")
    if not settings.stac.collections:
        raise ConfigError("a STAC search needs --collection (one or more collection ids)")
    if not settings.dest:
        raise ConfigError("a destination is required (--dest s3://bucket/prefix/ or a directory)")
    dest = _parse_writable("--dest", settings.dest)
    if settings.archive and settings.archive != "in-place":
        archive = _parse_writable("--archive", settings.archive)
        if not archive.is_s3:
            raise ConfigError("--archive for STAC assets must be an s3:// prefix (or in-place)")
        if archive.as_prefix().is_under(dest.as_prefix()) or dest.as_prefix().is_under(
            archive.as_prefix()
        ):
            raise ConfigError("--archive and --dest must not be inside one another")


def preflight(context: RunContext) -> None:
    """Usage errors that need the stores: the destination and archive buckets must exist
    (else every scene would fail and no report could be written)."""
    targets = [("destination", Location.parse(context.dest))]
    if context.archive_mode == "prefix" and context.archive:
        targets.append(("archive", Location.parse(context.archive)))
    for what, loc in targets:
        if not loc.is_s3:
            continue
        try:
            exists = S3Store(context.s3).bucket_exists(loc.bucket)
        except StorageError as err:
            raise ConfigError(f"cannot reach the {what} bucket s3://{loc.bucket}: {err}") from err
        if not exists:
            raise ConfigError(f"the {what} bucket s3://{loc.bucket} does not exist")


def discover(settings: Settings, context: RunContext) -> Discovery:
    """List the source (or run the STAC search) and return one :class:`SceneSpec` per
    matching object (or asset)."""
    check_locations(settings)
    if settings.stac.url:
        assets, items, refused_assets = discover_stac(settings, context)
        return Discovery(
            source=None,
            scenes=assets,
            listed=len(assets) + len(refused_assets),
            excluded=0,
            items=items,
            rejected=refused_assets,
        )
    assert settings.source is not None
    source = Location.parse(settings.source)
    dest = Location.parse(context.dest)
    store = store_for(source, context.s3)

    # A source that names one object is a one-scene listing of its folder.
    single: ObjectInfo | None = None
    if not source.key.endswith(("/", "\\")) and source.key:
        try:
            single = store.head(source)
        except StorageError:
            single = None
    if single is not None:
        parent_key = source.key.rsplit("/", 1)[0] + "/" if "/" in source.key else ""
        prefix = Location(source.scheme, source.bucket, parent_key)
        if not source.is_s3:
            prefix = Location("file", "", os.path.dirname(source.key) + os.sep)
        listing = [single]
    else:
        prefix = source.as_prefix()
        try:
            listing = list(store.listing(prefix))
        except ObjectNotFound as err:
            raise DiscoveryError(f"cannot list {prefix.url}: it does not exist") from err
        except StorageError as err:
            raise DiscoveryError(f"cannot list {prefix.url}: {err}") from err

    # Never pick up our own outputs, archive copies or records.
    own: list[Location] = [dest.as_prefix(), dest.join(META_PREFIX + "/")]
    if context.archive_mode == "prefix" and context.archive:
        own.append(Location.parse(context.archive).as_prefix())
    candidates: dict[str, ObjectInfo | None] = {}
    rejected: list[SceneResult] = []
    excluded = 0
    for info in listing:
        loc = Location.parse(info.url)
        if any(loc.is_under(p) for p in own):
            continue
        rel = loc.relative_to(prefix)
        if (
            "/_compactor/" in f"/{rel}"
            or not _matches(rel, settings.include)
            or _matches(rel, settings.exclude)
        ):
            excluded += 1
            continue
        problem = key_problem(loc.key) if loc.is_s3 else None
        try:
            if problem is None:
                prefix.join(rel)  # local paths: must stay below --source once resolved
        except UnsafeKeyError as err:
            problem = str(err)
        if problem is not None:
            log.warning("refused %r: %s", info.url, problem)
            rejected.append(SceneResult.refused(info.url, f"refused key: {problem}", info.size))
            continue
        candidates[rel] = info

    # Scenes whose source is gone but whose state says an earlier run handled them.
    if single is None:
        states = StateStore(dest, store_for(dest, context.s3))
        for src in states.list_sources(prefix):
            try:
                rel = src.relative_to(prefix)
            except ValueError:
                continue
            if rel in candidates or not _matches(rel, settings.include):
                continue
            if _matches(rel, settings.exclude):
                continue
            candidates[rel] = None

    if not candidates and not rejected:
        what = f"{len(listing)} object{'s' if len(listing) != 1 else ''} listed"
        raise DiscoveryError(
            f"no scenes under {prefix.url} match --include {' '.join(settings.include)}"
            + (f" --exclude {' '.join(settings.exclude)}" if settings.exclude else "")
            + f" ({what}, {excluded} excluded by the globs)"
        )

    outputs = assign_outputs(sorted(candidates))
    scenes: list[SceneSpec] = []
    for rel in sorted(candidates):
        src_loc = prefix.join(rel)
        archive: str | None = None
        if context.archive_mode == "in-place":
            archive = src_loc.url
        elif context.archive_mode == "prefix" and context.archive:
            archive = Location.parse(context.archive).join(rel).url
        scenes.append(
            SceneSpec(
                source=src_loc.url,
                relative=rel,
                output=dest.join(outputs[rel]).url,
                archive=archive,
                listed=candidates[rel],
            )
        )
    log.info(
        "discovered %d scenes under %s (%d excluded, %d refused)",
        len(scenes), prefix.url, excluded, len(rejected),
    )  # fmt: skip
    return Discovery(
        source=prefix, scenes=scenes, listed=len(listing), excluded=excluded, rejected=rejected
    )
