"""Read-only HTTP(S) objects (STAC asset hrefs outside any bucket), fetched by compactor
itself under an :class:`HttpPolicy`: allowed hosts only, no redirects, headers only to the
host they were configured for. GDAL never opens them."""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ForbiddenSourceError, ObjectNotFound, StorageError, TransientStorageError
from ..redact import redact_url
from ._base import IO_CHUNK, Capabilities, ObjectInfo
from ._location import Location


@dataclass(frozen=True)
class HttpPolicy:
    """Which HTTP(S) hosts a run may read from (STAC asset hrefs outside any bucket), and
    the headers sent to each: plain data shipped to workers, holding no secret (a header's
    value is the name of an environment variable, read where the request is made).

    ``hosts`` are ``host``, ``host:port`` or ``*.domain``; a host that resolves to a
    loopback, private, link-local or otherwise non-public address is read only when named
    exactly (never through a ``*.`` pattern)."""

    hosts: tuple[str, ...] = ()
    #: (host entry, header name, value or ``${ENV_VAR}``)
    headers: tuple[tuple[str, str, str], ...] = ()
    timeout: float = 30.0

    def _entry(self, url: str) -> tuple[str, bool] | None:
        """The host entry allowing ``url`` and whether it names the host exactly."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
        for entry in self.hosts:
            name, want = split_host(entry)
            if want is not None and want != port:
                continue
            if name == host:
                return entry, True
            if name.startswith("*.") and host.endswith(name[1:]):
                return entry, False
        return None

    def check(self, url: str) -> str:
        """Raise :class:`ForbiddenSourceError` unless ``url`` may be read: an ``http(s)``
        URL at an allowed host whose every address is public, or that is named exactly.
        Returns the address the request must connect to: the host is resolved here once,
        and the connection goes to the address vetted, never to a second answer (a name
        answering a public address, then a loopback one, reaches nothing else)."""
        parts = urlsplit(url)
        shown = redact_url(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ForbiddenSourceError(f"refused {shown}: only http(s) URLs with a host are read")
        if parts.username or parts.password:
            raise ForbiddenSourceError(f"refused {shown}: credentials in the URL")
        found = self._entry(url)
        if found is None:
            raise ForbiddenSourceError(
                f"refused {shown}: host {parts.netloc} is not allowed (--allow-host; by default "
                "only the STAC API's own host)"
            )
        addresses = _addresses(parts.hostname)
        if not addresses:
            raise TransientStorageError(f"cannot resolve {parts.hostname}: no address")
        if not found[1]:  # named exactly: the user vouches for it, private address or not
            for address in addresses:
                if not address.is_global:
                    raise ForbiddenSourceError(
                        f"refused {shown}: {parts.hostname} resolves to the non-public address "
                        f"{address}; name the host exactly with --allow-host to read it"
                    )
        return str(addresses[0])

    def request_headers(self, url: str, environ: Mapping[str, str]) -> dict[str, str]:
        """Headers configured for ``url``'s host entry, ``${VAR}`` values read from
        ``environ`` (on the worker); a missing variable is an error, never an empty header."""
        found = self._entry(url)
        if found is None:
            return {}
        out: dict[str, str] = {}
        for entry, name, value in self.headers:
            if entry != found[0]:
                continue
            var = _variable(value)
            if var is not None:
                if var not in environ:
                    raise ForbiddenSourceError(
                        f"header {name} for {entry} needs the environment variable {var} on "
                        "the workers"
                    )
                value = environ[var]
            problem = _header_value_problem(value)
            if problem is not None:  # named, never shown: the value may be a secret
                source = f"the environment variable {var}" if var else "its configured value"
                raise ForbiddenSourceError(
                    f"header {name} for {entry}: {source} {problem}; it is not sent"
                )
            out[name] = value
        return out

    def secrets(self, environ: Mapping[str, str]) -> tuple[str, ...]:
        """The header values this policy sends, as resolved from ``environ`` (what a worker's
        messages must never show), with their parts: the value stripped and each word of
        it (``Bearer <token>``: the token alone, as an error message may quote it). Never
        raises."""
        found: set[str] = set()
        for _, _, value in self.headers:
            var = _variable(value)
            resolved = environ.get(var) if var is not None else value
            if not resolved:
                continue
            found |= {resolved, resolved.strip(), *resolved.split()}
        return tuple(sorted(s for s in found if len(s) >= 4))


def _variable(value: str) -> str | None:
    """The environment variable a header value names (``${VAR}``), or ``None``."""
    if value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    return None


def _header_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be an HTTP header value (``None``: it can): a CR or LF (a
    token read from a file often keeps its trailing newline) would end the header, and
    http.client sends only latin-1."""
    if "\r" in value or "\n" in value:
        return "holds a line break (a trailing newline, as a file's last line keeps?)"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return "holds characters other than latin-1 ones"
    return None


