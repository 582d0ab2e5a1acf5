"""The one resolution of settings.

Precedence, lowest first: built-in defaults < environment (``COMPACTOR_*`` and
the standard ``AWS_*`` variables) < config file (YAML, ``--config``) < explicit
arguments (CLI flags or keyword arguments of the Python API). Arguments whose
value is ``None`` do not override anything, so a CLI flag that was not given
never masks a config-file value.

Nothing here reads the environment at import time: :func:`resolve_settings`
takes it as an argument (``os.environ`` by default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from ._env import from_env
from ._model import Settings
from ._options import settings_fields


def _flat_names(section: str) -> dict[str, str]:
    """Flat argument names (CLI flags, keyword arguments) of a nested section's fields:
    the flag's name, and for a repeatable one also the field's (``collection`` and
    ``collections``)."""
    names: dict[str, str] = {}
    for field in settings_fields():
        if field.nested == section and field.param:
            names[field.param] = field.name
            if field.multiple:
                names[field.name] = field.name
    return names


#: Flat argument names of the STAC search settings.
STAC_FLAGS: dict[str, str] = _flat_names("stac")
#: Flat argument names of the cluster settings (``scheduler``, ``workers``, ...).
CLUSTER_FLAGS: dict[str, str] = _flat_names("cluster")


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into plain data (keys as in :class:`Settings`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return data


def normalise_cluster(data: dict[str, Any]) -> dict[str, Any]:
    """``cluster.address`` implies ``kind: address`` unless a kind was given with it."""
    cluster = data.get("cluster")
    if isinstance(cluster, dict) and cluster.get("address") and "kind" not in cluster:
        data = dict(data)
        data["cluster"] = {**cluster, "kind": "address"}
    return data


def _nest(args: dict[str, Any]) -> dict[str, Any]:
    """Flat cluster and STAC arguments moved into their sections."""
    cluster_args: dict[str, Any] = dict(args.pop("cluster", None) or {})
    for flat, nested in CLUSTER_FLAGS.items():
        if args.get(flat) is not None:
            cluster_args[nested] = args[flat]
        args.pop(flat, None)
    if cluster_args.get("address"):
        cluster_args.setdefault("kind", "address")
    args["cluster"] = cluster_args
    stac_args: dict[str, Any] = {}
    if isinstance(args.get("stac"), Mapping):
        stac_args.update(args.pop("stac"))
    for flat, nested in STAC_FLAGS.items():
        if args.get(flat) not in (None, ()):
            stac_args[nested] = args[flat]
        args.pop(flat, None)
    args["stac"] = stac_args
    return args


def resolve_settings(
    arguments: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings: defaults < environment < config file < arguments.

    ``arguments`` uses :class:`Settings` field names; nested cluster options may be
    given flat as ``scheduler``, ``workers`` and ``worker_memory`` (:data:`CLUSTER_FLAGS`),
    STAC search options as ``stac`` (the API URL), ``collection``, ``bbox``, ``datetime``,
    ... (:data:`STAC_FLAGS`).
    """
    env = os.environ if environ is None else environ
    layers: list[dict[str, Any]] = [from_env(env)]
    if config_file is not None:
        layers.append(normalise_cluster(load_config_file(config_file)))
    layers.append(_nest(dict(arguments or {})))
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer)
    try:
        return Settings.model_validate(merged)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from err
