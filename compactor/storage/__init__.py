"""Object storage: S3 (and S3-compatible stores), local directories and read-only HTTP(S)
sources behind one :class:`Store` protocol, and one multipart engine.
"""

from ._base import (
    ARCHIVE_CLASSES,
    IO_CHUNK,
    MIN_PART_SIZE,
    Capabilities,
    CopyAnswer,
    Digester,
    Fetched,
    ObjectInfo,
    Recorded,
    ServerCopier,
    Source,
    Store,
    b64,
    same_bytes,
    sha256_file,
    sweep_orphans,
)
from ._http import HttpPolicy, HttpStore, readable_path, split_host
from ._local import LocalStore
from ._location import Location
from ._multipart import DirectoryParts, PartSent, PartsWriter, S3Parts, Written
from ._retry import with_retries
from ._s3 import S3Store
from ._s3client import S3Options, call, counting_requests, s3_client
from ._stores import source_store_for, store_for

__all__ = [
    "ARCHIVE_CLASSES",
    "IO_CHUNK",
    "MIN_PART_SIZE",
    "Capabilities",
    "CopyAnswer",
    "Digester",
    "DirectoryParts",
    "Fetched",
    "HttpPolicy",
    "HttpStore",
    "LocalStore",
    "Location",
    "ObjectInfo",
    "PartSent",
    "PartsWriter",
    "Recorded",
    "S3Options",
    "S3Parts",
    "S3Store",
    "ServerCopier",
    "Source",
    "Store",
    "Written",
    "b64",
    "call",
    "counting_requests",
    "readable_path",
    "s3_client",
    "same_bytes",
    "sha256_file",
    "source_store_for",
    "split_host",
    "store_for",
    "sweep_orphans",
    "with_retries",
]
