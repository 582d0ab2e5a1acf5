"""Usage errors of a run's locations, found before anything is touched
(:func:`check_locations`), and those that need the stores (:func:`preflight`): the
buckets exist, the store has the archive storage class; what a run learns of its buckets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import ConfigError, StorageError
from ..keys import key_problem
from ..scene import RunContext
from ..settings import META_PREFIX, Settings
from ..storage import Location, S3Store

log = logging.getLogger(__name__)


def check_locations(settings: Settings) -> None:
    """Usage errors in source/dest/archive, raised before anything is touched."""
    if settings.stac.url:
        check_stac_locations(settings)
        return
    if settings.inventory:
        check_inventory(settings)
    if not settings.source:
        raise ConfigError(
            "a source is required (--source s3://bucket/prefix/ or a directory, --inventory "
            "s3://.../manifest.json, or --stac URL)"
        )
    if not settings.dest:
        raise ConfigError("a destination is required (--dest s3://bucket/prefix/ or a directory)")
    source, dest, archive = _parse_locations(settings.source, settings.dest, settings.archive)
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
    if settings.archive == "in-place" and settings.storage_class == "STANDARD":
        raise ConfigError(
            "--archive in-place changes the storage class where the originals are: give an "
            "archive class with --storage-class (STANDARD is for archiving to a prefix)"
        )
    if archive is not None:
        _check_archive(source, dest, archive)


def _parse_locations(
    source: str, dest: str, archive: str | None
) -> tuple[Location, Location, Location | None]:
    """The source, destination and (to a prefix) archive locations, or a usage error."""
    try:
        return (
            Location.parse(source),
            Location.parse(dest),
            Location.parse(archive) if archive and archive != "in-place" else None,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from err


def _check_archive(source: Location, dest: Location, archive: Location) -> None:
    """An archive prefix: of the source's kind, apart from the source and the destination."""
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


def check_inventory(settings: Settings) -> None:
    """Usage errors of a run listed by an S3 Inventory report."""
    assert settings.inventory is not None
    try:
        manifest = Location.parse(settings.inventory)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if not manifest.is_s3 or not manifest.key.endswith("manifest.json"):
        raise ConfigError(
            f"--inventory must name an S3 Inventory manifest: s3://bucket/.../manifest.json, "
            f"not {settings.inventory}"
        )
    if not settings.source:
        raise ConfigError(
            "--inventory needs --source s3://BUCKET/ (or s3://BUCKET/PREFIX/): the bucket the "
            "inventory lists, which the manifest must name; a manifest alone does not choose "
            "which bucket's objects are archived and deleted"
        )
    try:
        source = Location.parse(settings.source)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if not source.is_s3:
        raise ConfigError("--source with --inventory must be an s3:// prefix of the inventory")
    if not settings.dest:
        raise ConfigError("a destination is required (--dest s3://bucket/prefix/ or a directory)")


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
    if settings.source or settings.inventory:
        raise ConfigError("give either --source or --stac, not both (nor --inventory)")
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


@dataclass(frozen=True)
class Preflight:
    """What a run learns of its buckets before it starts."""

    #: The source bucket's versioning (``Enabled``, ``Suspended``; ``None``: never enabled
    #: or not an S3 source).
    source_versioning: str | None = None
    #: With INTELLIGENT_TIERING as the archive class: the archive bucket's opt-in archive
    #: tiers (configuration id, tier, days), ``None`` when not asked.
    tiering: list[tuple[str, str, int]] | None = None

    def notes(self, keep_versions: bool) -> list[str]:
        found = []
        if self.source_versioning is not None:
            what = f"the source bucket's versioning is {self.source_versioning}"
            if keep_versions:
                found.append(
                    f"{what}: archived originals are kept as noncurrent versions (--keep-versions)"
                )
            else:
                found.append(f"{what}: each archived original is deleted by its version")
        if self.tiering is not None:
            tiers = ", ".join(
                f"{tier} after {days} days ({cid})" for cid, tier, days in self.tiering
            )
            found.append(
                "INTELLIGENT_TIERING: archive copies move to Infrequent Access after 30 days "
                "without access and to Archive Instant Access after 90 by themselves; the "
                "opt-in archive tiers of the archive bucket: " + (tiers or "none configured")
            )
        return found


def preflight(context: RunContext, source: str | None = None) -> Preflight:
    """Usage errors that need the stores: the destination and archive buckets must exist
    (else every scene would fail and no report could be written), and the store must
    know the archive storage class (MinIO, R2 or Ceph may not: a tiny probe object is
    written in that class under ``<dest>/_compactor/probe/`` and deleted). Reads the
    source bucket's versioning."""
    store = S3Store(context.s3)
    dest = Location.parse(context.dest)
    targets = [("destination", dest)]
    if context.archive_mode == "prefix" and context.archive:
        targets.append(("archive", Location.parse(context.archive)))
    for what, loc in targets:
        if loc.is_s3:
            _check_bucket(store, what, loc)
    if context.archive_mode != "none" and dest.is_s3 and context.storage_class != "STANDARD":
        _probe_class(store, dest, context)
    src = Location.parse(source) if source else None
    versioning = _versioning(store, src) if src is not None and src.is_s3 else None
    if versioning:
        log.info("source bucket s3://%s: versioning %s", src.bucket if src else "", versioning)
    tiering = None
    if context.storage_class == "INTELLIGENT_TIERING" and context.archive_mode != "none":
        where = src
        if context.archive_mode == "prefix" and context.archive:
            where = Location.parse(context.archive)
        if where is not None and where.is_s3:
            tiering = _tiering(store, where)
    return Preflight(versioning, tiering)


def _check_bucket(store: S3Store, what: str, loc: Location) -> None:
    """The bucket of ``loc`` exists (else a usage error)."""
    try:
        exists = store.bucket_exists(loc.bucket)
    except StorageError as err:
        raise ConfigError(f"cannot reach the {what} bucket s3://{loc.bucket}: {err}") from err
    if not exists:
        raise ConfigError(f"the {what} bucket s3://{loc.bucket} does not exist")


def _versioning(store: S3Store, src: Location) -> str | None:
    """The source bucket's versioning; ``None`` (logged) when it cannot be read."""
    try:
        return store.versioning(src.bucket)
    except StorageError as err:
        log.warning("cannot read the versioning of s3://%s: %s", src.bucket, err)
        return None


def _tiering(store: S3Store, where: Location) -> list[tuple[str, str, int]] | None:
    """The bucket's Intelligent-Tiering archive tiers; ``None`` (logged) when they cannot
    be read."""
    try:
        return store.tiering(where.bucket)
    except StorageError as err:
        log.warning("cannot read the Intelligent-Tiering of s3://%s: %s", where.bucket, err)
        return None


def _probe_class(store: S3Store, dest: Location, context: RunContext) -> None:
    probe = dest.join(f"{META_PREFIX}/probe/{context.run_id}")
    try:
        store.put_probe(probe, context.storage_class)
    except StorageError as err:
        raise ConfigError(
            f"the store refused an object in storage class {context.storage_class} "
            f"({err.code or err}): give --storage-class one it has (STANDARD to archive "
            "originals to another prefix without a class change)"
        ) from err
    try:
        store.delete(probe)
    except StorageError as err:
        log.info("could not delete the storage-class probe %s: %s", probe.url, err)
