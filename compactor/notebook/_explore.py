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

import base64
import builtins
import logging
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dask.array
import imagecodecs
import numpy as np
import pandas as pd
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from rasterio.windows import Window

from ..codecs import AUTO_LOSSLESS, LOSSLESS, LOSSY, ErrorBound, parse_max_error, parse_quality
from ..codecs import CODECS as REGISTRY
from ..cog import LEVELS, OverviewPolicy, Profile, choose_profile, dtype_range, needs_ranges
from ..display import esc, human_bytes, short_name
from ..encode import (
    QUALITY_MAX,
    Sample,
    Window4,
    lowest_quality,
    search_encoding,
    valid_ranges,
    write_cog,
    write_sample,
)
from ..errors import CompactorError, ConfigError, SceneError
from ..fidelity import ssim_map
from ..gdal import RasterInfo, gdal_env, open_source, scratch_dir
from ..report import X_AXES, is_missing, scatter_chart
from ..runner import NotebookProgress, fan_out, progress_of
from ..scene import RunContext, SceneSpec
from ..settings import Settings, resolve_settings
from ..sources import discover
from ..storage import Location, source_store_for
from ..verify import check_output

log = logging.getLogger(__name__)

#: Columns of :attr:`Comparison.df`, one row per scene and profile.
COLUMNS = [
    "scene", "profile", "encoding", "codec", "quality", "lossless", "raw_bytes", "bytes",
    "ratio", "est_bytes", "bytes_in", "ssim", "psnr", "max_error", "error_max", "encode_s",
    "sample", "error",
]  # fmt: skip
#: Columns of :meth:`Comparison.summary`, one row per profile.
SUMMARY_COLUMNS = [
    "profile", "scenes", "errors", "bytes", "est_bytes", "est_saving", "mean_ratio",
    "ssim_min", "passing", "encode_s",
]  # fmt: skip
#: Codec names a profile may start with: ``auto`` (the codec a run's ``codec: auto`` picks)
#: and every codec of the registry.
CODECS = ("auto", "lossless", *REGISTRY)


# --- profiles ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileSpec:
    """A profile as asked for: ``jpeg:75`` is codec ``jpeg`` at quality 75, ``zstd:19``
    ZSTD at level 19, ``lerc:1`` LERC within 1 data unit, ``lossless:auto`` the smallest
    lossless encoding of the sample (a run's encoding search)."""

    text: str
    codec: str
    quality: int | None = None
    #: ``codec:auto``: the lowest quality that meets the SSIM bar on the sample (lossy
    #: codecs), or the smallest encoding of that codec (lossless ones, ``lossless``).
    auto: bool = False
    #: ``zstd:19``, ``deflate:12``: the compression level.
    level: int | None = None
    #: ``lerc:2``: the largest error allowed on any valid pixel, in data units.
    max_error: float | None = None


def parse_spec(text: str) -> ProfileSpec:
    """Check the syntax of a profile string: ``codec``, ``codec:quality`` or ``codec:auto``
    for lossy codecs; ``zstd:LEVEL``, ``deflate:LEVEL``, ``lerc:MAX_ERROR``, ``codec:auto``
    and ``lossless:auto`` for lossless ones."""
    if not isinstance(text, str):
        raise ConfigError(f"a profile is a string like 'jpeg:75' or 'zstd', not {text!r}")
    codec, sep, value = text.strip().lower().partition(":")
    codec, value = codec.strip(), value.strip()
    if codec not in CODECS:
        raise ConfigError(
            f"unknown codec {codec!r} in profile {text!r} (codecs: {', '.join(CODECS)})"
        )
    if codec == "lossless":
        if sep and value != "auto":
            raise ConfigError(f"profile {text!r}: lossless takes only 'auto' (lossless:auto)")
        return ProfileSpec("lossless:auto", codec, auto=True)
    if not sep:
        return ProfileSpec(codec, codec)
    if codec in LOSSLESS:
        return _lossless_spec(text, codec, value)
    try:
        quality = parse_quality(value)
    except ValueError as err:
        raise ConfigError(f"profile {text!r}: {err}") from err
    if quality == "auto":
        return ProfileSpec(f"{codec}:auto", codec, None, auto=True)
    return ProfileSpec(f"{codec}:{quality}", codec, quality)


