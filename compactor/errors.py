"""One exception tree for compactor.

Everything the library raises on purpose derives from :class:`CompactorError`.
Errors that belong to one scene derive from :class:`SceneError`; the pipeline
catches those, records them as the scene's ``reason`` and carries on with the
run. Errors outside that branch (bad settings, an unreadable listing) stop the
run and become a clean message at the CLI edge.

S3 error codes are mapped to this tree in exactly one place,
:data:`S3_ERROR_CODES`, used by :func:`translate_s3_error`.
"""

from __future__ import annotations

from typing import Any

from botocore import exceptions as bce


class CompactorError(Exception):
    """Base class of every error compactor raises on purpose."""


class ConfigError(CompactorError):
    """Settings are missing, contradictory or malformed (a usage error)."""


class DiscoveryError(CompactorError):
    """The source could not be listed, or the listing matched nothing."""


class LeaseHeldError(CompactorError):
    """Another run holds the lease on a scene."""


class LeftAsIs(CompactorError):
    """A decision, not a failure: the scene stays as it is (its COG would not be smaller).
    The scene is reported skipped with the reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- storage -----------------------------------------------------------------


class StorageError(CompactorError):
    """An object-store or filesystem operation failed."""

    def __init__(self, message: str, *, url: str | None = None, code: str | None = None):
        super().__init__(message)
        self.url = url
        self.code = code


class ObjectNotFound(StorageError):
    """The object or bucket does not exist."""


class AccessDenied(StorageError):
    """The credentials in use may not perform this operation."""


class PreconditionFailed(StorageError):
    """A conditional request (If-Match, If-None-Match) did not hold."""


class ArchivedObjectError(StorageError):
    """The object is in an archive storage class and must be restored first."""


class TransientStorageError(StorageError):
    """Throttling, 5xx or a dropped connection that outlived the retries."""


# --- per-scene ---------------------------------------------------------------


class SceneError(CompactorError):
    """A problem with one scene. The run records it and goes on."""


class UnsafeKeyError(SceneError):
    """A key, path or STAC id that could name something outside its prefix or folder
    (``..`` segments, control characters, a symbolic link out of the folder)."""


class ForbiddenSourceError(SceneError):
    """A source outside what the run may read: an HTTP(S) host that is not allowed, a
    redirect, an address on a private network."""


class SceneTooLargeError(SceneError):
    """A scene's header declares more than the run's size limits allow."""


class UnreadableSceneError(SceneError):
    """The source is not a raster GDAL can read (corrupt, truncated, not an image)."""


class UnsupportedCodecError(SceneError):
    """The requested codec cannot encode this raster (e.g. JPEG on float32)."""


class EncodeError(SceneError):
    """Writing the COG failed."""


class VerificationError(SceneError):
    """The output failed a check: not a valid COG, metadata lost, pixels or mask differ."""


class ArchiveError(SceneError):
    """Copying the original to its archive location failed or could not be verified."""


class OutputConflictError(SceneError):
    """The output key already holds an object this scene did not write."""


# --- S3 error code table -------------------------------------------------------

#: S3 error code -> exception class. The only place codes are interpreted.
S3_ERROR_CODES: dict[str, type[StorageError]] = {
    "NoSuchKey": ObjectNotFound,
    "NoSuchBucket": ObjectNotFound,
    "NoSuchUpload": ObjectNotFound,
    "NotFound": ObjectNotFound,
    "404": ObjectNotFound,
    "AccessDenied": AccessDenied,
    "AllAccessDisabled": AccessDenied,
    "InvalidAccessKeyId": AccessDenied,
    "SignatureDoesNotMatch": AccessDenied,
    "ExpiredToken": AccessDenied,
    "403": AccessDenied,
    "PreconditionFailed": PreconditionFailed,
    "412": PreconditionFailed,
    "ConditionalRequestConflict": PreconditionFailed,
    "InvalidObjectState": ArchivedObjectError,
    "SlowDown": TransientStorageError,
    "Throttling": TransientStorageError,
    "RequestTimeout": TransientStorageError,
    "InternalError": TransientStorageError,
    "ServiceUnavailable": TransientStorageError,
    "500": TransientStorageError,
    "502": TransientStorageError,
    "503": TransientStorageError,
    "504": TransientStorageError,
}


def s3_errors() -> tuple[type[BaseException], ...]:
    """What boto3 and s3fs raise for a failed request (an error response, a dropped or
    refused connection, a timeout, a body cut off, missing credentials): the only
    exceptions translated into :class:`StorageError`. Anything else (a wrong argument, a
    bug) propagates as it is."""

    return (
        bce.ClientError,
        bce.HTTPClientError,  # connection closed, read timeouts, streaming errors
        bce.ConnectionError,  # endpoint unreachable, connect timeouts
        bce.IncompleteReadError,
        bce.NoCredentialsError,
        bce.PartialCredentialsError,
        bce.CredentialRetrievalError,
        OSError,  # s3fs and the socket layer (FileNotFoundError, PermissionError, resets)
    )


def s3_error_code(err: BaseException) -> str | None:
    """The S3 error code of a botocore ``ClientError`` (or ``None``)."""
    response: Any = getattr(err, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status:
            return str(status)
    return None


def translate_s3_error(err: BaseException, url: str, action: str) -> StorageError:
    """Map a botocore/s3fs error to this tree. Callers ``raise ... from err``.

    The message names the action and the URL, never credentials.
    """
    code = s3_error_code(err)
    cls = S3_ERROR_CODES.get(code or "", StorageError)
    if code is None and isinstance(err, FileNotFoundError):
        cls = ObjectNotFound
    if code is None and isinstance(err, PermissionError):
        cls = AccessDenied
    if code is None and type(err).__name__ in {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "ConnectionResetError",
        "TimeoutError",
    }:
        cls = TransientStorageError
    if code is None and type(err).__name__ in {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
    }:
        cls = AccessDenied
    detail = code or type(err).__name__
    return cls(f"{action} {url} failed: {detail}", url=url, code=code)
