"""Finding scenes, as a stream: listing pages (S3), directories (local) or the STAC search
flow through the filters (globs, size, last-modified window, storage class), the key
checks and the finished index into the fan-out; the whole listing is never in memory.

Keys are used exactly as listed (boto3 decodes the listing; GDAL and boto3 encode each
key themselves), so spaces, unicode, ``+`` and ``%`` round-trip. A listed object whose
version an earlier run finished (:mod:`compactor.sources._finished`) is counted, not turned
into a task; scenes an earlier run archived and deleted are not listed at all and are
counted from the index too.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from ..errors import ConfigError, DiscoveryError, ObjectNotFound, StorageError, UnsafeKeyError
from ..gdal import group_sidecars, is_sidecar_shaped
from ..keys import key_problem
from ..records import SceneResult
from ..scene import RunContext, SceneSpec, assign_outputs, output_relative
from ..settings import META_PREFIX, Settings
from ..storage import Location, ObjectInfo, S3Options, S3Store, store_for
from ._finished import Conditions, FinishedIndex, Records
from ._inventory import InventoryStats, Manifest, iter_inventory, layout_problem, read_manifest
from ._stac import ItemSpool, discover_stac

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Counts:
    """What discovery has seen so far (final once the stream is exhausted)."""

    listed: int = 0
    #: Left out by the globs or the filters.
    excluded: int = 0
    #: Refused (unsafe keys or ids, hrefs out of bounds): failed scenes, never tasks.
    refused: int = 0
    #: Listed objects an earlier run finished (counted, not submitted).
    finished: int = 0
    #: Scenes handed on to become tasks.
    scenes: int = 0
    #: Listed sidecars (``.aux.xml``, ``.ovr``, ``.msk``, ``.rpb``...: never scenes), and
    #: of those the ones no single raster in the listing claims (left where they are).
    sidecars: int = 0
    lone_sidecars: int = 0
    #: The stream is exhausted.
    complete: bool = False


@dataclass(frozen=True, slots=True)
class Pending:
    """A listed object that passed the filters and the key checks and becomes a scene,
    before its :class:`SceneSpec` is built (:meth:`Discovery.spec_of`): a sampled plan
    builds specs only for the objects it draws."""

    #: Its key below the listed prefix (checked).
    relative: str
    info: ObjectInfo
    #: The keys whose outputs may collide with its own (:func:`collision_runs`), itself
    #: included: its output name depends on them.
    run: tuple[str, ...]
    #: Its sidecars' keys below the listed prefix (:func:`group_sidecars`).
    sidecars: tuple[str, ...] = ()
    #: What the listing said of each of them (same order).
    sidecar_infos: tuple[ObjectInfo, ...] = ()


@dataclass
class Discovery:
    """The scenes of a run, as a stream: iterate it for :class:`SceneSpec` (a task each)
    and :class:`SceneResult` (an object or asset refused at discovery, with the reason).
    :attr:`counts` fill in as it goes.

    :meth:`pending` is the same stream with each scene's spec not yet built (iterate one
    or the other, not both)."""

    #: The listed prefix (``None`` for a STAC search).
    source: Location | None
    stream: Iterator[SceneSpec | SceneResult]
    counts: Counts
    index: FinishedIndex = field(default_factory=FinishedIndex.empty)
    #: The original STAC items by id, spooled to disk (a STAC search only).
    items: ItemSpool | None = None
    #: The stream before specs are built, and how one is built (listings only).
    lazy: Iterator[Pending | SceneResult] | None = None
    build: Callable[[Pending], SceneSpec] | None = None

    def __iter__(self) -> Iterator[SceneSpec | SceneResult]:
        return self.stream

    def pending(self) -> Iterator[Pending | SceneSpec | SceneResult]:
        """The scenes as :class:`Pending` (a listing) or :class:`SceneSpec` (a STAC
        search), and the refused objects; :meth:`spec_of` turns a pending one into its
        spec, exactly as the stream would have."""
        return self.lazy if self.lazy is not None else self.stream

    def spec_of(self, item: Pending | SceneSpec) -> SceneSpec:
        if isinstance(item, SceneSpec):
            return item
        assert self.build is not None
        return self.build(item)

    @property
    def finished_earlier(self) -> int:
        """Scenes finished in earlier runs (listed and matched, or no longer listed);
        final once the stream is exhausted."""
        return self.index.earlier


def _matches(relative: str, patterns: Iterable[str]) -> bool:
    """Case-insensitive glob match on the file name, or on the whole relative key when
    the pattern has a ``/``."""
    return _globs(tuple(patterns)).match(relative)


@dataclass(frozen=True)
class _Globs:
    """Globs compiled once: one regex for the name-only ones, one for the key ones."""

    names: re.Pattern[str] | None
    keys: re.Pattern[str] | None

    def match(self, relative: str) -> bool:
        rel = relative.lower()
        if self.names is not None and self.names.fullmatch(rel.rsplit("/", 1)[-1]):
            return True
        return self.keys is not None and self.keys.fullmatch(rel) is not None


@functools.lru_cache(maxsize=64)
def _globs(patterns: tuple[str, ...]) -> _Globs:
    def one(group: list[str]) -> re.Pattern[str] | None:
        if not group:
            return None
        return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in group), re.S)

    lowered = [p.lower() for p in patterns]
    return _Globs(one([p for p in lowered if "/" not in p]), one([p for p in lowered if "/" in p]))


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
    if settings.archive == "in-place" and settings.storage_class == "STANDARD":
        raise ConfigError(
            "--archive in-place changes the storage class where the originals are: give an "
            "archive class with --storage-class (STANDARD is for archiving to a prefix)"
        )
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
        if not loc.is_s3:
            continue
        try:
            exists = store.bucket_exists(loc.bucket)
        except StorageError as err:
            raise ConfigError(f"cannot reach the {what} bucket s3://{loc.bucket}: {err}") from err
        if not exists:
            raise ConfigError(f"the {what} bucket s3://{loc.bucket} does not exist")
    if context.archive_mode != "none" and dest.is_s3 and context.storage_class != "STANDARD":
        _probe_class(store, dest, context)
    versioning = None
    src = Location.parse(source) if source else None
    if src is not None and src.is_s3:
        try:
            versioning = store.versioning(src.bucket)
        except StorageError as err:
            log.warning("cannot read the versioning of s3://%s: %s", src.bucket, err)
    if versioning:
        log.info("source bucket s3://%s: versioning %s", src.bucket if src else "", versioning)
    tiering = None
    if context.storage_class == "INTELLIGENT_TIERING" and context.archive_mode != "none":
        where = src
        if context.archive_mode == "prefix" and context.archive:
            where = Location.parse(context.archive)
        if where is not None and where.is_s3:
            try:
                tiering = store.tiering(where.bucket)
            except StorageError as err:
                log.warning("cannot read the Intelligent-Tiering of s3://%s: %s", where.bucket, err)
    return Preflight(versioning, tiering)


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


#: Listed objects are matched against the finished index this many at a time.
BATCH = 1000


def selected(info: ObjectInfo, settings: Settings) -> bool:
    """Whether an object passes the filters on what a listing says of it: size, last
    modified, storage class."""
    if settings.min_size is not None and info.size < settings.min_size:
        return False
    if settings.max_size is not None and info.size > settings.max_size:
        return False
    if settings.source_classes and info.storage_class not in settings.source_classes:
        return False
    if settings.modified_since or settings.modified_before:
        mtime = _when(info.mtime)
        if mtime is None:
            return False
        if settings.modified_since and mtime < _utc(settings.modified_since):
            return False
        if settings.modified_before and mtime >= _utc(settings.modified_before):
            return False
    return True


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def collision_runs(rels: Iterable[T], key: Callable[[T], str]) -> Iterator[list[T]]:
    """Consecutive items whose outputs may collide (``a.tif``, ``a.jp2`` -> ``a.tif``),
    from a stream in key order. Outputs collide only between names in one folder sharing
    the part before the first dot, and in key order those are next to each other (strings
    with a common prefix are contiguous), so a run ends as soon as a key does not start
    with the run's folder and first-dot stem: memory is one run, not the listing."""
    run: list[T] = []
    anchor = ""
    for item in rels:
        rel = key(item)
        if run and rel.startswith(anchor):
            run.append(item)
            continue
        if run:
            yield run
        anchor = _anchor(rel)
        run = [item]
    if run:
        yield run


