"""STAC: talking to a STAC API through pystac-client: the search (collections, bbox or
intersects, datetime, the Query extension or a CQL2-JSON filter where the server
conforms), its pages, and the updated items put back through the Transactions extension.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from pystac_client import Client
from pystac_client.exceptions import APIError

from ..errors import ConfigError, DiscoveryError
from ..redact import redact_text, redact_url
from ..settings import StacSettings

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
    _check_conforms(client, stac, shown)
    collections = [_collection(client, cid, shown) for cid in stac.collections]
    try:
        search = client.search(**_search_arguments(stac))
    except APIError as err:
        raise DiscoveryError(f"the STAC search failed: {_short(err)}") from err
    return collections, _pages(search.items_as_dicts())


def _check_conforms(client: Any, stac: StacSettings, shown: str) -> None:
    """The API does Item Search, and the extensions the search asks for."""
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


def _collection(client: Any, cid: str, shown: str) -> dict[str, Any]:
    """The collection ``cid`` as a dict; a collection the API does not have is an error
    naming those it has."""
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
    collection: dict[str, Any] = found.to_dict()
    return collection


def _search_arguments(stac: StacSettings) -> dict[str, Any]:
    """pystac-client's ``search`` arguments for the search asked for."""
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
    return kwargs


def _pages(items: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The search's items, a failure of a later page as the search's own failure."""
    try:
        yield from items
    except APIError as err:
        raise DiscoveryError(f"the STAC search failed: {_short(err)}") from err


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
