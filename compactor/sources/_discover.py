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

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ..errors import ConfigError, DiscoveryError, ObjectNotFound, StorageError, UnsafeKeyError
from ..gdal import group_sidecars, is_sidecar_shaped
from ..keys import key_problem
from ..records import SceneResult
from ..scene import RunContext, SceneSpec, assign_outputs, output_relative
from ..settings import META_PREFIX, Settings
from ..storage import Location, ObjectInfo, S3Options, store_for
from ._finished import Conditions, FinishedIndex, Records
from ._inventory import InventoryStats, iter_inventory
from ._locations import check_locations
from ._manifest import Manifest, layout_problem, read_manifest
from ._select import _globs, collision_runs, selected
from ._stac import ItemSpool, discover_stac

log = logging.getLogger(__name__)


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


#: Listed objects are matched against the finished index this many at a time.
BATCH = 1000


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
    (:func:`~compactor.sources._manifest.layout_problem`). The manifest is data: it never
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

    def scenes() -> Iterator[tuple[str, ObjectInfo, bool]]:
        for item in _candidates(listing, prefix, relative, settings, counts):
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
            yield from _specs(batch, index, conditions, counts)
            batch, size = [], 0
    yield from refused
    yield from _specs(batch, index, conditions, counts)
    counts.complete = True
    _discovered(prefix, settings, index, counts)


def _candidates(
    listing: Iterable[ObjectInfo],
    prefix: Location,
    relative: Callable[..., str | None],
    settings: Settings,
    counts: Counts,
) -> Iterator[tuple[str, ObjectInfo, bool] | SceneResult]:
    """The listed objects the run may take, as (key below the prefix, what the listing
    said, whether it is a sidecar), and those refused for their keys."""
    # An S3 key below the prefix: the URL after ``s3://bucket/`` (listings give URLs in
    # Location's own form).
    key_at = len(f"s3://{prefix.bucket}/") if prefix.is_s3 else 0
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
            problem = _listed_key_problem(prefix, info.url[key_at:], rel)
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


def _listed_key_problem(prefix: Location, key: str, rel: str) -> str | None:
    """What is wrong with a listed object's key (``key``: below its S3 bucket) or with its
    key ``rel`` below the listed prefix; ``None`` when nothing is."""
    if prefix.is_s3:
        problem = key_problem(key)
        if problem is None and rel != key:
            # What prefix.join(rel) checks on S3 (the same function on key
            # below a prefix of the whole bucket).
            below = key_problem(rel)
            problem = f"refused key {rel!r}: {below}" if below else None
        return problem
    try:
        prefix.join(rel)  # local paths: must stay below --source once resolved
    except UnsafeKeyError as err:
        return str(err)
    return None


def _specs(
    batch: list[list[tuple[str, ObjectInfo, bool]]],
    index: FinishedIndex,
    conditions: Conditions,
    counts: Counts,
) -> Iterator[Pending]:
    """The scenes of a batch of collision runs that are not finished, with their sidecars."""
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


def _discovered(prefix: Location, settings: Settings, index: FinishedIndex, counts: Counts) -> None:
    """Once the listing is exhausted: what was found, logged; nothing at all, an error."""
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
