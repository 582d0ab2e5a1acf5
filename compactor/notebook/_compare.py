"""Exploratory runs, for Jupyter: which encoding profile suits which scene, and what a
profile does to the pixels.

* :func:`compare` encodes a sample of every scene (or the whole scene) with each of a few
  profiles (``"jpeg:75"``, ``"webp:80"``, ``"zstd"`` ...) on the Dask cluster, and measures
  size, SSIM, PSNR and encoding time; :class:`Comparison` holds the table, a size-versus-SSIM
  chart and a per-profile summary, and renders as HTML in a notebook.
* :func:`preview` encodes one crop of a scene and returns the original, the compressed
  crop and their amplified difference as 8-bit images (:class:`Preview`, rendered inline).

Both only read: the source is opened lazily through GDAL (``/vsis3/`` range requests on
S3), samples and outputs live in worker-local scratch and are deleted afterwards, and
nothing is written to the source, destination or archive. The SSIM and PSNR are the run's
own (:func:`compactor.verify.check_output`): a sample that passes here passes in a run.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..codecs import LOSSLESS, LOSSY
from ..cog import OverviewPolicy
from ..encode import (
    QUALITY_MAX,
    Sample,
    Window4,
    lowest_quality,
    write_cog,
    write_sample,
)
from ..errors import CompactorError, ConfigError, SceneError
from ..gdal import RasterInfo, gdal_env, scratch_dir
from ..runner import NotebookProgress, fan_out, progress_of
from ..scene import RunContext, SceneSpec
from ..settings import Settings
from ..sources import discover
from ..storage import Location, source_store_for
from ..verify import check_output
from ._comparison import Comparison
from ._profiles import ProfileSpec, parse_spec, spec_profile
from ._settings import _context, _parse_source, _resolve, _with_dest

log = logging.getLogger(__name__)

#: Columns of :attr:`Comparison.df`, one row per scene and profile.
COLUMNS = [
    "scene", "profile", "encoding", "codec", "quality", "lossless", "raw_bytes", "bytes",
    "ratio", "est_bytes", "bytes_in", "ssim", "psnr", "max_error", "error_max", "encode_s",
    "sample", "error",
]  # fmt: skip


# --- compare ------------------------------------------------------------------------


def _row(scene: str, spec: ProfileSpec, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(scene=scene, profile=spec.text, codec=spec.codec, quality=spec.quality)
    if spec.codec not in ("auto", "lossless"):
        row["lossless"] = spec.codec in LOSSLESS and not spec.max_error
    elif spec.codec == "lossless":
        row["lossless"] = True
    row.update(values)
    return row


def _measure(
    sample: Sample,
    info: RasterInfo,
    spec: ProfileSpec,
    scratch: Path,
    index: int,
    min_ssim: float = 0.0,
    overviews: OverviewPolicy = "full",
) -> dict[str, Any]:
    """Encode ``sample`` with one profile in scratch and measure it (one row). A
    ``codec:auto`` profile first bisects the lowest quality meeting ``min_ssim`` on the
    sample, as a run's ``quality: auto`` does."""
    row = _row("", spec, raw_bytes=sample.raw_bytes, sample=not sample.whole)
    out = scratch / f"profile-{index}.cog.tif"
    try:
        profile = spec_profile(spec, info, sample, overviews)
        if spec.auto and profile.codec in LOSSY:
            if min_ssim <= 0:
                raise ConfigError(f"{spec.text} searches for the SSIM bar; set min_ssim > 0")
            found, _ = lowest_quality(sample, profile, min_ssim, scratch / f"search-{index}")
            if found is None:
                raise SceneError(
                    f"{profile.codec.upper()} misses SSIM {min_ssim} on this sample even at "
                    f"quality {QUALITY_MAX}"
                )
            profile = replace(profile, quality=found)
        row.update(
            codec=profile.codec, quality=profile.quality, lossless=profile.lossless,
            encoding=profile.label,
            max_error=profile.smallest_error if profile.bounded else None,
        )  # fmt: skip
        started = time.perf_counter()
        write_cog(str(sample.path), out, profile, sample.info)
        row["encode_s"] = time.perf_counter() - started
        size = out.stat().st_size
        row.update(bytes=size, ratio=sample.raw_bytes / size if size else None)
        row["est_bytes"] = (
            round(info.raw_bytes * size / sample.raw_bytes) if sample.raw_bytes else None
        )
        fidelity = check_output(str(sample.path), str(out), sample.info, profile)
        row.update(ssim=fidelity.ssim, psnr=fidelity.psnr)
        if fidelity.max_error is not None and not fidelity.exact:
            row["error_max"] = max(fidelity.max_error)
    except CompactorError as err:
        row["error"] = str(err)
    finally:
        out.unlink(missing_ok=True)
    return row


