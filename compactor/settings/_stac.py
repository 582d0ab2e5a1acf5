"""A STAC API search as the source of scenes: ``stac:`` of the settings."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..keys import key_problem
from ._meta import Opt


def _stac(**kwargs: Any) -> Opt:
    """A STAC search option: a flag without an environment variable (but where it says)."""
    return Opt(**{"group": "stac", "env": None, **kwargs})


class StacSettings(BaseModel):
    """A STAC API search as the source of scenes (``--stac`` and its options)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: Annotated[str | None, _stac(flag="--stac", metavar="URL", env=True)] = Field(
        default=None,
        description="Take the scenes from a STAC API search instead of --source: the API's "
        "root URL. Outputs go to <dest>/<collection>/<item id>/<asset key>.tif and the "
        "updated items next to the report.",
    )
    collections: Annotated[
        tuple[str, ...],
        _stac(flag="--collection", metavar="ID", env="COMPACTOR_STAC_COLLECTION"),
    ] = Field(
        default=(), description="STAC collection to search (repeatable; required with --stac)."
    )
    bbox: Annotated[
        tuple[float, float, float, float] | None, _stac(metavar="MINX,MINY,MAXX,MAXY")
    ] = Field(
        default=None,
        description="Items intersecting this WGS84 box (--bbox=-10,40,5,50 for negative values).",
    )
    intersects: Annotated[str | None, _stac(metavar="FILE", kind="file")] = Field(
        default=None, description="Items intersecting the geometry in this GeoJSON file."
    )
    datetime: Annotated[str | None, _stac(metavar="RANGE")] = Field(
        default=None,
        description="An instant or interval, e.g. 2020-01-01/2021-12-31 or 2020-06-01/..",
    )
    query: Annotated[tuple[str, ...], _stac(metavar="EXPR")] = Field(
        default=(),
        description="Query extension expression, e.g. 'eo:cloud_cover<10' (repeatable; the "
        "API must support it).",
    )
    filter: Annotated[str | None, _stac(metavar="CQL2-JSON|@FILE")] = Field(
        default=None,
        description="A CQL2-JSON filter, inline or @file.json (the API must support Filter).",
    )
    max_items: Annotated[int | None, _stac()] = Field(
        default=None, ge=1, description="Stop after this many items."
    )
    limit: int = Field(
        default=100,
        ge=1,
        le=10000,
        description="Items per page the API is asked for (the search follows next links).",
    )
    assets: Annotated[
        tuple[str, ...],
        _stac(
            flag="--asset",
            metavar="KEY",
            shown_default="the items' GeoTIFF, COG and JPEG 2000 data assets; thumbnails, "
            "overviews and metadata never",
        ),
    ] = Field(
        default=(),
        description="Asset keys to compact (repeatable).",
    )
    update: Annotated[bool, _stac(group="run", flag="--stac-update")] = Field(
        default=False,
        description="With --stac: write the updated items back to the API (Transactions "
        "extension).",
    )
    allow_hosts: Annotated[
        tuple[str, ...],
        _stac(
            flag="--allow-host",
            metavar="HOST[:PORT]",
            shown_default="only the STAC API's own host",
        ),
    ] = Field(
        default=(),
        description="Also read HTTP(S) asset hrefs at this host (repeatable; *.domain for its "
        "subdomains, public addresses only). Never followed: redirects.",
    )
    allow_buckets: Annotated[
        tuple[str, ...],
        _stac(
            flag="--allow-bucket",
            aliases=("--source-prefix",),
            metavar="BUCKET[/PREFIX/]",
            shown_default="the buckets the searched collections declare in storage:schemes",
        ),
    ] = Field(
        default=(),
        description="Archive and delete s3:// assets only inside these buckets or prefixes "
        "(repeatable); assets elsewhere are compacted and left in place.",
    )

    @field_validator("allow_buckets", mode="after")
    @classmethod
    def _buckets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for raw in value:
            bucket, _, prefix = raw.removeprefix("s3://").partition("/")
            if not bucket or (prefix and key_problem(prefix)):
                raise ValueError(f"allow_buckets: {raw!r} is not bucket or bucket/prefix/")
            out.append(f"{bucket}/{prefix}" if prefix else bucket)
        return tuple(out)

    @field_validator("collections", "assets", "query", "allow_hosts", "allow_buckets",
                     mode="before")  # fmt: skip
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part for part in value.split(",") if part) if value else ()
        return value

    @field_validator("bbox", mode="before")
    @classmethod
    def _bbox(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p for p in value.replace(" ", "").split(",") if p]
            if len(parts) != 4:
                raise ValueError("bbox takes four numbers: minx,miny,maxx,maxy")
            return tuple(float(p) for p in parts)
        return value
