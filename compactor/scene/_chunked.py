"""A large scene from start to visible: plan the chunks, run the tasks, check the scene's
fidelity and the header, and make the output visible only when the caller accepts it.

Every (level, producer) pair owns a part number in layout order (part 1 is the header). On
S3, a producer uploads a segment of at least 5 MiB itself; runs of smaller segments are
joined (and, if still short and not last, zero-padded to 5 MiB: a legal gap) by the
assembler; the header is computed last and uploaded as part 1; the parts are checked with
ListParts and the composite checksum, and the upload completed, or aborted on any failure.
Locally, each segment goes to its own file and the output is their concatenation, checked
whole (every tile's CRC-32, a valid COG) before it is renamed into place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import timing
from ..cog import COG_MEDIA_TYPE, Profile
from ..encode import build_job, layout, level_bytes, plan_chunks, put_parts, run_tasks
from ..fidelity import Fidelity, check_noise_rmse
from ..gdal import RasterInfo
from ..storage import (
    DirectoryParts,
    Location,
    PartsWriter,
    S3Options,
    S3Parts,
    S3Store,
    Written,
    sweep_orphans,
)
from ..verify import SceneQuality, check_header, check_tile_crcs, validate_cog

log = logging.getLogger(__name__)


@dataclass
class ChunkedOutput:
    """What the chunked path produced, before it is made visible."""

    size: int
    fidelity_ssim: float | None
    fidelity_psnr: float | None
    exact: bool
    chunks: int
    finish: Callable[[], Written]
    discard: Callable[[], None]
    #: The scene's fidelity as the chunk tasks measured it (errors per band, RMSE, PSNR).
    fidelity: Fidelity | None = None
    #: Tile bytes (image and mask tiles) at full resolution and in the overviews.
    full_bytes: int = 0
    overview_bytes: int = 0
    #: Seconds the chunk and merge tasks spent, summed over the tasks, by stage.
    task_stages: dict[str, float] | None = None
    #: What libraries warned about in the chunk tasks (:mod:`compactor.capture`).
    task_warnings: list[str] = field(default_factory=list)


def compact_chunked(
    src_path: str,
    dest: Location,
    info: RasterInfo,
    profile: Profile,
    *,
    gdal: dict[str, str],
    s3: S3Options,
    client: Any,
    budget: int,
    threads: int,
    metadata: dict[str, str] | None = None,
    scratch: Path | None = None,
    abort_stale: bool = True,
    create: dict[str, Any] | None = None,
) -> ChunkedOutput:
    """Encode ``src_path`` as one COG at ``dest`` with chunk tasks. Nothing is visible at
    ``dest`` until the returned object's ``finish()`` is called; ``discard()`` (or any
    error) leaves nothing behind. ``abort_stale``: first abort uploads to ``dest`` left by
    crashed runs (not while this scene holds another candidate output in flight).
    ``create``: what else the S3 object is created with (storage class, encryption)."""
    plan = plan_chunks(info, budget=budget, threads=threads)
    output: PartsWriter
    if dest.is_s3:
        if abort_stale:
            S3Store(s3).abort_stale_uploads(dest)
        output = S3Parts.create(
            s3, dest, ContentType=COG_MEDIA_TYPE, Metadata=metadata or {}, **(create or {})
        )
    else:
        output = DirectoryParts.create(Path(dest.key), scratch)
    try:
        job, spec = build_job(src_path, info, profile, plan, gdal, output)
        quality = SceneQuality(job)
        with timing.stage("chunk tasks"):
            chunks, merges = run_tasks(job, client, quality.add)
        fidelity = quality.fidelity()
        check_noise_rmse(fidelity, profile.noise)
        segments = [g for c in chunks for g in c.segments] + [g for m in merges for g in m.segments]
        parts, total = layout(job, spec, segments)
        with timing.stage("header check"):
            check_header(src_path, parts[0].header, total, info, profile, gdal, scratch)
    except BaseException:
        output.abort()
        raise

    def check(path: Path) -> None:
        check_tile_crcs(path, parts, job)
        validate_cog(str(path))

    def finish() -> Written:
        try:
            with timing.stage("assemble"):
                sent = put_parts(job, parts)
                written = output.complete(sent, total, None if dest.is_s3 else check)
        except BaseException:
            output.abort()
            raise
        if dest.is_s3:
            sweep_orphans(S3Store(s3), dest)
        return written

    tiles = level_bytes(segments)
    task_stages: dict[str, float] = {}
    for stages in [c.stages for c in chunks] + [m.stages for m in merges]:
        for name, seconds in stages.items():
            task_stages[name] = task_stages.get(name, 0.0) + seconds
    return ChunkedOutput(
        total, fidelity.ssim, fidelity.psnr, fidelity.exact, job.plan.nstrips, finish,
        output.abort, fidelity, tiles.full, tiles.overview, task_stages,
        list(dict.fromkeys(w for c in chunks for w in c.warnings)),
    )  # fmt: skip
