"""``compactor demo``: generate a small realistic archive, put it in S3 (an embedded server
unless ``AWS_ENDPOINT_URL`` is set), and compact it with originals to GLACIER."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..records import Report
from ..runner import run
from ..storage import S3Options, s3_client
from ._scenes import make_scenes
from ._server import s3_endpoint

DEMO_BUCKET = "compactor-demo"


def upload_scenes(paths: list[Path], endpoint_url: str, bucket: str, prefix: str) -> None:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    client = s3_client(S3Options(endpoint_url=endpoint_url, region=region))
    extra: dict[str, Any] = {}
    if region != "us-east-1":
        extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
    with suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
        client.create_bucket(Bucket=bucket, **extra)
    for p in paths:
        client.upload_file(
            str(p), bucket, f"{prefix}{p.name}", ExtraArgs={"ContentType": "image/tiff"}
        )


def run_demo(
    workdir: Path,
    *,
    size: int = 1536,
    workers: int | None = None,
    on_server: Callable[[str], None] | None = None,
    **run_kwargs: Any,
) -> Report:
    """Generate the archive, put it in S3, compact it with originals to GLACIER."""
    paths = make_scenes(workdir / "originals", size=size)
    with s3_endpoint(on_server) as endpoint:
        upload_scenes(paths, endpoint, DEMO_BUCKET, "scenes/")
        return run(
            source=f"s3://{DEMO_BUCKET}/scenes/",
            dest=f"s3://{DEMO_BUCKET}/cogs/",
            archive=f"s3://{DEMO_BUCKET}/archive/",
            storage_class="GLACIER",
            report=str(workdir / "report"),
            endpoint_url=endpoint,
            workers=workers,
            **run_kwargs,
        )
