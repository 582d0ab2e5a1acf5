"""Where scenes come from: an S3 listing or a local directory, an S3 Inventory report, a STAC
search, and the index of finished scenes a sweep skips.
"""

from ._discover import Discovery, Pending, discover
from ._finished import Conditions
from ._index_writer import IndexWriter
from ._inventory import InventoryStats, iter_inventory
from ._locations import check_locations, preflight
from ._manifest import read_manifest
from ._stac import ItemKey
from ._stac_items import write_items
from ._strata import Draw, Estimate, Outcome, StratifiedSampler, extrapolate

__all__ = [
    "Conditions",
    "Discovery",
    "Draw",
    "Estimate",
    "IndexWriter",
    "InventoryStats",
    "ItemKey",
    "Outcome",
    "Pending",
    "StratifiedSampler",
    "check_locations",
    "discover",
    "extrapolate",
    "iter_inventory",
    "preflight",
    "read_manifest",
    "write_items",
]
