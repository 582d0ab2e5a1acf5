"""S3 list prices as data: ``prices.json`` next to this module, loaded into frozen tables.

Prices change rarely but they do change, and they differ by region: keeping them in one
data file (with its date and source) rather than in code means an update is an edit of
figures, reviewed as such, and a report can always say which table it used.

A :class:`PriceTable` is plain, picklable data: a run puts the one it uses into its
:class:`~compactor.scene._spec.RunContext`, so the scene tasks decide whether an original is
worth archiving (:func:`compactor.pricing._archiving.worth_archiving`) without reading any file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from ..errors import ConfigError

#: Bytes in the GB that AWS bills by (a GiB).
GB = 1024**3
#: Where the table lives, for messages.
PRICES_FILE = "compactor/pricing/prices.json"
#: The class every object is in unless something says otherwise.
STANDARD = "STANDARD"

RequestTier = Literal["put", "get", "free"]


@dataclass(frozen=True)
class ClassPrices:
    """What one storage class costs in one region."""

    name: str
    #: USD per GB-month (the first 50 TB tier).
    storage: float
    #: USD per 1,000 requests: PUT, COPY, POST, LIST (``put``) and GET, HEAD and every
    #: other request (``get``), as the class of the object written or read.
    put: float
    get: float
    #: USD per GB read (STANDARD_IA, ONEZONE_IA, GLACIER_IR).
    retrieval: float = 0.0
    #: Days an object is billed for at least, deleted or moved earlier or not.
    minimum_days: int = 0
    #: Bytes an object is billed for at least.
    minimum_bytes: int = 0
    #: Bytes every object adds, billed at STANDARD's rate and at this class's rate
    #: (GLACIER and DEEP_ARCHIVE: 8 KiB and 32 KiB).
    overhead_standard_bytes: int = 0
    overhead_class_bytes: int = 0
    #: USD per 1,000 objects a month, for objects of at least ``monitoring_min_bytes``
    #: (INTELLIGENT_TIERING's monitoring and automation).
    monitoring: float = 0.0
    monitoring_min_bytes: int = 0
    #: Named sub-tiers and their USD per GB-month (INTELLIGENT_TIERING's access tiers).
    tiers: tuple[tuple[str, float], ...] = ()

    def request_price(self, tier: RequestTier) -> float:
        """USD per 1,000 requests of ``tier``."""
        return 0.0 if tier == "free" else self.put if tier == "put" else self.get

    @property
    def per_object_overhead(self) -> int:
        return self.overhead_standard_bytes + self.overhead_class_bytes


@dataclass(frozen=True)
class PriceTable:
    """The prices of every storage class in one region, with where they come from."""

    region: str
    #: The region's name on the pricing page, e.g. ``Europe (Ireland)``.
    name: str
    #: The month the figures hold for, e.g. ``2025-01``.
    date: str
    source: str
    classes: tuple[ClassPrices, ...]
    #: What a reader of the estimate should know about these prices (why this region,
    #: which figures are uncertain).
    notes: tuple[str, ...] = ()

    def __getitem__(self, storage_class: str) -> ClassPrices:
        for c in self.classes:
            if c.name == storage_class:
                return c
        known = ", ".join(c.name for c in self.classes)
        raise KeyError(f"no prices for storage class {storage_class!r} (known: {known})")

    def __contains__(self, storage_class: object) -> bool:
        return any(c.name == storage_class for c in self.classes)

    def of(self, storage_class: str | None) -> ClassPrices:
        """The prices of ``storage_class``; STANDARD's for ``None`` and for a class the table
        does not price (REDUCED_REDUNDANCY, EXPRESS_ONEZONE, OUTPOSTS ...)."""
        if storage_class and storage_class in self:
            return self[storage_class]
        return self[STANDARD]

    @property
    def standard(self) -> ClassPrices:
        return self[STANDARD]

    def monthly_usd(self, size: int, storage_class: str | None) -> float:
        """What one object of ``size`` bytes costs a month in ``storage_class``: billed at
        least the class's minimum size, plus its per-object overhead and monitoring."""
        c = self.of(storage_class)
        usd = (max(size, c.minimum_bytes) + c.overhead_class_bytes) / GB * c.storage
        usd += c.overhead_standard_bytes / GB * self.standard.storage
        if c.monitoring and size >= c.monitoring_min_bytes:
            usd += c.monitoring / 1000
        return usd

    def with_notes(self, *notes: str) -> PriceTable:
        return PriceTable(
            self.region, self.name, self.date, self.source, self.classes, self.notes + notes
        )


