"""The sidecar files GDAL reads for a raster, by name: a scene is a raster and its sidecars.

GDAL looks for these next to a raster it opens (checked against GDAL 3.10's file list of a
GeoTIFF, ``GDAL_DISABLE_READDIR_ON_OPEN=TRUE``/``FALSE``):

* ``<name>.aux.xml`` (PAM: CRS, geotransform, metadata, statistics, nodata), ``<name>.aux``
  and ``<stem>.aux`` (HFA auxiliary files);
* ``<name>.ovr`` / ``.OVR`` (external overviews), ``<name>.msk`` / ``.MSK`` (mask band);
* ``<stem>.rpb`` / ``.RPB``, ``<stem>_rpc.txt`` / ``_RPC.TXT`` (RPCs), ``<stem>.imd`` /
  ``.IMD`` (DigitalGlobe metadata);
* world files: ``<stem>.<e1><eN>w`` (``a.tfw`` for ``a.tif``), ``<stem>.<ext>w``
  (``a.tifw``), ``<stem>.wld``, lower or upper case.

``<name>`` is the raster's file name, ``<stem>`` the name without its last extension.
Pure functions only: discovery groups listed keys with them, the walk names the copies in
scratch with them, and :func:`~compactor.gdal._info.open_source` accepts exactly these
names beside a source.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

#: Appended to the raster's whole name.
NAME_SUFFIXES = (".aux.xml", ".aux", ".ovr", ".OVR", ".msk", ".MSK")
#: Appended to the raster's name without its last extension.
STEM_SUFFIXES = (".aux", ".rpb", ".RPB", "_rpc.txt", "_RPC.TXT", ".imd", ".IMD", ".wld", ".WLD")

#: How a sidecar's name ends (lower case): a key ending so is never a scene of its own.
_SHAPES = (
    ".aux.xml", ".aux", ".ovr", ".msk", ".rpb", "_rpc.txt", ".imd", ".wld",
    ".tfw", ".tifw", ".tiffw", ".j2w", ".jp2w", ".igw", ".imgw", ".nfw", ".ntfw", ".nitfw",
)  # fmt: skip


def _split(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    return (stem, ext) if dot and stem else (name, "")


def sidecar_names(name: str) -> tuple[str, ...]:
    """The names of the files GDAL reads beside a raster named ``name`` (a file name, no
    folder), in a fixed order, without repeats."""
    stem, ext = _split(name)
    names = [name + s for s in NAME_SUFFIXES] + [stem + s for s in STEM_SUFFIXES]
    if len(ext) >= 2:
        for world in (ext[0] + ext[-1] + "w", ext + "w"):
            names += [f"{stem}.{world.lower()}", f"{stem}.{world.upper()}"]
    return tuple(dict.fromkeys(n for n in names if n != name))


def is_sidecar_shaped(name: str) -> bool:
    """Whether a file name is shaped like a sidecar (``x.aux.xml``, ``x.tif.ovr``,
    ``x.rpb``...): such an object is never a scene, with or without its raster."""
    return name.lower().endswith(_SHAPES)


def is_sidecar_of(raster: str, name: str) -> bool:
    """Whether ``name`` is a sidecar GDAL reads for the raster named ``raster`` (file names)."""
    return name in sidecar_names(raster)


@dataclass(frozen=True)
class Group:
    """A raster (a scene) and the sidecars listed beside it (keys, in listing order)."""

    raster: str
    sidecars: tuple[str, ...] = ()


def group_sidecars(keys: Sequence[str]) -> tuple[list[Group], list[str]]:
    """Group keys (``folder/name``, any order) into rasters with their sidecars, and the
    sidecar-shaped keys no single raster claims (alone, or read by two rasters, as
    ``a.rpb`` is by ``a.tif`` and ``a.jp2``): those are never scenes and never moved.
    Every key that is not sidecar-shaped is a raster, in the order given."""
    shaped = {k for k in keys if is_sidecar_shaped(posixpath.basename(k))}
    claims: dict[str, list[str]] = {}
    rasters = [k for k in keys if k not in shaped]
    for raster in rasters:
        folder, name = posixpath.split(raster)
        for side in sidecar_names(name):
            key = posixpath.join(folder, side) if folder else side
            if key in shaped:
                claims.setdefault(key, []).append(raster)
    owned = {key: by[0] for key, by in claims.items() if len(by) == 1}
    order = {k: i for i, k in enumerate(keys)}
    mine: dict[str, list[str]] = {}
    for key, raster in owned.items():
        mine.setdefault(raster, []).append(key)
    groups = [Group(r, tuple(sorted(mine.get(r, ()), key=order.__getitem__))) for r in rasters]
    lone = [k for k in keys if k in shaped and k not in owned]
    return groups, lone


def renamed(raster: str, sidecar: str, new_raster: str) -> str:
    """The name ``sidecar`` (a sidecar of file ``raster``) takes beside the raster's copy
    named ``new_raster``: ``a.tif.aux.xml`` -> ``source.tif.aux.xml``, ``a.rpb`` ->
    ``source.rpb``."""
    if sidecar.startswith(raster):
        return new_raster + sidecar[len(raster) :]
    stem, new_stem = _split(raster)[0], _split(new_raster)[0]
    if sidecar.startswith(stem):
        return new_stem + sidecar[len(stem) :]
    raise ValueError(f"{sidecar!r} is not a sidecar of {raster!r}")