def compare_scene(
    source: str, profiles: Sequence[str], context: RunContext, whole: bool = False
) -> list[dict[str, Any]]:
    """Dask task: one row per profile for one scene (reads the source; writes only to
    worker-local scratch, removed at the end)."""
    specs = [parse_spec(p) for p in profiles]
    src = Location.parse(source)
    scratch = Path(scratch_dir()) / f"compare-{uuid.uuid4().hex}"
    rows: list[dict[str, Any]] = []
    bytes_in: int | None = None
    try:
        try:
            live = source_store_for(src, context.s3, context.http).head(src)
            bytes_in = live.size if live is not None else None
        except CompactorError as err:  # the size as stored is informative only
            log.info("cannot read the size of %s: %s", source, err)
        scratch.mkdir(parents=True)
        with gdal_env(context.gdal_options, tmpdir=str(scratch)):
            path, info = context.read_source(src, scratch)
            windows: list[Window4] | None = None
            if whole:
                limit = context.encoding.chunk_threshold
                if info.raw_bytes > limit:
                    raise SceneError(
                        f"whole=True reads a scene into memory, and this one is "
                        f"{info.raw_bytes / 2**20:.0f} MiB raw (above chunk_threshold, "
                        f"{limit / 2**20:.0f} MiB): compare a sample instead"
                    )
                windows = [(0, 0, info.width, info.height)]
            sample = write_sample(path, info, scratch / "sample", windows)
            e = context.encoding
            for i, spec in enumerate(specs):
                rows.append(_measure(sample, info, spec, scratch, i, e.min_ssim, e.overviews))
    except CompactorError as err:
        rows += [_row(source, s, error=str(err)) for s in specs[len(rows) :]]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for row in rows:
        row.update(scene=source, bytes_in=bytes_in)
    return rows


def _sources(scenes: Any, settings: Settings, context: RunContext) -> list[str]:
    """Scene URLs from a list, a plan DataFrame, or a listing of ``settings.source``."""
    if scenes is None or isinstance(scenes, str):
        found = discover(_with_dest(settings), context, skip_finished=False)
        urls = [s.source for s in found if isinstance(s, SceneSpec)]
    elif hasattr(scenes, "columns"):  # a DataFrame, e.g. compactor.plan's
        if "source" not in scenes.columns:
            raise ConfigError("the DataFrame has no 'source' column (pass compactor.plan's)")
        todo = scenes[scenes["action"] == "compact"] if "action" in scenes.columns else scenes
        urls = [str(u) for u in todo["source"]]
    elif isinstance(scenes, Iterable):
        urls = [str(u) for u in scenes]
    else:
        raise ConfigError(f"scenes must be URLs, a plan DataFrame or a prefix, not {scenes!r}")
    for url in urls:
        _parse_source(url)
    unique = list(dict.fromkeys(urls))
    if not unique:
        raise ConfigError("no scenes to compare (a plan's rows must have action 'compact')")
    return unique


def compare(
    scenes: Any,
    profiles: str | Sequence[str],
    *,
    whole: bool = False,
    client: Any = None,
    settings: Settings | None = None,
    config_file: str | None = None,
    progress: Callable[[list[dict[str, Any]]], None] | bool | None = None,
    **arguments: Any,
) -> Comparison:
    """Encode every scene with each profile and measure size and fidelity.

    ``scenes``: scene URLs (``s3://...`` or local paths), a plan DataFrame from
    :func:`compactor.plan` (its rows whose ``action`` is ``compact``), or a prefix (listed
    with the run's ``include``/``exclude`` globs; ``None`` lists ``source=`` or runs the
    ``stac=`` search given as arguments). ``profiles``: ``"jpeg:75"``, ``"webp:80"``,
    ``"zstd"``, ``"deflate"``, ``"lerc"``, ``"auto"``; ``"jpeg:auto"``/``"webp:auto"``:
    per scene, the lowest quality that meets ``min_ssim`` on its sample (the run's search).

    One Dask task per scene (on ``client``, else on the cluster the settings name) reads a
    sample of up to four 512x512 windows (the whole scene when it is at most 1024 pixels a
    side, or with ``whole=True``), encodes it in worker-local scratch with each profile and
    verifies it as a run would. A profile that cannot encode a scene (JPEG on uint16) gives
    a row with ``error`` set. ``progress``: a callable given each scene's rows, or
    ``False``; by default a live bar in Jupyter. Settings by name (``endpoint_url=``,
    ``min_ssim=``, ``include=`` ...) resolve as for :func:`compactor.run`.
    """

    texts = [profiles] if isinstance(profiles, str) else list(profiles)
    specs = list({s.text: s for s in (parse_spec(t) for t in texts)}.values())
    if not specs:
        raise ConfigError("give at least one profile, e.g. ['jpeg:75', 'zstd']")
    names = tuple(s.text for s in specs)
    settings = _resolve(settings, config_file, dict(arguments))
    if isinstance(scenes, str):
        settings = settings.model_copy(update={"source": scenes})
    context = _context(settings)
    sources = _sources(scenes, settings, context)

    tag = uuid.uuid4().hex[:12]

    def submit(c: Any, index: int, src: str) -> Any:
        return c.submit(
            compare_scene, src, names, context, whole, key=f"compare-{tag}-{index}", pure=False
        )

    def task_died(src: str, err: BaseException) -> list[dict[str, Any]]:
        reason = f"task failed: {type(err).__name__}: {err}"
        return [_row(src, s, error=reason) for s in specs]

    def on_bar(bar: NotebookProgress, rows: list[dict[str, Any]]) -> None:
        failed = all(r["error"] for r in rows)
        bar.advance({"error": rows[0]["error"] if failed else None})

    with progress_of("compactor compare", progress, advance=on_bar) as callbacks:
        if callbacks.start is not None:
            callbacks.start(len(sources))
        results = fan_out(
            sources, submit, settings=settings, client=client, progress=callbacks,
            task_died=task_died,
        )  # fmt: skip
    rows = [row for scene_rows in results for row in scene_rows]
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("quality", "raw_bytes", "bytes", "est_bytes", "bytes_in"):
        df[col] = df[col].astype("Int64")
    for col in ("ratio", "ssim", "psnr", "encode_s"):
        df[col] = df[col].astype("float64")
    df.attrs.update(whole=whole, min_ssim=settings.min_ssim, profiles=list(names))
    return Comparison(df=df, min_ssim=settings.min_ssim or None, profiles=names)
