"""A one-task scene verified from memory: the tile writer checks every full-resolution tile
as it encodes it, against the source pixels it read to encode it
(:func:`~compactor.encode.write_checked`); the written file then gets the checks of its
structure and bytes only.

What the in-memory checks measure is what :func:`~compactor.verify.check_output` measures
by reading both files with GDAL: the same pixels (lossy tiles decoded by GDAL's own
drivers), the same validity (below), SSIM by the same definition (the chunked path's strip
sums and seams, :class:`~compactor.verify.SceneQuality`, equal the whole-image value). The
file's checks (:func:`check_written`): a valid COG; GDAL decodes every overview level (as
today: overviews are decoded, not compared); the metadata and mask kinds GDAL reads from it
are the source's; and every image and mask tile's bytes at the offsets its IFDs give have
the CRC-32 of the bytes checked in memory.

**The same view of the source.** Verification holds an output to the source's dataset mask
as GDAL reports it (:func:`~compactor.fidelity.source_validity`, per-band masks for exact
and bounded outputs); the tile writer reads the validity the profile names (nodata, the
alpha band, band 1's mask). :func:`memory_verifiable` takes the in-memory path only where
the two are the same by GDAL's rules; every other scene (and every scene GDAL's COG driver
writes) is verified by reading the output back, as before.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import rasterio
from rasterio.enums import MaskFlags

from .. import timing
from ..cog import EncodedCog, Profile
from ..encode import CheckedWrite, encode_cog, uses_tile_writer, write_checked
from ..errors import VerificationError
from ..fidelity import ALL_VALID, ALPHA, NODATA, WIN, Fidelity, kept_bands, same_nodata
from ..gdal import RasterInfo, clean, gdal_errors, open_source
from ._chunked import SceneQuality, check_tile_crcs
from ._verify import check_metadata, check_output, check_overviews, validate_cog


def memory_verifiable(src: Any, info: RasterInfo, profile: Profile) -> bool:
    """Whether the tile writer's view of the source's validity is the one verification
    holds the output to (``src``: the source open in GDAL), so the scene can be verified
    from memory."""
    if not uses_tile_writer(profile, info):
        return False
    exact_or_bounded = profile.lossless or profile.bounded
    if not exact_or_bounded and min(info.width, info.height) < WIN:
        return False  # SSIM with a window shrunk to the image (skimage's rule)
    flags = [frozenset(f) for f in src.mask_flag_enums]
    nodata = src.nodatavals[0]
    one_nodata = nodata is not None and all(same_nodata(nodata, v) for v in src.nodatavals)
    alpha_ok = info.dtype == "uint8" and info.alpha_index is not None
    if ALPHA in flags and not (alpha_ok and flags[0] == ALPHA):
        return False  # GDAL's mask of a 16-bit alpha band is not "alpha > 0"
    dataset = all(MaskFlags.per_dataset in f and MaskFlags.alpha not in f for f in flags)
    if exact_or_bounded:
        # Masks compared as pixels (nodata, alpha), or one per-dataset mask (band 1's).
        simple = all(f in (ALL_VALID, NODATA, ALPHA) for f in flags)
        return simple or dataset
    if all(f == ALL_VALID for f in flags):
        return profile.mask == "none"
    if all(f == NODATA for f in flags) and one_nodata:
        # Verification's nodata validity is over every band: none may have been dropped.
        return profile.mask == "nodata" and len(kept_bands(info, profile)) == info.count
    if flags[0] == ALPHA:
        return profile.mask == "alpha"
    return dataset and profile.mask == "dataset"


def encode_verified(
    src_path: str, dst: Path, info: RasterInfo, profile: Profile
) -> tuple[EncodedCog, Fidelity]:
    """Encode ``src_path`` as a COG at ``dst`` and verify it: from memory where
    :func:`memory_verifiable`, else by reading it back (:func:`check_output`)."""
    with open_source(src_path) as src:
        in_memory = memory_verifiable(src, info, profile)
    if not in_memory:
        cog = encode_cog(src_path, dst, profile, info)
        return cog, check_output(src_path, str(dst), info, profile)
    written = write_checked(src_path, dst, profile, info)
    return written.cog, check_written(src_path, written, info, profile)


def check_written(
    src_path: str, written: CheckedWrite, info: RasterInfo, profile: Profile
) -> Fidelity:
    """The scene's fidelity from the in-memory checks, once the written file passes its
    own: a valid COG whose overviews GDAL decodes, the source's metadata and masks, and
    every tile's bytes the ones checked. Raises :class:`VerificationError`."""
    quality = SceneQuality(written.job)
    for chunk in written.chunks:  # (a copy: add() lets go of the seams it measured)
        quality.add(replace(chunk, quality=replace(chunk.quality)))
    fidelity = quality.fidelity()
    path = str(written.cog.path)
    with timing.stage("validate COG"):
        validate_cog(path)
    try:
        with timing.stage("tile CRCs"):
            check_tile_crcs(written.cog.path, written.parts, written.job)
        with timing.stage("verify decode"):
            check_overviews(path, profile)
        with (
            timing.stage("metadata"),
            open_source(src_path) as src,
            rasterio.open(path, driver="GTiff") as out,
        ):
            check_metadata(src, out, info, profile)
    except gdal_errors() as err:
        raise VerificationError(f"reading back failed: {clean(err)}") from err
    return fidelity
