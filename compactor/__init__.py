"""compactor: a Dask-distributed batch compactor for satellite-imagery archives.

It lists an S3 bucket or a local directory, re-encodes every scene as a compressed
Cloud-Optimized GeoTIFF, verifies each output, moves the originals to a Glacier
storage class, and writes a run report.

>>> import compactor
>>> df = compactor.plan(source="s3://bucket/scenes/", dest="s3://bucket/cogs/")
>>> report = compactor.run(source="s3://bucket/scenes/", dest="s3://bucket/cogs/",
...                        archive="s3://bucket/archive/")
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("compactor")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

from .config import Settings, resolve_settings
from .errors import CompactorError
from .explore import compare, preview
from .models import Report, SceneResult
from .pipeline import run
from .planner import plan

__all__ = [
    "CompactorError",
    "Report",
    "SceneResult",
    "Settings",
    "__version__",
    "compare",
    "plan",
    "preview",
    "resolve_settings",
    "run",
]
