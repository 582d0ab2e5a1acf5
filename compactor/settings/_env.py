"""The environment as a layer of settings: the variables are those the model declares
(``COMPACTOR_*``, and the standard ``AWS_*`` ones for the endpoint and the region)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._options import settings_fields

#: Environment variable -> settings path, in the order they are read (for a setting with
#: several, the last one set wins: ``AWS_ENDPOINT_URL_S3`` over ``AWS_ENDPOINT_URL``).
ENV_VARS: dict[str, str] = {var: f.path for f in settings_fields() for var in f.env}


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if rest:
        set_path(target.setdefault(head, {}), rest, value)
    else:
        target[head] = value


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings the environment sets (empty variables set nothing)."""
    values: dict[str, Any] = {}
    for var, path in ENV_VARS.items():
        raw = environ.get(var)
        if raw:
            set_path(values, path, raw)
    if values.get("cluster", {}).get("address"):
        set_path(values, "cluster.kind", "address")
    return values
