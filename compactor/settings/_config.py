"""The settings' former single module, kept as the names' old address (tests import
them from here). The settings live in ``_model``, ``_cluster``, ``_stac``, ``_views``;
their environment in ``_env``; their resolution in ``_resolve``."""

from ._cluster import ClusterSettings, WorkerRange
from ._env import ENV_VARS
from ._meta import (
    DEFAULT_INCLUDE,
    META_PREFIX,
    SOURCE_EXTENSIONS,
    Effort,
    OutputClass,
    StorageClass,
)
from ._model import HTTP_AUTH_OPTIONS, Settings
from ._resolve import STAC_FLAGS, load_config_file, resolve_settings
from ._stac import StacSettings
from ._views import Encoding, Limits, Transfers

__all__ = [
    "DEFAULT_INCLUDE", "ENV_VARS", "HTTP_AUTH_OPTIONS", "META_PREFIX", "SOURCE_EXTENSIONS",
    "STAC_FLAGS", "ClusterSettings", "Effort", "Encoding", "Limits", "OutputClass", "Settings",
    "StacSettings", "StorageClass", "Transfers", "WorkerRange", "load_config_file",
    "resolve_settings",
]  # fmt: skip