def _anchor(rel: str) -> str:
    """The folder and first-dot stem of ``rel`` and a dot (``a/b.c.tif`` -> ``a/b.``),
    as ``posixpath`` gives them; string slicing where the folder has no trailing or
    leading ``/`` to strip (every key that passed :func:`key_problem`)."""
    cut = rel.rfind("/")
    if cut > 0 and rel[cut - 1] != "/":
        return rel[: cut + 1] + rel[cut + 1 :].split(".", 1)[0] + "."
    if cut < 0:
        return rel.split(".", 1)[0] + "."
    head, name = posixpath.split(rel)
    return posixpath.join(head, name.split(".", 1)[0]) + "."


def discover(
    settings: Settings,
    context: RunContext,
    *,
    skip_finished: bool = True,
    consolidate: bool = False,
) -> Discovery:
    """The run's scenes as a stream (see :class:`Discovery`): the listing of
    ``settings.source`` or the STAC search. With ``skip_finished``, scenes an earlier run
    finished are counted (:attr:`Discovery.finished_earlier`), not streamed; with
    ``consolidate`` (a run, not a dry run) the finished index's parts may be merged."""
    check_locations(settings)
    counts = Counts()
    if settings.stac.url:
        items = ItemSpool()
        stac = discover_stac(settings, context, items)
        return Discovery(
            source=None, stream=_counted_stac(stac, counts), counts=counts, items=items
        )
    if settings.inventory:
        manifest = read_manifest(settings.inventory, context.s3)
        source = _inventory_source(settings, manifest)
        check_locations(settings.model_copy(update={"source": source.url, "inventory": None}))
        listing: Iterable[ObjectInfo] = _inventory_listing(manifest, context.s3, source, counts)
        return _discovery(source, listing, settings, context, counts, skip_finished, consolidate)
    assert settings.source is not None
    source = Location.parse(settings.source)
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
        listing = store.listing(prefix)
    skip = skip_finished and single is None
    return _discovery(prefix, listing, settings, context, counts, skip, consolidate)


