"""STAC: a STAC API search as the source of scenes, and the items re-pointed afterwards.

**Search** (:func:`discover_stac`) goes through pystac-client: collections, bbox or
intersects, datetime, the Query extension or a CQL2-JSON filter where the server conforms,
``max_items``. Each matching item contributes its raster data assets (or the asset keys
asked for): one scene per asset, at ``<dest>/<collection>/<item id>/<asset key>.tif``.

Asset hrefs may be ``s3://`` URLs, object-store HTTPS URLs (AWS virtual-hosted or path
style, or the configured S3 endpoint), which are mapped to ``s3://`` and treated exactly as
listed objects, or any other HTTP(S) URL, read through GDAL's ``/vsicurl/`` and never
archived or deleted (compactor does not own them).

The API itself is talked to in :mod:`._stac_api`; the updated items written after a run
are made in :mod:`._stac_items`.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from ..errors import ConfigError, DiscoveryError, ForbiddenSourceError, StorageError
from ..keys import key_problem
from ..records import SceneResult
from ..scene import RunContext, SceneSpec
from ..settings import Settings, StacSettings
from ..storage import Location
from ._stac_api import search_items

log = logging.getLogger(__name__)

#: Media types of the assets compactor takes by default (parameters compared loosely).
RASTER_MEDIA_TYPES = ("image/tiff", "image/jp2", "image/vnd.nitf", "application/x-hdf")
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".ntf", ".nitf")
#: Roles never taken: previews and sidecars.
SKIPPED_ROLES = frozenset({"thumbnail", "overview", "visual-preview", "metadata"})

_AWS_VIRTUAL = re.compile(
    r"^(?P<bucket>[a-z0-9.\-]+)\.s3(?:[.\-](?P<region>[a-z0-9\-]+))?\.amazonaws\.com$"
)
_AWS_PATH = re.compile(r"^s3(?:[.\-](?P<region>[a-z0-9\-]+))?\.amazonaws\.com$")


# --- hrefs ------------------------------------------------------------------------------


def s3_url_for(href: str, endpoint_url: str | None) -> str | None:
    """``s3://bucket/key`` for an object-store HTTPS URL whose bucket can be read from it
    (AWS virtual-hosted or path style, or path style at ``endpoint_url``); else ``None``."""
    parts = urlsplit(href)
    if parts.scheme not in ("http", "https") or parts.query:
        return None
    path = unquote(parts.path)
    if endpoint_url:
        ep = urlsplit(endpoint_url)
        base = ep.path.rstrip("/")
        if (parts.scheme, parts.netloc) == (ep.scheme, ep.netloc) and path.startswith(base + "/"):
            bucket, _, key = path[len(base) + 1 :].partition("/")
            return f"s3://{bucket}/{key}" if bucket and key else None
    host = parts.hostname or ""
    if m := _AWS_VIRTUAL.match(host):
        key = path.lstrip("/")
        return f"s3://{m['bucket']}/{key}" if key else None
    if _AWS_PATH.match(host):
        bucket, _, key = path.lstrip("/").partition("/")
        return f"s3://{bucket}/{key}" if bucket and key else None
    return None


def source_url(href: str, base: str | None, endpoint_url: str | None) -> str:
    """Where compactor reads an asset: ``s3://`` when the href names a bucket, else the
    (absolute) HTTP(S) URL."""
    if href.startswith("s3://"):
        return href
    absolute = urljoin(base, href) if base else href
    if not absolute.startswith(("http://", "https://")):
        raise ValueError(f"unsupported asset href {href!r} (s3:// or http(s)://)")
    return s3_url_for(absolute, endpoint_url) or absolute


# --- asset selection ----------------------------------------------------------------------


def is_raster_asset(asset: dict[str, Any]) -> bool:
    """A data asset (role ``data`` or no role) that is a GeoTIFF, COG, JPEG 2000 or NITF;
    previews, thumbnails and metadata never are."""
    roles = set(asset.get("roles") or [])
    if roles & SKIPPED_ROLES or (roles and "data" not in roles):
        return False
    media = str(asset.get("type") or "").split(";")[0].strip().lower()
    if media:
        return media in RASTER_MEDIA_TYPES
    return urlsplit(str(asset.get("href", ""))).path.lower().endswith(RASTER_SUFFIXES)


def select_assets(item: dict[str, Any], keys: Iterable[str]) -> list[str]:
    assets = item.get("assets") or {}
    wanted = list(keys)
    if wanted:
        return [k for k in wanted if k in assets]
    return [k for k, a in assets.items() if is_raster_asset(a)]


#: An item's identity in a search: (collection, item id). Ids are unique only within a
#: collection: two collections may each hold an item ``scene-42``.
ItemKey = tuple[str, str]


class ItemSpool(Mapping[ItemKey, dict[str, Any]]):
    """The original items of a run by (collection, id), kept in a temporary SQLite file
    rather than in memory (a search may match millions): what the updated items are made
    from."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="compactor-stac-")
        self._db = sqlite3.connect(Path(self._dir.name, "items.sqlite"), check_same_thread=False)
        self._db.execute(
            "CREATE TABLE items (collection TEXT, id TEXT, item TEXT, PRIMARY KEY (collection, id))"
        )
        self.count = 0

    def add(self, key: ItemKey, item: dict[str, Any]) -> None:
        with self._db:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO items VALUES (?, ?, ?)", (*key, json.dumps(item))
            )
        self.count += cur.rowcount

    def __contains__(self, key: object) -> bool:
        if not (isinstance(key, tuple) and len(key) == 2):
            return False
        row = self._db.execute(
            "SELECT 1 FROM items WHERE collection = ? AND id = ?", key
        ).fetchone()
        return row is not None

    def __getitem__(self, key: ItemKey) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT item FROM items WHERE collection = ? AND id = ?", key
        ).fetchone()
        if row is None:
            raise KeyError(key)
        item: dict[str, Any] = json.loads(row[0])
        return item

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[ItemKey]:
        for collection, item_id in self._db.execute(
            "SELECT collection, id FROM items ORDER BY collection, id"
        ):
            yield str(collection), str(item_id)

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()