@cache
def _document() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("regions"), dict):
        raise ConfigError(f"{PRICES_FILE} has no 'regions' table")
    return data


def known_regions() -> tuple[str, ...]:
    """The regions the price table covers, in its order."""
    return tuple(_document()["regions"])


def default_region() -> str:
    return str(_document().get("default_region", "us-east-1"))


def _number(where: str, raw: dict[str, Any], name: str, default: float | None = None) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{PRICES_FILE}: {where}.{name} must be a number >= 0, not {value!r}")
    return float(value)


def _class(region: str, name: str, raw: dict[str, Any], rules: dict[str, Any]) -> ClassPrices:
    where = f"regions.{region}.classes.{name}"
    rule_where = f"classes.{name}"
    tiers = raw.get("tiers") or {}
    return ClassPrices(
        name=name,
        storage=_number(where, raw, "storage_gb_month"),
        put=_number(where, raw, "put_per_1000"),
        get=_number(where, raw, "get_per_1000"),
        retrieval=_number(where, raw, "retrieval_per_gb", 0.0),
        minimum_days=int(_number(rule_where, rules, "minimum_days", 0)),
        minimum_bytes=int(_number(rule_where, rules, "minimum_bytes", 0)),
        overhead_standard_bytes=int(_number(rule_where, rules, "overhead_standard_bytes", 0)),
        overhead_class_bytes=int(_number(rule_where, rules, "overhead_class_bytes", 0)),
        monitoring=_number(where, raw, "monitoring_per_1000", 0.0),
        monitoring_min_bytes=int(_number(rule_where, rules, "monitoring_min_bytes", 0)),
        tiers=tuple((str(k), _number(f"{where}.tiers", tiers, k)) for k in tiers),
    )


@cache
def load_prices(region: str | None = None) -> PriceTable:
    """The price table of ``region`` (default: the file's default region, us-east-1).

    Raises :class:`~compactor.errors.ConfigError` for a region the file does not cover,
    naming the ones it does."""
    doc = _document()
    region = region or default_region()
    regions: dict[str, Any] = doc["regions"]
    if region not in regions:
        raise ConfigError(
            f"no S3 prices for region {region!r} in {PRICES_FILE}; known regions: "
            f"{', '.join(regions)} (choose one with --price-region, or add the region's "
            "prices to the file)"
        )
    entry = regions[region]
    rules: dict[str, Any] = doc.get("classes", {})
    classes = entry.get("classes") or {}
    missing = sorted(set(rules) - set(classes))
    if STANDARD not in classes or missing:
        raise ConfigError(f"{PRICES_FILE}: region {region} prices no {', '.join(missing)}")
    notes = []
    if entry.get("uncertain"):
        notes.append(f"{region} prices are uncertain ({entry['uncertain']}): see {PRICES_FILE}")
    return PriceTable(
        region=region,
        name=str(entry.get("name", region)),
        date=str(doc.get("date", "unknown")),
        source=str(doc.get("source", "")),
        classes=tuple(
            _class(region, name, raw, rules.get(name, {})) for name, raw in classes.items()
        ),
        notes=tuple(notes),
    )


def prices_for(
    price_region: str | None, region: str | None = None, endpoint_url: str | None = None
) -> PriceTable:
    """The table a run prices with: ``price_region`` when given (``--price-region``: an
    unknown one is a usage error), else the run's own ``region`` when the file covers it,
    else the default region, with a note that says so. An ``endpoint_url`` (an
    S3-compatible store) gets a note that AWS prices are only indicative there."""
    if price_region:
        table = load_prices(price_region.lower())
    elif region and region in known_regions():
        table = load_prices(region)
    else:
        table = load_prices(None)
        why = (
            f"the run's region {region} is not in {PRICES_FILE}"
            if region
            else "the run's region is not known"
        )
        table = table.with_notes(f"{why}: {table.region} prices (set --price-region)")
    if endpoint_url:
        table = table.with_notes(
            "the store is an S3-compatible endpoint, not AWS S3: AWS prices are only indicative"
        )
    return table
