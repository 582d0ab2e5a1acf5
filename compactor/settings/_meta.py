"""The vocabulary the settings models are declared in: the kinds of values, and
:class:`Opt`, what a field adds to its type to be a command-line option and an
environment variable as well as a config key (the field's ``description`` is its help).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

StorageClass = Literal[
    "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "STANDARD_IA", "INTELLIGENT_TIERING", "STANDARD"
]
#: Classes outputs may be written in (readable at once).
OutputClass = Literal["STANDARD", "STANDARD_IA", "INTELLIGENT_TIERING", "GLACIER_IR"]
ClusterKind = Literal["local", "address", "kubernetes"]
Effort = Literal["fast", "default", "max"]
Overviews = Literal["full", "lossy", "none"]

#: Default ``--include`` globs (matched case-insensitively against the key's file name).
#: The GDAL drivers sources are opened with (:data:`compactor.gdal._info.SOURCE_DRIVERS`)
#: and the file extensions each reads: GDAL's own (``DMD_EXTENSIONS``: tif tiff, jp2 j2k,
#: ntf, img) and the others their files are found under (GeoTIFF's .gtif; JPEG 2000's .jpx,
#: .jpf, .jpc, .j2c; NITF's .nitf and NATO's .nsf).
SOURCE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "GTiff": ("tif", "tiff", "gtif"),
    "JP2OpenJPEG": ("jp2", "j2k", "jpx", "jpf", "jpc", "j2c"),
    "NITF": ("ntf", "nitf", "nsf"),
    "HFA": ("img",),
}

#: What is listed by default: every extension :data:`SOURCE_EXTENSIONS` names.
DEFAULT_INCLUDE: tuple[str, ...] = tuple(
    f"*.{ext}" for exts in SOURCE_EXTENSIONS.values() for ext in exts
)

#: Folder under the destination holding compactor's own records (state, runs).
META_PREFIX = "_compactor"

#: Settings that are sizes in bytes: they accept units ("5GiB", "512MiB").
SIZES = (
    "multipart_copy_threshold", "multipart_copy_part_size", "multipart_upload_threshold",
    "chunk_threshold", "max_raw_size", "min_size", "max_size",
)  # fmt: skip

#: Option groups, in the order ``--help`` and the option reference show them.
GROUPS = ("source", "archive", "encoding", "limits", "cost", "cluster", "stac", "run", "s3")


@dataclass(frozen=True)
class Opt:
    """What a settings field adds to its type (``Annotated[T, Opt(...)]``) to be a
    command-line flag and an environment variable; its ``description`` is their help.

    ``flag``: the long option, by default ``--`` and the field's name with dashes; ``None``
    for settings without one (environment or config file only). ``param``: the argument
    name the flag is passed as, by default the field's name (top level) or the flag's
    (nested: ``--scheduler`` for ``cluster.address``). ``env``: ``True`` derives
    ``COMPACTOR_<FLAG>`` (or ``<FIELD>``), a name or names (the last one set wins), or
    ``None``. ``shown_default``: ``True`` shows the model's default in the help, a text
    says it in words. ``low``/``high``/``max_open``: the range the command line accepts, where it
    differs from the field's own ``ge``/``le``/``lt`` (which it takes by default)."""

    group: str
    flag: str | None = ""
    aliases: tuple[str, ...] = ()
    param: str | None = None
    env: bool | str | tuple[str, ...] | None = True
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    case_sensitive: bool = True
    low: float | None = None
    high: float | None = None
    max_open: bool = False
    #: "quality" (``auto`` or 1-100) or "file" (a file path) for values checked on entry.
    kind: str | None = None
    shown_default: bool | str = False
