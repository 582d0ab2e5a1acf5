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

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import CompactorError

if TYPE_CHECKING:
    from .notebook import compare, preview
    from .notebook import open_scene as open
    from .records import Report, SceneResult, read_scene_log
    from .runner import plan, run
    from .settings import Settings, resolve_settings

#: Imported when first used, from the package that defines each: importing ``compactor``
#: (the CLI does, and so does every Dask worker and the fork server its workers start from)
#: must not load the runner, pandas, pydantic's models or the notebook's xarray until a
#: name that needs them is asked for.
_LAZY = {
    "plan": ("runner", "plan"),
    "run": ("runner", "run"),
    "Report": ("records", "Report"),
    "SceneResult": ("records", "SceneResult"),
    "read_scene_log": ("records", "read_scene_log"),
    "Settings": ("settings", "Settings"),
    "resolve_settings": ("settings", "resolve_settings"),
    "compare": ("notebook", "compare"),
    "preview": ("notebook", "preview"),
    "open": ("notebook", "open_scene"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        package, attribute = _LAZY[name]
        value = getattr(import_module(f".{package}", __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The names loaded on use too (documentation tools list a module by ``dir``)."""
    return sorted(set(globals()) | set(__all__))


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
