"""How compactor talks to S3: one boto3 client per process and options, an s3fs filesystem
for listings, and :func:`call`, the one place a request's failure becomes a
:class:`~compactor.errors.StorageError`.

Credentials are never handled here: boto3 and s3fs take them from the standard AWS chain
of the process they run in."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import s3fs
from botocore.config import Config

from ..errors import ObjectNotFound, s3_errors, translate_s3_error
from .base import ObjectInfo
from .location import Location

if TYPE_CHECKING:  # boto3 builds its clients at run time; the stubs type them
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")


@dataclass(frozen=True)
class S3Options:
    """How to reach S3. Plain data, shipped to workers; holds no credentials."""

    endpoint_url: str | None = None
    region: str | None = None
    max_attempts: int = 8

    def botocore_config(self) -> Any:

        return Config(
            region_name=self.region,
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
            # We compare checksums ourselves (and moto keeps a multipart source's composite
            # CRC32 on CopyObject, which breaks the SDK's own response validation).
            response_checksum_validation="when_required",
            request_checksum_calculation="when_required",
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=32,
        )


_clients: dict[tuple[S3Options, int], S3Client] = {}

_clients_lock = threading.Lock()


def s3_client(options: S3Options) -> S3Client:
    """A boto3 S3 client for ``options`` (one per process and options; thread-safe)."""
    key = (options, os.getpid())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            session = boto3.session.Session()
            client = session.client(
                "s3", endpoint_url=options.endpoint_url, config=options.botocore_config()
            )
            _clients[key] = client
        return client


def s3_filesystem(options: S3Options) -> Any:
    """An s3fs filesystem for listings (fsspec caches instances per arguments)."""

    client_kwargs: dict[str, Any] = {}
    if options.endpoint_url:
        client_kwargs["endpoint_url"] = options.endpoint_url
    if options.region:
        client_kwargs["region_name"] = options.region
    return s3fs.S3FileSystem(
        client_kwargs=client_kwargs,
        config_kwargs={"retries": {"max_attempts": options.max_attempts, "mode": "standard"}},
        use_listings_cache=False,
        skip_instance_cache=False,
    )


def iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


def call(action: str, url: str, fn: Callable[..., T], **kwargs: Any) -> T:
    """One request: S3 errors and dropped connections become :class:`StorageError`
    (:func:`~compactor.errors.translate_s3_error`); anything else is a bug and propagates."""
    try:
        return fn(**kwargs)
    except s3_errors() as err:
        raise translate_s3_error(err, url, action) from err


def head_object(options: S3Options, loc: Location) -> ObjectInfo | None:
    """HEAD one object (with its checksum), or ``None`` if it does not exist."""
    try:
        r = call(
            "HEAD", loc.url, s3_client(options).head_object,
            Bucket=loc.bucket, Key=loc.key, ChecksumMode="ENABLED",
        )  # fmt: skip
    except ObjectNotFound:
        return None
    return object_info(loc, r)


def object_info(loc: Location, r: Any, *, get: bool = False) -> ObjectInfo:
    """What a HeadObject or GetObject (``get``) response says about the object. A GetObject
    response counts the object's tags (``x-amz-tagging-count``, absent when there are none);
    a HEAD does not say."""
    return ObjectInfo(
        url=loc.url,
        size=int(r["ContentLength"]),
        etag=r.get("ETag"),
        mtime=iso(r.get("LastModified")),
        storage_class=r.get("StorageClass") or "STANDARD",
        checksum_sha256=r.get("ChecksumSHA256"),
        content_type=r.get("ContentType"),
        metadata=dict(r.get("Metadata") or {}),
        version_id=r.get("VersionId"),
        restore=r.get("Restore"),
        sse=r.get("ServerSideEncryption"),
        sse_kms_key_id=r.get("SSEKMSKeyId"),
        sse_customer_algorithm=r.get("SSECustomerAlgorithm"),
        cache_control=r.get("CacheControl"),
        content_disposition=r.get("ContentDisposition"),
        content_encoding=r.get("ContentEncoding"),
        content_language=r.get("ContentLanguage"),
        tag_count=int(r.get("TagCount") or 0) if get else None,
    )
