"""Pricing: S3 list prices as data, what a run costs once and saves per month, and the policy
the walk consults before archiving (:func:`worth_archiving`).
"""

from ._costs import (
    PLAN_REQUESTS,
    CostAccumulator,
    archive_skip_reason,
    estimate,
    listing_requests,
    payback,
    request_tier,
    worth_archiving,
)
from ._prices import ClassPrices, PriceTable, known_regions, load_prices, prices_for

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
