"""The cost of a run as a report carries it: monthly storage lines, one-time lines, size
classes and the whole estimate (computed by :mod:`compactor.pricing`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CostLine(BaseModel):
    """One monthly storage line: ``gb`` (GB = 2^30 bytes, as billed: minimum sizes and
    per-object overhead included) at ``usd_per_gb_month``; a per-object fee (monitoring)
    has ``gb`` 0 and its price in the label."""

    label: str
    gb: float
    usd_per_gb_month: float
    usd_month: float
    #: ``before``: the originals as they were; ``after``: what this run leaves.
    side: Literal["before", "after"] = "after"
    storage_class: str | None = None
    objects: int | None = None


class OneTimeLine(BaseModel):
    """Something a run pays for once: requests of one price class, data retrieval, compute.
    ``quantity`` in ``unit`` (requests, GB, node-hours) at ``price`` per ``price_unit``."""

    label: str
    kind: Literal["requests", "retrieval", "compute"]
    quantity: float
    unit: str
    price: float
    price_unit: str
    usd: float
    storage_class: str | None = None


class SizeClassCost(BaseModel):
    """The cost of the originals of one size class (``low <= bytes_in < high``): small
    objects may cost more to move than they save."""

    size_class: str
    low: int
    #: ``None``: no upper bound (and for the row of scenes whose size is not known).
    high: int | None
    #: Scenes of this size this run took a result for, and those it compacted (compacted or
    #: held: counted in the monthly figures).
    objects: int = 0
    compacted: int = 0
    #: Of the compacted ones: originals moved to the archive class, and originals left
    #: where they were (not worth moving, no ``--archive``, or held).
    archived: int = 0
    left_in_place: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    before_usd_month: float = 0.0
    after_usd_month: float = 0.0
    saving_usd_month: float = 0.0
    #: Its scenes' requests and retrieval (the run's own requests and compute are not
    #: shared out).
    one_time_usd: float = 0.0
    #: ``None``: never (no monthly saving).
    payback_months: float | None = None


class CostEstimate(BaseModel):
    """What a run costs once (requests, retrieval, compute) and what it changes per month
    (the compacted scenes' storage before and after), and how long the saving takes to
    repay the one-time cost."""

    region: str
    price_table_date: str
    price_source: str
    #: Archive class of the originals (``None``: not archived).
    storage_class: str | None
    before_usd_month: float
    after_usd_month: float
    saving_usd_month: float
    #: Monthly storage lines: the ``before`` ones first.
    lines: list[CostLine]
    #: Archive-class minimum storage duration (days) and what it commits to.
    minimum_days: int = 0
    minimum_commitment_usd: float = 0.0
    notes: list[str] = Field(default_factory=list)
    #: The region's name on the pricing page.
    region_name: str | None = None
    #: Class the outputs are stored in.
    output_class: str = "STANDARD"
    one_time: list[OneTimeLine] = Field(default_factory=list)
    one_time_usd: float = 0.0
    #: Months until the monthly saving repays ``one_time_usd``; ``None``: never.
    payback_months: float | None = None
    #: ``--payback-months``: originals that would take longer stay where they are.
    payback_limit_months: float | None = None
    size_classes: list[SizeClassCost] = Field(default_factory=list)
    #: Requests by S3 operation: the scenes' and the run's own (listings, index, report).
    requests: dict[str, int] = Field(default_factory=dict)
    #: Compute: hours the run took, its workers and ``--node-hour-price``.
    hours: float | None = None
    workers: int | None = None
    node_hour_price: float | None = None
    #: Originals of the compacted scenes: moved to the archive class; left where they were
    #: (not worth moving, or no ``--archive``); held at their source (delete refused) as
    #: well as archived; kept as noncurrent versions.
    archived: int = 0
    left_in_place: int = 0
    held_in_place: int = 0
    kept_versions: int = 0
