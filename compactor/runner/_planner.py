"""The dry run: which scenes a run would take, with which codec, and what it would save.

Nothing is written: each scene task reads the source's header and a sample of up to
four 512x512 windows, encodes the sample with the scene's profile in worker-local
scratch, and scales the sample's ratio to the scene.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..cog import Profile
from ..encode import QualityPolicy, candidates, choose_encoding, write_cog, write_sample
from ..errors import CompactorError

if TYPE_CHECKING:
    import pandas as pd
from ..gdal import gdal_env, scratch_dir
from ..pricing import (
    PLAN_REQUESTS,
    CostAccumulator,
    archive_skip_reason,
    listing_requests,
    worth_archiving,
)
from ..records import CostEstimate, SceneResult, StateStore, Step
from ..scene import RunContext, SceneSpec
from ..settings import Encoding, Settings, resolve_settings
from ..sources import (
    Discovery,
    Draw,
    Estimate,
    Outcome,
    Pending,
    StratifiedSampler,
    check_locations,
    discover,
    extrapolate,
)
from ..storage import ARCHIVE_CLASSES, Location, source_store_for, store_for
from ..verify import check_output
from ._fanout import Progress, early_cluster, fan_out, progress_of
from ._pipeline import new_run_id

log = logging.getLogger(__name__)

PLAN_COLUMNS = [
    "source", "item", "asset", "output", "archive", "action", "reason", "codec", "quality",
    "lossless", "width", "height", "bands", "dtype", "bytes_in", "raw_bytes", "est_bytes_out",
    "est_ratio", "est_ssim", "source_class", "archive_skipped", "max_error", "noise",
]  # fmt: skip


def _estimate_size(
    src_path: str, info: Any, encoding: Encoding, scratch: Path, policy: QualityPolicy
) -> tuple[int, int, Profile, float | None]:
    """Encode a sample of the scene the way a run would (encoding search, quality search or
    SSIM ladder included): (raw bytes of the sample, bytes of its COG, the profile kept, its
    SSIM)."""
    sample = write_sample(src_path, info, scratch)
    profile = choose_encoding(src_path, info, encoding, scratch, sample=sample).profile
    ladder = candidates(src_path, info, profile, policy, scratch, sample=sample)
    # The quality search encoded the sample at each quality it tried (the same writer, the
    # same bytes) and measured its SSIM as the check does: a candidate it tried is not
    # encoded again.
    probed = {(p.codec, p.quality): p for p in ladder.search.probes} if ladder.search else {}
    ssim: float | None
    for candidate in ladder.profiles:
        key = (candidate.codec, candidate.quality or 0)
        known = None if candidate.lossless else probed.get(key)
        if known is not None:
            size, ssim = known.bytes, known.ssim
        else:
            out = write_cog(str(sample.path), scratch / "sample.cog.tif", candidate, sample.info)
            fid = check_output(str(sample.path), str(out), sample.info, candidate)
            size, ssim = out.stat().st_size, fid.ssim
        if candidate.lossless or policy.min_ssim == 0 or (ssim or 0) >= policy.min_ssim:
            break
    return sample.raw_bytes, size, candidate, ssim


def _loaded() -> None:
    """Run on each worker of a cluster the plan starts, while it lists: unpickling it loads
    this module, and so what :func:`plan_scene` needs (rasterio, GDAL, the codecs)."""


def plan_scene(spec: SceneSpec, context: RunContext) -> dict[str, Any]:
    """Dask task: what a run would do with one scene (reads only)."""
    row: dict[str, Any] = dict.fromkeys(PLAN_COLUMNS)
    row.update(
        source=spec.source, item=spec.item, asset=spec.asset, output=spec.output,
        archive=spec.archive,
    )  # fmt: skip
    src = Location.parse(spec.source)
    scratch = Path(scratch_dir()) / f"plan-{uuid.uuid4().hex}"
    try:
        live = source_store_for(src, context.s3, context.http).head(src)
        dest_store = store_for(context.dest_location, context.s3)
        state, _ = StateStore(context.dest_location, dest_store).load(src)
        if live is None:
            done = state is not None and state.step >= Step.ARCHIVED
            row.update(
                action="skip" if done else "fail",
                reason="already compacted; original archived" if done else "source is gone",
            )
            return row
        row.update(bytes_in=live.size, source_class=live.storage_class)
        if state is not None and state.step >= Step.VERIFIED and state.output:
            row.update(action="skip", reason=f"already compacted (run {state.run_id})",
                       codec=state.codec, quality=state.quality, lossless=state.lossless,
                       est_bytes_out=state.output.size)  # fmt: skip
            return row
        if live.storage_class in ARCHIVE_CLASSES:
            row.update(action="skip", reason=f"original is in {live.storage_class}; restore first")
            return row
        scratch.mkdir(parents=True)
        with gdal_env(context.gdal_options, tmpdir=str(scratch)):
            path, info = context.read_source(src, scratch)
            row.update(width=info.width, height=info.height, bands=info.count, dtype=info.dtype,
                       raw_bytes=info.raw_bytes)  # fmt: skip
            raw, packed, kept, ssim = _estimate_size(
                path, info, context.encoding, scratch, context.quality_policy
            )
            row.update(
                codec=kept.codec, quality=kept.quality, lossless=kept.lossless, est_ssim=ssim,
                max_error=list(kept.max_error) if kept.bounded and kept.max_error else None,
                noise=kept.noise.describe() if kept.noise else None,
            )  # fmt: skip
        est = int(info.raw_bytes * packed / raw) if raw else None
        row.update(action="compact", est_bytes_out=est,
                   est_ratio=(live.size / est) if est else None)  # fmt: skip
        if est is not None and est >= live.size * (1 - context.encoding.min_saving):
            row.update(
                action="skip", reason="left as it is: its COG would not be smaller (estimated)"
            )
        elif context.archive_mode != "none" and spec.read_only is None:
            current = live.storage_class or "STANDARD"
            worth, taken = worth_archiving(
                live.size, context.storage_class, context.prices, context.payback_months,
                current_class=current, in_place=context.archive_mode == "in-place",
            )  # fmt: skip
            if not worth:
                row["archive_skipped"] = archive_skip_reason(
                    live.size, context.storage_class, taken, context.payback_months,
                    current_class=current,
                )  # fmt: skip
    except CompactorError as err:
        row.update(action="fail", reason=str(err))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return row


def plan(
    settings: Settings | None = None,
    *,
    config_file: str | None = None,
    client: Any = None,
    progress: Callable[[dict[str, Any]], None] | Literal[False] | None = None,
    on_start: Callable[[int], None] | None = None,
    sample: int | None = None,
    seed: int = 0,
    **arguments: Any,
) -> pd.DataFrame:
    """Dry run: a pandas DataFrame with one row per scene (``action`` is compact, skip or
    fail) and the estimated output size. ``df.attrs`` holds the totals and the estimated
    monthly saving. Touches nothing. In a Jupyter notebook, without ``progress``, a live
    progress bar shows in the cell's output (``progress=False`` turns it off).

    ``sample``: list everything but plan only about this many scenes, drawn at random
    (``seed``) within size strata, and extrapolate the archive's saving with an interval
    (``df.attrs["estimate"]``); the rows are the sampled scenes. For archives too large to
    plan scene by scene."""
    if settings is None:
        settings = resolve_settings(arguments, config_file=config_file)
    check_locations(settings)
    context = RunContext.from_settings(settings, new_run_id())
    with (
        progress_of("compactor plan", progress, on_start=on_start) as callbacks,
        contextlib.ExitStack() as stack,
    ):
        found = discover(settings, context)
        # The cluster starts while the listing is read.
        started = stack.enter_context(early_cluster(settings, client, callbacks, warm=_loaded))
        sampler: StratifiedSampler[Pending | SceneSpec] | None = None
        refused: list[SceneResult] = []
        specs: list[SceneSpec] = []
        if sample is not None:
            sampler, draws, refused = sample_scenes(found, sample, seed)
            specs = [d.item for d in draws]
        else:
            specs, refused = _every_scene(found)
        if callbacks.start is not None:
            callbacks.start(len(specs) + len(refused))
        refused_rows = _refused_rows(refused, callbacks)

        def submit(c: Any, _index: int, spec: SceneSpec) -> Any:
            return c.submit(plan_scene, spec, context, key="plan-" + spec.key(context), pure=False)

        planned = fan_out(
            specs, submit, settings=settings, client=client, progress=callbacks, started=started
        )
    rows = refused_rows + planned
    import pandas as pd  # here: every Dask worker imports this package, and pandas is 27 MB

    df = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    for col in ("quality", "width", "height", "bands", "bytes_in", "raw_bytes", "est_bytes_out"):
        df[col] = df[col].astype("Int64")  # integers, with <NA> where unknown
    todo = df[df["action"] == "compact"]
    archive_class = settings.storage_class if settings.archive else None
    counts = found.counts
    costs = CostAccumulator(archive_class, context.prices, payback_months=settings.payback_months)
    if sampler is None:
        for row in rows:
            costs.add(row_result(row, context.archive_mode))
        df.attrs.update(
            scenes=len(df),
            compact=len(todo),
            skip=int((df["action"] == "skip").sum()),
            fail=int((df["action"] == "fail").sum()),
            bytes_in=int(todo["bytes_in"].fillna(0).sum()),
            est_bytes_out=int(todo["est_bytes_out"].fillna(0).sum()),
        )
    else:
        strata = {d.item.source: d.stratum for d in draws}
        df["stratum"] = [strata.get(str(s)) for s in df["source"]]
        est = extrapolate(sampler.strata(), _outcomes(planned, strata))
        # Each sampled scene stands for its stratum's objects (per-object costs, such as
        # requests and Glacier's overhead, scale with the number of objects, not bytes).
        weights = {st.key: st.objects / st.sampled for st in est.strata if st.sampled}
        for row in planned:
            costs.add(row_result(row, context.archive_mode), weights[strata[str(row["source"])]])
        df.attrs.update(
            scenes=est.archive_objects + counts.refused,
            compact=est.archive_objects,
            skip=0,
            fail=counts.refused,
            bytes_in=est.archive_bytes,
            est_bytes_out=round(est.output_bytes),
            sampled=len(specs),
            estimate=_estimate_dict(est),
            estimate_line=est.describe(),
        )
    if settings.source and settings.source.startswith("s3://") and not settings.inventory:
        costs.add_requests(listing_requests(counts.listed))
    cost = costs.estimate(node_hour_price=settings.node_hour_price)
    df.attrs.update(
        finished_earlier=found.finished_earlier,
        saving_usd_month=cost.saving_usd_month,
        one_time_usd=cost.one_time_usd,
        payback_months=cost.payback_months,
        cost=cost.model_dump(mode="json"),
    )
    return df


def _every_scene(found: Discovery) -> tuple[list[SceneSpec], list[SceneResult]]:
    """Every scene of ``found``: the specs to plan, and the objects refused at discovery."""
    specs: list[SceneSpec] = []
    refused: list[SceneResult] = []
    for item in found:
        if isinstance(item, SceneResult):
            refused.append(item)
        else:
            specs.append(item)
    return specs, refused


def _refused_rows(
    refused: list[SceneResult], callbacks: Progress[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The plan's rows of the objects refused at discovery (action ``fail``), each given
    to the progress."""
    rows = []
    for r in refused:
        row = dict.fromkeys(PLAN_COLUMNS)
        row.update(source=r.source, item=r.item, asset=r.asset, action="fail",
                   reason=r.reason, bytes_in=r.bytes_in)  # fmt: skip
        rows.append(row)
        if callbacks.advance is not None:
            callbacks.advance(row)
    return rows


