"""The store for a location."""

from __future__ import annotations

from ..errors import StorageError
from ._base import Source, Store
from ._http import HttpPolicy, HttpStore
from ._local import LocalStore
from ._location import Location
from ._s3 import S3Store
from ._s3client import S3Options


def store_for(loc: Location, options: S3Options) -> Store:
    """The writable store of an ``s3://`` or local location."""
    if loc.is_http:
        raise StorageError(f"{loc.url} is read-only (HTTP)", url=loc.url)
    return S3Store(options) if loc.is_s3 else LocalStore()


def source_store_for(loc: Location, options: S3Options, http: HttpPolicy | None = None) -> Source:
    """Where a scene's original is read from: also read-only HTTP(S) for STAC hrefs."""
    return HttpStore(http) if loc.is_http else store_for(loc, options)
