"""The GDAL drivers a process that reads sources may have: none whose format can make GDAL
read other files, other buckets or URLs named inside a file.

Sources are opened with an allow-list of drivers (:func:`compactor.gdal._info.open_source`),
but GDAL opens nested datasets (a VRT's sources, a sidecar, a subdataset) with every driver
it has. So the drivers below are removed from GDAL in every process that reads a source:
``GDAL_SKIP`` names them for a GDAL that registers its drivers under compactor's
environment, and :func:`restrict_drivers` deregisters them from a GDAL that registered them
before (rasterio registers once per process; GDAL_SKIP is read only then). A process where
one of them is still registered afterwards refuses to read sources.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import threading

import rasterio
import rasterio.env

from ..errors import UnreadableSceneError

#: Drivers never left registered where sources are read (GDAL 3.10 names; those a build
#: lacks are skipped). Each reads what its content names: VRT (and ``vrt://``), GTI
#: (GDAL tile indexes), DERIVED (``DERIVED_SUBDATASET:`` of any dataset), MRF (data and
#: index files, cached sources), PCIDSK (linked channels), KMLSUPEROVERLAY, ESRIC, OZI,
#: ERS, TIL, DIMAP, SAFE, SENTINEL2, RS2, TSX, ECRGTOC, RPFTOC, CPG, PDS, PDS4, ISIS2,
#: ISIS3, VICAR (product files naming their image files), netCDF, HDF5, HDF5Image, Zarr
#: (external links, remote stores, references); and the network drivers WMS, WMTS, WCS,
#: HTTP, DAAS, EEDA, EEDAI, PLMOSAIC, STACTA, STACIT, OGCAPI.
UNSAFE_DRIVERS = (
    "VRT", "GTI", "DERIVED", "MRF", "PCIDSK", "KMLSUPEROVERLAY", "ESRIC", "OZI", "ERS",
    "TIL", "DIMAP", "SAFE", "SENTINEL2", "RS2", "TSX", "ECRGTOC", "RPFTOC", "CPG", "PDS",
    "PDS4", "ISIS2", "ISIS3", "VICAR", "netCDF", "HDF5", "HDF5Image", "Zarr",
    "WMS", "WMTS", "WCS", "HTTP", "DAAS", "EEDA", "EEDAI", "PLMOSAIC", "STACTA", "STACIT",
    "OGCAPI",
)  # fmt: skip

_lock = threading.Lock()
_done = False


def _libgdal() -> ctypes.CDLL | None:
    """The GDAL library rasterio loaded (the one whose drivers it uses), or None."""
    names: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            names = [line.split()[-1] for line in maps if "/libgdal" in line]
    except OSError:
        pass
    here = os.path.dirname(os.path.dirname(rasterio.__file__))
    names += glob.glob(os.path.join(here, "rasterio.libs", "libgdal*"))
    names += glob.glob(os.path.join(here, "rasterio", ".dylibs", "libgdal*"))
    found = ctypes.util.find_library("gdal")
    names += [found] if found else []
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.GDALGetDriverByName.restype = ctypes.c_void_p
        lib.GDALGetDriverByName.argtypes = [ctypes.c_char_p]
        lib.GDALDeregisterDriver.restype = None
        lib.GDALDeregisterDriver.argtypes = [ctypes.c_void_p]
        return lib
    return None


def registered(names: tuple[str, ...] = UNSAFE_DRIVERS) -> list[str]:
    """Which of ``names`` this process's GDAL has registered."""
    with rasterio.env.Env() as env:
        have = env.drivers()
    return [n for n in names if n in have]


def restrict_drivers() -> None:
    """Remove :data:`UNSAFE_DRIVERS` from this process's GDAL (once; a no-op after).
    Raises :class:`UnreadableSceneError` when one is still registered: sources are then
    not read in this process."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        left = registered()
        lib = _libgdal() if left else None
        if lib is not None:
            for name in left:
                handle = lib.GDALGetDriverByName(name.encode())
                if handle:
                    # Deregistered, not destroyed: a dataset of it still open elsewhere in
                    # the process stays valid; no open can reach the driver any more.
                    lib.GDALDeregisterDriver(handle)
            left = registered()
        if left:
            raise UnreadableSceneError(
                f"refused to read sources: GDAL in this process keeps drivers that read "
                f"other files or URLs ({', '.join(left)}) and compactor could not remove them"
            )
        _done = True


_gdal_lib: list[ctypes.CDLL | None] = []


def _lib() -> ctypes.CDLL | None:
    if not _gdal_lib:
        lib = _libgdal()
        if lib is not None:
            lib.CPLGetLastErrorType.restype = ctypes.c_int
            lib.CPLGetLastErrorMsg.restype = ctypes.c_char_p
            lib.CPLErrorReset.restype = None
        _gdal_lib.append(lib)
    return _gdal_lib[0]


#: GDAL's ``CE_Failure``: an error GDAL reports while carrying on (a broken second IFD).
CE_FAILURE = 3


def take_last_error() -> str | None:
    """GDAL's pending error in this thread (None if there is none) and clear it.

    GDAL reports some failures it recovers from (a TIFF's broken second IFD, found when it
    scans for masks and overviews) and carries on; the error stays pending, and rasterio
    then raises it from an unrelated later call that happens to return 3 or 4 (a red or
    green band's colour interpretation). Taking it here keeps it where it belongs."""
    lib = _lib()
    if lib is None:
        return None
    if lib.CPLGetLastErrorType() < CE_FAILURE:
        lib.CPLErrorReset()
        return None
    message = lib.CPLGetLastErrorMsg() or b""
    lib.CPLErrorReset()
    return " ".join(message.decode("utf-8", "replace").split())[:300] or "unknown error"


def head_bytes(path: str, n: int) -> bytes:
    """The first ``n`` bytes of ``path`` (a GDAL path: local, ``/vsis3/``, ``/vsicurl/``),
    read through GDAL's virtual file system under the caller's GDAL environment (b"" if
    they cannot be read)."""
    lib = _lib()
    if lib is None:
        return b""
    lib.VSIFOpenL.restype = ctypes.c_void_p
    lib.VSIFOpenL.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.VSIFReadL.restype = ctypes.c_size_t
    lib.VSIFReadL.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
    lib.VSIFCloseL.argtypes = [ctypes.c_void_p]
    handle = lib.VSIFOpenL(path.encode("utf-8"), b"rb")
    if not handle:
        return b""
    try:
        buf = ctypes.create_string_buffer(n)
        got = lib.VSIFReadL(buf, 1, n, handle)
        return buf.raw[:got]
    finally:
        lib.VSIFCloseL(handle)