def _self_href(item: dict[str, Any]) -> str | None:
    for link in item.get("links") or []:
        if link.get("rel") == "self":
            return str(link.get("href"))
    return None


def archive_bounds(stac: StacSettings, collections: list[dict[str, Any]]) -> tuple[str, ...]:
    """Where ``s3://`` assets may be archived and deleted: ``--allow-bucket`` (``bucket`` or
    ``bucket/prefix/``), else the buckets the searched collections declare in their
    ``storage:schemes`` (storage extension v2): the search's own buckets. Items cannot
    widen this: a hostile item naming another bucket is read, never archived or deleted."""
    if stac.allow_buckets:
        return stac.allow_buckets
    found: list[str] = []
    for collection in collections:
        schemes = collection.get("storage:schemes") or {}
        if isinstance(schemes, dict):
            for scheme in schemes.values():
                bucket = scheme.get("bucket") if isinstance(scheme, dict) else None
                if isinstance(bucket, str) and bucket and "{" not in bucket:
                    found.append(bucket)
    return tuple(dict.fromkeys(found))


def within(loc: Location, bounds: tuple[str, ...]) -> bool:
    """Whether an ``s3://`` location lies in one of ``bounds`` (``bucket``/``bucket/prefix``)."""
    for bound in bounds:
        bucket, _, prefix = bound.partition("/")
        if loc.bucket == bucket and loc.key.startswith(prefix):
            return True
    return False


def id_problem(value: object) -> str | None:
    """Why a collection, item or asset id cannot name a folder or file below --dest."""
    if not isinstance(value, str):
        return "it is not a string"
    if "/" in value or "\\" in value:
        return "it holds a path separator"
    return key_problem(value)


def discover_stac(
    settings: Settings, context: RunContext, items_by_id: ItemSpool
) -> Iterator[SceneSpec | SceneResult]:
    """Scenes of a STAC search as the result pages arrive, and the assets refused (unsafe
    ids, hrefs GDAL must not be given, hosts not allowed) as failed scenes with the
    reason. The original items with an asset to compact go to ``items_by_id``, by
    (collection, id)."""

    stac = settings.stac
    collections, items = search_items(stac)
    what = _describe(stac)
    bounds = archive_bounds(stac, collections)
    if context.archive_mode != "none" and not bounds:
        raise ConfigError(
            "--archive with a STAC search archives and deletes originals only inside buckets "
            "you name: add --allow-bucket BUCKET[/PREFIX/] (repeatable), or declare them in "
            "the collection's storage:schemes"
        )
    return _stac_scenes(settings, context, items, bounds, items_by_id, what)


