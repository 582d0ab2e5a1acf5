"""The one check every object key and STAC id goes through before it names anything."""

from __future__ import annotations

import re

#: ASCII control characters (NUL included) and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: An empty, ``.`` or ``..`` segment anywhere (or a leading ``/``).
_BAD_SEGMENT = re.compile(r"(?:^|/)(?:\.{0,2})(?:/|$)")


def key_problem(key: str) -> str | None:
    """Why ``key`` (an object key, or a relative key below a prefix; a trailing ``/`` names
    a folder) is unsafe to use, or ``None``. Refused: empty keys, control characters (NUL
    included), a leading ``/``, and empty, ``.`` or ``..`` segments. GDAL's ``/vsis3/``
    and local paths collapse those segments while S3 and boto3 do not, so a key holding
    one would make the two name different objects, or a path leave its folder."""
    if not key:
        return "it is empty"
    control = _CONTROL.search(key)
    if control is not None:
        return f"it holds the control character {control.group()!r}"
    body = key[:-1] if key.endswith("/") else key
    if not _BAD_SEGMENT.search(body):
        return None  # the common case, decided in one scan
    if body.startswith("/"):
        return "it starts with '/'"
    for segment in body.split("/"):
        if segment in ("", ".", ".."):
            what = "an empty segment ('//')" if not segment else f"a {segment!r} segment"
            return f"it has {what}, which would name another object or folder"
    return None
