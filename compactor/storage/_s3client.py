"""How compactor talks to S3: one boto3 client per process and options, and :func:`call`,
the one place a request's failure becomes a :class:`~compactor.errors.StorageError` (and
where requests are counted).

Credentials are never handled here: boto3 takes them from the standard AWS chain of the
process it runs in."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config

from ..errors import ObjectNotFound, s3_errors, translate_s3_error
from ._base import ObjectInfo
from ._location import Location

if TYPE_CHECKING:  # boto3 builds its clients at run time; the stubs type them
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")


@dataclass(frozen=True)
class S3Options:
    """How to reach S3. Plain data, shipped to workers; holds no credentials."""

    endpoint_url: str | None = None
    region: str | None = None
    max_attempts: int = 8
    #: ``"requester"``: acknowledge requester-pays buckets (sent with every object request).
    request_payer: str | None = None

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


def iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


#: The S3 requests made in this context, by operation (see :func:`counting_requests`).
_meter: ContextVar[Counter[str] | None] = ContextVar("compactor_s3_requests", default=None)


@contextmanager
def counting_requests() -> Iterator[Counter[str]]:
    """Count the S3 requests this thread makes through :func:`call` (and listing pages)
    while the block runs, by operation (``GetObject``, ``PutObject`` ...): what a scene or a
    run cost. Threads started inside are not counted (a lease's renewals)."""
    counts: Counter[str] = Counter()
    token = _meter.set(counts)
    try:
        yield counts
    finally:
        _meter.reset(token)


def count_request(operation: str, n: int = 1) -> None:
    counts = _meter.get()
    if counts is not None:
        counts[operation] += n


def operation_name(fn: Callable[..., Any]) -> str:
    """``get_object`` -> ``GetObject``: the S3 operation of a boto3 client method."""
    name = getattr(fn, "__name__", "request")
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


#: boto3 methods that take ``RequestPayer`` (object-level requests).
PAYER_METHODS = frozenset({
    "get_object", "head_object", "put_object", "copy_object", "delete_object",
    "get_object_tagging", "create_multipart_upload", "upload_part", "upload_part_copy",
    "list_parts", "complete_multipart_upload", "abort_multipart_upload", "restore_object",
    "get_object_legal_hold", "get_object_retention",
})  # fmt: skip


def call(
    action: str, url: str, fn: Callable[..., T], *, options: S3Options | None = None, **kwargs: Any
) -> T:
    """One request: S3 errors and dropped connections become :class:`StorageError`
    (:func:`~compactor.errors.translate_s3_error`); anything else is a bug and propagates.
    Counted (:func:`counting_requests`); with ``options`` asking for it, requester-pays
    acknowledged."""
    name = getattr(fn, "__name__", "")
    if options is not None and options.request_payer and name in PAYER_METHODS:
        kwargs.setdefault("RequestPayer", options.request_payer)
    count_request(operation_name(fn))
    try:
        return fn(**kwargs)
    except s3_errors() as err:
        raise translate_s3_error(err, url, action) from err


def head_object(
    options: S3Options, loc: Location, version_id: str | None = None
) -> ObjectInfo | None:
    """HEAD one object (with its checksum; ``version_id``: that version), or ``None`` if it
    does not exist."""
    try:
        r = call(
            "HEAD", loc.url, s3_client(options).head_object, options=options,
            Bucket=loc.bucket, Key=loc.key, ChecksumMode="ENABLED",
            **({"VersionId": version_id} if version_id else {}),
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
        lock_mode=r.get("ObjectLockMode"),
        lock_until=iso(r.get("ObjectLockRetainUntilDate")),
        legal_hold=r.get("ObjectLockLegalHoldStatus") == "ON",
    )