@contextlib.contextmanager
def fewer_collections(young: int = 100_000) -> Iterator[None]:
    """Python's cyclic garbage collector run less often meanwhile (every ``young``
    allocations instead of 700): a listing allocates a few objects per row, nearly all freed
    at once by reference counting, and the default collects so often over a large heap
    (pandas, Dask, GDAL loaded) that it takes a third of the listing's time. The
    thresholds are restored after."""
    before = gc.get_threshold()
    gc.set_threshold(max(young, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def sample_scenes(
    found: Discovery, n: int, seed: int = 0
) -> tuple[StratifiedSampler[Pending | SceneSpec], list[Draw[SceneSpec]], list[SceneResult]]:
    """Feed every scene of ``found`` to a :class:`StratifiedSampler` of ``n``: the sampler,
    its draws (each with the scene's spec, built only for the scenes drawn) and the first
    :data:`MAX_REFUSED_ROWS` objects refused at discovery. The draw depends only on
    ``seed`` and the listing."""
    sampler: StratifiedSampler[Pending | SceneSpec] = StratifiedSampler(n, seed=seed)
    refused: list[SceneResult] = []
    add = sampler.add
    with fewer_collections():
        for item in found.pending():
            if isinstance(item, Pending):
                add(item, item.info.size)
            elif isinstance(item, SceneSpec):
                add(item, item.listed.size if item.listed is not None else 0)
            elif len(refused) < MAX_REFUSED_ROWS:
                refused.append(item)
    draws = [Draw(found.spec_of(d.item), d.size, d.stratum) for d in sampler.sample()]
    return sampler, draws, refused


def row_result(row: dict[str, Any], archive_mode: str) -> SceneResult:
    """A plan row as the result its scene would have, with the requests its task would make
    (the table "What a scene costs in S3 requests" in docs/backfill.md), for the cost estimate."""
    bytes_in = int(row["bytes_in"]) if row.get("bytes_in") is not None else None
    source_class = row.get("source_class")
    action = row.get("action")
    if action == "compact":
        est = row.get("est_bytes_out")
        skipped = row.get("archive_skipped")
        mode = "none" if skipped else archive_mode
        return SceneResult(
            source=str(row["source"]), status="compacted", bytes_in=bytes_in,
            bytes_out=int(est) if est is not None else None, source_class=source_class,
            archive_skipped=skipped, requests=dict(PLAN_REQUESTS[mode]),
        )  # fmt: skip
    if action == "skip":
        done = str(row.get("reason") or "").startswith("already")
        requests = PLAN_REQUESTS["already done" if done else "left as it is"]
        return SceneResult(
            source=str(row["source"]), status="skipped", bytes_in=bytes_in,
            source_class=source_class, requests=dict(requests),
        )  # fmt: skip
    # A scene that would fail: what its task would request is not known.
    return SceneResult(source=str(row["source"]), status="failed", bytes_in=bytes_in)


def plan_cost(df: pd.DataFrame) -> CostEstimate | None:
    """The cost estimate of a plan (``df.attrs["cost"]``), typed."""
    raw = df.attrs.get("cost")
    return CostEstimate.model_validate(raw) if raw else None


def _estimate_dict(est: Estimate) -> dict[str, Any]:
    derived = ("saving", "saving_low", "saving_high", "sampled", "failed")
    return {**asdict(est), **{name: getattr(est, name) for name in derived}}


#: In a sampled plan, at most this many scenes refused at discovery become rows.
MAX_REFUSED_ROWS = 100


def _outcomes(rows: list[dict[str, Any]], strata: dict[str, int]) -> list[Outcome]:
    """What each sampled scene would save: a scene that would be skipped or fails
    saves nothing (counted as such, never left out)."""
    out = []
    for row in rows:
        bytes_in = int(row.get("bytes_in") or 0)
        est = row.get("est_bytes_out")
        out.append(
            Outcome(
                stratum=strata[str(row["source"])],
                bytes_in=bytes_in,
                bytes_out=int(est) if row.get("action") == "compact" and est else bytes_in,
                failed=row.get("action") == "fail",
            )
        )
    return out
