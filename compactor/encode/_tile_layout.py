"""The tile writer's job and layout: :func:`build_job` (the codecs, JPEG tables and COG
structure of one scene), :func:`layout` (segments placed into parts in file order, the
header computed into part 1) and :func:`put_parts`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np

from ..codecs import LOSSY
from ..cog import (
    TILE,
    CogSpec,
    IfdCodec,
    Profile,
    TileBytes,
    TileCodec,
    jpeg_tables,
    needs_bigtiff,
    split_jpeg,
    template_tags,
)
from ..errors import UnsupportedCodecError
from ..gdal import RasterInfo, gdal_env, open_source
from ..storage import PartSent, PartsWriter
from ._strips import Segment, StripPlan, TileJob

# --- the job and the layout ------------------------------------------------------------------


def _photometric(info: RasterInfo, codec: str, bands: list[int]) -> tuple[int, str | None]:
    """(TIFF Photometric, what the GDAL template is told) for the written bands."""
    ci = [info.colorinterp[b - 1] for b in bands]
    if codec == "jpeg" and len(bands) == 3:
        return 6, "RGB"
    if info.has_colormap and bands[0] == 1 and all(c == "alpha" for c in ci[1:]):
        return 3, None  # a palette band, alone or with alpha (as layout.template_tags)
    if len(ci) >= 3 and ci[:3] == ["red", "green", "blue"]:
        return 2, "RGB"
    if codec == "webp":
        return 2, "RGB"
    return 1, "MINISBLACK"


Template = dict[int, tuple[int, int, bytes]]
T = TypeVar("T")

#: What was already read per source, within :func:`same_source`.
_READ: ContextVar[dict[Any, Any] | None] = ContextVar("same_source", default=None)


@contextmanager
def same_source(memo: dict[Any, Any]) -> Iterator[None]:
    """Within: the tile writer reads a source's template tags and strips once into
    ``memo`` (for the probes of one quality search: encodes of the same sample file,
    which this process wrote and does not change), in this thread or task only."""
    token = _READ.set(memo)
    try:
        yield
    finally:
        _READ.reset(token)


def read_once(key: Any, read: Callable[[], T], copy: Callable[[T], T]) -> T:
    """``read()``, or within :func:`same_source` what it gave for ``key`` before (each
    caller gets its own ``copy``)."""
    memo = _READ.get()
    if memo is None:
        return read()
    if key not in memo:
        memo[key] = read()
    return copy(memo[key])


def _template(
    src_path: str,
    bands: list[int],
    photometric: str | None,
    max_z_error: float | None,
    gdal: dict[str, str],
) -> Template:
    """:func:`~compactor.cog.template_tags` of ``src_path`` (read once within
    :func:`same_source`)."""

    def read() -> Template:
        with gdal_env(gdal), open_source(src_path) as src:
            return template_tags(src, bands, photometric, max_z_error=max_z_error)

    options = tuple(sorted(gdal.items()))
    key = ("template", src_path, tuple(bands), photometric, max_z_error, options)
    return read_once(key, read, dict)


@lru_cache(maxsize=64)
def _probe_tables(codec: TileCodec) -> bytes | None:
    """The JPEGTables every tile of a JPEG codec shares (None for other codecs): the same
    for every tile of the codec, so computed once per codec in a process."""
    if codec.codec != "jpeg":
        return None
    probe = np.zeros((TILE, TILE, codec.bands), dtype=codec.dtype)
    return jpeg_tables(split_jpeg(codec.encode(probe))[0])


def _overview_codec(
    profile: Profile, info: RasterInfo, bands: list[int], alpha: int | None
) -> TileCodec | None:
    """The overviews' own tile codec under ``overviews="lossy"`` (None: as full resolution)."""
    if not profile.lossy_overviews:
        return None
    ovr = profile.overview
    assert ovr is not None
    if ovr.codec in LOSSY:
        problem = _lossy_overview_problem(ovr.codec, info.dtype, len(bands))
        if problem:
            raise UnsupportedCodecError(f"{ovr.codec.upper()} overviews: {problem}")
    return TileCodec.from_profile(ovr, info.dtype, len(bands), nodata=info.nodata, alpha=alpha)


