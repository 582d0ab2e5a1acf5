"""The whole cost of a run: what it spends once, what it changes per month, and how long
the monthly saving takes to repay what was spent.

Why all of it: for an archive of many small objects, moving originals to Glacier can cost
more than it saves. A PUT or COPY into GLACIER costs $0.03 per 1,000 objects (DEEP_ARCHIVE
$0.05), and every object there bills 40 KiB more (8 KiB at the STANDARD rate, 32 KiB at the
archive rate); STANDARD_IA and GLACIER_IR bill at least 128 KiB per object. A 50 KB original
saves about $0.0000006 a month in GLACIER and costs $0.00003 to move: more than four years
to pay back. So this module prices:

* **once**: every S3 request the run made, by operation and by the class it wrote or read
  (a CopyObject into an archive class at that class's PUT price; DELETE free), data
  retrieval from STANDARD_IA / GLACIER_IR originals, and the cluster's compute when a
  price per node-hour is given;
* **per month**, over the scenes the run compacted (``compacted`` and ``held``): the
  originals in their listed class before; after, the outputs, the originals in the archive
  class (per-object overhead and minimum sizes included) or where they stayed (not worth
  moving, no ``--archive``, held by Object Lock), and the noncurrent versions a versioned
  bucket keeps;
* the **payback time**, overall and per size class of the originals;
* and, for the walk, :func:`worth_archiving`: whether one original repays its move within
  ``--payback-months`` (those that would not stay where they are).

Prices come from :mod:`compactor.pricing._prices` (a data file, per region, with its date).
One implementation serves the run (:class:`~compactor.report._recorder.RunRecorder` feeds
:class:`CostAccumulator` one result at a time, bounded state) and the dry run
(:func:`estimate` over the plan's rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..records import CostEstimate, CostLine, OneTimeLine, SceneResult, SizeClassCost
from ._archiving import payback
from ._prices import GB, STANDARD, ClassPrices, PriceTable, RequestTier, prices_for
from ._requests import ARCHIVE_WRITES, TIER_LABELS, split_requests

KiB = 1024
MiB = 1024**2

#: Size classes of the originals: (label, low, high), ``low <= size < high``.
SIZE_CLASSES: tuple[tuple[str, int, int | None], ...] = (
    ("< 128 KiB", 0, 128 * KiB),
    ("128 KiB – 1 MiB", 128 * KiB, MiB),
    ("1 – 16 MiB", MiB, 16 * MiB),
    ("16 – 256 MiB", 16 * MiB, 256 * MiB),
    ("≥ 256 MiB", 256 * MiB, None),
)
#: The row of scenes whose size is not known (refused before anything was read).
UNKNOWN_SIZE = "size unknown"


# --- the run's cost ------------------------------------------------------------------------


@dataclass
class _Amount:
    bytes: float = 0.0
    objects: float = 0.0


@dataclass
class _Row:
    """One size class's sums (floats: a sampled plan's scenes stand for fractions)."""

    label: str
    low: int
    high: int | None
    objects: float = 0
    compacted: float = 0
    archived: float = 0
    left: float = 0
    bytes_before: float = 0
    bytes_after: float = 0
    before: float = 0.0
    after: float = 0.0
    one_time: float = 0.0

    def summary(self) -> SizeClassCost:
        saving = self.before - self.after
        return SizeClassCost(
            size_class=self.label, low=self.low, high=self.high, objects=round(self.objects),
            compacted=round(self.compacted), archived=round(self.archived),
            left_in_place=round(self.left), bytes_before=round(self.bytes_before),
            bytes_after=round(self.bytes_after),
            before_usd_month=self.before, after_usd_month=self.after, saving_usd_month=saving,
            one_time_usd=self.one_time, payback_months=payback(self.one_time, saving),
        )  # fmt: skip


def _kib(n: int) -> str:
    return f"{n // KiB} KiB" if n % KiB == 0 else f"{n} bytes"


def _archive_class_notes(cls: ClassPrices) -> list[str]:
    """What the archive class bills beyond its rate: minimum days, minimum size, overhead."""
    notes: list[str] = []
    if cls.minimum_days:
        notes.append(
            f"{cls.name} bills at least {cls.minimum_days} days per object: deleting"
            f" an original earlier still costs the full {cls.minimum_days} days"
        )
    if cls.minimum_bytes:
        notes.append(f"{cls.name} bills at least {_kib(cls.minimum_bytes)} per object")
    if cls.per_object_overhead:
        notes.append(
            f"{cls.name} bills {_kib(cls.per_object_overhead)} more per object "
            f"({_kib(cls.overhead_standard_bytes)} at the STANDARD rate, "
            f"{_kib(cls.overhead_class_bytes)} at the {cls.name} rate)"
        )
    return notes


def _source_notes(name: str, cls: ClassPrices) -> list[str]:
    """What is not counted of originals read from the class ``name``."""
    notes: list[str] = []
    if cls.minimum_days:
        notes.append(
            f"originals read from {name}: deleting or moving one before "
            f"{cls.minimum_days} days is billed as {cls.minimum_days} days (not "
            "counted: their age is not known)"
        )
    if name == "INTELLIGENT_TIERING":
        notes.append(
            "INTELLIGENT_TIERING originals are priced at the frequent access tier: a "
            "listing does not say which tier an object is in"
        )
    return notes


#: A monthly line: (side, label, class whose rate applies, a per-object fee).
_LineKey = tuple[str, str, str, bool]


class CostAccumulator:
    """The figures :meth:`estimate` needs, accumulated one result at a time in bounded
    state (sums per line, per request class, per size class).

    ``storage_class``: the archive class of the originals (``None``: not archived);
    ``prices``: the table (default: :func:`~compactor.pricing._prices.prices_for` with no
    region, us-east-1 with a note); ``output_class``: where the outputs are stored;
    ``payback_months``: the run's ``--payback-months``, for the report."""

    def __init__(
        self,
        storage_class: str | None,
        prices: PriceTable | None = None,
        *,
        output_class: str = STANDARD,
        payback_months: float | None = None,
    ):
        self.storage_class = storage_class
        self.prices = prices if prices is not None else prices_for(None)
        self.output_class = output_class
        self.payback_months = payback_months
        self._lines: dict[_LineKey, _Amount] = {}
        self._requests: dict[tuple[RequestTier, str], float] = {}
        self._operations: dict[str, float] = {}
        self._retrieval: dict[str, float] = {}
        self._rows = [_Row(label, lo, hi) for label, lo, hi in SIZE_CLASSES]
        self._unknown = _Row(UNKNOWN_SIZE, 0, None)
        self._commitment = 0.0
        self._minimum_days = 0
        self._scenes = 0.0
        self._scene_requests = 0
        self._archived = 0.0
        self._left = 0.0
        self._held = 0.0
        self._kept = 0.0
        self._sources: set[str] = set()
        self._left_reason: str | None = None

    # --- feeding ------------------------------------------------------------------------

    def _row(self, size: int | None) -> _Row:
        if size is None:
            return self._unknown
        for row in self._rows:
            if row.high is None or size < row.high:
                return row
        return self._rows[-1]  # pragma: no cover - the last row has no upper bound

    def _line(self, side: str, label: str, rate_class: str, fee: bool = False) -> _Amount:
        key = (side, label, rate_class, fee)
        amount = self._lines.get(key)
        if amount is None:
            amount = self._lines[key] = _Amount()
        return amount

    def _store(self, side: str, what: str, cls: ClassPrices, size: int, weight: float) -> float:
        """Bill ``weight`` objects of ``size`` bytes kept in ``cls`` on ``side``: their lines
        (minimum size, overhead, monitoring), and what they cost a month."""
        billed = max(size, cls.minimum_bytes)
        floor = f" (at least {_kib(cls.minimum_bytes)} each)" if cls.minimum_bytes else ""
        amount = self._line(side, f"{what} in {cls.name}{floor}", cls.name)
        amount.bytes += billed * weight
        amount.objects += weight
        usd = billed / GB * cls.storage
        if cls.overhead_standard_bytes:
            label = (
                f"{cls.name} overhead: {_kib(cls.overhead_standard_bytes)} per object at STANDARD"
            )
            amount = self._line(side, label, STANDARD)
            amount.bytes += cls.overhead_standard_bytes * weight
            amount.objects += weight
            usd += cls.overhead_standard_bytes / GB * self.prices.standard.storage
        if cls.overhead_class_bytes:
            label = f"{cls.name} overhead: {_kib(cls.overhead_class_bytes)} per object"
            amount = self._line(side, label, cls.name)
            amount.bytes += cls.overhead_class_bytes * weight
            amount.objects += weight
            usd += cls.overhead_class_bytes / GB * cls.storage
        if cls.monitoring and size >= cls.monitoring_min_bytes:
            self._line(side, f"{cls.name} monitoring", cls.name, fee=True).objects += weight
            usd += cls.monitoring / 1000
        return usd * weight

    def _archive_class(self, s: SceneResult) -> str | None:
        if self.storage_class is None:
            return None
        return s.storage_class or self.storage_class

    def add(self, s: SceneResult, weight: float = 1) -> None:
        """Count one scene's result (``weight``: it stands for that many objects like it,
        as a sampled plan's scenes stand for their size stratum)."""
        row = self._row(s.bytes_in)
        row.objects += weight
        self._scenes += weight
        archive_class = self._archive_class(s)
        source = self.prices.of(s.source_class)
        self._sources.add(source.name)
        # Once: the scene's requests, and what reading an IA / Glacier IR original costs.
        once = 0.0
        for op, tier, billed_as, n in split_requests(s.requests, archive_class):
            self._scene_requests += n
            key = (tier, billed_as)
            self._requests[key] = self._requests.get(key, 0) + n * weight
            self._operations[op] = self._operations.get(op, 0) + n * weight
            once += n * weight * self.prices.of(billed_as).request_price(tier) / 1000
        reads = (s.requests.get("GetObject", 0) > 0) + any(
            s.requests.get(op, 0) > 0 for op in ARCHIVE_WRITES
        )
        if source.retrieval and s.bytes_in and reads:
            gb = s.bytes_in * reads * weight / GB
            self._retrieval[source.name] = self._retrieval.get(source.name, 0.0) + gb
            once += gb * source.retrieval
        row.one_time += once
        # Per month: only the scenes whose outputs exist (what the run changed).
        if s.status not in ("compacted", "held") or not s.bytes_in or not s.bytes_out:
            return
        row.compacted += weight
        row.bytes_before += s.bytes_in * weight
        row.bytes_after += s.bytes_out * weight
        row.before += self._store("before", "originals", source, s.bytes_in, weight)
        after = self._store("after", "COGs", self.prices.of(self.output_class), s.bytes_out, weight)
        archived = archive_class is not None and not s.archive_skipped
        if archived:
            assert archive_class is not None
            cls = self.prices.of(archive_class)
            main = max(s.bytes_in, cls.minimum_bytes) / GB * cls.storage * weight
            after += self._store("after", "originals archived", cls, s.bytes_in, weight)
            self._commitment += main * cls.minimum_days / 30.0
            self._minimum_days = max(self._minimum_days, cls.minimum_days)
            self._archived += weight
            row.archived += weight
        if s.status == "held":
            after += self._store(
                "after", "originals held at their source", source, s.bytes_in, weight
            )
            self._held += weight
            row.left += weight
        elif not archived:
            after += self._store("after", "originals left", source, s.bytes_in, weight)
            self._left += weight
            row.left += weight
            if s.archive_skipped and self._left_reason is None:
                self._left_reason = s.archive_skipped
        if s.kept_version:
            after += self._store("after", "noncurrent versions kept", source, s.bytes_in, weight)
            self._kept += weight
        row.after += after

    def add_requests(self, counts: Mapping[str, int]) -> None:
        """Requests of the run itself (listings, the finished index, state reads at
        discovery, the report and the scene log): billed at STANDARD, in no size class."""
        for op, tier, billed_as, n in split_requests(counts, None):
            key = (tier, billed_as)
            self._requests[key] = self._requests.get(key, 0) + n
            self._operations[op] = self._operations.get(op, 0) + n

    # --- the estimate -------------------------------------------------------------------

    def _monthly_lines(self) -> list[CostLine]:
        lines = []
        for side in ("before", "after"):
            for (line_side, label, rate_class, fee), amount in self._lines.items():
                if line_side != side:
                    continue
                cls = self.prices.of(rate_class)
                objects = round(amount.objects)
                if fee:
                    lines.append(
                        CostLine(
                            label=f"{label} (${cls.monitoring:g} per 1,000 objects of "
                            f"{_kib(cls.monitoring_min_bytes)} or more)",
                            gb=0.0,
                            usd_per_gb_month=0.0,
                            usd_month=amount.objects / 1000 * cls.monitoring,
                            side=side,
                            storage_class=cls.name,
                            objects=objects,
                        )
                    )
                    continue
                gb = amount.bytes / GB
                lines.append(
                    CostLine(
                        label=label,
                        gb=gb,
                        usd_per_gb_month=cls.storage,
                        usd_month=gb * cls.storage,
                        side=side,
                        storage_class=cls.name,
                        objects=objects,
                    )
                )
        return lines

    def _one_time_lines(
        self, hours: float | None, workers: int | None, node_hour_price: float | None
    ) -> list[OneTimeLine]:
        order: dict[RequestTier, int] = {"put": 0, "get": 1, "free": 2}
        lines = []
        for (tier, cls_name), n in sorted(
            self._requests.items(),
            key=lambda kv: (order[kv[0][0]], kv[0][1] != STANDARD, kv[0][1]),
        ):
            price = self.prices.of(cls_name).request_price(tier)
            where = "" if tier == "free" else f", {cls_name} price"
            lines.append(
                OneTimeLine(
                    label=f"{TIER_LABELS[tier]}{where}",
                    kind="requests",
                    quantity=round(n),
                    unit="requests",
                    price=price,
                    price_unit="per 1,000 requests",
                    usd=n * price / 1000,
                    storage_class=cls_name,
                )
            )
        for cls_name, gb in self._retrieval.items():
            price = self.prices.of(cls_name).retrieval
            lines.append(
                OneTimeLine(
                    label=f"data retrieval from {cls_name}",
                    kind="retrieval",
                    quantity=gb,
                    unit="GB",
                    price=price,
                    price_unit="per GB",
                    usd=gb * price,
                    storage_class=cls_name,
                )
            )
        if node_hour_price is not None and hours is not None and workers:
            node_hours = hours * workers
            lines.append(
                OneTimeLine(
                    label=f"compute: {workers} workers for {hours:.2f} hours",
                    kind="compute",
                    quantity=node_hours,
                    unit="node-hours",
                    price=node_hour_price,
                    price_unit="per node-hour",
                    usd=node_hours * node_hour_price,
                )
            )
        return lines

    def _notes(
        self, hours: float | None, workers: int | None, node_hour_price: float | None
    ) -> list[str]:
        p = self.prices
        if self.storage_class is None:
            notes = ["originals were not archived (no --archive): nothing is saved yet"]
        else:
            notes = _archive_class_notes(p.of(self.storage_class))
        notes += self._originals_notes()
        for name in sorted(self._sources):
            notes += _source_notes(name, p.of(name))
        if self._scenes and not self._scene_requests:
            notes.append("the scenes' requests were not recorded: they are not counted")
        if node_hour_price is None:
            notes.append("compute is not counted (give --node-hour-price)")
        elif hours is None or not workers:
            notes.append("compute is not counted: the run's hours or workers are not known")
        notes.append(
            f"storage at the first-tier prices (the first 50 TB a month) of {p.region} "
            f"({p.name}); the run's own requests and compute are in no size class"
        )
        notes.extend(p.notes)
        return notes

    def _originals_notes(self) -> list[str]:
        """Originals not archived: left where they were, held, kept as versions."""
        notes: list[str] = []
        if self._left and self._left_reason:
            limit = (
                f" within --payback-months {self.payback_months:g}" if self.payback_months else ""
            )
            notes.append(
                f"originals left where they were: {round(self._left)} (moving them would not "
                f"pay back{limit}; e.g. {self._left_reason})"
            )
        if self._held:
            notes.append(
                f"originals held at their source: {round(self._held)} (their delete was "
                "refused: Object Lock or a bucket policy; billed there as well as archived "
                "until a later run deletes them)"
            )
        if self._kept:
            notes.append(
                f"originals kept as noncurrent versions: {round(self._kept)} (a versioned "
                "bucket; billed at their class until a lifecycle rule expires them)"
            )
        return notes

    def estimate(
        self,
        *,
        hours: float | None = None,
        workers: int | None = None,
        node_hour_price: float | None = None,
    ) -> CostEstimate:
        """The run's cost so far: one-time lines, monthly lines before and after, the
        saving and its payback, the size classes. ``hours`` the run took and ``workers``
        it had, at ``node_hour_price`` USD per worker-node hour, price its compute."""
        lines = self._monthly_lines()
        before = sum(line.usd_month for line in lines if line.side == "before")
        after = sum(line.usd_month for line in lines if line.side == "after")
        one_time = self._one_time_lines(hours, workers, node_hour_price)
        once = sum(line.usd for line in one_time)
        saving = before - after
        rows = [r for r in (*self._rows, self._unknown) if r.objects]
        p = self.prices
        return CostEstimate(
            region=p.region,
            region_name=p.name,
            price_table_date=p.date,
            price_source=p.source,
            storage_class=self.storage_class,
            output_class=self.output_class,
            before_usd_month=before,
            after_usd_month=after,
            saving_usd_month=saving,
            lines=lines,
            minimum_days=self._minimum_days,
            minimum_commitment_usd=self._commitment,
            one_time=one_time,
            one_time_usd=once,
            payback_months=payback(once, saving),
            payback_limit_months=self.payback_months,
            size_classes=[r.summary() for r in rows],
            requests={op: round(n) for op, n in sorted(self._operations.items())},
            hours=hours,
            workers=workers,
            node_hour_price=node_hour_price,
            archived=round(self._archived),
            left_in_place=round(self._left),
            held_in_place=round(self._held),
            kept_versions=round(self._kept),
            notes=self._notes(hours, workers, node_hour_price),
        )


def estimate(
    scenes: Iterable[SceneResult],
    storage_class: str | None,
    prices: PriceTable | None = None,
    *,
    output_class: str = STANDARD,
    payback_months: float | None = None,
    run_requests: Mapping[str, int] | None = None,
    hours: float | None = None,
    workers: int | None = None,
    node_hour_price: float | None = None,
) -> CostEstimate:
    """:meth:`CostAccumulator.estimate` of ``scenes`` (a plan's rows, a list of results),
    with the run's own ``run_requests``."""
    costs = CostAccumulator(
        storage_class, prices, output_class=output_class, payback_months=payback_months
    )
    for s in scenes:
        costs.add(s)
    if run_requests:
        costs.add_requests(run_requests)
    return costs.estimate(hours=hours, workers=workers, node_hour_price=node_hour_price)
