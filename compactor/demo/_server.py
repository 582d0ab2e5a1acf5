"""An embedded S3 server for the demo and the notebook: moto's ``ThreadedMotoServer`` on a
free loopback port, in this process. It is a real HTTP server, so GDAL's ``/vsis3/`` on the
workers, boto3 and s3fs all talk to it as they would to AWS. Needs the ``demo`` extra
(``moto[server]``)."""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from ..errors import ConfigError

log = logging.getLogger(__name__)

#: Variables the embedded server sets for the duration of its use (and restores after).
_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION",
        "AWS_ENDPOINT_URL")  # fmt: skip


class EmbeddedS3:
    """moto's S3 server on 127.0.0.1 and a free port, with the process environment pointing
    at it (placeholder credentials, us-east-1, ``AWS_ENDPOINT_URL``) while it runs."""

    def __init__(self) -> None:
        self._server = _moto_server()
        self._saved: dict[str, str | None] = {}
        self.endpoint_url = ""

    def start(self) -> EmbeddedS3:
        # werkzeug logs every request of the embedded server at INFO: an access log of
        # this process's own traffic, which would flood the CLI and notebook cells.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._saved = {k: os.environ.get(k) for k in _ENV}
        # moto accepts any credentials; these never leave this machine. The server is one
        # region: the user's own AWS_REGION must not leak into it.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = "us-east-1"
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
        log.info("moto S3 server listening on %s", self.endpoint_url)
        return self

    def reset(self) -> None:
        """Drop every bucket and object (moto's reset API)."""
        request = urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        self._server.stop()
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def __enter__(self) -> EmbeddedS3:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class DemoExtraMissing(ConfigError):
    """The embedded S3 server needs moto, which only the ``demo`` extra installs."""


def _moto_server() -> Any:
    """moto's threaded server on 127.0.0.1 and a free port. moto is imported here, not at
    the top: the core install (and the image the chart runs) has no moto, and every other
    command must work without it."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as err:
        raise DemoExtraMissing(
            "the demo's embedded S3 server needs moto: pip install 'compactor[demo]', "
            "or point AWS_ENDPOINT_URL at an S3 server you run"
        ) from err
    return ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)


@contextmanager
def s3_endpoint(on_start: Callable[[str], None] | None = None) -> Iterator[str]:
    """``AWS_ENDPOINT_URL`` if set, else an embedded S3 server started for the block."""
    configured = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        yield configured
        return
    with EmbeddedS3() as server:
        if on_start:
            on_start(server.endpoint_url)
        yield server.endpoint_url
