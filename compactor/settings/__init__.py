"""Settings, each declared once (type, default, description, flag, environment variable),
and the one place they are resolved."""

from ._cluster import ClusterSettings, WorkerRange
from ._meta import GROUPS, META_PREFIX, SOURCE_EXTENSIONS, Effort, Opt, OutputClass, StorageClass
from ._model import Settings
from ._options import SettingField, format_default, options_of, options_table, settings_fields
from ._resolve import resolve_settings
from ._stac import StacSettings
from ._views import Encoding, Limits, Transfers

__all__ = [
    "GROUPS",
    "META_PREFIX",
    "SOURCE_EXTENSIONS",
    "ClusterSettings",
    "Effort",
    "Encoding",
    "Limits",
    "Opt",
    "OutputClass",
    "SettingField",
    "Settings",
    "StacSettings",
    "StorageClass",
    "Transfers",
    "WorkerRange",
    "format_default",
    "options_of",
    "options_table",
    "resolve_settings",
    "settings_fields",
]
