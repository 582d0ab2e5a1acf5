"""Pricing: S3 list prices as data, what a run costs once and saves per month, and the policy
the walk consults before archiving (:func:`worth_archiving`).
"""

from typing import TYPE_CHECKING, Any

from ._archiving import archive_skip_reason, payback, worth_archiving
from ._prices import ClassPrices, PriceTable, known_regions, load_prices, prices_for
from ._requests import PLAN_REQUESTS, listing_requests, request_tier

if TYPE_CHECKING:
    from ._costs import CostAccumulator, estimate


def __getattr__(name: str) -> Any:
    """The cost estimate loads when first asked for: it builds the report's models
    (records: pydantic, boto3), which the CLI's help (the regions of --region) does not
    need."""
    if name in ("CostAccumulator", "estimate"):
        from . import _costs

        value = getattr(_costs, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The names loaded on use too (documentation tools list a module by ``dir``)."""
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "PLAN_REQUESTS",
    "ClassPrices",
    "CostAccumulator",
    "PriceTable",
    "archive_skip_reason",
    "estimate",
    "known_regions",
    "listing_requests",
    "load_prices",
    "payback",
    "prices_for",
    "request_tier",
    "worth_archiving",
]
