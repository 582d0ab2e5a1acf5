"""A fault-injecting HTTP proxy for tests and benchmarks: it forwards requests to the moto
server and, for a seeded random fraction of them, answers 500 / 503 SlowDown instead, or
resets the connection (before answering, or halfway through the body). It also counts the
requests it forwards by S3 operation (:attr:`FaultProxy.operations`): with both rates at 0
it is a request counter."""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


def operation(method: str, path: str, headers: Any) -> str:
    """The S3 operation of a request, from its method, query and headers (path-style URLs:
    ``/bucket/key?query``)."""
    parts = urlsplit(path)
    query = {q.split("=", 1)[0] for q in parts.query.split("&") if q}
    has_key = "/" in parts.path.lstrip("/")
    subresources = (
        "tagging", "uploads", "delete", "versions", "versioning", "restore", "legal-hold",
        "retention",
    )  # fmt: skip
    for sub in subresources:
        if sub in query:
            return f"{method} ?{sub}"
    if "uploadId" in query:
        if method == "PUT":
            return "UploadPartCopy" if headers.get("x-amz-copy-source") else "UploadPart"
        return {"POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload"}.get(
            method, f"{method} ?uploadId"
        )
    if not has_key:
        return "ListObjects" if method == "GET" else f"{method} bucket"
    if method == "PUT" and headers.get("x-amz-copy-source"):
        return "CopyObject"
    return {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject",
            "DELETE": "DeleteObject"}.get(method, method)  # fmt: skip


#: The faults a scheduled proxy cycles through, in order.
SCHEDULE = ("500", "reset-before", "503", "reset-midway")


class FaultProxy:
    def __init__(
        self,
        target: str,
        *,
        error_rate: float,
        reset_rate: float,
        seed: int = 0,
        every: int = 0,
    ):
        self.target = urlsplit(target)
        #: If set, every ``every``-th request fails, cycling through the four faults, so a
        #: run's fault count does not depend on how many requests it happened to make.
        self.every = every
        self.error_rate = error_rate
        self.reset_rate = reset_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.faults: Counter[str] = Counter()
        self.requests = 0
        #: Requests by S3 operation (see :func:`operation`), faults included.
        self.operations: Counter[str] = Counter()
        #: (operation, path) of every request, in order, when tracing.
        self.trace: list[tuple[str, str]] | None = None
        #: A scripted answer: called with (operation, path, headers); a (status, S3 error
        #: code) it returns is answered instead of forwarding the request.
        self.respond: Callable[[str, str, Any], tuple[int, str] | None] | None = None
        #: A scripted fault: called with (operation, path); a fault of :data:`SCHEDULE` it
        #: returns is injected instead of the scheduled or random one.
        self.inject: Callable[[str, str], str | None] | None = None
        self.enabled = True
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    op = operation(self.command, self.path, self.headers)
                    proxy.operations[op] += 1
                    if proxy.trace is not None:
                        proxy.trace.append((op, self.path))
                scripted = proxy.respond(op, self.path, self.headers) if proxy.respond else None
                if scripted is not None:
                    status, code = scripted
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>{code} (scripted)</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                fault = proxy.inject(op, self.path) if proxy.inject else None
                if fault is not None:
                    with proxy.lock:
                        proxy.faults[fault] += 1
                else:
                    fault = proxy.choose()
                if fault == "reset-before":
                    self._reset()
                    return
                if fault in ("500", "503"):
                    payload = INTERNAL if fault == "500" else SLOWDOWN
                    self.send_response(int(fault))
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(
                    proxy.target.hostname, proxy.target.port, timeout=60
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                # HEAD: the object's length as upstream says; otherwise the body's.
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if fault == "reset-midway" and len(data) > 64:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self._reset()
                    return
                self.wfile.write(data)

            def _reset(self) -> None:
                # SO_LINGER 0: close sends RST, a "connection reset by peer" for the client.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def choose(self) -> str | None:
        with self.lock:
            self.requests += 1
            if not self.enabled:
                return None
            r = self.rng.random()
            if self.every and self.requests % self.every == 0:
                fault = SCHEDULE[(self.requests // self.every) % len(SCHEDULE)]
            elif r < self.error_rate:
                fault = "503" if self.rng.random() < 0.5 else "500"
            elif r < self.error_rate + self.reset_rate:
                fault = "reset-before" if self.rng.random() < 0.5 else "reset-midway"
            else:
                return None
            self.faults[fault] += 1
            return fault

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
