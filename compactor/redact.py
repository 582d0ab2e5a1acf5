"""One redaction for everything compactor writes where people or machines read it: the
report's settings, log records, printed manifests and task payloads.

Secrets are recognised by name (``AWS_SECRET_ACCESS_KEY``, ``GDAL_HTTP_HEADERS``, an
``Authorization`` header ...), inside URLs (``https://user:password@host``, signed query
strings) and, for log records, by value: :class:`RedactingFilter` masks every secret value
the run's settings hold wherever it appears in a message.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "****"

#: Parts of a name that mark its value as a secret wherever they appear in it (matched
#: case-insensitively).
_SECRET_PARTS = re.compile(
    r"SECRET|PASSWORD|PASSWD|PWD|TOKEN|CREDENTIAL|PRIVATE|ACCESS_KEY|API_?KEY|AUTH|BEARER|"
    r"COOKIE|HEADER|SIGNATURE|CONNECTION_STRING|SESSION",
    re.IGNORECASE,
)
#: Whole segments of a name (split on ``_``, ``-``, ``.``, spaces and camelCase) that mark
#: its value as a secret: ``DB_PASS``, ``GITHUB_PAT``, ``MAPBOX_KEY``, ``X-Api-Key``,
#: ``Ocp-Apim-Subscription-Key``, ``sig``, ``subscriptionKey`` ...
_SECRET_SEGMENTS = frozenset({
    "KEY", "KEYS", "APIKEY", "PASS", "PASSWD", "PASSWORD", "PASSWORDS", "PWD", "TOKEN",
    "TOKENS", "SECRET", "SECRETS", "PAT", "SIGNATURE", "SIG", "CREDENTIAL", "CREDENTIALS",
    "AUTH", "SAS", "PASSPHRASE",
})  # fmt: skip
_SEGMENT_SPLIT = re.compile(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])")
#: Names that contain a secret-looking part but are not secrets (what they configure, or a
#: key's name rather than a key: ``--sse-kms-key`` takes a KMS key id or ARN).
_NOT_SECRET = frozenset({
    "GDAL_HTTP_AUTH", "GDAL_HTTP_HEADER_FILE", "SSE_KMS_KEY", "COMPACTOR_SSE_KMS_KEY",
})  # fmt: skip


def is_secret_name(name: str) -> bool:
    """Whether a setting, environment variable, header or query parameter called ``name``
    holds a secret: the one rule for pod environments, HTTP headers, settings and URL
    query strings."""
    if name.upper().replace("-", "_") in _NOT_SECRET:
        return False
    if _SECRET_PARTS.search(name):
        return True
    return any(part.upper() in _SECRET_SEGMENTS for part in _SEGMENT_SPLIT.split(name) if part)


def _web(scheme: str) -> bool:
    return scheme.lower() in ("http", "https")


def redact_url(url: str) -> str:
    """``url`` with the password of its user info and, in an ``http(s)`` URL, secret query
    parameters masked (``https://ann:pw@host/x?X-Amz-Signature=...`` ->
    ``https://ann:****@host/x?X-Amz-Signature=****``). Anything that is not a URL with a
    scheme, or holds nothing to mask, is returned exactly as it is (an S3 key may hold
    ``?``: it is no query)."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    changed = False
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{MASK}@{host}" if user else f"{MASK}@{host}"
        changed = True
    query = parts.query
    if query and _web(parts.scheme):
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) and v != MASK for k, v in pairs):
            query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*")
            changed = True
    if not changed:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_identity(url: str) -> tuple[str, str | None]:
    """What names an ``http(s)`` object in keys compactor writes (state records, leases):
    its URL without the query, and a digest of the query as :func:`redact_url` shows it
    (``None`` without a query). The same URL always maps to the same pair; a query's
    secret values (signatures, keys, tokens) count for nothing, so neither leaks and a
    URL whose signature alone changes keeps its identity; any other query value (an
    expiry time, say) makes a new one. Other URLs: ``(url, None)``."""
    if "://" not in url:
        return url, None
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    if not _web(parts.scheme) or not parts.query:
        return url, None
    shown = urlsplit(redact_url(url))
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    digest = hashlib.sha256(shown.query.encode()).hexdigest()[:32]
    return base, digest


def redact(value: Any, *, key: str | None = None) -> Any:
    """A copy of plain data (mappings, sequences, strings) with secrets masked: the value of
    every secret-named key, and passwords and signatures inside URLs."""
    if key is not None and is_secret_name(key) and value not in (None, "", {}, []):
        return MASK
    if isinstance(value, Mapping):
        return {k: redact(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return redact_url(value)
    return value


def secret_values(value: Any, *, key: str | None = None) -> set[str]:
    """Every secret string inside plain data: values of secret-named keys and URL passwords
    (what :func:`redact` masks), for masking them by value elsewhere."""
    found: set[str] = set()
    if key is not None and is_secret_name(key) and isinstance(value, str) and value:
        found.add(value)
    if isinstance(value, Mapping):
        for k, v in value.items():
            found |= secret_values(v, key=str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            found |= secret_values(v)
    elif isinstance(value, str) and "://" in value:
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            found.add(password)
    return found


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by :data:`MASK` (longest first,
    so a secret containing another is masked whole), URL passwords and the secret query
    values of ``http(s)`` URLs masked."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    if "@" in text and "://" in text:
        text = _URL_WITH_USERINFO.sub(lambda m: redact_url(m.group(0)), text)
    if "?" in text and "://" in text:
        text = _WEB_URL_WITH_QUERY.sub(lambda m: redact_url(m.group(0)), text)
    return text


_URL_WITH_USERINFO = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@]+@[^\s]*")
_WEB_URL_WITH_QUERY = re.compile(r"(?i)\bhttps?://[^\s?'\"<>]*\?[^\s'\"<>]*")


class RedactingFilter(logging.Filter):
    """A logging filter that masks the given secret values (and URL passwords) in every
    record it sees. Attach it to a handler: the record is rendered once, redacted, and
    passed on with its arguments consumed."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets: set[str] = {s for s in secrets if s}

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets |= {s for s in secrets if s}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message, self.secrets)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        return True
