"""Storage cost estimate for a run (monthly, USD).

Prices are AWS S3 list prices for us-east-1 (first 50 TB tier of S3 Standard), per
GB-month with GB = 2^30 bytes as AWS bills. They have been stable for years, but
check https://aws.amazon.com/s3/pricing/ for your region; the report always prints
the table and its date.

Archive classes add per-object overhead: GLACIER and DEEP_ARCHIVE bill 8 KB at the
S3 Standard rate (the object's index) plus 32 KB at the archive rate (metadata) for
every object; STANDARD_IA and GLACIER_IR bill at least 128 KB per object. Every
archive class has a minimum storage duration: deleting earlier is charged as if
stored for the minimum.
"""

from __future__ import annotations

from collections.abc import Iterable

from .models import CostEstimate, CostLine, SceneResult

PRICE_TABLE_DATE = "2025-01"
PRICE_REGION = "us-east-1"
PRICE_SOURCE = "https://aws.amazon.com/s3/pricing/ (list prices, us-east-1)"

#: USD per GB-month.
PRICES: dict[str, float] = {
    "STANDARD": 0.023,
    "STANDARD_IA": 0.0125,
    "GLACIER_IR": 0.004,
    "GLACIER": 0.0036,
    "DEEP_ARCHIVE": 0.00099,
}

#: Minimum storage duration in days.
MINIMUM_DAYS: dict[str, int] = {
    "STANDARD": 0,
    "STANDARD_IA": 30,
    "GLACIER_IR": 90,
    "GLACIER": 90,
    "DEEP_ARCHIVE": 180,
}

#: Minimum billable object size in bytes.
MINIMUM_SIZE: dict[str, int] = {"STANDARD_IA": 128 * 1024, "GLACIER_IR": 128 * 1024}

#: Per-object overhead of GLACIER/DEEP_ARCHIVE: (bytes at STANDARD, bytes at the class rate).
OVERHEAD: dict[str, tuple[int, int]] = {
    "GLACIER": (8 * 1024, 32 * 1024),
    "DEEP_ARCHIVE": (8 * 1024, 32 * 1024),
}

GB = 1024**3


def _line(label: str, nbytes: float, storage_class: str) -> CostLine:
    price = PRICES[storage_class]
    gb = nbytes / GB
    return CostLine(label=label, gb=gb, usd_per_gb_month=price, usd_month=gb * price)


class CostAccumulator:
    """The figures :func:`estimate` needs, accumulated one result at a time: the compacted
    scenes' bytes before and after, their number, and the bytes the archive class bills
    (each original at least the class's minimum billable size)."""

    def __init__(self, storage_class: str | None):
        self.storage_class = storage_class
        self.floor = MINIMUM_SIZE.get(storage_class, 0) if storage_class else 0
        self.scenes = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.billed = 0

    def add(self, s: SceneResult) -> None:
        if s.status != "compacted" or not s.bytes_in or not s.bytes_out:
            return
        self.scenes += 1
        self.bytes_in += s.bytes_in
        self.bytes_out += s.bytes_out
        self.billed += max(s.bytes_in, self.floor)

    def estimate(self) -> CostEstimate:
        """Monthly cost of the compacted scenes before (originals in S3 Standard) and after
        (outputs in Standard, originals in the storage class, or still in Standard when it
        is ``None`` because originals are not archived)."""
        storage_class = self.storage_class
        before = _line("originals in STANDARD (before)", self.bytes_in, "STANDARD")
        lines = [_line("compacted COGs in STANDARD", self.bytes_out, "STANDARD")]
        notes: list[str] = []
        minimum_days = 0
        commitment = 0.0
        if storage_class is None:
            lines.append(_line("originals kept in STANDARD", self.bytes_in, "STANDARD"))
            notes.append("originals were not archived (no --archive): nothing is saved yet")
        else:
            archive_line = _line(f"originals in {storage_class}", self.billed, storage_class)
            lines.append(archive_line)
            if storage_class in OVERHEAD:
                std_bytes, class_bytes = OVERHEAD[storage_class]
                n = self.scenes
                lines.append(_line(f"index overhead ({n} x 8 KB)", n * std_bytes, "STANDARD"))
                lines.append(
                    _line(f"metadata overhead ({n} x 32 KB)", n * class_bytes, storage_class)
                )
            minimum_days = MINIMUM_DAYS.get(storage_class, 0)
            commitment = archive_line.usd_month * minimum_days / 30.0
            if minimum_days:
                notes.append(
                    f"{storage_class} bills at least {minimum_days} days per object: deleting"
                    f" an original earlier still costs the full {minimum_days} days"
                )
            if self.floor:
                notes.append(f"{storage_class} bills at least {self.floor // 1024} KB per object")
        after = sum(line.usd_month for line in lines)
        return CostEstimate(
            region=PRICE_REGION,
            price_table_date=PRICE_TABLE_DATE,
            price_source=PRICE_SOURCE,
            storage_class=storage_class,
            before_usd_month=before.usd_month,
            after_usd_month=after,
            saving_usd_month=before.usd_month - after,
            lines=[before, *lines],
            minimum_days=minimum_days,
            minimum_commitment_usd=commitment,
            notes=notes,
        )


def estimate(scenes: Iterable[SceneResult], storage_class: str | None) -> CostEstimate:
    """:meth:`CostAccumulator.estimate` of ``scenes`` (a plan's rows, a list of results)."""
    costs = CostAccumulator(storage_class)
    for s in scenes:
        costs.add(s)
    return costs.estimate()