def _lossless_spec(text: str, codec: str, value: str) -> ProfileSpec:
    if value == "auto":
        return ProfileSpec(f"{codec}:auto", codec, auto=True)
    if codec == "lerc":
        try:
            bound = parse_max_error(value)
        except ValueError as err:
            raise ConfigError(f"profile {text!r}: {err}") from err
        if bound is not None and (bound.relative or len(bound.values) > 1):
            raise ConfigError(f"profile {text!r}: give one error bound in data units (lerc:2)")
        error = bound.values[0] if bound else 0.0
        return ProfileSpec(f"lerc:{error:g}", codec, max_error=error)
    levels = LEVELS.get(codec)
    if levels is None:
        raise ConfigError(f"profile {text!r}: {codec} is lossless and takes no level")
    lo, hi = levels
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise ConfigError(f"profile {text!r}: {codec} levels are whole numbers from {lo} to {hi}")
    return ProfileSpec(f"{codec}:{int(value)}", codec, level=int(value))


def spec_profile(
    spec: ProfileSpec,
    info: RasterInfo,
    sample: Sample | None = None,
    overviews: OverviewPolicy = "full",
) -> Profile:
    """The profile ``spec`` gives the raster ``info``: mask, alpha and overview resampling
    chosen as a run would (:func:`~compactor.cog._profile.choose_profile`), overviews under
    the policy given; ``lossless:auto`` and ``zstd:auto`` are searched on ``sample`` (a
    lossy ``codec:auto`` is searched by :func:`compare`)."""
    policy = overviews
    ranges = None
    codec = AUTO_LOSSLESS if spec.codec == "lossless" else spec.codec
    bound = ErrorBound((spec.max_error,)) if spec.max_error else None
    if sample is not None and needs_ranges(info, codec, bound, policy):
        ranges = valid_ranges(sample)
    elif policy == "lossy" and needs_ranges(info, codec, None, policy):
        policy = "full"  # no sample to take the overviews' bound from
    profile = choose_profile(
        info, codec, spec.quality, max_error=bound, overviews=policy, ranges=ranges
    )
    if spec.level is not None:
        profile = replace(profile, level=spec.level)
    if spec.auto and profile.lossless:
        if sample is None:
            raise ConfigError(f"{spec.text!r} is searched on a sample; compare() does that")
        only = None if spec.codec == "lossless" else spec.codec
        profile, _ = search_encoding(sample, profile, "default", only)
    return profile


def parse_profile(text: str, info: RasterInfo) -> Profile:
    """The encoding profile ``text`` (``"jpeg:75"``, ``"webp:80"``, ``"zstd:19"``,
    ``"lerc:1"``, ``"auto"`` ...) gives the raster ``info``: its mask, alpha and overview
    resampling are chosen as a run would (:func:`compactor.cog._profile.choose_profile`).
    ``"auto"`` is the codec a run's ``codec: auto`` picks (JPEG for 8-bit imagery of 1 or 3
    colour bands, else ZSTD) at the quality given or 75; the searches (``jpeg:auto``,
    ``lossless:auto``) are per scene, by :func:`compare`. Raises
    :class:`~compactor.errors.UnsupportedCodecError` for an impossible combination (JPEG on
    uint16) and :class:`~compactor.errors.ConfigError` for a malformed string."""
    spec = parse_spec(text)
    if spec.auto:
        raise ConfigError(
            f"{text!r} is searched per scene by compare(); give a fixed profile here "
            "(compare's row for it names the profile found)"
        )
    return spec_profile(spec, info)


# --- settings shared by compare and preview --------------------------------------------


def _resolve(
    settings: Settings | None, config_file: str | None, arguments: dict[str, Any]
) -> Settings:
    if settings is None:
        return resolve_settings(arguments, config_file=config_file)
    if arguments:
        raise ConfigError("give either settings= or settings by name, not both")
    return settings


def _with_dest(settings: Settings) -> Settings:
    """Exploring needs no destination, but discovery and the task context are defined
    with one: a local folder that is never created stands in for it."""
    if settings.dest:
        return settings
    nowhere = os.path.join(tempfile.gettempdir(), f"compactor-explore-{uuid.uuid4().hex}", "")
    return settings.model_copy(update={"dest": nowhere})


def _context(settings: Settings) -> RunContext:
    return RunContext.from_settings(_with_dest(settings), f"explore-{uuid.uuid4().hex[:12]}")


def _parse_source(url: str) -> Location:
    try:
        return Location.parse(str(url))
    except ValueError as err:
        raise ConfigError(str(err)) from err


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