def _lossy_overview_problem(codec: str, dtype: str, bands: int) -> str | None:
    if dtype != "uint8":
        return f"{codec.upper()} encodes 8-bit data only; this scene is {dtype}"
    allowed = (1, 3) if codec == "jpeg" else (3,)
    if bands not in allowed:
        return f"{codec.upper()} encodes {' or '.join(map(str, allowed))} bands, not {bands}"
    return None


def build_job(
    src_path: str,
    info: RasterInfo,
    profile: Profile,
    plan: StripPlan,
    gdal: dict[str, str],
    output: PartsWriter,
) -> tuple[TileJob, CogSpec]:
    """The tile job and the COG's header spec for writing ``src_path`` with ``profile``.
    The job's plan (not ``plan``) is the one to follow: without overviews it has one level."""
    bands = [
        b for b in range(1, info.count + 1) if not (profile.drop_alpha and b == info.alpha_index)
    ]
    if profile.overviews == "none":
        plan = replace(plan, nlevels=1)
    # JPEG/WEBP carry the profile's mask; exact and bounded codecs keep the source's
    # dataset mask, and their overviews still skip nodata and transparent pixels.
    lossy = profile.codec in LOSSY
    mask_source = profile.mask if lossy else ("dataset" if info.has_dataset_mask else "none")
    if not lossy and mask_source == "none":
        mask_source = (
            "alpha" if info.alpha_index else ("nodata" if info.nodata is not None else "none")
        )
    has_mask = (lossy and profile.mask != "none") or (not lossy and info.has_dataset_mask)
    alpha = bands.index(info.alpha_index) if info.alpha_index in bands else None
    codec = TileCodec.from_profile(profile, info.dtype, len(bands), nodata=info.nodata, alpha=alpha)
    overview_codec = _overview_codec(profile, info, bands, alpha) if plan.nlevels > 1 else None
    tables = _probe_tables(codec)
    overview_tables = _probe_tables(overview_codec) if overview_codec is not None else None
    photometric, template_photo = _photometric(info, profile.codec, bands)
    overview_ifd = None
    if overview_codec is not None:
        overview_ifd = IfdCodec(
            overview_codec.codec,
            _photometric(info, overview_codec.codec, bands)[0],
            overview_codec.predictor,
            overview_tables,
            overview_codec.lerc_parameters,
        )
    max_z_error = None
    if codec.codec == "lerc":
        max_z_error = min(codec.max_error) if codec.bounded else 0.0
    template = _template(src_path, bands, template_photo, max_z_error, gdal)
    spec = CogSpec(
        width=info.width,
        height=info.height,
        bands=len(bands),
        dtype=info.dtype,
        codec=profile.codec,
        photometric=photometric,
        predictor=codec.predictor,
        has_mask=has_mask,
        bigtiff=profile.force_bigtiff
        or needs_bigtiff(info.width, info.height, len(bands), info.dtype),
        jpeg_tables=tables,
        template=template,
        lerc=codec.lerc_parameters,
        overview=overview_ifd,
        nlevels=plan.nlevels,
    )
    job = TileJob(
        source=src_path,
        plan=plan,
        codec=codec,
        has_mask=has_mask,
        mask_source=mask_source,
        keep_bands=tuple(bands),
        alpha_index=info.alpha_index,
        nodata=info.nodata,
        nearest=profile.resampling == "NEAREST",
        gdal=tuple(sorted(gdal.items())),
        output=output,
        parts=tuple(sorted(plan.part_numbers().items())),
        tables=tables,
        overview_codec=overview_codec,
        overview_tables=overview_tables,
    )
    return job, spec


def level_bytes(segments: Iterable[Segment]) -> TileBytes:
    """Bytes of the tiles (image and mask tiles, without their leaders and trailers) at full
    resolution and in the overviews: together, every tile byte of the file."""
    full = overview = 0
    for g in segments:
        n = sum(size + (mask or 0) for size, mask in g.sizes)
        if g.level:
            overview += n
        else:
            full += n
    return TileBytes(full, overview)


@dataclass
class Part:
    """One part of the output, in file order: the header (part 1 only), segments, padding."""

    number: int
    segments: list[Segment]
    pad: int = 0
    header: bytes = b""

    @property
    def length(self) -> int:
        return len(self.header) + sum(g.length for g in self.segments) + self.pad

    @property
    def shipped(self) -> bool:
        """Already put by its producer."""
        return len(self.segments) == 1 and self.segments[0].sent is not None and not self.header

    def body(self) -> bytes:
        return self.header + b"".join(g.data or b"" for g in self.segments) + b"\0" * self.pad