def split_host(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or ``*.domain`` -> (lower-case host, port)."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return entry, None


def _addresses(host: str) -> list[Any]:

    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as err:
        raise TransientStorageError(f"cannot resolve {host}: {err}") from err
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:  # fmt: skip
        raise ForbiddenSourceError(
            f"refused {redact_url(req.full_url)}: it answers HTTP {code}, a redirect to "
            f"{redact_url(newurl)}; redirects are not followed"
        )


def _pinned(base: type[http.client.HTTPConnection], address: str) -> Any:
    """A connection class of ``base`` that connects to ``address`` whatever host it is
    given: the Host header, TLS's server name (SNI) and the certificate check still use
    the host name."""

    def create(target: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        return socket.create_connection((address, target[1]), *args, **kwargs)

    def make(host: str, *args: Any, **kwargs: Any) -> http.client.HTTPConnection:
        conn = base(host, *args, **kwargs)
        conn._create_connection = create  # type: ignore[attr-defined]
        return conn

    return make


class _PinnedHTTP(urllib.request.HTTPHandler):
    def __init__(self, address: str):
        super().__init__()
        self.address = address

    def http_open(self, req: Any) -> Any:
        return self.do_open(_pinned(http.client.HTTPConnection, self.address), req)


class _PinnedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, address: str):
        super().__init__(context=ssl.create_default_context())
        self.address = address

    def https_open(self, req: Any) -> Any:
        return self.do_open(
            _pinned(http.client.HTTPSConnection, self.address),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


class HttpStore:
    """Read-only HTTP(S) objects (STAC asset hrefs outside any known bucket). compactor
    fetches them itself under :class:`HttpPolicy` (allowed hosts only, no redirects, headers
    only to the host they were configured for), never through GDAL, and never writes,
    archives or deletes them."""

    capabilities = Capabilities(writable=False)

    def __init__(self, policy: HttpPolicy | None = None):
        self.policy = policy or HttpPolicy()

    def _open(self, loc: Location, method: str) -> Any:
        address = self.policy.check(loc.url)
        headers = self.policy.request_headers(loc.url, os.environ)
        request = urllib.request.Request(loc.url, method=method, headers=headers)
        # No proxy (the vetted address is where the request goes), no redirect, and the
        # connection made to the address check() vetted.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _NoRedirect(), _PinnedHTTP(address),
            _PinnedHTTPS(address),
        )  # fmt: skip
        shown = redact_url(loc.url)
        try:
            return opener.open(request, timeout=self.policy.timeout)
        except urllib.error.HTTPError as err:
            if err.code in (404, 410):
                raise ObjectNotFound(f"{shown} not found (HTTP {err.code})", url=shown) from err
            raise translate_http_error(loc.url, err) from err
        except (urllib.error.URLError, OSError) as err:
            raise TransientStorageError(f"{method} {shown} failed: {err}", url=shown) from err
        except (ValueError, http.client.HTTPException) as err:
            # http.client quotes what it refuses (a header's value, maybe a secret): only
            # the kind of error is told, never its message, and the cause is not chained.
            raise StorageError(
                f"{method} {shown} failed: {type(err).__name__} (the request or its answer "
                "was refused by the HTTP client)",
                url=shown,
            ) from None

    def head(self, loc: Location, version_id: str | None = None) -> ObjectInfo | None:
        try:
            with self._open(loc, "HEAD") as resp:
                headers = resp.headers
        except ObjectNotFound:
            return None
        length = headers.get("Content-Length")
        return ObjectInfo(
            url=loc.url,
            size=int(length) if length else 0,
            etag=headers.get("ETag"),
            mtime=headers.get("Last-Modified"),
            content_type=headers.get("Content-Type"),
        )

    def download(self, loc: Location, dest: Path, max_bytes: int) -> None:
        """Fetch the object into ``dest``; refuse more than ``max_bytes``."""
        with self._open(loc, "GET") as resp, open(dest, "wb") as out:
            declared = resp.headers.get("Content-Length")
            shown = redact_url(loc.url)
            if declared and int(declared) > max_bytes:
                raise ForbiddenSourceError(
                    f"refused {shown}: {int(declared):,} bytes, more than {max_bytes:,}"
                )
            total = 0
            while block := resp.read(IO_CHUNK):
                total += len(block)
                if total > max_bytes:
                    raise ForbiddenSourceError(f"refused {shown}: more than {max_bytes:,} bytes")
                out.write(block)

    def listing(self, prefix: Location) -> Iterator[ObjectInfo]:
        raise StorageError(f"cannot list {prefix.url}: HTTP sources come from a STAC search")


def translate_http_error(url: str, err: Any) -> StorageError:
    url = redact_url(url)
    reason = f"HTTP {err.code} {getattr(err, 'reason', '')}".strip()
    if err.code >= 500 or err.code == 429:
        return TransientStorageError(f"{reason} from {url}", url=url)
    return StorageError(f"{reason} from {url}", url=url)


def readable_path(
    loc: Location, scratch: Path, http: HttpPolicy | None = None, max_bytes: int = 0
) -> str:
    """The path GDAL opens for a source: ``/vsis3/...`` (range requests) or a local file;
    an HTTP(S) source is first fetched whole into ``scratch`` under ``http`` (GDAL would
    follow redirects and send its headers anywhere), at most ``max_bytes``."""
    if not loc.is_http:
        return loc.gdal_path
    suffix = Path(urlsplit(loc.url).path).suffix.lower()
    target = scratch / f"http-source{suffix if suffix in _LOCAL_SUFFIXES else '.tif'}"
    if not target.exists():
        scratch.mkdir(parents=True, exist_ok=True)
        HttpStore(http).download(loc, target, max_bytes)
    return str(target)


#: Extensions kept on fetched HTTP(S) sources (GDAL picks no driver by extension, but
#: sidecar names follow it).
_LOCAL_SUFFIXES = frozenset({".tif", ".tiff", ".jp2", ".ntf", ".nitf", ".img"})
