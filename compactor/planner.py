"""The dry run: which scenes a run would take, with which codec, and what it would save.

Nothing is written: each scene task reads the source's header and a sample of up to
four 512x512 windows, encodes the sample with the scene's profile in worker-local
scratch, and scales the sample's ratio to the scene.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

from .cluster import as_completed_results, connect
from .cog import read_info, write_cog
from .config import Settings, resolve_settings
from .costs import estimate
from .discover import check_locations, discover
from .encode import Profile, choose_profile
from .errors import CompactorError
from .gdal_env import gdal_env, scratch_dir
from .models import SceneResult
from .quality import QualityPolicy
from .quality import candidates as quality_candidates
from .sample import write_sample
from .state import StateStore, Step
from .storage import ARCHIVE_CLASSES, Location, readable_path, source_store_for, store_for
from .tasks import RunContext, SceneSpec
from .verify import check_output

log = logging.getLogger(__name__)

PLAN_COLUMNS = [
    "source", "item", "asset", "output", "archive", "action", "reason", "codec", "quality",
    "lossless", "width", "height", "bands", "dtype", "bytes_in", "raw_bytes", "est_bytes_out",
    "est_ratio", "est_ssim",
]  # fmt: skip


def _estimate_size(
    src_path: str, info: Any, profile: Profile, scratch: Path, policy: QualityPolicy
) -> tuple[int, int, Profile, float | None]:
    """Encode a sample of the scene the way a run would (quality search or SSIM ladder
    included): (raw bytes of the sample, bytes of its COG, the profile kept, its SSIM)."""
    sample = write_sample(src_path, info, scratch)
    ladder = quality_candidates(src_path, info, profile, policy, scratch, sample=sample)
    for candidate in ladder.profiles:
        out = write_cog(str(sample.path), scratch / "sample.cog.tif", candidate, sample.info)
        fid = check_output(str(sample.path), str(out), sample.info, candidate)
        if candidate.lossless or policy.min_ssim == 0 or (fid.ssim or 0) >= policy.min_ssim:
            break
    return sample.raw_bytes, out.stat().st_size, candidate, fid.ssim


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
        row["bytes_in"] = live.size
        if state is not None and state.step >= Step.VERIFIED and state.output:
            row.update(action="skip", reason=f"already compacted (run {state.run_id})",
                       codec=state.codec, quality=state.quality, lossless=state.lossless,
                       est_bytes_out=state.output.size)  # fmt: skip
            return row
        if live.storage_class in ARCHIVE_CLASSES:
            row.update(action="skip", reason=f"original is in {live.storage_class}; restore first")
            return row
        scratch.mkdir(parents=True)
        path = readable_path(src, scratch / "source", context.http, context.chunk_threshold)
        with gdal_env(context.gdal_options, tmpdir=str(scratch)):
            info = read_info(path)
            context.limits.check(info)
            row.update(width=info.width, height=info.height, bands=info.count, dtype=info.dtype,
                       raw_bytes=info.raw_bytes)  # fmt: skip
            profile = choose_profile(info, context.codec, context.quality)
            raw, packed, kept, ssim = _estimate_size(
                path, info, profile, scratch, context.quality_policy
            )
            row.update(
                codec=kept.codec, quality=kept.quality, lossless=kept.lossless, est_ssim=ssim
            )
        est = int(info.raw_bytes * packed / raw) if raw else None
        row.update(action="compact", est_bytes_out=est,
                   est_ratio=(live.size / est) if est else None)  # fmt: skip
        if est is not None and est >= live.size * (1 - context.min_saving):
            row.update(
                action="skip", reason="left as it is: its COG would not be smaller (estimated)"
            )
    except CompactorError as err:
        row.update(action="fail", reason=str(err))
    except Exception as err:
        log.exception("planning %s failed", spec.source)
        row.update(action="fail", reason=f"unexpected {type(err).__name__}: {err}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return row


def plan(
    settings: Settings | None = None,
    *,
    config_file: str | None = None,
    client: Any = None,
    progress: Any = None,
    on_start: Any = None,
    **arguments: Any,
) -> Any:
    """Dry run: a pandas DataFrame with one row per scene (``action`` is compact, skip or
    fail) and the estimated output size. ``df.attrs`` holds the totals and the estimated
    monthly saving. Touches nothing. In a Jupyter notebook, without ``progress``, a live
    progress bar shows in the cell's output (``progress=False`` turns it off)."""
    import pandas as pd

    from .pipeline import new_run_id, notebook_bar

    bar = notebook_bar("compactor plan", progress)
    if bar is not None:
        with bar:
            return plan(
                settings, config_file=config_file, client=client, progress=bar.advance,
                on_start=on_start or bar.start, **arguments,
            )  # fmt: skip

    if settings is None:
        settings = resolve_settings(arguments, config_file=config_file)
    check_locations(settings)
    context = RunContext.from_settings(settings, new_run_id())
    found = discover(settings, context)
    if on_start:
        on_start(len(found.scenes) + len(found.rejected))
    refused_rows = []
    for r in found.rejected:
        row = dict.fromkeys(PLAN_COLUMNS)
        row.update(source=r.source, item=r.item, asset=r.asset, action="fail", reason=r.reason,
                   bytes_in=r.bytes_in)  # fmt: skip
        refused_rows.append(row)
        if progress:
            progress(row)

    def run_on(c: Any) -> list[dict[str, Any]]:
        futures = {
            c.submit(plan_scene, s, context, key="plan-" + s.key(context), pure=False): s
            for s in found.scenes
        }
        rows: list[dict[str, Any]] = []
        row: dict[str, Any]
        for _, row in as_completed_results(c, futures):
            rows.append(row)
            if progress:
                progress(row)
        return rows

    if not found.scenes:
        rows = []
    elif client is not None:
        rows = run_on(client)
    else:
        with connect(settings.cluster, settings=settings) as c:
            rows = run_on(c)
    order = {s.source: i for i, s in enumerate(found.scenes)}
    rows.sort(key=lambda r: order[r["source"]])
    rows = refused_rows + rows
    df = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    for col in ("quality", "width", "height", "bands", "bytes_in", "raw_bytes", "est_bytes_out"):
        df[col] = df[col].astype("Int64")  # integers, with <NA> where unknown
    todo = df[df["action"] == "compact"]
    as_results = [
        SceneResult(
            source=r.source,
            status="compacted",
            bytes_in=int(r.bytes_in),
            bytes_out=int(r.est_bytes_out),
        )
        for r in todo.itertuples()
        if pd.notna(r.bytes_in) and pd.notna(r.est_bytes_out)
    ]
    cost = estimate(as_results, settings.storage_class if settings.archive else None)
    df.attrs.update(
        scenes=len(df),
        compact=len(todo),
        skip=int((df["action"] == "skip").sum()),
        fail=int((df["action"] == "fail").sum()),
        bytes_in=int(todo["bytes_in"].fillna(0).sum()),
        est_bytes_out=int(todo["est_bytes_out"].fillna(0).sum()),
        saving_usd_month=cost.saving_usd_month,
        cost=cost.model_dump(mode="json"),
    )
    return df