#: Target size of the parts the assembler joins from small segments.
PART_TARGET = 16 * 1024 * 1024


def _group(run: list[Segment], first_number: int | None, minimum: int) -> list[Part]:
    """Cut a run of small segments into parts of at least ``minimum`` bytes (aiming at
    PART_TARGET); a short last piece joins the previous part. ``first_number`` forces the
    number of the first part (1: the header's part)."""
    parts: list[Part] = []
    current: list[Segment] = []
    size = 0
    for g in run:
        current.append(g)
        size += g.length
        if size >= PART_TARGET:
            parts.append(Part(0, current))
            current, size = [], 0
    if current:
        if parts and size < minimum:
            parts[-1].segments += current
        else:
            parts.append(Part(0, current))
    for i, part in enumerate(parts):
        g0 = part.segments[0]
        part.number = first_number if (i == 0 and first_number is not None) else g0.part_number
    return parts


def _place(ordered: list[Segment], minimum: int) -> list[Part]:
    """Segments in file order into parts: one part for each segment its producer put, the
    runs between them grouped (:func:`_group`); the very first part is part 1."""
    parts: list[Part] = []
    run: list[Segment] = []

    def close() -> None:
        """Group the pending run of unshipped segments; the very first group is part 1,
        which also carries the header."""
        grouped = _group(run, None if parts else 1, minimum)
        if not parts and not grouped:
            grouped = [Part(1, [])]
        parts.extend(grouped)
        run.clear()

    for g in ordered:
        if g.sent is not None:  # put by its producer: its own part
            if run or not parts:
                close()
            parts.append(Part(g.part_number, [g]))
        else:
            run.append(g)
    if run or not parts:
        close()
    return parts


_TileIndex = dict[tuple[int, bool], list[int]]


def _tile_index(spec: CogSpec, parts: list[Part]) -> tuple[_TileIndex, _TileIndex, int]:
    """The offsets and byte counts of every tile (image and mask, by level) where the parts
    place them, and the total size."""
    offsets: _TileIndex = {}
    counts: _TileIndex = {}
    for level, lv in enumerate(spec.levels):
        for is_mask in (False, True) if spec.has_mask else (False,):
            offsets[(level, is_mask)] = [0] * lv.ntiles
            counts[(level, is_mask)] = [0] * lv.ntiles
    pos = 0
    for part in parts:
        pos += len(part.header)
        for g in part.segments:
            p = pos
            for i, (size, mask_size) in enumerate(g.sizes):
                t = g.first_tile + i
                offsets[(g.level, False)][t] = p + 4
                counts[(g.level, False)][t] = size
                p += 4 + size + 4
                if mask_size is not None:
                    offsets[(g.level, True)][t] = p + 4
                    counts[(g.level, True)][t] = mask_size
                    p += 4 + mask_size + 4
            pos += g.length
        pos += part.pad
    return offsets, counts, pos


def layout(job: TileJob, spec: CogSpec, segments: list[Segment]) -> tuple[list[Part], int]:
    """Place every segment into parts in file order, compute the header (into part 1) and
    the total size. Every part but the last holds at least the sink's minimum part size."""
    for g in segments:
        g.part_number = job.part_number(g.level, g.producer)
    ordered = sorted(segments, key=lambda g: g.part_number)
    minimum = job.output.min_part
    parts = _place(ordered, minimum)

    header_len = spec.header_size()
    parts[0].header = b"\0" * header_len
    # Pad parts that are short and not last (S3's minimum part size); a legal gap.
    for part in parts[:-1]:
        if part.length < minimum:
            part.pad = minimum - part.length
    offsets, counts, pos = _tile_index(spec, parts)
    parts[0].header = spec.header(offsets, counts)
    assert len(parts[0].header) == header_len
    return parts, pos


def put_parts(job: TileJob, parts: list[Part]) -> list[PartSent]:
    """Put every part its producers did not (the header's among them); every part sent."""
    return [
        part.segments[0].sent if part.shipped and part.segments[0].sent else
        job.output.put(part.number, part.body())
        for part in parts
    ]  # fmt: skip
