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

import numpy as np

from .cluster import connect
from .cog import read_info, write_cog
from .config import Settings, resolve_settings
from .costs import estimate
from .discover import check_locations, discover
from .encode import Profile, choose_profile, fallback_profiles
from .errors import CompactorError
from .gdal_env import gdal_env, scratch_dir
from .models import SceneResult
from .state import StateStore, Step
from .storage import ARCHIVE_CLASSES, Location, source_store_for, store_for
from .tasks import RunContext, SceneSpec
from .verify import check_output

log = logging.getLogger(__name__)

SAMPLE = 512
PLAN_COLUMNS = [
    "source", "item", "asset", "output", "archive", "action", "reason", "codec", "quality",
    "lossless", "width", "height", "bands", "dtype", "bytes_in", "raw_bytes", "est_bytes_out",
    "est_ratio", "est_ssim",
]  # fmt: skip


def _sample_windows(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Up to four SAMPLE-sized windows spread over the image (col, row, w, h)."""
    if width <= 2 * SAMPLE and height <= 2 * SAMPLE:
        return [(0, 0, width, height)]
    cols = sorted({int(f * max(0, width - SAMPLE)) for f in (0.25, 0.75)})
    rows = sorted({int(f * max(0, height - SAMPLE)) for f in (0.25, 0.75)})
    return [(c, r, min(SAMPLE, width), min(SAMPLE, height)) for r in rows for c in cols]


def _estimate_size(
    src_path: str, info: Any, profile: Profile, scratch: Path, min_ssim: float
) -> tuple[int, int, Profile, float | None]:
    """Encode a sample of the scene the way a run would (the SSIM ladder included):
    (raw bytes of the sample, bytes of its COG, the profile kept, its SSIM)."""
    import rasterio
    from rasterio.windows import Window

    windows = _sample_windows(info.width, info.height)
    with rasterio.open(src_path) as src:
        tiles = [src.read(window=Window(*w)) for w in windows]
        masks = (
            [src.read_masks(1, window=Window(*w)) for w in windows]
            if info.has_dataset_mask
            else None
        )
        profile_kw = {
            "driver": "GTiff",
            "count": info.count,
            "dtype": info.dtype,
            "nodata": info.nodata,
            "crs": src.crs,
            "transform": src.transform,
        }
        colorinterp = src.colorinterp
    h = max(t.shape[1] for t in tiles)
    w = max(t.shape[2] for t in tiles)
    if len(tiles) == 1:
        mosaic = tiles[0]
    else:
        fill = info.nodata if info.nodata is not None else 0
        mosaic = np.full((info.count, 2 * h, 2 * w), fill, dtype=info.dtype)
        for i, t in enumerate(tiles):
            r, c = divmod(i, 2)
            mosaic[:, r * h : r * h + t.shape[1], c * w : c * w + t.shape[2]] = t
    sample_path = scratch / "sample.tif"
    with rasterio.open(
        sample_path, "w", width=mosaic.shape[2], height=mosaic.shape[1], **profile_kw
    ) as dst:
        dst.write(mosaic)
        dst.colorinterp = colorinterp
        if masks is not None:
            full = np.zeros(mosaic.shape[1:], dtype="uint8")
            for i, m in enumerate(masks):
                r, c = divmod(i, 2) if len(masks) > 1 else (0, 0)
                full[r * h : r * h + m.shape[0], c * w : c * w + m.shape[1]] = m
            dst.write_mask(full)
    sample_info = read_info(str(sample_path))
    ladder = [profile]
    if not profile.lossless and min_ssim > 0:
        ladder += fallback_profiles(profile, sample_info)
    for candidate in ladder:
        out = write_cog(str(sample_path), scratch / "sample.cog.tif", candidate, sample_info)
        fid = check_output(str(sample_path), str(out), sample_info, candidate)
        if candidate.lossless or min_ssim == 0 or (fid.ssim or 0) >= min_ssim:
            break
    return int(mosaic.nbytes), out.stat().st_size, candidate, fid.ssim


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
        live = source_store_for(src, context.s3).head(src)
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
        with gdal_env(context.gdal_options, tmpdir=str(scratch)):
            info = read_info(src.gdal_path)
            row.update(width=info.width, height=info.height, bands=info.count, dtype=info.dtype,
                       raw_bytes=info.raw_bytes)  # fmt: skip
            profile = choose_profile(info, context.codec, context.quality)
            raw, packed, kept, ssim = _estimate_size(
                src.gdal_path, info, profile, scratch, context.min_ssim
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
    monthly saving. Touches nothing."""
    import pandas as pd

    from .pipeline import new_run_id

    if settings is None:
        settings = resolve_settings(arguments, config_file=config_file)
    check_locations(settings)
    context = RunContext.from_settings(settings, new_run_id())
    found = discover(settings, context)
    if on_start:
        on_start(len(found.scenes))

    def run_on(c: Any) -> list[dict[str, Any]]:
        from distributed import as_completed

        futs = [
            c.submit(plan_scene, s, context, key="plan-" + s.key(context), pure=False)
            for s in found.scenes
        ]
        rows = []
        for fut in as_completed(futs):
            rows.append(fut.result())
            if progress:
                progress(rows[-1])
        return rows

    if client is not None:
        rows = run_on(client)
    else:
        with connect(settings.cluster, settings=settings) as c:
            rows = run_on(c)
    order = {s.source: i for i, s in enumerate(found.scenes)}
    rows.sort(key=lambda r: order[r["source"]])
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