def _counted_stac(
    stream: Iterator[SceneSpec | SceneResult], counts: Counts
) -> Iterator[SceneSpec | SceneResult]:
    for item in stream:
        counts.listed += 1
        if isinstance(item, SceneResult):
            counts.refused += 1
        else:
            counts.scenes += 1
        yield item
    counts.complete = True


def _inventory_source(settings: Settings, manifest: Manifest) -> Location:
    """The prefix an inventory run takes: ``--source``, whose bucket the manifest must
    name as its ``sourceBucket`` and sit under as S3 Inventory lays reports out
    (:func:`~compactor.sources._inventory.layout_problem`). The manifest is data: it never
    chooses the bucket."""
    assert settings.source is not None  # check_inventory
    source = Location.parse(settings.source).as_prefix()
    if source.bucket != manifest.source_bucket:
        raise ConfigError(
            f"--source {source.url} is not in the inventoried bucket: {manifest.url} is the "
            f"inventory of s3://{manifest.source_bucket}/ (its sourceBucket); give the "
            "manifest of an inventory of s3://" + source.bucket + "/"
        )
    problem = layout_problem(manifest)
    if problem is not None:
        raise ConfigError(f"{manifest.url} is not where S3 Inventory puts it: {problem}")
    return source


def _inventory_listing(
    manifest: Manifest, s3: S3Options, source: Location, counts: Counts
) -> Iterator[ObjectInfo]:
    """The inventory's objects below ``source``, batch by batch, each batch in key order
    (so that outputs that could collide meet within it; across batches a collision is
    caught when the second output is stored: never overwritten, that scene fails)."""
    stats = InventoryStats()
    key = source.key
    try:
        for batch in iter_inventory(manifest, s3, stats=stats):
            inside = [o for o in batch if o.url[5 + len(source.bucket) + 1 :].startswith(key)]
            counts.excluded += len(batch) - len(inside)
            counts.listed += len(batch) - len(inside)
            inside.sort(key=lambda o: o.url)
            yield from inside
    finally:
        log.info(
            "inventory %s: %d rows, %d current objects (%d delete markers and %d earlier "
            "versions skipped)",
            manifest.url, stats.rows, stats.objects, stats.delete_markers, stats.not_latest,
        )  # fmt: skip