# --- the comparison, its chart and summary ---------------------------------------------


@dataclass
class Comparison:
    """What :func:`compare` measured: :attr:`df` has one row per scene and profile."""

    df: Any
    #: The SSIM bar drawn on the chart and counted in the summary (``None``: no bar).
    min_ssim: float | None = 0.95
    #: Profiles in the order asked.
    profiles: tuple[str, ...] = ()

    def _profiles(self) -> list[str]:
        seen = list(self.profiles)
        seen += [p for p in dict.fromkeys(self.df["profile"]) if p not in seen]
        return seen

    def summary(self) -> Any:
        """One row per profile: scenes it encoded, errors, total sample COG bytes, total
        estimated bytes of the scenes, the estimated saving against the originals as
        stored, the mean ratio, the lowest SSIM, how many scenes pass the SSIM bar, and
        the total encoding time."""

        df = self.df
        rows = []
        for name in self._profiles():
            group = df[df["profile"] == name]
            ok = group[group["error"].isna()]
            with_in = ok[ok["bytes_in"].notna() & ok["est_bytes"].notna()]
            total_in = int(with_in["bytes_in"].sum()) if len(with_in) else 0
            saving = 1 - int(with_in["est_bytes"].sum()) / total_in if total_in else math.nan
            ssims = ok["ssim"].dropna()
            bar = self.min_ssim
            rows.append(
                {
                    "profile": name,
                    "scenes": len(ok),
                    "errors": len(group) - len(ok),
                    "bytes": int(ok["bytes"].fillna(0).sum()),
                    "est_bytes": int(ok["est_bytes"].fillna(0).sum()),
                    "est_saving": saving,
                    "mean_ratio": float(ok["ratio"].mean()) if len(ok) else math.nan,
                    "ssim_min": float(ssims.min()) if len(ssims) else math.nan,
                    "passing": int((ssims >= bar).sum()) if bar else len(ssims),
                    "encode_s": float(ok["encode_s"].sum()),
                }
            )
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    def plot(self, x: str = "ratio", *, width: int = 720, height: int = 400) -> str:
        """Size against SSIM as an SVG scatter chart (a string): one marker per scene and
        profile that has an SSIM, one colour and shape per profile, the SSIM bar dashed.
        ``x``: ``"ratio"`` (raw ÷ COG), ``"bytes"`` (the sample's COG) or ``"est_bytes"``
        (the scene's estimated COG size), the sizes on a log scale."""
        if x not in X_AXES:
            raise ConfigError(f"x must be one of {', '.join(X_AXES)}, not {x!r}")
        return scatter_chart(self.df, x, self.min_ssim, self._profiles(), width, height)

    def _summary_html(self) -> str:
        s = self.summary()
        head = ("profile", "scenes", "errors", "sample COGs", "est. scene COGs", "est. saving",
                "mean ratio", "lowest SSIM", "pass the bar", "encode s")  # fmt: skip
        body = []
        for r in s.itertuples(index=False):
            ok = r.scenes + r.errors
            cells = (
                r.profile,
                str(r.scenes),
                str(r.errors),
                human_bytes(r.bytes),
                human_bytes(r.est_bytes),
                "–" if math.isnan(r.est_saving) else f"{r.est_saving:.0%}",
                "–" if math.isnan(r.mean_ratio) else f"{r.mean_ratio:.1f}×",
                "–" if math.isnan(r.ssim_min) else f"{r.ssim_min:.4f}",
                f"{r.passing}/{ok}",
                f"{r.encode_s:.2f}",
            )
            body.append(cells)
        return _table(head, body)

    def _rows_html(self) -> str:
        head = ("scene", "profile", "codec", "COG", "ratio", "est. scene COG", "SSIM",
                "PSNR dB", "encode s", "error")  # fmt: skip
        body = []
        for r in self.df.itertuples(index=False):
            codec = "" if is_missing(r.codec) else str(r.codec)
            if not is_missing(r.quality):
                codec += f" q{int(r.quality)}"
            body.append(
                (
                    short_name(r.scene),
                    r.profile,
                    codec,
                    human_bytes(None if is_missing(r.bytes) else int(r.bytes)),
                    "–" if is_missing(r.ratio) else f"{float(r.ratio):.1f}×",
                    human_bytes(None if is_missing(r.est_bytes) else int(r.est_bytes)),
                    "–" if is_missing(r.ssim) else f"{float(r.ssim):.4f}",
                    "identical" if is_missing(r.psnr) and not is_missing(r.ssim)
                    else "–" if is_missing(r.psnr) else f"{float(r.psnr):.1f}",
                    "–" if is_missing(r.encode_s) else f"{float(r.encode_s):.2f}",
                    "" if is_missing(r.error) else str(r.error),
                )
            )  # fmt: skip
        return _table(head, body)

    def _repr_html_(self) -> str:
        df = self.df
        scenes = df["scene"].nunique()
        sampled = bool(df["sample"].fillna(False).astype(bool).any())
        what = (
            "samples of up to four 512×512 windows per scene (smaller scenes whole)"
            if sampled
            else "whole scenes"
        )
        bar = f" · SSIM bar {self.min_ssim:g}" if self.min_ssim else ""
        return (
            (
                '<div class="compactor-compare" style="font-family:system-ui,sans-serif;'
                'font-size:13px">'
                f"<p><b>compactor compare</b>: {scenes} scene{'s' if scenes != 1 else ''} × "
                f"{len(self._profiles())} profiles · {what}{bar}</p>"
                + self.plot()
                + self._summary_html()
                + f"<details><summary>all {len(df)} rows</summary>{self._rows_html()}</details>"
                + "</div>"
            )
            .encode("ascii", "xmlcharrefreplace")
            .decode("ascii")
        )

    def __repr__(self) -> str:
        return f"Comparison of {len(self.df)} rows\n{self.summary().to_string(index=False)}"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    cell = "padding:2px 8px;border-bottom:1px solid #eaecf0;text-align:left"
    out = ['<table style="border-collapse:collapse;margin:8px 0"><tr>']
    out += [f'<th style="{cell}">{esc(h)}</th>' for h in head]
    out.append("</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td style="{cell}">{esc(c)}</td>' for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


# --- preview ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Preview:
    """One crop of a scene before and after a profile, as 8-bit images (rows x cols, or
    rows x cols x 3 for colour): :attr:`original`, :attr:`compressed`, and
    :attr:`difference`, the absolute difference times :attr:`gain` (largest over the
    bands, clipped to 255). 16-bit and float scenes are shown with a 2-98 % stretch."""

    scene: str
    #: The profile as encoded, e.g. ``jpeg q75``.
    profile: str
    #: The crop, as (col, row, width, height) in the scene.
    window: Window4
    gain: float
    original: np.ndarray = field(repr=False)
    compressed: np.ndarray = field(repr=False)
    difference: np.ndarray = field(repr=False)
    ssim: float | None
    psnr: float | None
    #: Size of the crop's COG, and of its raw pixels.
    bytes: int
    raw_bytes: int
    #: The compressed crop equals the original pixel for pixel.
    exact: bool
    #: The images are a 2-98 % stretch of 16-bit or float data.
    stretched: bool = False
    #: A bounded profile's bound (the difference image is then the error map: error over
    #: bound, white at the bound) and the largest error in the crop, in data units.
    max_error: float | None = None
    error_max: float | None = None
    #: The crop in data units, with the scene's coordinates: ``original``, ``compressed``,
    #: ``difference`` (compressed - original) and ``ssim`` (the local SSIM map, the measure
    #: verification averages), each (band, y, x) and NaN where the source has no data:
    #: ``p.data.difference.sel(band=1).plot()``.
    data: xr.Dataset | None = field(default=None, repr=False)

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.bytes if self.bytes else math.nan

    def png(self, which: str = "compressed") -> builtins.bytes:
        """One of the images (``original``, ``compressed``, ``difference``) as PNG."""

        if which not in ("original", "compressed", "difference"):
            raise ConfigError(f"which must be original, compressed or difference, not {which!r}")
        return bytes(imagecodecs.png_encode(np.ascontiguousarray(getattr(self, which))))

    def _repr_html_(self) -> str:
        h, w = self.original.shape[:2]
        figures = []
        for which, caption in (
            ("original", "original"),
            ("compressed", self.profile),
            (
                "difference",
                f"error map (white: at ±{self.max_error:g})"
                if self.max_error
                else f"difference ×{self.gain:g}",
            ),
        ):
            data = base64.b64encode(self.png(which)).decode("ascii")
            figures.append(
                f'<figure style="margin:0;flex:1 1 0;min-width:0;max-width:{w}px">'
                f'<img src="data:image/png;base64,{data}" width="{w}" height="{h}" '
                f'alt="{esc(caption)}" '
                'style="image-rendering:pixelated;width:100%;height:auto;display:block">'
                f'<figcaption style="text-align:center">{esc(caption)}</figcaption></figure>'
            )
        col, row, cw, ch = self.window
        if self.exact:
            fidelity = "identical to the original"
        elif self.max_error:
            fidelity = f"max error {self.error_max or 0:g} (bound {self.max_error:g})" + (
                f" · PSNR {self.psnr:.1f} dB" if self.psnr else ""
            )
        else:
            fidelity = f"SSIM {self.ssim:.4f}" + (
                f" · PSNR {self.psnr:.1f} dB" if self.psnr else ""
            )
        stretch = " · shown with a 2–98 % stretch" if self.stretched else ""
        return (
            (
                '<div class="compactor-preview" style="font-family:system-ui,sans-serif;'
                'font-size:13px">'
                '<div style="display:flex;gap:12px;align-items:flex-start">'
                + "".join(figures)
                + "</div>"
                f"<p>{esc(short_name(self.scene))}, {cw}×{ch} pixels at column {col}, row {row} · "
                f"{esc(self.profile)}: {esc(human_bytes(self.bytes))} "
                f"(raw {esc(human_bytes(self.raw_bytes))}, {self.ratio:.1f}×) · "
                f"{fidelity}{stretch}</p></div>"
            )
            .encode("ascii", "xmlcharrefreplace")
            .decode("ascii")
        )


def _crop_window(info: RasterInfo, window: Sequence[int] | None, size: int) -> Window4:
    if window is None:
        if size < 1:
            raise ConfigError(f"size must be at least 1 pixel, not {size}")
        w, h = min(size, info.width), min(size, info.height)
        return ((info.width - w) // 2, (info.height - h) // 2, w, h)
    if len(window) != 4:
        raise ConfigError(f"window is (col, row, width, height), not {tuple(window)}")
    col, row, w, h = (int(v) for v in window)
    if w < 1 or h < 1 or col < 0 or row < 0 or col + w > info.width or row + h > info.height:
        raise ConfigError(
            f"window {(col, row, w, h)} is not inside the scene ({info.width}×{info.height})"
        )
    return (col, row, w, h)


def _display_bands(info: RasterInfo) -> list[int]:
    """0-based bands shown: red, green, blue when the scene names them, else the first
    three colour bands, else the first band (grey)."""
    colour = [i for i in range(info.count) if i + 1 != info.alpha_index]
    if len(colour) < 3:
        return colour[:1]
    named: dict[str, int] = {}
    for i in colour:
        for name in (info.colorinterp[i], (info.descriptions[i] or "")):
            key = str(name).strip().lower()
            if key in ("red", "green", "blue"):
                named.setdefault(key, i)
    if len(named) == 3:
        return [named["red"], named["green"], named["blue"]]
    return colour[:3]


def _images(
    a: np.ndarray, b: np.ndarray, valid: np.ndarray, info: RasterInfo, profile: Profile,
    gain: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:  # fmt: skip
    """(original, compressed, difference) as uint8 images, and whether stretched."""
    kept = [i for i in range(info.count) if not (profile.drop_alpha and i + 1 == info.alpha_index)]
    colour = [i for i in range(info.count) if i + 1 != info.alpha_index]
    stretched = info.dtype != "uint8"
    scale: dict[int, tuple[float, float]] = {}
    for i in colour:
        if not stretched:
            scale[i] = (0.0, 1.0)
            continue
        values = a[i][valid & np.isfinite(a[i])]
        lo, hi = np.percentile(values, [2, 98]) if values.size else (0.0, 1.0)
        lo, hi = float(lo), float(hi)
        scale[i] = (lo, 255.0 / (hi - lo) if hi > lo else 1.0)

    def show(data: np.ndarray, band: int) -> np.ndarray:
        lo, k = scale[band]
        out = np.nan_to_num((data.astype(np.float64) - lo) * k, nan=0.0, posinf=255, neginf=0)
        out = np.clip(np.rint(out), 0, 255)
        out[~valid] = 0
        return out.astype(np.uint8)

    bands = _display_bands(info)
    original = np.stack([show(a[i], i) for i in bands], axis=-1)
    compressed = np.stack([show(b[kept.index(i)], i) for i in bands], axis=-1)
    diff = np.zeros(valid.shape, dtype=np.float64)
    for i in colour:
        d = np.abs(a[i].astype(np.float64) - b[kept.index(i)].astype(np.float64))
        # A bounded scene's error map: white where a pixel's error reaches its band's bound.
        k = 255.0 / profile.band_error(kept.index(i)) if profile.bounded else scale[i][1] * gain
        diff = np.maximum(diff, np.nan_to_num(d * k, nan=0.0, posinf=255))
    diff[~valid] = 0
    difference = np.clip(np.rint(diff), 0, 255).astype(np.uint8)
    if len(bands) == 1:
        original, compressed = original[..., 0], compressed[..., 0]
    return original, compressed, difference, stretched


def preview_scene(
    source: str,
    profile_text: str,
    window: Sequence[int] | None,
    size: int,
    gain: float,
    context: RunContext,
) -> Preview:
    """Task (Dask or in-process): encode one crop of ``source`` with a profile."""

    src = Location.parse(source)
    scratch = Path(scratch_dir()) / f"preview-{uuid.uuid4().hex}"
    try:
        scratch.mkdir(parents=True)
        with gdal_env(context.gdal_options, tmpdir=str(scratch)):
            path, info = context.read_source(src, scratch)
            crop = _crop_window(info, window, size)
            sample = write_sample(path, info, scratch, [crop])
            spec = parse_spec(profile_text)
            if spec.auto and spec.codec in LOSSY:
                raise ConfigError(
                    f"{profile_text!r} is searched per scene by compare(); give a fixed "
                    "quality here (compare's row for it names the quality found)"
                )
            profile = spec_profile(spec, info, sample)
            out = write_cog(str(sample.path), scratch / "preview.cog.tif", profile, sample.info)
            fidelity = check_output(str(sample.path), str(out), sample.info, profile)
            with (
                rasterio.open(sample.path, driver="GTiff") as s,
                rasterio.open(out, driver="GTiff") as o,
            ):
                a, b = s.read(), o.read()
                valid = s.dataset_mask() > 0
                # The sample keeps the scene's georeferencing: the crop starts at its window.
                transform, crs = s.transform * Affine.translation(crop[0], crop[1]), s.crs
            nbytes = out.stat().st_size
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    original, compressed, difference, stretched = _images(a, b, valid, info, profile, gain)
    data = crop_dataset(a, b, valid, info, profile, transform, crs)
    return Preview(
        scene=source,
        profile=profile.label,
        window=crop,
        gain=gain,
        original=original,
        compressed=compressed,
        difference=difference,
        ssim=fidelity.ssim,
        psnr=fidelity.psnr,
        bytes=nbytes,
        raw_bytes=sample.raw_bytes,
        exact=fidelity.exact,
        stretched=stretched,
        data=data,
        max_error=profile.smallest_error if profile.bounded else None,
        error_max=max(fidelity.max_error) if fidelity.max_error else None,
    )


def crop_dataset(
    a: np.ndarray,
    b: np.ndarray,
    valid: np.ndarray,
    info: RasterInfo,
    profile: Profile,
    transform: Any,
    crs: Any,
) -> xr.Dataset:
    """The crop before and after, their difference and the local SSIM map, as an
    ``xarray.Dataset`` on the crop's x/y coordinates (pixel centres), NaN where the source
    has no data. Bands are those the output keeps (an alpha band becomes the mask)."""
    kept = [i for i in range(info.count) if not (profile.drop_alpha and i + 1 == info.alpha_index)]
    rows, cols = valid.shape
    xs = transform.c + transform.a * (np.arange(cols) + 0.5)
    ys = transform.f + transform.e * (np.arange(rows) + 0.5)
    before = np.where(valid, a[kept].astype(np.float64), np.nan)
    after = np.where(valid, b.astype(np.float64), np.nan)
    rng = dtype_range(info.dtype)
    local = np.stack([
        ssim_map(np.where(valid, a[i], 0), np.where(valid, b[k], 0), rng)
        for k, i in enumerate(kept)
    ])  # fmt: skip
    local[:, ~valid] = np.nan
    dims = ("band", "y", "x")
    coords = {"band": [i + 1 for i in kept], "y": ys, "x": xs}
    return xr.Dataset(
        {
            "original": (dims, before),
            "compressed": (dims, after),
            "difference": (dims, after - before),
            "ssim": (dims, local),
        },
        coords=coords,
        attrs={"crs": str(crs) if crs else "", "profile": profile.label},
    )


@dataclass(frozen=True)
class _Window:
    """A source as an array-like ``(band, y, x)`` whose slices are windowed reads through
    :func:`~compactor.gdal._info.open_source` with the run's GDAL options: plain data, so
    dask ships it to whichever process computes a chunk."""

    path: str
    gdal: tuple[tuple[str, str], ...]
    shape: tuple[int, int, int]
    dtype: np.dtype[Any]

    @property
    def ndim(self) -> int:
        return 3

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        bands, rows, cols = (k.indices(n) for k, n in zip(key, self.shape, strict=True))
        window = Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])
        with gdal_env(dict(self.gdal)), open_source(self.path) as src:
            data = src.read(list(range(bands[0] + 1, bands[1] + 1)), window=window)
        return np.asarray(data)


def open_scene(url: str, *, chunks: int | dict[str, int] = 512,
               settings: Settings | None = None, config_file: str | None = None,
               **arguments: Any) -> xr.DataArray:  # fmt: skip
    """A scene as a lazy, dask-backed ``xarray.DataArray`` (band, y, x) with its x/y
    coordinates (pixel centres), CRS and transform through rioxarray (``da.rio``): windowed
    range reads of ``chunks`` pixels, nothing read until computed. Every read opens the
    source as a run does (:data:`~compactor.gdal._info.SOURCE_DRIVERS`) with the run's GDAL
    options, on whichever process computes it. Settings by name resolve as for
    :func:`compactor.run`."""
    resolved = _resolve(settings, config_file, dict(arguments))
    context = _context(resolved)
    loc = _parse_source(url)
    if loc.is_http:
        raise ConfigError("open() reads s3:// objects and local files")
    with gdal_env(context.gdal_options), open_source(loc.gdal_path) as ds:
        shape = (ds.count, ds.height, ds.width)
        dtype, transform, crs, nodata = np.dtype(ds.dtypes[0]), ds.transform, ds.crs, ds.nodata
        descriptions = ds.descriptions
    size = chunks if isinstance(chunks, dict) else {"y": chunks, "x": chunks}
    lazy = dask.array.from_array(
        _Window(loc.gdal_path, context.gdal, shape, dtype),
        chunks=(shape[0], size.get("y", shape[1]), size.get("x", shape[2])),
        name=f"compactor-open-{uuid.uuid4().hex[:8]}", asarray=False, fancy=False,
    )  # fmt: skip
    da = xr.DataArray(
        lazy,
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, shape[0] + 1),
            "y": transform.f + transform.e * (np.arange(shape[1]) + 0.5),
            "x": transform.c + transform.a * (np.arange(shape[2]) + 0.5),
        },
        attrs={"long_name": descriptions, "_FillValue": nodata} if nodata is not None
        else {"long_name": descriptions},
        name=loc.name,
    )  # fmt: skip
    da = da.rio.write_transform(transform)
    located: xr.DataArray = da.rio.write_crs(crs) if crs else da
    return located


