"""What a source raster is, read once from its header, and the one way a source is opened:
an allow-list of drivers, nothing it names outside itself, size limits checked first."""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio.env
from rasterio._path import _parse_path  # rasterio.open takes one driver, GDAL a list
from rasterio.enums import MaskFlags
from rasterio.io import DatasetReader

from ..errors import SceneTooLargeError, UnreadableSceneError
from ..settings import SOURCE_EXTENSIONS, Limits
from ._drivers import head_bytes, restrict_drivers, take_last_error
from ._errors import clean, gdal_errors
from ._sidecars import is_sidecar_of

log = logging.getLogger(__name__)

#: Bytes of one sample of the GDAL data types numpy has no name for, as rasterio names them
#: (GDAL's CInt16, two int16 parts; rasterio reads it as complex64).
_SAMPLE_BYTES = {"complex_int16": 4}


def sample_bytes(dtype: str) -> int:
    """Bytes of one sample of ``dtype`` (a rasterio data type name) as the source stores it."""
    return _SAMPLE_BYTES.get(dtype) or np.dtype(dtype).itemsize


def is_complex(dtype: str) -> bool:
    """Whether ``dtype`` (a rasterio data type name) holds complex numbers (GDAL's CInt16,
    CInt32, CFloat32, CFloat64)."""
    return dtype.startswith("complex")


@dataclass(frozen=True)
class RasterInfo:
    """What compactor needs to know about a source raster (read once on the worker)."""

    driver: str
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    colorinterp: tuple[str, ...]
    descriptions: tuple[str | None, ...]
    block_shape: tuple[int, int]
    has_colormap: bool
    #: True when GDAL reports a per-dataset mask (an internal or sidecar mask band).
    has_dataset_mask: bool
    tags: dict[str, str] = field(default_factory=dict)
    #: Georeferenced by ground control points or RPCs rather than a geotransform.
    has_gcps_or_rpcs: bool = False

    @property
    def alpha_index(self) -> int | None:
        """1-based index of the alpha band, if any."""
        for i, ci in enumerate(self.colorinterp, start=1):
            if ci == "alpha":
                return i
        return None

    @property
    def colour_bands(self) -> int:
        return self.count - (1 if self.alpha_index else 0)

    @property
    def raw_bytes(self) -> int:
        return self.width * self.height * self.count * sample_bytes(self.dtype)

    @classmethod
    def from_dataset(cls, ds: Any) -> RasterInfo:
        """Raises :class:`UnreadableSceneError` for a dataset without a raster band (a NITF
        file holding no image segment, only text or graphics, opens with none)."""
        if ds.count == 0:
            what = "NITF: it has no image segment" if ds.driver == "NITF" else ds.driver
            raise UnreadableSceneError(f"no raster in this {what} (nothing to compact)")
        flags = ds.mask_flag_enums
        has_colormap = False
        if ds.count >= 1:
            try:
                has_colormap = bool(ds.colormap(1))
            except ValueError:
                has_colormap = False
        block = ds.block_shapes[0] if ds.block_shapes else (ds.height, ds.width)
        return cls(
            driver=ds.driver,
            width=ds.width,
            height=ds.height,
            count=ds.count,
            dtype=ds.dtypes[0],
            nodata=ds.nodata,
            colorinterp=tuple(ci.name for ci in ds.colorinterp),
            descriptions=tuple(ds.descriptions),
            block_shape=(int(block[0]), int(block[1])),
            has_colormap=has_colormap,
            has_dataset_mask=bool(flags) and all(MaskFlags.per_dataset in f for f in flags),
            tags={k: v for k, v in ds.tags().items()},
            has_gcps_or_rpcs=bool(ds.gcps[0]) or ds.rpcs is not None,
        )

    def describe(self) -> str:
        return f"{self.dtype} with {self.count} band{'s' if self.count != 1 else ''}"


def check_limits(info: RasterInfo, limits: Limits) -> None:
    """Raise :class:`SceneTooLargeError` naming the first of ``limits`` (``--max-pixels``,
    ``--max-bands``, ``--max-raw-size``) the header of ``info`` exceeds."""
    pixels = info.width * info.height
    for over, what, flag in (
        (pixels > limits.max_pixels,
         f"{info.width} x {info.height} = {pixels:,} pixels, more than {limits.max_pixels:,}",
         "--max-pixels"),
        (info.count > limits.max_bands, f"{info.count} bands, more than {limits.max_bands}",
         "--max-bands"),
        (info.raw_bytes > limits.max_raw_size,
         f"{_gib(info.raw_bytes)} of raw pixels, more than {_gib(limits.max_raw_size)}",
         "--max-raw-size"),
    ):  # fmt: skip
        if over:
            raise SceneTooLargeError(
                f"refused before reading: the header declares {what} ({flag} raises it)"
            )


