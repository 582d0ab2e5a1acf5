"""Where objects are: ``s3://bucket/key`` URLs, local paths and read-only HTTP(S) URLs, and
the one check every key goes through before it names anything."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ForbiddenSourceError, UnsafeKeyError
from ..keys import key_problem


@dataclass(frozen=True)
class Location:
    """An object in S3 (``scheme == "s3"``), a file on local disk (``"file"``), or a
    read-only HTTP(S) object (``"http"``: ``bucket`` holds the origin, e.g.
    ``https://host:port``; only STAC asset hrefs are read that way)."""

    scheme: Literal["s3", "file", "http"]
    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> Location:
        if url.startswith(("http://", "https://")):
            proto, _, rest = url.partition("://")
            host, _, key = rest.partition("/")
            if not host:
                raise ValueError(f"no host in {url!r}")
            return cls("http", f"{proto}://{host}", key)
        if url.startswith("s3://"):
            rest = url[len("s3://") :]
            bucket, _, key = rest.partition("/")
            if not bucket:
                raise ValueError(f"no bucket in {url!r}")
            return cls("s3", bucket, key)
        if "://" in url and not url.startswith("file://"):
            raise ValueError(f"unsupported URL scheme in {url!r} (use s3:// or a local path)")
        path = url[len("file://") :] if url.startswith("file://") else url
        trailing = path.endswith(os.sep)
        resolved = str(Path(path).expanduser().absolute())
        return cls("file", "", resolved + (os.sep if trailing and resolved != os.sep else ""))

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def is_http(self) -> bool:
        return self.scheme == "http"

    @property
    def url(self) -> str:
        if self.is_http:
            return f"{self.bucket}/{self.key}"
        return f"s3://{self.bucket}/{self.key}" if self.is_s3 else self.key

    def __str__(self) -> str:
        return self.url

    def as_prefix(self) -> Location:
        """This location as a folder: a trailing separator is added when missing."""
        sep = os.sep if self.scheme == "file" else "/"
        if not self.key or self.key.endswith(sep):
            return self
        return Location(self.scheme, self.bucket, self.key + sep)

    def join(self, relative: str) -> Location:
        """The location ``relative`` (a ``/``-separated key) below this prefix. Keys that
        could name anything outside it are refused (:func:`key_problem`); a local path must
        also stay below the prefix once symbolic links are resolved."""
        problem = key_problem(relative)
        if problem:
            raise UnsafeKeyError(f"refused key {relative!r}: {problem}")
        prefix = self.as_prefix()
        if self.scheme != "file":
            return Location(self.scheme, self.bucket, prefix.key + relative)
        path = Path(prefix.key, *relative.rstrip("/").split("/"))
        root = os.path.realpath(prefix.key)
        if not os.path.realpath(path).startswith(root.rstrip(os.sep) + os.sep):
            raise UnsafeKeyError(f"refused path {path}: it resolves outside {prefix.key}")
        return Location("file", "", str(path) + ("/" if relative.endswith("/") else ""))

    def relative_to(self, prefix: Location) -> str:
        """The ``/``-separated key of this location below ``prefix``."""
        base = prefix.as_prefix()
        if self.scheme != base.scheme or self.bucket != base.bucket:
            raise ValueError(f"{self} is not under {prefix}")
        if not self.key.startswith(base.key):
            raise ValueError(f"{self} is not under {prefix}")
        rel = self.key[len(base.key) :]
        return rel.replace(os.sep, "/") if self.scheme == "file" else rel

    def is_under(self, prefix: Location) -> bool:
        try:
            self.relative_to(prefix)
        except ValueError:
            return False
        return True

    @property
    def gdal_path(self) -> str:
        """The path GDAL opens: ``/vsis3/bucket/key`` (range requests) or the file path.
        HTTP(S) objects are never opened by GDAL (see :func:`readable_path`)."""
        if self.is_http:
            raise ForbiddenSourceError(f"{self.url} is fetched by compactor, not opened by GDAL")
        return f"/vsis3/{self.bucket}/{self.key}" if self.is_s3 else self.key

    @property
    def name(self) -> str:
        if self.scheme == "file":
            return Path(self.key).name
        return self.key.rstrip("/").rsplit("/", 1)[-1]
