"""One original: is it worth archiving? What moving it to an archive class costs once
and saves a month, the months that take to pay back, and why an original stays where it
is. Pure and cheap: the walk consults :func:`worth_archiving` before archiving each
original.
"""

from __future__ import annotations

from ..display import human_bytes, months
from ._prices import GB, STANDARD, PriceTable
from ._requests import ARCHIVE_REQUESTS, ARCHIVE_REQUESTS_IN_PLACE, requests_usd

# --- one original: worth archiving? ---------------------------------------------------------


def archive_move(
    size: int,
    storage_class: str,
    prices: PriceTable,
    *,
    current_class: str = STANDARD,
    in_place: bool = False,
) -> tuple[float, float]:
    """(one-time USD, monthly saving USD) of moving one original of ``size`` bytes from
    ``current_class`` to ``storage_class``: the requests archiving adds
    (:data:`ARCHIVE_REQUESTS`), the retrieval the copy reads from an IA or Glacier IR
    original, against storage before and after (minimum sizes, per-object overhead and
    monitoring included)."""
    extra = ARCHIVE_REQUESTS_IN_PLACE if in_place else ARCHIVE_REQUESTS
    once = requests_usd(extra, prices, storage_class)
    once += size / GB * prices.of(current_class).retrieval
    saving = prices.monthly_usd(size, current_class) - prices.monthly_usd(size, storage_class)
    return once, saving


def payback(one_time: float, saving: float) -> float | None:
    """Months until ``saving`` a month repays ``one_time``; ``None`` without a saving."""
    if saving <= 0:
        return None
    return max(0.0, one_time) / saving


def worth_archiving(
    size: int,
    storage_class: str,
    prices: PriceTable,
    payback_months: float,
    *,
    current_class: str = STANDARD,
    in_place: bool = False,
) -> tuple[bool, float | None]:
    """Whether moving one original of ``size`` bytes from ``current_class`` to
    ``storage_class`` repays its one-time cost (:func:`archive_move`) within
    ``payback_months``, and the months it takes (``None``: never, it would cost more per
    month there). ``payback_months`` 0 archives everything (the months are still told).

    Pure and cheap: the walk calls it before archiving each original, with the
    :class:`~compactor.pricing._prices.PriceTable` of the run's context."""
    once, saving = archive_move(
        size, storage_class, prices, current_class=current_class, in_place=in_place
    )
    taken = payback(once, saving)
    if payback_months <= 0:
        return True, taken
    return taken is not None and taken <= payback_months, taken


def archive_skip_reason(
    size: int,
    storage_class: str,
    taken: float | None,
    payback_months: float,
    *,
    current_class: str = STANDARD,
) -> str:
    """Why an original stays where it is (``SceneResult.archive_skipped``), e.g. ``left in
    STANDARD: moving 90.0 KiB to GLACIER would take 31 months to pay back (--payback-months
    12)``."""
    head = f"left in {current_class}: moving {human_bytes(size)} to {storage_class}"
    if taken is None:
        return f"{head} would never pay back (it would cost more per month there)"
    return f"{head} would take {months(taken)} to pay back (--payback-months {payback_months:g})"
