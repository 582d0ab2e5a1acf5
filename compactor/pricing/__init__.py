"""Pricing: S3 list prices as data, what a run costs once and saves per month, and the policy
the walk consults before archiving (:func:`worth_archiving`).
"""

from ._archiving import archive_skip_reason, payback, worth_archiving
from ._costs import CostAccumulator, estimate
from ._prices import ClassPrices, PriceTable, known_regions, load_prices, prices_for
from ._requests import PLAN_REQUESTS, listing_requests, request_tier

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
