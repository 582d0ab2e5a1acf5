"""STAC: the updated items of a run. Every compacted asset points at its COG (type,
``file:size``, ``file:checksum`` as a SHA-256 multihash), and the original stays as its
own asset with role ``source`` at its archive href, with its size, checksum and storage
class (storage extension v2: a ``storage:schemes`` entry per storage class, referenced by
the asset's ``storage:refs``). Everything else in the item is kept as it was.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..records import SceneResult, StacSummary
from ..redact import redact_url
from ..settings import Settings
from ..storage import Location, store_for
from ._stac import ItemKey
from ._stac_api import push_items

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
STORAGE_EXTENSION = "https://stac-extensions.github.io/storage/v2.0.0/schema.json"


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