def preview(
    scene: str,
    profile: str,
    *,
    window: Sequence[int] | None = None,
    size: int = 384,
    gain: float = 8,
    client: Any = None,
    settings: Settings | None = None,
    config_file: str | None = None,
    **arguments: Any,
) -> Preview:
    """Encode one crop of ``scene`` with ``profile`` (``"jpeg:75"`` ...) and return the
    original, the compressed crop and the difference times ``gain`` as images.

    The crop is ``window`` = (col, row, width, height), or a ``size``-square window at the
    scene's centre. It runs in this process (one crop is cheap), or on ``client``'s
    cluster when given. Settings by name (``endpoint_url=`` ...) resolve as for
    :func:`compactor.run`; the S3 endpoint and GDAL options are the run's. Raises
    :class:`~compactor.errors.CompactorError` when the scene cannot be read or the
    profile cannot encode it."""
    spec = parse_spec(profile)
    resolved = _resolve(settings, config_file, dict(arguments))
    _parse_source(scene)
    context = _context(resolved)
    if client is not None:
        fut = client.submit(
            preview_scene, str(scene), spec.text, window, size, gain, context,
            key=f"preview-{uuid.uuid4().hex[:12]}", pure=False,
        )  # fmt: skip
        result: Preview = fut.result()
        return result
    return preview_scene(str(scene), spec.text, window, size, gain, context)


__all__ = [
    "Comparison",
    "Preview",
    "compare",
    "open_scene",
    "parse_profile",
    "preview",
]
