"""STAC: a STAC API search as the source of scenes, and the items re-pointed afterwards.

**Search** (:func:`discover_stac`) goes through pystac-client: collections, bbox or
intersects, datetime, the Query extension or a CQL2-JSON filter where the server conforms,
``max_items``. Each matching item contributes its raster data assets (or the asset keys
asked for): one scene per asset, at ``<dest>/<collection>/<item id>/<asset key>.tif``.

Asset hrefs may be ``s3://`` URLs, object-store HTTPS URLs (AWS virtual-hosted or path
style, or the configured S3 endpoint), which are mapped to ``s3://`` and treated exactly as
listed objects, or any other HTTP(S) URL, read through GDAL's ``/vsicurl/`` and never
archived or deleted (compactor does not own them).

**Updated items** (:func:`updated_item`): every compacted asset points at its COG (type,
``file:size``, ``file:checksum`` as a SHA-256 multihash), and the original stays as its
own asset with role ``source`` at its archive href, with its size, checksum and storage
class (storage extension v2: a ``storage:schemes`` entry per storage class, referenced by
the asset's ``storage:refs``). Everything else in the item is kept as it was.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests
from pystac_client import Client
from pystac_client.exceptions import APIError

from ..errors import ConfigError, DiscoveryError, ForbiddenSourceError, StorageError
from ..keys import key_problem
from ..records import SceneResult, StacSummary
from ..redact import redact_text, redact_url
from ..scene import RunContext, SceneSpec
from ..settings import Settings, StacSettings
from ..storage import Location, store_for

log = logging.getLogger(__name__)

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
#: Media types of the assets compactor takes by default (parameters compared loosely).
RASTER_MEDIA_TYPES = ("image/tiff", "image/jp2", "image/vnd.nitf", "application/x-hdf")
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".ntf", ".nitf")
#: Roles never taken: previews and sidecars.
SKIPPED_ROLES = frozenset({"thumbnail", "overview", "visual-preview", "metadata"})
FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
STORAGE_EXTENSION = "https://stac-extensions.github.io/storage/v2.0.0/schema.json"

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


# --- search ---------------------------------------------------------------------------------


def _filter(text: str) -> dict[str, Any]:
    raw = text
    if text.startswith("@"):
        try:
            raw = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot read --filter file {text[1:]}: {err.strerror}") from err
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--filter is not CQL2-JSON: {err}") from err
    if not isinstance(value, dict):
        raise ConfigError("--filter must be a CQL2-JSON object")
    return value


def _intersects(path: str) -> dict[str, Any]:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read --intersects file {path}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise ConfigError(f"--intersects file {path} is not GeoJSON: {err}") from err
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if isinstance(value, dict) and value.get("type") == "FeatureCollection":
        feats = value.get("features") or []
        if len(feats) != 1:
            raise ConfigError(f"--intersects file {path} must hold one geometry")
        value = feats[0].get("geometry")
    if not isinstance(value, dict) or "coordinates" not in value:
        raise ConfigError(f"--intersects file {path} holds no GeoJSON geometry")
    return value


def open_api(url: str) -> Any:
    """A pystac-client ``Client`` for ``url``, with clear errors."""

    try:
        return Client.open(url)
    except APIError as err:
        raise DiscoveryError(
            f"cannot reach the STAC API at {redact_url(url)}: {_short(err)}"
        ) from err
    except Exception as err:  # pystac raises plain errors for non-STAC JSON
        raise DiscoveryError(
            f"{redact_url(url)} is not a STAC API: {type(err).__name__}: {_short(err)}"
        ) from err


def _short(err: BaseException) -> str:
    text = redact_text(str(err), ())
    if "Failed to establish a new connection" in text or "Connection refused" in text:
        return "connection refused"
    return text[:300]


def search_items(stac: StacSettings) -> tuple[list[dict[str, Any]], Iterator[dict[str, Any]]]:
    """Run the search; (the searched collections, the matching items as dicts, page after
    page as they are iterated)."""

    assert stac.url is not None
    shown = redact_url(stac.url)
    if not stac.collections:
        raise ConfigError("a STAC search needs --collection (one or more collection ids)")
    client = open_api(stac.url)
    if not client.conforms_to("ITEM_SEARCH"):
        raise DiscoveryError(f"the STAC API at {shown} does not conform to Item Search")
    if stac.filter and not client.conforms_to("FILTER"):
        raise DiscoveryError(
            f"--filter needs the Filter extension; the STAC API at {shown} does not "
            "conform to it (try --query, or --bbox/--datetime)"
        )
    if stac.query and not client.conforms_to("QUERY"):
        raise DiscoveryError(
            f"--query needs the Query extension; the STAC API at {shown} does not conform to it"
        )
    collections: list[dict[str, Any]] = []
    for cid in stac.collections:
        try:
            found = client.get_collection(cid)
        except APIError as err:
            found = None
            if "404" not in str(err) and "not found" not in str(err).lower():
                raise DiscoveryError(f"cannot read collection {cid!r}: {_short(err)}") from err
        if found is None:
            known = sorted(c.id for c in client.get_collections())
            raise DiscoveryError(
                f"the STAC API at {shown} has no collection {cid!r}"
                + (f" (it has: {', '.join(known[:20])})" if known else "")
            )
        collections.append(found.to_dict())
    kwargs: dict[str, Any] = {"collections": list(stac.collections), "limit": stac.limit}
    if stac.bbox:
        kwargs["bbox"] = list(stac.bbox)
    if stac.intersects:
        kwargs["intersects"] = _intersects(stac.intersects)
    if stac.datetime:
        kwargs["datetime"] = stac.datetime
    if stac.query:
        kwargs["query"] = list(stac.query)
    if stac.filter:
        kwargs["filter"] = _filter(stac.filter)
        kwargs["filter_lang"] = "cql2-json"
    if stac.max_items:
        kwargs["max_items"] = stac.max_items
    try:
        search = client.search(**kwargs)
    except APIError as err:
        raise DiscoveryError(f"the STAC search failed: {_short(err)}") from err
    return collections, _pages(search.items_as_dicts())


def _pages(items: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The search's items, a failure of a later page as the search's own failure."""
    try:
        yield from items
    except APIError as err:
        raise DiscoveryError(f"the STAC search failed: {_short(err)}") from err


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
        problem = next(
            (f"{what} id {value!r}: {p}" for what, value in
             (("collection", collection), ("item", item.get("id")))
             if (p := id_problem(value))),
            None,
        )  # fmt: skip
        for key in keys:
            href = str(item["assets"][key].get("href", ""))
            why = problem or (f"asset key {key!r}: {p}" if (p := id_problem(key)) else None)
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
            if why is not None:
                log.warning("item %s asset %s refused: %s", item_id, key, why)
                rejected += 1
                yield SceneResult.refused(
                    href, f"refused: {why}", item=item_id, asset=key,
                    collection=collection if isinstance(collection, str) else None,
                )  # fmt: skip
                continue
            items_by_id.add((str(collection), item_id), item)
            archive: str | None = None
            read_only: str | None = None
            if src.is_http:
                read_only = "an HTTP(S) href: read, never archived or deleted"
            elif context.archive_mode != "none" and not within(src, bounds):
                read_only = (
                    f"outside the buckets this run may archive from ({', '.join(bounds)}): "
                    "read, never archived or deleted"
                )
            elif context.archive_mode == "in-place":
                archive = src.url
            elif archive_root is not None:
                archive = archive_root.join(src.key).url
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
    if not matched:
        raise DiscoveryError(f"the STAC search matched no items ({what})")
    if not scenes and not rejected:
        asked = f"assets {', '.join(stac.assets)}" if stac.assets else "raster data assets"
        raise DiscoveryError(f"the {matched} items the STAC search matched have no {asked}")
    log.info(
        "STAC search (%s): %d items, %d assets, %d refused",
        what, len(items_by_id), scenes, rejected,
    )  # fmt: skip


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


