"""Compressed warps (#19): recipes, round trips, error bounds, dither seeds, headers, readers."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from repo_butler.formats import check_version
from warping.errors import FormatError
from warping.exposure import Exposure
from warping.formats.compression import (
    RECIPE_NAMES,
    CompressedExposure,
    CompressionRecipe,
    PlaneCompression,
    Quantization,
    dither_seed,
    get_recipe,
)
from warping.formats.exposure_fits import (
    exposure_from_bytes,
    exposure_to_bytes,
    read_wcs_and_bbox,
)
from warping.masks import MaskPlanes
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.config_compression import COMPRESSION_RECIPES

PLANES = MaskPlanes({"BAD": 0, "SAT": 1, "EDGE": 4, "NO_DATA": 8})
NO_DATA = PLANES.bitmask("NO_DATA")


def _warp_like(n: int = 300, seed: int = 1, *, sigma: float = 4.0) -> Exposure:
    """A warp-shaped exposure: sky noise drawn from its variance plane, a NO_DATA strip (image
    NaN, variance +inf, as the warper leaves uncovered pixels) and a few masked bits."""
    rng = np.random.default_rng(seed)
    var = (sigma**2 * (1 + 0.1 * rng.random((n, n)))).astype(np.float32)
    image = (rng.normal(0.0, 1.0, (n, n)) * np.sqrt(var)).astype(np.float32)
    image[50:60, 40:50] += 500.0  # a bright source: the step comes from the sky, not from it
    mask = np.zeros((n, n), np.int32)
    mask[rng.random((n, n)) < 0.01] |= PLANES.bitmask("SAT")
    strip = np.s_[:, : n // 5]
    image[strip], var[strip], mask[strip] = np.nan, np.inf, NO_DATA
    return Exposure(image, mask, var, mask_planes=PLANES, xy0=(1000, 2000))


def _hdus(data: bytes) -> fits.HDUList:
    return fits.open(io.BytesIO(data))


def test_recipe_names_match_config_choices() -> None:
    assert RECIPE_NAMES == COMPRESSION_RECIPES
    assert MakeWarpConfig().outputCompression.recipe == "none"
    assert get_recipe("none") is None
    for name in RECIPE_NAMES[1:]:
        recipe = get_recipe(name)
        assert recipe is not None and recipe.mask is not None and not recipe.mask.lossy


def test_mask_is_never_lossy() -> None:
    q = PlaneCompression("RICE_1", Quantization(4.0))
    with pytest.raises(ValueError, match="mask plane cannot be quantized"):
        CompressionRecipe("bad", q, q, q)
    exp = _warp_like()
    exp.mask[7, 7] = np.int32(-(2**31))  # the sign bit survives too
    out = exposure_from_bytes(
        exposure_to_bytes(CompressedExposure(exp, get_recipe("lossy"), 5)), "m"
    )  # type: ignore[arg-type]
    np.testing.assert_array_equal(out.mask, exp.mask)


@settings(max_examples=25, deadline=None)
@given(
    image=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40)),
    bits=st.integers(-(2**31), 2**31 - 1),
)
def test_lossless_round_trip_is_bit_exact(image: np.ndarray, bits: int) -> None:
    """Any float32 values (NaN payloads aside, which FITS does not promise), any mask bits."""
    image = np.where(np.isnan(image), np.float32(np.nan), image)
    variance = image[::-1].copy()
    mask = np.full(image.shape, bits, np.int32)
    exp = Exposure(image, mask, variance, mask_planes=PLANES)
    data = exposure_to_bytes(CompressedExposure(exp, get_recipe("lossless"), 1))  # type: ignore[arg-type]
    out = exposure_from_bytes(data, "lossless")
    for a, b in ((out.image, image), (out.variance, variance), (out.mask, mask)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32))


@pytest.mark.parametrize("level", [1.0, 4.0, 16.0, 64.0])
def test_lossy_error_is_within_the_quantization_bound(level: float) -> None:
    exp = _warp_like()
    recipe = get_recipe("lossy", quantize_level=level)
    assert recipe is not None
    data = exposure_to_bytes(CompressedExposure(exp, recipe, 1234))
    out = exposure_from_bytes(data, "lossy")
    good = np.isfinite(exp.image)
    with _hdus(data) as h:
        img_step, var_step = h["IMAGE"].header["RBZSTEP"], h["VARIANCE"].header["RBZSTEP"]
    # every pixel within half a step (float32 rounding of the dequantized value aside)
    err = np.abs(out.image[good].astype(np.float64) - exp.image[good])
    assert err.max() <= 0.5 * img_step * (1 + 1e-5) + 1e-6 * np.abs(exp.image[good]).max()
    verr = np.abs(out.variance[good].astype(np.float64) - exp.variance[good])
    assert verr.max() <= 0.5 * var_step * (1 + 1e-5) + 1e-6 * exp.variance[good].max()
    # the step is sigma / level with sigma the noise that the variance plane gives
    noise = float(np.sqrt(np.median(exp.variance[good])))
    assert img_step == pytest.approx(noise / level, rel=0.05)
    assert err.max() <= 0.5 * noise / level * 1.05
    assert err.max() > 0.3 * img_step  # it is lossy: the bound is reached, not vacuous
    # error is unbiased and uniform-like (dithering): rms ~ step / sqrt(12)
    signed = out.image[good].astype(np.float64) - exp.image[good]
    assert abs(signed.mean()) < 0.02 * img_step
    assert np.sqrt(np.mean(signed**2)) == pytest.approx(img_step / np.sqrt(12), rel=0.05)
    # NO_DATA pixels come back exactly: image NaN, variance +inf
    assert np.isnan(out.image[~good]).all() and np.isposinf(out.variance[~good]).all()


@settings(max_examples=20, deadline=None)
@example(level=1.0, sigma=0.00390625, offset=8192.0, seed=2)  # float32 spacing = sigma / 4
@given(
    level=st.floats(1.0, 1000.0),
    sigma=st.floats(1e-3, 1e3),
    offset=st.floats(-1e4, 1e4),
    seed=st.integers(1, 10_000),
)
def test_lossy_bound_holds_for_any_level_noise_and_seed(
    level: float, sigma: float, offset: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    image = (offset + sigma * rng.normal(size=(40, 70))).astype(np.float32)
    variance = np.full(image.shape, sigma**2, np.float32)
    exp = Exposure(image, np.zeros(image.shape, np.int32), variance, mask_planes=PLANES)
    data = exposure_to_bytes(
        CompressedExposure(exp, get_recipe("lossy", quantize_level=level), seed)
    )  # type: ignore[arg-type]
    out = exposure_from_bytes(data, "lossy")
    with _hdus(data) as h:
        step = h["IMAGE"].header["RBZSTEP"]
    # half a step, plus the float32 rounding of the value read back
    err = np.abs(out.image.astype(np.float64) - image) - 0.5 * np.spacing(np.abs(out.image))
    assert err.max() <= 0.5 * step * (1 + 1e-6)
    # the step follows the noise (IQR of 2800 normal draws), which is measured on float32 values:
    # far from zero their own spacing (up to a quarter of sigma here) widens the IQR by up to two
    # spacings
    spacing = float(np.spacing(np.float32(abs(offset) + 5 * sigma)))
    assert step <= (1.1 * sigma + 2 * spacing / 1.349) / level


def test_dithering_is_deterministic_per_data_id() -> None:
    did = {"tract": 0, "patch": "5,4", "visit": 903988, "filter": "HSC-I"}
    seed = dither_seed(did)
    assert 1 <= seed <= 10_000
    assert dither_seed(dict(reversed(list(did.items())))) == seed
    seeds = {dither_seed({**did, "visit": v}) for v in range(903980, 904000)}
    assert len(seeds) >= 19  # different data IDs get different seeds
    exp = _warp_like()
    recipe = get_recipe("lossy")
    assert recipe is not None
    a = exposure_to_bytes(CompressedExposure(exp, recipe, seed))
    b = exposure_to_bytes(CompressedExposure(exp, recipe, dither_seed(dict(did))))
    c = exposure_to_bytes(CompressedExposure(exp, recipe, seed % 10_000 + 1))
    assert a == b
    assert a != c  # the seed changes the dither, hence the bytes
    ia, ic = exposure_from_bytes(a, "a").image, exposure_from_bytes(c, "c").image
    good = np.isfinite(ia)
    assert not np.array_equal(ia[good], ic[good])


def test_headers_record_the_parameters_and_follow_the_tile_convention() -> None:
    exp = _warp_like()
    recipe = get_recipe("lossy", quantize_level=8.0)
    assert recipe is not None
    data = exposure_to_bytes(CompressedExposure(exp, recipe, 321))
    with _hdus(data) as h:
        assert h[0].header["RBZRECIP"] == "lossy"
        assert [hdu.name for hdu in h[1:4]] == ["IMAGE", "MASK", "VARIANCE"]
        for name in ("IMAGE", "VARIANCE"):
            hdr = h[name].header
            assert hdr["RBZRECIP"] == "lossy" and hdr["RBZALGO"] == "RICE_1"
            assert hdr["RBZQMETH"] == "STDEV_MASKED" and hdr["RBZQLEV"] == 8.0
            assert hdr["RBZDITH"] == "SUBTRACTIVE_DITHER_2" and hdr["RBZSEED"] == 321
            assert hdr["RBZSTEP"] == pytest.approx(hdr["RBZSIGMA"] / 8.0, rel=1e-6)
            assert h[name].data.dtype == np.float32
        assert h["VARIANCE"].header["RBZBLINF"] is True
        assert h["MASK"].header["RBZQMETH"] == "NONE"
        assert h["MASK"].header["RBZALGO"] == "GZIP_2"
    # the raw binary tables: fpack's ZIMAGE convention, standard dither cards
    with fits.open(io.BytesIO(data), disable_image_compression=True) as raw:
        for name, cmp in (("IMAGE", "RICE_1"), ("MASK", "GZIP_2"), ("VARIANCE", "RICE_1")):
            hdr = raw[name].header
            assert hdr["XTENSION"] == "BINTABLE" and hdr["ZIMAGE"] is True
            assert hdr["ZCMPTYPE"] == cmp
            assert (hdr["ZNAXIS1"], hdr["ZNAXIS2"]) == (300, 300)
        for name in ("IMAGE", "VARIANCE"):
            assert raw[name].header["ZQUANTIZ"] == "SUBTRACTIVE_DITHER_2"
            assert raw[name].header["ZDITHER0"] == 321


def test_lossy_planes_holding_nan_and_inf_are_written_losslessly() -> None:
    exp = _warp_like()
    exp.variance[100, 100] = np.nan  # NaN and +inf could not both come back from blanks
    exp.image[:] = 3.0  # a constant plane has no noise to scale a step to
    data = exposure_to_bytes(CompressedExposure(exp, get_recipe("lossy"), 9))  # type: ignore[arg-type]
    out = exposure_from_bytes(data, "fallback")
    for a, b in ((out.image, exp.image), (out.variance, exp.variance)):
        np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32))
    with _hdus(data) as h:
        assert h["IMAGE"].header["RBZQMETH"] == "NONE"
        assert h["VARIANCE"].header["RBZQMETH"] == "NONE"
        assert h[0].header["RBFMTV"] == 1  # nothing needs version 2


def test_format_version_two_only_when_blanks_stand_for_infinity() -> None:
    exp = _warp_like()
    for recipe, version in (("none", 1), ("lossless", 1), ("lossy", 2)):
        r = get_recipe(recipe)
        data = exposure_to_bytes(exp if r is None else CompressedExposure(exp, r, 3))
        with _hdus(data) as h:
            assert h[0].header["RBFMTV"] == version
    # a reader of version 1 refuses a version-2 file instead of reading NaN for +inf
    with pytest.raises(FormatError, match="newer"):
        check_version(2, 1, what="exposure", source="x.fits", error=FormatError)


def test_every_reader_opens_compressed_warps() -> None:
    exp = _warp_like()
    plain = exposure_to_bytes(exp)
    packed = exposure_to_bytes(CompressedExposure(exp, get_recipe("lossless"), 1))  # type: ignore[arg-type]
    assert len(packed) < len(plain)
    # astropy opens every HDU
    with _hdus(packed) as h:
        for hdu in h:
            hdu.verify("exception")
            _ = hdu.data
    # header-only footprint reader: same WCS and bbox as for the plain file
    wcs_p, bbox_p = read_wcs_and_bbox(plain, "plain")
    wcs_c, bbox_c = read_wcs_and_bbox(packed, "packed")
    assert bbox_c == bbox_p == exp.bbox
    assert (wcs_c is None) == (wcs_p is None)
    out = exposure_from_bytes(packed, "packed")
    assert out.xy0 == exp.xy0 and out.mask_planes.bits == exp.mask_planes.bits


def test_config_refuses_unknown_recipe_and_level_out_of_range() -> None:
    from repo_butler.errors import ConfigError

    with pytest.raises(ConfigError, match=r"outputCompression\.recipe must be one of.*lossy"):
        apply_overrides(MakeWarpConfig(), ["outputCompression.recipe=lossyy"])
    for bad in ("0", "0.5", "1001", "-4"):
        with pytest.raises(ConfigError, match=r"outputCompression\.quantizeLevel.*1 to 1000"):
            apply_overrides(MakeWarpConfig(), [f"outputCompression.quantizeLevel={bad}"])
    with pytest.raises(ConfigError, match=r"outputCompression\.ditherSeed.*1 to 10000"):
        apply_overrides(MakeWarpConfig(), ["outputCompression.ditherSeed=-3"])
    ok = apply_overrides(MakeWarpConfig(), ["outputCompression.recipe=lossy",
                                            "outputCompression.quantizeLevel=4"])  # fmt: skip
    assert ok.outputCompression.quantizeLevel == 4.0


@pytest.mark.skipif(shutil.which("funpack") is None, reason="funpack (cfitsio) not installed")
def test_funpack_unpacks_to_the_same_exposure(tmp_path: Path) -> None:
    """cfitsio's funpack reads the tiles as astropy does; the unpacked file is a plain exposure
    file (its cards, +inf restoration and tables included) with the same pixels."""
    exp = _warp_like()
    packed = tmp_path / "w.fits"
    packed.write_bytes(exposure_to_bytes(CompressedExposure(exp, get_recipe("lossy"), 77)))  # type: ignore[arg-type]
    unpacked = tmp_path / "u.fits"
    subprocess.run(["funpack", "-O", str(unpacked), str(packed)], check=True)
    with fits.open(unpacked) as h:
        assert [type(x).__name__ for x in h[1:4]] == ["ImageHDU"] * 3
    ours = exposure_from_bytes(packed.read_bytes(), "packed")
    theirs = exposure_from_bytes(unpacked.read_bytes(), "unpacked")
    for a, b in ((ours.image, theirs.image), (ours.variance, theirs.variance)):
        np.testing.assert_array_equal(a, b)  # the same values (NaN payloads may differ)
        np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b))
    assert np.isposinf(theirs.variance[np.isnan(exp.image)]).all()
    np.testing.assert_array_equal(ours.mask, exp.mask)
    np.testing.assert_array_equal(theirs.mask, exp.mask)
