"""Large scenes: per-chunk Dask tasks that read windows lazily, encode in parallel into
one COG and check their own work; the output is assembled and made visible only whole."""

from .assemble import ChunkedOutput, compact_chunked
from .checks import decoder_margin
from .plan import MEMORY_FACTOR, plan_chunks
from .resources import cluster_context

__all__ = [
    "MEMORY_FACTOR",
    "ChunkedOutput",
    "cluster_context",
    "compact_chunked",
    "decoder_margin",
    "plan_chunks",
]
