"""Profile strings as a notebook gives them (``jpeg:75``, ``zstd:19``, ``lerc:1``,
``lossless:auto`` ...): their syntax and the encoding profile each gives a raster.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..codecs import AUTO_LOSSLESS, LOSSLESS, ErrorBound, parse_max_error, parse_quality
from ..codecs import CODECS as REGISTRY
from ..cog import LEVELS, OverviewPolicy, Profile
from ..encode import (
    Sample,
    choose_profile,
    needs_ranges,
    search_encoding,
    valid_ranges,
)
from ..errors import ConfigError
from ..gdal import RasterInfo

#: Codec names a profile may start with: ``auto`` (the codec a run's ``codec: auto`` picks)
#: and every codec of the registry.
CODECS = ("auto", "lossless", *REGISTRY)


# --- profiles ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileSpec:
    """A profile as asked for: ``jpeg:75`` is codec ``jpeg`` at quality 75, ``zstd:19``
    ZSTD at level 19, ``lerc:1`` LERC within 1 data unit, ``lossless:auto`` the smallest
    lossless encoding of the sample (a run's encoding search)."""

    text: str
    codec: str
    quality: int | None = None
    #: ``codec:auto``: the lowest quality that meets the SSIM bar on the sample (lossy
    #: codecs), or the smallest encoding of that codec (lossless ones, ``lossless``).
    auto: bool = False
    #: ``zstd:19``, ``deflate:12``: the compression level.
    level: int | None = None
    #: ``lerc:2``: the largest error allowed on any valid pixel, in data units.
    max_error: float | None = None
    #: ``lerc:noise``, ``lerc:noise:0.3``: each band's bound set from its noise on the
    #: sample (``--max-error noise``), the added RMS error at most this fraction of σ.
    noise: float | None = None


def parse_spec(text: str) -> ProfileSpec:
    """Check the syntax of a profile string: ``codec``, ``codec:quality`` or ``codec:auto``
    for lossy codecs; ``zstd:LEVEL``, ``deflate:LEVEL``, ``lerc:MAX_ERROR``, ``codec:auto``
    and ``lossless:auto`` for lossless ones."""
    if not isinstance(text, str):
        raise ConfigError(f"a profile is a string like 'jpeg:75' or 'zstd', not {text!r}")
    codec, sep, value = text.strip().lower().partition(":")
    codec, value = codec.strip(), value.strip()
    if codec not in CODECS:
        raise ConfigError(
            f"unknown codec {codec!r} in profile {text!r} (codecs: {', '.join(CODECS)})"
        )
    if codec == "lossless":
        if sep and value != "auto":
            raise ConfigError(f"profile {text!r}: lossless takes only 'auto' (lossless:auto)")
        return ProfileSpec("lossless:auto", codec, auto=True)
    if not sep:
        return ProfileSpec(codec, codec)
    if codec in LOSSLESS:
        return _lossless_spec(text, codec, value)
    try:
        quality = parse_quality(value)
    except ValueError as err:
        raise ConfigError(f"profile {text!r}: {err}") from err
    if quality == "auto":
        return ProfileSpec(f"{codec}:auto", codec, None, auto=True)
    return ProfileSpec(f"{codec}:{quality}", codec, quality)


def _lossless_spec(text: str, codec: str, value: str) -> ProfileSpec:
    if value == "auto":
        return ProfileSpec(f"{codec}:auto", codec, auto=True)
    if codec == "lerc":
        try:
            bound = parse_max_error(value)
        except ValueError as err:
            raise ConfigError(f"profile {text!r}: {err}") from err
        if bound is not None and bound.noise:
            return ProfileSpec(f"lerc:{bound.text()}", codec, noise=bound.values[0])
        if bound is not None and (bound.relative or len(bound.values) > 1):
            raise ConfigError(f"profile {text!r}: give one error bound in data units (lerc:2)")
        error = bound.values[0] if bound else 0.0
        return ProfileSpec(f"lerc:{error:g}", codec, max_error=error)
    levels = LEVELS.get(codec)
    if levels is None:
        raise ConfigError(f"profile {text!r}: {codec} is lossless and takes no level")
    lo, hi = levels
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise ConfigError(f"profile {text!r}: {codec} levels are whole numbers from {lo} to {hi}")
    return ProfileSpec(f"{codec}:{int(value)}", codec, level=int(value))


def spec_profile(
    spec: ProfileSpec,
    info: RasterInfo,
    sample: Sample | None = None,
    overviews: OverviewPolicy = "full",
) -> Profile:
    """The profile ``spec`` gives the raster ``info``: mask, alpha and overview resampling
    chosen as a run would (:func:`~compactor.encode.choose_profile`), overviews under
    the policy given; ``lossless:auto`` and ``zstd:auto`` are searched on ``sample`` (a
    lossy ``codec:auto`` is searched by :func:`compare`)."""
    policy = overviews
    ranges = None
    codec = AUTO_LOSSLESS if spec.codec == "lossless" else spec.codec
    bound = ErrorBound((spec.max_error,)) if spec.max_error else None
    if spec.noise is not None:
        if sample is None:
            raise ConfigError(
                f"{spec.text!r} is set from the noise on a sample; compare() does that"
            )
        bound = ErrorBound((spec.noise,), noise=True)
    if sample is not None and needs_ranges(info, codec, bound, policy):
        ranges = valid_ranges(sample)
    elif policy == "lossy" and needs_ranges(info, codec, None, policy):
        policy = "full"  # no sample to take the overviews' bound from
    profile = choose_profile(
        info, codec, spec.quality, max_error=bound, overviews=policy, ranges=ranges
    )
    if spec.level is not None:
        profile = replace(profile, level=spec.level)
    if spec.auto and profile.lossless:
        if sample is None:
            raise ConfigError(f"{spec.text!r} is searched on a sample; compare() does that")
        only = None if spec.codec == "lossless" else spec.codec
        profile, _ = search_encoding(sample, profile, "default", only)
    return profile


def parse_profile(text: str, info: RasterInfo) -> Profile:
    """The encoding profile ``text`` (``"jpeg:75"``, ``"webp:80"``, ``"zstd:19"``,
    ``"lerc:1"``, ``"auto"`` ...) gives the raster ``info``: its mask, alpha and overview
    resampling are chosen as a run would (:func:`compactor.encode.choose_profile`).
    ``"auto"`` is the codec a run's ``codec: auto`` picks (JPEG for 8-bit imagery of 1 or 3
    colour bands, else ZSTD) at the quality given or 75; the searches (``jpeg:auto``,
    ``lossless:auto``) are per scene, by :func:`compare`. Raises
    :class:`~compactor.errors.UnsupportedCodecError` for an impossible combination (JPEG on
    uint16) and :class:`~compactor.errors.ConfigError` for a malformed string."""
    spec = parse_spec(text)
    if spec.auto:
        raise ConfigError(
            f"{text!r} is searched per scene by compare(); give a fixed profile here "
            "(compare's row for it names the profile found)"
        )
    return spec_profile(spec, info)
