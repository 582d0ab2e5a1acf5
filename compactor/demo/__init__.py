"""The demo: generated scenes, an embedded S3 server, the whole flow."""

from ._flow import DEMO_BUCKET, run_demo, upload_scenes
from ._scenes import footprint, fractal_surface, hillshade, make_scenes
from ._server import EmbeddedS3, s3_endpoint

__all__ = [
    "DEMO_BUCKET",
    "EmbeddedS3",
    "footprint",
    "fractal_surface",
    "hillshade",
    "make_scenes",
    "run_demo",
    "s3_endpoint",
    "upload_scenes",
]