def _discovery(
    prefix: Location,
    listing: Iterable[ObjectInfo],
    settings: Settings,
    context: RunContext,
    counts: Counts,
    skip_finished: bool,
    consolidate: bool,
) -> Discovery:
    dest = Location.parse(context.dest)
    # Never pick up our own outputs, archive copies or records.
    own: list[Location] = [dest.as_prefix(), dest.join(META_PREFIX + "/")]
    if context.archive_mode == "prefix" and context.archive:
        own.append(Location.parse(context.archive).as_prefix())

    base = prefix.as_prefix().url
    owned = tuple(p.as_prefix().url for p in own)
    include, exclude = _globs(settings.include), _globs(settings.exclude)

    def relative(url: str, sidecar: bool = False) -> str | None:
        """The key below the source prefix of a URL the run may take, else ``None``
        (``sidecar``: of a sidecar-shaped key, which ``--include`` does not select)."""
        # Plain strings (listings and the index give URLs in Location's own form): this
        # is called for every listed object and every finished scene.
        if not url.startswith(base) or url.startswith(owned):
            return None
        rel = url[len(base) :]
        if not prefix.is_s3:
            rel = rel.replace(os.sep, "/")
        if "/_compactor/" in f"/{rel}" or not (sidecar or include.match(rel)):
            return None
        return None if exclude.match(rel) else rel

    index = FinishedIndex.empty()
    if skip_finished:
        index = FinishedIndex.load(
            store_for(dest, context.s3),
            dest,
            lambda url: relative(url) is not None,
            consolidate=consolidate,
        )
        if len(index):
            log.info("%d scenes in scope were finished by earlier runs", len(index))
            # Entries count only as confirmed by the scenes' state records (read back
            # from the destination like the index: either may be forged).
            records = Records.load(store_for(dest, context.s3), dest, prefix)
            log.info("%d state records in scope", len(records))
            index.confirm_with(records)
    lazy = _pending(listing, prefix, relative, settings, context, index, counts)
    build = _builder(prefix, context)
    return Discovery(
        source=prefix,
        stream=(item if isinstance(item, SceneResult) else build(item) for item in lazy),
        counts=counts,
        index=index,
        lazy=lazy,
        build=build,
    )


def _builder(prefix: Location, context: RunContext) -> Callable[[Pending], SceneSpec]:
    """How a :class:`Pending` scene becomes its :class:`SceneSpec`: its URL, its output
    (named without collisions within its run: :func:`assign_outputs`) and archive copy."""
    dest = Location.parse(context.dest)
    archive_root = (
        Location.parse(context.archive)
        if context.archive_mode == "prefix" and context.archive
        else None
    )
    in_place = context.archive_mode == "in-place"

    def build(p: Pending) -> SceneSpec:
        rel = p.relative
        named = output_relative(rel) if len(p.run) == 1 else assign_outputs(list(p.run))[rel]
        src_loc = prefix.join(rel)
        archive: str | None = None
        if in_place:
            archive = src_loc.url
        elif archive_root is not None:
            archive = archive_root.join(rel).url
        return SceneSpec(
            source=src_loc.url,
            relative=rel,
            output=dest.join(named).url,
            archive=archive,
            listed=p.info,
            sidecars=tuple(prefix.join(side).url for side in p.sidecars),
            sidecar_sizes=tuple(info.size for info in p.sidecar_infos),
            sidecar_etags=tuple(info.etag for info in p.sidecar_infos),
        )

    return build


