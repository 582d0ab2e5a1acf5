"""Settings, and the one place they are resolved."""

from ._config import (
    META_PREFIX,
    SOURCE_EXTENSIONS,
    ClusterSettings,
    Effort,
    Encoding,
    Limits,
    OutputClass,
    Settings,
    StacSettings,
    StorageClass,
    Transfers,
    WorkerRange,
    resolve_settings,
)

__all__ = [
    "META_PREFIX",
    "SOURCE_EXTENSIONS",
    "ClusterSettings",
    "Effort",
    "Encoding",
    "Limits",
    "OutputClass",
    "Settings",
    "StacSettings",
    "StorageClass",
    "Transfers",
    "WorkerRange",
    "resolve_settings",
]
