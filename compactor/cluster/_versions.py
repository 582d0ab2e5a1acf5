"""The software a run's client and workers run, checked to be the same: mismatched images
are the commonest failure of Dask on Kubernetes. Each worker also reports (no secrets)
where its AWS credentials come from."""

from __future__ import annotations

import logging
from importlib.metadata import version
from typing import Any

import boto3
import rasterio
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .._version import __version__
from ..errors import ConfigError

log = logging.getLogger(__name__)


def local_versions() -> dict[str, str]:
    """Versions that must agree between the client and every worker."""
    return {
        "compactor": __version__,
        "dask": version("dask"),
        "distributed": version("distributed"),
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
    }


def worker_identity() -> dict[str, str]:
    """Runs on a worker: its versions, and which AWS identity it uses (how its credentials
    were found, and the caller ARN when STS answers quickly). No secrets."""
    info = dict(local_versions())
    try:
        session = boto3.session.Session()
        creds = session.get_credentials()
        info["aws_credentials"] = creds.method if creds is not None else "none"
        if creds is not None:
            sts = session.client(
                "sts",
                config=Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 1}),
            )
            info["aws_identity"] = str(sts.get_caller_identity().get("Arn"))
    except (BotoCoreError, ClientError) as err:  # informational: never fail the run over it
        info.setdefault("aws_identity", f"unknown ({type(err).__name__})")
    return info


def check_versions(client: Any) -> dict[str, dict[str, str]]:
    """Compare this process's versions with every worker's; a mismatch is a clear error
    (mismatched images are the commonest failure of Dask on Kubernetes). Logs each
    worker's AWS identity. Returns what the workers reported."""
    here = local_versions()
    reports: dict[str, dict[str, str]] = client.run(worker_identity)
    problems = []
    for worker, info in sorted(reports.items()):
        for package, wanted in here.items():
            if info.get(package) != wanted:
                problems.append(
                    f"{package} {wanted} here, {info.get(package, 'missing')} on {worker}"
                )
        log.info(
            "worker %s: AWS credentials from %s, identity %s",
            worker,
            info.get("aws_credentials", "?"),
            info.get("aws_identity", "?"),
        )
    if problems:
        raise ConfigError(
            "the Dask workers run different software than this client ("
            + "; ".join(problems[:6])
            + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
            + "): run the client, scheduler and workers from the same image"
        )
    return reports
