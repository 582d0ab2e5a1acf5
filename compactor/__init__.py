"""compactor: a Dask-distributed batch compactor for satellite-imagery archives.

It lists an S3 bucket, a local directory or a STAC search, re-encodes every scene as a
compressed Cloud-Optimized GeoTIFF, verifies each output, moves the originals to a Glacier
storage class, and writes a run report.

>>> import compactor
>>> df = compactor.plan(source="s3://bucket/scenes/", dest="s3://bucket/cogs/")
>>> report = compactor.run(source="s3://bucket/scenes/", dest="s3://bucket/cogs/",
...                        archive="s3://bucket/archive/")
>>> df = report.scenes_dataframe()   # every scene, from the run's scene log
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import CompactorError
from .records import Report, SceneResult, read_scene_log
from .runner import plan, run
from .settings import Settings, resolve_settings

if TYPE_CHECKING:
    from .notebook import compare, preview
    from .notebook import open_scene as open

#: Imported when first used: the notebook helpers load xarray and dask.array, seconds that
#: the CLI and every Dask worker (which imports this package to run a task) need not spend.
_NOTEBOOK = {"compare": "compare", "preview": "preview", "open": "open_scene"}


def __getattr__(name: str) -> Any:
    if name in _NOTEBOOK:
        from . import notebook

        value = getattr(notebook, _NOTEBOOK[name])
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CompactorError",
    "Report",
    "SceneResult",
    "Settings",
    "__version__",
    "compare",
    "open",
    "plan",
    "preview",
    "read_scene_log",
    "resolve_settings",
    "run",
]
