"""Views of :class:`~compactor.settings.Settings` handed to the stages: what each needs and
nothing else (their values, and so their defaults, are the settings')."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..codecs import ErrorBound
from ._meta import Effort, Overviews


class Encoding(BaseModel):
    """How scenes are encoded (a view of :class:`Settings`: its defaults are the settings')."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    codec: str
    #: ``"auto"``, a fixed quality, or ``None`` (the codec's default).
    quality: int | Literal["auto"] | None
    min_ssim: float
    allow_webp: bool
    min_saving: float
    chunk_threshold: int
    bigtiff: Literal["auto", "yes"]
    max_error: ErrorBound | None = None
    effort: Effort = "default"
    overviews: Overviews = "lossy"


class Limits(BaseModel):
    """What a scene's header may declare (a view of :class:`Settings`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_pixels: int
    max_bands: int
    max_raw_size: int


class Transfers(BaseModel):
    """How objects are written, copied and deleted: multipart thresholds and part sizes,
    the outputs' class and encryption, old versions (a view of :class:`Settings`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    multipart_copy_threshold: int
    multipart_copy_part_size: int
    multipart_upload_threshold: int
    output_storage_class: str = "STANDARD"
    sse_kms_key: str | None = None
    keep_versions: bool = False
