"""``--max-error noise`` (issue 27): the noise estimator on known noise (integer and float,
with nodata and NaN), the error model against the LERC encoder, the bound chosen per band, a
flat band kept lossless, and verification failing an output whose RMS error exceeds F·σ
although every pixel is within its bound.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import imagecodecs as ic
import numpy as np
import pytest

from compactor.codecs import ErrorBound, parse_max_error
from compactor.encode._choose import choose_profile
from compactor.encode._lossless import choose_encoding
from compactor.encode._sample import SampleRanges
from compactor.encode._write import write_cog
from compactor.errors import VerificationError
from compactor.fidelity import Fidelity, check_noise_rmse, error_rms, estimate_noise, noise_bound
from compactor.fidelity._noise import NoiseEstimate
from compactor.gdal import gdal_env
from compactor.gdal._info import read_info
from compactor.settings._views import Encoding
from compactor.verify._verify import check_output

from .. import rasters


def smooth(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A smooth textured surface (no noise of its own), about 300-1700."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    a, b = rng.uniform(15, 40, 2)
    return 1000 + 400 * np.sin(xx / a) * np.cos(yy / b) + 300 * (xx / shape[1] - 0.5)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.5, 6.0])
def test_integer_noise_is_estimated_with_nodata(sigma: float) -> None:
    rng = np.random.default_rng(int(sigma * 10))
    truth = smooth((600, 500))
    band = np.rint(truth + rng.normal(0, sigma, truth.shape)).astype(np.uint16)
    band[:, :120] = 0  # a nodata collar
    band[300:340, 200:260] = 0
    valid = band != 0
    actual = float(np.std(band[valid] - truth[valid]))  # rounding adds 1/12 to the variance
    est = estimate_noise(band, valid)
    assert est.sigma is not None, est.reason
    assert est.sigma == pytest.approx(actual, rel=0.05)


@pytest.mark.parametrize("sigma", [0.002, 0.05, 1.3])
def test_float_noise_is_estimated_with_nan_and_nodata(sigma: float) -> None:
    rng = np.random.default_rng(7)
    band = (smooth((500, 600)) / 1000 + rng.normal(0, sigma, (500, 600))).astype(np.float32)
    band[:50, :] = np.nan
    band[100:140, 100:300] = -9999
    band[200, 200] = np.inf
    est = estimate_noise(band, band != -9999)  # NaN and infinities never count
    assert est.sigma == pytest.approx(sigma, rel=0.05)


def test_flat_band_and_too_few_pixels_have_no_estimate() -> None:
    flat = np.full((300, 300), 1234, np.uint16)
    est = estimate_noise(flat)
    assert est.sigma is None
    assert "no measurable noise" in est.reason
    sparse = np.zeros((300, 300), np.float32)
    valid = np.zeros(sparse.shape, bool)
    valid[:20, :20] = True
    est = estimate_noise(sparse + np.random.default_rng(1).normal(size=sparse.shape), valid)
    assert est.sigma is None
    assert "fewer than" in est.reason


@pytest.mark.parametrize("bound", [1, 2, 3, 5])
def test_integer_error_model_matches_lerc(bound: int) -> None:
    """LERC on integers with bound E: error in -E+1..E, RMS √((2E²+1)/6) (not E/√3)."""
    rng = np.random.default_rng(bound)
    data = np.rint(smooth((512, 512)) + rng.normal(0, 6, (512, 512))).astype(np.uint16)
    back = ic.lerc_decode(ic.lerc_encode(data, level=bound))
    err = back.astype(np.float64) - data
    assert np.abs(err).max() <= bound
    rms = math.sqrt(float(np.mean(err**2)))
    assert rms <= error_rms(bound, integer=True) * 1.001
    assert rms == pytest.approx(error_rms(bound, integer=True), rel=0.03)
    assert rms > bound / math.sqrt(3)  # the uniform model would under-count it


def test_float_error_model_matches_lerc() -> None:
    rng = np.random.default_rng(3)
    data = (smooth((512, 512)) / 100 + rng.normal(0, 0.05, (512, 512))).astype(np.float32)
    bound = 0.04
    back = ic.lerc_decode(ic.lerc_encode(data, level=bound))
    rms = math.sqrt(float(np.mean((back.astype(np.float64) - data) ** 2)))
    assert rms == pytest.approx(error_rms(bound, integer=False), rel=0.03)


def test_bound_from_noise() -> None:
    # Integers: the largest E with √((2E²+1)/6) <= F·σ.
    assert noise_bound(6.0, 0.3, integer=True) == 3  # RMS 1.78 <= 1.8
    assert noise_bound(3.0, 0.3, integer=True) == 1  # 0.71 <= 0.9 < 1.22
    assert noise_bound(2.0, 0.3, integer=True) == 0  # 0.6 < 0.71: lossless
    assert noise_bound(None, 0.3, integer=True) == 0
    # Floats: E/√3 <= F·σ, 1 % under.
    assert noise_bound(1.0, 0.3, integer=False) == pytest.approx(0.99 * 0.3 * math.sqrt(3))
    for sigma in np.linspace(2.4, 40, 50):
        e = noise_bound(float(sigma), 0.3, integer=True)
        assert error_rms(e, True) <= 0.3 * sigma
        assert error_rms(e + 1, True) > 0.3 * sigma


def test_parse_noise() -> None:
    assert parse_max_error("noise") == ErrorBound((0.3,), noise=True)
    assert parse_max_error("noise:0.5") == ErrorBound((0.5,), noise=True)
    assert parse_max_error("noise:0.5").text() == "noise:0.5"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="fraction"):
        parse_max_error("noise:x")
    with pytest.raises(ValueError, match="above 0"):
        parse_max_error("noise:0")


def _info(path: Path, data: np.ndarray, **profile: object):  # type: ignore[no-untyped-def]
    rasters.write(path, data, **profile)
    return read_info(str(path))


def test_bound_per_band_and_flat_band_lossless(tmp_path: Path) -> None:
    info = _info(tmp_path / "a.tif", np.zeros((3, 64, 64), np.uint16), nodata=0)
    noise = ErrorBound((0.3,), noise=True)
    ranges = SampleRanges(
        [(1, 4000)] * 3,
        noise=[NoiseEstimate(6.2, 10_000), NoiseEstimate(20.0, 10_000), NoiseEstimate(3, 10_000)],
    )
    profile = choose_profile(info, "auto", max_error=noise, ranges=ranges, overviews="full")
    assert profile.codec == "lerc"
    assert profile.max_error == (3.0, 10.0, 1.0)
    assert profile.noise is not None
    assert profile.noise.sigma == (6.2, 20.0, 3)
    assert profile.noise.max_rmse(0) == pytest.approx(1.86)
    assert profile.smallest_error == 1  # one LERC blob per tile: written at the smallest
    # A flat band, and one whose noise allows no whole bound: they stay exact, and so
    # does the scene (LERC holds every band of a tile to one bound), with the reasons.
    ranges = SampleRanges(
        [(1, 4000)] * 3,
        noise=[
            NoiseEstimate(6.2, 10_000),
            NoiseEstimate(None, 10_000, "no measurable noise (flat or synthetic band)"),
            NoiseEstimate(2.0, 10_000),
        ],
    )
    lossless = choose_profile(info, "auto", max_error=noise, ranges=ranges, overviews="full")
    assert lossless.lossless
    assert lossless.codec == "zstd"
    assert lossless.noise is not None
    assert lossless.noise.bounds == (0.0, 0.0, 0.0)
    reasons = lossless.noise.reasons
    assert "band 2 stays exact" in reasons[0]
    assert "flat" in reasons[1]
    assert "no whole bound" in reasons[2]
    assert "band 2 lossless: no measurable noise" in lossless.noise.describe()
    from compactor.cog import NoiseBound

    none = NoiseBound(0.3, (None,) * 4, (0.0,) * 4, ("0 valid 3x3 windows",) * 4)
    assert none.describe().endswith("; bands 1,2,3,4 lossless: 0 valid 3x3 windows")


def test_rmse_check() -> None:
    from compactor.cog import NoiseBound

    nb = NoiseBound(0.3, (5.0, None), (2.0, 0.0), ("", "flat"))
    ok = Fidelity(False, None, None, (2.0, 0.0), 1.0, (1.2, 0.0))
    check_noise_rmse(ok, nb)
    with pytest.raises(VerificationError, match=r"band 1: RMS error 1\.6 exceeds"):
        check_noise_rmse(replace(ok, band_rmse=(1.6, 0.0)), nb)
    with pytest.raises(VerificationError, match=r"band 2: .* kept lossless"):
        check_noise_rmse(replace(ok, band_rmse=(1.0, 0.1)), nb)


def test_run_path_verifies_and_catches_a_writer_over_the_rms(tmp_path: Path) -> None:
    """A uint16 scene (a noisy band with a nodata collar) through the run's path:
    sample, noise, bound, writer, check_output. The same output written with a bound four
    times larger, every pixel within it, fails on its RMS error alone."""
    rng = np.random.default_rng(11)
    noisy = np.rint(smooth((700, 600)) + rng.normal(0, 6, (700, 600))).astype(np.uint16)
    noisy[:, :80] = 0
    src = rasters.write(tmp_path / "src.tif", noisy[None], nodata=0)
    info = read_info(str(src))
    encoding = Encoding(
        codec="auto", quality=None, min_ssim=0.95, allow_webp=False, min_saving=0.0,
        chunk_threshold=2**40, bigtiff="auto", max_error=parse_max_error("noise"),
        overviews="none",
    )  # fmt: skip
    with gdal_env({}):
        choice = choose_encoding(str(src), info, encoding, tmp_path / "scratch")
        profile = choice.profile
        assert profile.noise is not None
        assert profile.noise.sigma[0] == pytest.approx(6.0, rel=0.05)
        assert profile.max_error == (3.0,)
        saving = profile.noise.savings[0]
        assert saving is not None
        assert saving > 0.1
        out = write_cog(str(src), tmp_path / "out.tif", profile, info)
        fid = check_output(str(src), str(out), info, profile)
        assert fid.band_rmse is not None
        assert 0 < fid.band_rmse[0] <= 0.3 * profile.noise.sigma[0]
        over = replace(profile, max_error=(12.0,))
        bad = write_cog(str(src), tmp_path / "over.tif", over, info)
        loose = replace(over, noise=profile.noise)  # every pixel within 12: RMS ~5 > 1.8
        with pytest.raises(VerificationError, match=r"RMS error .* exceeds 0\.3 of its noise"):
            check_output(str(src), str(bad), info, loose)


def test_notebook_profile_lerc_noise(tmp_path: Path) -> None:
    from compactor.errors import ConfigError
    from compactor.notebook._profiles import parse_spec, spec_profile

    spec = parse_spec("lerc:noise")
    assert spec.noise == 0.3
    assert spec.text == "lerc:noise:0.3"
    assert parse_spec("lerc:noise:0.5").noise == 0.5
    info = _info(tmp_path / "a.tif", np.zeros((1, 64, 64), np.uint16))
    with pytest.raises(ConfigError, match="noise"):
        spec_profile(spec, info)  # no sample to estimate on


def test_quantised_integers_get_a_bound_whose_rms_holds(tmp_path: Path) -> None:
    """Scaled DN (every value a multiple of 4, noise σ 2 before scaling: σ ≈ 8): the
    error model of dense integers says ±4 adds RMS 2.1 ≤ 0.3σ, but on a lattice of 4 LERC's
    step of 8 leaves half the pixels 4 off (RMS 2.8), and the run failed verification on
    every such scene. The bound is checked on the sample, and lowered until it holds."""
    rng = np.random.default_rng(5)
    dn = np.rint(smooth((600, 600)) + rng.normal(0, 2, (600, 600)))
    src = rasters.write(tmp_path / "src.tif", (4 * dn).astype(np.uint16)[None], nodata=0)
    info = read_info(str(src))
    encoding = Encoding(
        codec="lerc", quality=None, min_ssim=0.95, allow_webp=False, min_saving=0.0,
        chunk_threshold=2**40, bigtiff="auto", max_error=parse_max_error("noise"),
        overviews="none",
    )  # fmt: skip
    with gdal_env({}):
        profile = choose_encoding(str(src), info, encoding, tmp_path / "scratch").profile
        assert profile.noise is not None
        assert profile.noise.sigma[0] == pytest.approx(8.0, rel=0.1)
        assert profile.max_error is not None
        assert 1 <= profile.max_error[0] < 4
        assert "on the sample" in profile.noise.reasons[0]
        out = write_cog(str(src), tmp_path / "out.tif", profile, info)
        fid = check_output(str(src), str(out), info, profile)  # raised before
        assert fid.band_rmse is not None
        assert 0 < fid.band_rmse[0] <= 0.3 * profile.noise.sigma[0]


def test_report_of_a_scene_written_lossless_claims_no_bound() -> None:
    """The encoding search may find a lossless codec smaller than LERC within the noise
    bound (scaled DN, quiet floats): the report said bound 4 and a 27 % saving for a band
    written exactly in ZSTD. It says bound 0, no saving, and why."""
    from compactor.cog import NoiseBound, Profile
    from compactor.scene._encode_step import band_noise

    nb = NoiseBound(0.3, (8.0,), (4.0,), ("",), (0.27,))
    exact = Fidelity.identical(1)
    (band,) = band_noise(nb, exact, Profile(codec="zstd"))
    assert (band.bound, band.saving, band.rmse) == (0.0, None, 0.0)
    assert band.reason == "written lossless (zstd), not within the bound"
    # Bounded, but every tile kept exact (a float bound below the data's precision).
    (band,) = band_noise(nb, exact, Profile(codec="lerc", max_error=(4.0,)))
    assert (band.bound, band.saving, band.reason) == (
        0.0,
        None,
        "written exact: no tile took the bound",
    )
    bounded = Fidelity(False, None, None, (4.0,), 2.0, (2.0,))
    (band,) = band_noise(nb, bounded, Profile(codec="lerc", max_error=(4.0,)))
    assert (band.bound, band.saving, band.rmse, band.reason) == (4.0, 0.27, 2.0, "")