def _stac_scenes(
    settings: Settings,
    context: RunContext,
    items: Iterator[dict[str, Any]],
    bounds: tuple[str, ...],
    items_by_id: ItemSpool,
    what: str,
) -> Iterator[SceneSpec | SceneResult]:
    stac = settings.stac
    dest = Location.parse(context.dest)
    archive_root = (
        Location.parse(context.archive)
        if context.archive_mode == "prefix" and context.archive
        else None
    )
    matched = scenes = rejected = 0
    for item in items:
        matched += 1
        item_id = str(item.get("id"))
        collection = item.get("collection") or stac.collections[0]
        keys = select_assets(item, stac.assets)
        if not keys:
            log.info("item %s has no raster data asset to compact", item_id)
            continue
        problem = _ids_problem(collection, item.get("id"))
        for key in keys:
            href = str(item["assets"][key].get("href", ""))
            why = problem or (f"asset key {key!r}: {p}" if (p := id_problem(key)) else None)
            src, why = _asset_source(href, item, why, settings, context)
            if why is not None or src is None:
                log.warning("item %s asset %s refused: %s", item_id, key, why)
                rejected += 1
                yield SceneResult.refused(
                    href, f"refused: {why}", item=item_id, asset=key,
                    collection=collection if isinstance(collection, str) else None,
                )  # fmt: skip
                continue
            items_by_id.add((str(collection), item_id), item)
            archive, read_only = _archive_of(src, context, bounds, archive_root)
            relative = f"{collection}/{item_id}/{key}.tif"
            scenes += 1
            yield SceneSpec(
                source=src.url,
                relative=relative,
                output=dest.join(relative).url,
                archive=archive,
                item=item_id,
                asset=key,
                collection=str(collection),
                read_only=read_only,
            )
    _check_found(stac, what, matched, scenes, rejected)
    log.info(
        "STAC search (%s): %d items, %d assets, %d refused",
        what, len(items_by_id), scenes, rejected,
    )  # fmt: skip


def _ids_problem(collection: object, item_id: object) -> str | None:
    """Why the collection or item id cannot name a folder below --dest, if either cannot."""
    return next(
        (f"{what} id {value!r}: {p}" for what, value in
         (("collection", collection), ("item", item_id))
         if (p := id_problem(value))),
        None,
    )  # fmt: skip


def _asset_source(
    href: str, item: dict[str, Any], why: str | None, settings: Settings, context: RunContext
) -> tuple[Location | None, str | None]:
    """Where an asset is read (``None`` when its href is unusable), and why it is refused
    (``why`` as given, else what is wrong with the href or its host; ``None``: taken)."""
    src: Location | None = None
    try:
        url = source_url(href, _self_href(item), settings.endpoint_url)
        src = Location.parse(url)
        if why is None and src.is_s3 and (p := key_problem(src.key)):
            why = f"href {href!r}: {p}"
        if why is None and src.is_http:
            context.http.check(src.url)
    except ValueError as err:
        why = f"href {href!r}: {err}"
    except ForbiddenSourceError as err:
        why = str(err)
    except StorageError as err:  # a host that does not resolve, say: this asset only
        why = f"href {href!r}: {err}"
    return src, why


def _archive_of(
    src: Location, context: RunContext, bounds: tuple[str, ...], archive_root: Location | None
) -> tuple[str | None, str | None]:
    """Where an asset's original is archived, and why it is read only (one or neither)."""
    if src.is_http:
        return None, "an HTTP(S) href: read, never archived or deleted"
    if context.archive_mode != "none" and not within(src, bounds):
        return None, (
            f"outside the buckets this run may archive from ({', '.join(bounds)}): "
            "read, never archived or deleted"
        )
    if context.archive_mode == "in-place":
        return src.url, None
    if archive_root is not None:
        return archive_root.join(src.key).url, None
    return None, None


def _check_found(stac: StacSettings, what: str, matched: int, scenes: int, rejected: int) -> None:
    """A search that matched no items, or items without an asset to compact, is an error."""
    if not matched:
        raise DiscoveryError(f"the STAC search matched no items ({what})")
    if not scenes and not rejected:
        asked = f"assets {', '.join(stac.assets)}" if stac.assets else "raster data assets"
        raise DiscoveryError(f"the {matched} items the STAC search matched have no {asked}")


def _describe(stac: StacSettings) -> str:
    parts = [f"collections {', '.join(stac.collections)}"]
    if stac.bbox:
        parts.append("bbox " + ",".join(f"{v:g}" for v in stac.bbox))
    if stac.intersects:
        parts.append(f"intersects {stac.intersects}")
    if stac.datetime:
        parts.append(f"datetime {stac.datetime}")
    if stac.query:
        parts.append(f"query {' '.join(stac.query)}")
    if stac.filter:
        parts.append("a CQL2 filter")
    return "; ".join(parts)