def _pending(
    listing: Iterable[ObjectInfo],
    prefix: Location,
    relative: Callable[..., str | None],
    settings: Settings,
    context: RunContext,
    index: FinishedIndex,
    counts: Counts,
) -> Iterator[Pending | SceneResult]:
    conditions = Conditions(context.finish_digest(), context.policy_digest())
    # An S3 key below the prefix: the URL after ``s3://bucket/`` (listings give URLs in
    # Location's own form).
    key_at = len(f"s3://{prefix.bucket}/") if prefix.is_s3 else 0

    def candidates() -> Iterator[tuple[str, ObjectInfo, bool] | SceneResult]:
        try:
            for info in listing:
                counts.listed += 1
                name = info.url.rsplit("/", 1)[-1]
                sidecar = is_sidecar_shaped(name.rsplit(os.sep, 1)[-1])
                # A sidecar goes with its raster whatever the globs and filters say of it.
                rel = relative(info.url, sidecar)
                if rel is None or not (sidecar or selected(info, settings)):
                    counts.excluded += 1
                    continue
                if prefix.is_s3:
                    key = info.url[key_at:]
                    problem = key_problem(key)
                    if problem is None and rel != key:
                        # What prefix.join(rel) checks on S3 (the same function on key
                        # below a prefix of the whole bucket).
                        below = key_problem(rel)
                        problem = f"refused key {rel!r}: {below}" if below else None
                else:
                    problem = None
                    try:
                        prefix.join(rel)  # local paths: must stay below --source once resolved
                    except UnsafeKeyError as err:
                        problem = str(err)
                if problem is not None and sidecar:
                    log.warning("not taking the sidecar %r: %s", info.url, problem)
                    counts.excluded += 1
                    continue
                if problem is not None:
                    log.warning("refused %r: %s", info.url, problem)
                    counts.refused += 1
                    yield SceneResult.refused(info.url, f"refused key: {problem}", info.size)
                    continue
                yield rel, info, sidecar
        except ObjectNotFound as err:
            raise DiscoveryError(f"cannot list {prefix.url}: it does not exist") from err
        except StorageError as err:
            raise DiscoveryError(f"cannot list {prefix.url}: {err}") from err

    def specs(batch: list[list[tuple[str, ObjectInfo, bool]]]) -> Iterator[Pending]:
        # A raster's sidecars are next to it in key order (``a.rpb``, ``a.tif``,
        # ``a.tif.aux.xml``), within its run or, for ``a_rpc.txt``, a few keys on: grouped
        # within the batch (one at a batch's edge stays where it is, as a lone sidecar).
        groups, lone = group_sidecars([rel for run in batch for rel, _, _ in run])
        sidecars = {g.raster: g.sidecars for g in groups}
        listed = {rel: info for run in batch for rel, info, side in run if side}
        counts.sidecars += sum(side for run in batch for _, _, side in run)
        counts.lone_sidecars += len(lone)
        for key in lone:
            log.debug("%s: a sidecar without its raster, not a scene", key)
        rasters = [[(rel, info) for rel, info, side in run if not side] for run in batch]
        flat = [pair for run in rasters for pair in run]
        done = index.finished((info for _, info in flat), conditions)
        at = 0
        for run in rasters:
            rels = tuple(rel for rel, _ in run)
            for (rel, info), finished in zip(run, done[at : at + len(run)], strict=True):
                if finished:
                    counts.finished += 1
                    continue
                counts.scenes += 1
                sides = sidecars.get(rel, ())
                yield Pending(rel, info, rels, sides, tuple(listed[k] for k in sides))
            at += len(run)

    def scenes() -> Iterator[tuple[str, ObjectInfo, bool]]:
        for item in candidates():
            if isinstance(item, SceneResult):
                refused.append(item)
            else:
                yield item

    refused: list[SceneResult] = []
    batch: list[list[tuple[str, ObjectInfo, bool]]] = []
    size = 0
    for run in collision_runs(scenes(), key=lambda item: item[0]):
        yield from refused
        refused.clear()
        batch.append(run)
        size += len(run)
        if size >= BATCH:
            yield from specs(batch)
            batch, size = [], 0
    yield from refused
    yield from specs(batch)
    counts.complete = True
    log.info(
        "discovered %d scenes under %s (%d listed, %d excluded, %d refused, %d finished earlier;"
        " %d sidecars, %d of them without their raster: not scenes)",
        counts.scenes, prefix.url, counts.listed, counts.excluded, counts.refused,
        index.earlier, counts.sidecars, counts.lone_sidecars,
    )  # fmt: skip
    if index.unconfirmed:
        log.info(
            "%d scenes in the finished index got a task: no state record confirms their "
            "entry (entries of older runs, records rewritten since, or forged entries)",
            index.unconfirmed,
        )
    if not counts.scenes and not counts.refused and not counts.finished and not index.earlier:
        what = f"{counts.listed} object{'s' if counts.listed != 1 else ''} listed"
        raise DiscoveryError(
            f"no scenes under {prefix.url} match --include {' '.join(settings.include)}"
            + (f" --exclude {' '.join(settings.exclude)}" if settings.exclude else "")
            + f" ({what}, {counts.excluded} excluded by the globs and filters)"
        )