# --- updated items --------------------------------------------------------------------------


def multihash_sha256(hex_digest: str) -> str:
    """The ``file:checksum`` of a SHA-256: multihash code 0x12, length 0x20, digest."""
    return "1220" + hex_digest


def _scheme(url: str, storage_class: str, s3: Any) -> tuple[str, dict[str, Any]]:
    """A storage:schemes entry for the object at ``url`` (key, scheme object)."""
    loc = Location.parse(url)
    region = getattr(s3, "region", None) or "us-east-1"
    endpoint = getattr(s3, "endpoint_url", None)
    if endpoint:
        scheme: dict[str, Any] = {
            "type": "custom-s3",
            "platform": endpoint.rstrip("/") + "/{bucket}",
            "bucket": loc.bucket,
            "region": region,
        }
    else:
        scheme = {
            "type": "aws-s3",
            "platform": "https://{bucket}.s3.{region}.amazonaws.com",
            "bucket": loc.bucket,
            "region": region,
        }
    scheme["requester_pays"] = False
    scheme["storage_class"] = storage_class
    name = f"{loc.bucket}-{storage_class.lower().replace('_', '-')}"
    return name, scheme


def updated_item(item: dict[str, Any], results: list[SceneResult], s3: Any) -> dict[str, Any]:
    """``item`` with every compacted asset of ``results`` re-pointed at its COG and its
    original kept as a ``source`` asset at its archive (or still original) href."""

    new = copy.deepcopy(item)
    assets: dict[str, Any] = new.setdefault("assets", {})
    props: dict[str, Any] = new.setdefault("properties", {})
    extensions: list[str] = list(new.get("stac_extensions") or [])
    for r in results:
        if r.status != "compacted" or not r.asset or r.asset not in assets or not r.output:
            continue
        original = assets[r.asset]
        source_asset = copy.deepcopy(original)
        compacted = copy.deepcopy(original)
        compacted["href"] = r.output
        compacted["type"] = COG_MEDIA_TYPE
        for stale in ("file:checksum", "file:size", "file:header_size", "storage:refs"):
            compacted.pop(stale, None)
        if r.bytes_out:
            compacted["file:size"] = r.bytes_out
        if r.output_sha256:
            compacted["file:checksum"] = multihash_sha256(r.output_sha256)
        assets[r.asset] = compacted

        source_asset["href"] = r.archive or r.source
        source_asset["roles"] = ["source"]
        source_asset["title"] = f"Original of {r.asset}" + (
            f" ({original['title']})" if original.get("title") else ""
        )
        if r.bytes_in:
            source_asset["file:size"] = r.bytes_in
        if r.archive_sha256:
            source_asset["file:checksum"] = multihash_sha256(r.archive_sha256)
        href = source_asset["href"]
        if href.startswith("s3://"):
            name, scheme = _scheme(href, r.storage_class or "STANDARD", s3)
            props.setdefault("storage:schemes", {})[name] = scheme
            source_asset["storage:refs"] = [name]
        assets[source_key(assets, r.asset)] = source_asset
    for ext in (FILE_EXTENSION, STORAGE_EXTENSION):
        if ext not in extensions and (ext != STORAGE_EXTENSION or "storage:schemes" in props):
            extensions.append(ext)
    new["stac_extensions"] = extensions
    props["updated"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return new


def source_key(assets: dict[str, Any], key: str) -> str:
    """Asset key of the original of ``key``: ``<key>-source`` (numbered if taken)."""
    name = f"{key}-source"
    n = 2
    while name in assets and "source" not in (assets[name].get("roles") or []):
        name = f"{key}-source-{n}"
        n += 1
    return name


def safe_name(text: str) -> str:
    """A safe file or folder name for an item or collection id: ``[A-Za-z0-9._-]`` kept,
    anything else ``_``, and ``_`` before a name that starts with a dot."""
    name = re.sub(r"[^A-Za-z0-9._\-]", "_", text)
    return "_" + name if name.startswith(".") else name


def item_filename(item_id: str) -> str:
    """A safe file name for an item id (ids may hold ``/``)."""
    return safe_name(item_id) + ".json"


def write_items(
    items: Mapping[ItemKey, Any],
    results: Iterable[SceneResult],
    report_location: str,
    settings: Settings,
    s3: Any,
) -> tuple[StacSummary, list[dict[str, Any]]]:
    """Write ``stac/<collection>/<item id>.json`` and ``stac/items.ndjson`` under the
    report location for every item with a compacted asset (items are told apart by
    collection and id); push them back with ``--stac-update``.

    ``results`` needs to hold only the compacted scenes that have an item (others are
    ignored), and is read once: the run gives the ones its recorder kept
    (:attr:`~compactor.report.RunRecorder.stac_results`); a finished run's scene
    log (:func:`~compactor.records._scene_log.read_scene_log`) serves as well.
    """

    by_item: dict[ItemKey, list[SceneResult]] = {}
    for r in results:
        if r.item is not None and r.collection is not None and r.status == "compacted":
            by_item.setdefault((r.collection, r.item), []).append(r)
    assert settings.stac.url is not None
    summary = StacSummary(api=redact_url(settings.stac.url))
    written = [
        (key, updated_item(items[key], rs, s3))
        for key, rs in sorted(by_item.items())
        if key in items
    ]
    updated = [item for _, item in written]
    if not updated:
        return summary, []
    base = Location.parse(report_location).as_prefix().join("stac/")
    store = store_for(base, s3)
    for (collection, item_id), item in written:
        store.put_bytes(
            base.join(f"{safe_name(collection)}/{item_filename(item_id)}"),
            (json.dumps(item, indent=2, ensure_ascii=False) + "\n").encode(),
            content_type="application/geo+json",
        )
    ndjson = "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in updated)
    store.put_bytes(base.join("items.ndjson"), ndjson.encode(), content_type="application/x-ndjson")
    summary.items, summary.location = len(updated), base.url
    if settings.stac.update:
        summary.updated, summary.update_error = push_items(settings.stac.url, updated)
    return summary, updated


def push_items(api: str, items: list[dict[str, Any]]) -> tuple[int, str | None]:
    """PUT each item back through the Transactions extension: (items updated, why not)."""

    client = open_api(api)
    conforms = [str(c) for c in (client.to_dict().get("conformsTo") or [])]
    if not any(c.rstrip("/").endswith("/transaction") for c in conforms):
        return 0, (
            f"the STAC API at {redact_url(api)} does not support the Transactions extension, "
            "so the updated items were not written back; they are in the report's stac/ folder"
        )
    done = 0
    for item in items:
        url = f"{api.rstrip('/')}/collections/{item['collection']}/items/{item['id']}"
        try:
            resp = requests.put(url, json=item, timeout=60)
        except requests.RequestException as err:
            return done, f"updating item {item['id']} failed: {err}"
        if resp.status_code >= 400:
            why = f"HTTP {resp.status_code} {resp.text[:200]}"
            return done, f"updating item {item['id']} failed: {why}"
        done += 1
    return done, None