def _gib(n: int) -> str:
    return f"{n / 1024**3:,.1f} GiB"


#: The only GDAL drivers a source is opened with: formats that hold their own pixels.
#: Everything else is refused, above all VRT (and the many drivers like it) that can make
#: GDAL read other files, other buckets or URLs named inside the object.
SOURCE_DRIVERS = tuple(SOURCE_EXTENSIONS)

#: The same, as the README and error messages name them.
SOURCE_FORMATS = "a GeoTIFF, JPEG 2000, NITF or Erdas Imagine file"


def open_source(src_path: str) -> Any:
    """Open a source raster (a GDAL path) with :data:`SOURCE_DRIVERS` only, in a GDAL
    without the drivers that read other files (:func:`~compactor.gdal._drivers.restrict_drivers`),
    and refuse it unless every file GDAL opened for it is the object itself or a sidecar
    next to it with its name (an Erdas Imagine spill file, say), GDAL can list those files,
    and it is no polyglot (:func:`_polyglot`). Every read of a source goes through here.
    Raises :class:`UnreadableSceneError` with a clear reason that quotes nothing the
    object holds."""

    def opened() -> Any:
        restrict_drivers()
        return DatasetReader(_parse_path(src_path), driver=list(SOURCE_DRIVERS))

    try:
        ds = rasterio.env.ensure_env(opened)()
    except gdal_errors() as err:
        if "not recognized as being in a supported file format" in str(err):
            head = rasterio.env.ensure_env(lambda: head_bytes(src_path, IDENTIFY_BYTES))()
            raise UnreadableSceneError(unrecognised(head)) from err
        said = clean(err)
        if _missing(said):
            raise UnreadableSceneError(f"not found: {said}") from err
        raise UnreadableSceneError(f"{cannot_open(src_path)}: {said}") from err
    try:
        try:
            foreign = [f for f in ds.files if not _own_file(src_path, f)]
        except gdal_errors() as err:
            raise UnreadableSceneError(
                f"refused: GDAL cannot list the files of the {ds.driver} dataset, so it"
                " cannot be shown to read nothing but itself"
            ) from err
        if foreign:
            raise UnreadableSceneError(
                f"refused: the {ds.driver} dataset refers to files other than itself ({foreign[0]})"
            )
        problem = _polyglot(ds)
        if problem:
            raise UnreadableSceneError(f"refused: {problem}")
        _settle(ds)
    except BaseException:
        ds.close()
        raise
    return ds


def _settle(ds: Any) -> None:
    """Let GDAL scan what it reads lazily (a TIFF's further IFDs, for masks and overviews)
    now, and take any error it reported and recovered from: GDAL reads on (a broken second
    IFD is skipped; the first image is the raster), and a pending error would otherwise be
    raised by rasterio from some unrelated later call, as if the raster could not be
    opened. What GDAL said is logged (the scene log keeps it, :mod:`compactor.capture`)."""
    take_last_error()
    try:
        ds.mask_flag_enums  # noqa: B018  (the scan is the point)
        if ds.count:
            ds.overviews(1)
    except gdal_errors():
        pass  # a real failure: the next read reports it
    said = take_last_error()
    if said:
        log.warning("GDAL reported an error it read on from: %s", said)


