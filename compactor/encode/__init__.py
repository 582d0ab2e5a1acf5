"""Encoding a scene: the lossless search and the quality ladder on its sample, the two writers
(compactor's tile writer and GDAL's COG driver) and the chunk tasks of a large scene.
"""

from ._choose import (
    choose_profile,
    fallback_profiles,
    lossless_fallback,
    lossy_problem,
    needs_ranges,
)
from ._chunk_budget import cluster_context
from ._chunk_plan import MEMORY_FACTOR, plan_chunks
from ._chunk_tasks import ChunkResult, run_tasks
from ._local_check import CheckedWrite, write_checked
from ._lossless import choose_encoding, search_encoding
from ._quality import QUALITY_MAX, Ladder, QualityPolicy, candidates, compare_fixed, lowest_quality
from ._sample import Sample, Window4, valid_ranges, write_sample
from ._strips import TileJob
from ._tile_layout import Part, build_job, layout, level_bytes, put_parts
from ._write import encode_cog, gdal_writer_reason, uses_tile_writer, write_cog

__all__ = [
    "MEMORY_FACTOR",
    "QUALITY_MAX",
    "CheckedWrite",
    "ChunkResult",
    "Ladder",
    "Part",
    "QualityPolicy",
    "Sample",
    "TileJob",
    "Window4",
    "build_job",
    "candidates",
    "choose_encoding",
    "choose_profile",
    "cluster_context",
    "compare_fixed",
    "encode_cog",
    "fallback_profiles",
    "gdal_writer_reason",
    "layout",
    "level_bytes",
    "lossless_fallback",
    "lossy_problem",
    "lowest_quality",
    "needs_ranges",
    "plan_chunks",
    "put_parts",
    "run_tasks",
    "search_encoding",
    "uses_tile_writer",
    "valid_ranges",
    "write_checked",
    "write_cog",
    "write_sample",
]