#: The first bytes of each allowed format, and what a user reads when GDAL's driver for it
#: cannot read a file that starts with them.
SIGNATURES: tuple[tuple[tuple[bytes, ...], str], ...] = (
    ((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51"),
     "a JPEG 2000 file GDAL's JP2OpenJPEG driver cannot decode"),
    ((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), "a TIFF GDAL's GTiff driver cannot read"),
    ((b"NITF", b"NSIF"), "a NITF file GDAL's NITF driver cannot read"),
    ((b"EHFA_HEADER_TAG",), "an Erdas Imagine file GDAL's HFA driver cannot read"),
)  # fmt: skip

_SUFFIX_FORMATS = {
    f".{ext}": ("JP2OpenJPEG", "GTiff", "NITF", "HFA").index(driver)
    for driver, exts in SOURCE_EXTENSIONS.items()
    for ext in exts
}


def _missing(said: str) -> bool:
    """Whether GDAL's error says there is nothing at the path (a key, a file, a URL)."""
    low = said.lower()
    return any(
        words in low
        for words in ("does not exist", "no such file or directory", "http response code: 404")
    )


def cannot_open(src_path: str) -> str:
    """The start of the reason for a source GDAL fails to open: what it is meant to be (by
    its name) and that GDAL cannot read it."""
    suffix = "." + src_path.rsplit("/", 1)[-1].rsplit(".", 1)[-1].lower()
    known = _SUFFIX_FORMATS.get(suffix)
    return "not a raster GDAL can open" if known is None else SIGNATURES[known][1]


def unrecognised(head: bytes) -> str:
    """Why no allowed driver took a source whose first bytes are ``head``: a file of an
    allowed format its driver rejects, text another GDAL format would read (refused), or
    something else."""
    for magics, what in SIGNATURES:
        if head.startswith(magics):
            return f"{what}: GDAL does not recognise what follows its signature"
    what = f"not a raster GDAL can open as {SOURCE_FORMATS}"
    if MARKUP.search(head):
        return (
            f"{what}: it holds markup (other formats, such as GDAL VRT, can make GDAL read "
            "other files or URLs and are refused)"
        )
    return f"{what}: it is empty" if not head else f"{what}: it starts as none of them does"


#: Markup in a header's text: what GDAL's XML formats (VRT, WMS, GTI, ...) look for.
MARKUP = re.compile(rb"<\s*[A-Za-z_!?/]")

#: Bytes at the start of a file GDAL's drivers look at to claim it (``GDALOpenInfo``).
IDENTIFY_BYTES = 1024


def _polyglot(ds: Any) -> str | None:
    """Why the opened source may also be read as another format (None: it may not). A NITF
    header is text: its title, comments and other fields can hold a GDAL VRT (or another
    XML format) that a GDAL opening the object by its name, or sniffing its first bytes,
    would take instead. Such a NITF is refused, naming the field, never its text. GeoTIFF,
    JPEG 2000 and Erdas Imagine files start with bytes no text format claims."""
    if ds.driver != "NITF":
        return None
    for key, value in ds.tags().items():
        if key.startswith("NITF_") and MARKUP.search(str(value).encode("utf-8", "replace")):
            return f"the NITF header field {key.removeprefix('NITF_')} holds markup"
    raw = b""
    for name in ("NITFFileHeader", "NITFImageSubheader"):
        raw += _nitf_raw(ds.tags(ns="NITF_METADATA").get(name, ""))
    if MARKUP.search(raw[:IDENTIFY_BYTES]):
        return "the NITF header holds markup another GDAL format could be read from"
    return None


def _nitf_raw(value: str) -> bytes:
    """The raw bytes of a header GDAL reports in its ``NITF_METADATA`` domain
    (``"<length> <base64>"``)."""
    _, _, encoded = value.partition(" ")
    try:
        return base64.b64decode(encoded)
    except ValueError:
        return b""


#: Files an HFA (``.img``) dataset lists beside itself, by its stem: its spill file of
#: large rasters, its reduced-resolution overviews and its auxiliary file.
HFA_STEM_SUFFIXES = (".ige", ".IGE", ".rrd", ".RRD", ".aux", ".AUX")


def _own_file(src_path: str, name: str) -> bool:
    """Whether ``name`` (from GDAL's file list) is the source or a file GDAL reads beside
    it by its name: the sidecars of :func:`~compactor.gdal._sidecars.sidecar_names`
    (``scene.tif.aux.xml``, ``scene.rpb``, ``scene_rpc.txt``...) and HFA's own
    (``scene.img`` -> ``scene.ige``, ``scene.rrd``). Nothing else, whatever it is called:
    a dataset may name its dependent files itself (an HFA spill file), and ``scene.tif``
    beside ``scene.img`` is another scene, never part of this one."""
    folder, _, base = src_path.rpartition("/")
    other_folder, _, other = name.rpartition("/")
    if name == src_path:
        return True
    if other_folder != folder or not other:
        return False
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return is_sidecar_of(base, other) or other in {stem + s for s in HFA_STEM_SUFFIXES}


def read_info(src_path: str) -> RasterInfo:
    """Open a source and describe it; unreadable sources raise a per-scene error."""
    try:
        with open_source(src_path) as ds:
            return RasterInfo.from_dataset(ds)
    except gdal_errors() as err:
        raise UnreadableSceneError(f"not a raster GDAL can open: {clean(err)}") from err
