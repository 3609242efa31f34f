"""LiteWcs (astropy-free zenithal + SIP WCS) against astropy/wcslib as the independent truth."""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warping.warp.lite_wcs import PROJECTIONS, LiteWcs, pair_transform

SKY_TOL_DEG = 1e-10  # ≈ 0.36 µas
PIX_TOL = 1e-8  # against astropy's inverse
ROUNDTRIP_TOL = 1e-9


def sky_sep_deg(ra1: Any, dec1: Any, ra2: Any, dec2: Any) -> np.ndarray:
    """Angular separation via unit-vector chord (accurate at tiny separations)."""

    def vec(ra: Any, dec: Any) -> np.ndarray:
        ra, dec = np.radians(ra), np.radians(dec)
        return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])

    chord = np.linalg.norm(vec(ra1, dec1) - vec(ra2, dec2), axis=0)
    return np.degrees(2.0 * np.arcsin(chord / 2.0))


def astropy_wcs(cards: dict[str, Any]) -> WCS:
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header)


def base_cards(
    proj: str,
    crval: tuple[float, float],
    *,
    form: str = "CD",
    scale: float = 2e-4,
    rot: float = 25.0,
    flip: bool = True,
    crpix: tuple[float, float] = (1000.5, 800.25),
) -> dict[str, Any]:
    """Header cards with a rotated (and optionally flipped) linear part in the given form."""
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    sx = -scale if flip else scale
    cards: dict[str, Any] = {
        "CTYPE1": f"RA---{proj}",
        "CTYPE2": f"DEC--{proj}",
        "CRVAL1": crval[0],
        "CRVAL2": crval[1],
        "CRPIX1": crpix[0],
        "CRPIX2": crpix[1],
    }
    if form == "CD":
        cards.update(CD1_1=sx * c, CD1_2=-scale * s, CD2_1=sx * s, CD2_2=scale * c)
    elif form == "PC":
        cards.update(PC1_1=c, PC1_2=-s * 1.3, PC2_1=s, PC2_2=c, CDELT1=sx, CDELT2=scale / 1.3)
    elif form == "CROTA":
        cards.update(CDELT1=sx, CDELT2=scale, CROTA2=rot)
    return cards


def grid_points(n: int = 2000, lo: float = -600.0, hi: float = 2600.0, seed: int = 1) -> Any:
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, n), rng.uniform(lo, hi, n)


def check_against_astropy(cards: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    ref = astropy_wcs(cards)
    lite = LiteWcs.from_header(cards)
    assert lite is not None, cards
    ra_ref, dec_ref = ref.all_pix2world(x, y, 0)
    ra, dec = lite.pixel_to_world_values(x, y)
    ok = np.isfinite(ra_ref)
    assert np.array_equal(ok, np.isfinite(ra)), "validity differs from astropy"
    assert np.all((ra[ok] >= 0.0) & (ra[ok] < 360.0))
    sky = float(np.max(sky_sep_deg(ra[ok], dec[ok], ra_ref[ok], dec_ref[ok])))
    assert sky <= SKY_TOL_DEG
    if ref.sip is not None:
        px, py = ref.all_world2pix(
            ra_ref[ok], dec_ref[ok], 0, tolerance=1e-12, maxiter=200, quiet=True
        )
    else:
        px, py = ref.wcs_world2pix(ra_ref[ok], dec_ref[ok], 0)
    qx, qy = lite.world_to_pixel_values(ra_ref[ok], dec_ref[ok])
    pix = float(np.max(np.hypot(qx - px, qy - py)))
    assert pix <= PIX_TOL
    # round trip through unit vectors: the Newton inverse itself, to 1e-9 px
    vx, vy = lite.vector_to_pixel(lite.pixel_to_vector(x[ok], y[ok]))
    rt = float(np.max(np.hypot(vx - x[ok], vy - y[ok])))
    assert rt <= ROUNDTRIP_TOL
    # through degrees: also limited by the float64 spacing of longitudes near 360° (5.7e-14°)
    scale = math.sqrt(abs(np.linalg.det(lite._lin)))
    rx, ry = lite.world_to_pixel_values(ra[ok], dec[ok])
    rt_deg = float(np.max(np.hypot(rx - x[ok], ry - y[ok])))
    assert rt_deg <= max(ROUNDTRIP_TOL, 4 * np.spacing(360.0) / scale)
    # from_astropy builds the same transform
    via_astropy = LiteWcs.from_astropy(ref)
    assert via_astropy is not None
    ra2, dec2 = via_astropy.pixel_to_world_values(x[ok], y[ok])
    assert np.max(sky_sep_deg(ra2, dec2, ra[ok], dec[ok])) <= SKY_TOL_DEG
    return {"sky": sky, "pix": pix, "roundtrip": rt, "roundtrip_deg": rt_deg}


CRVALS = [(150.0, 2.0), (0.02, -30.0), (359.98, 45.0), (10.0, 89.95), (200.0, 90.0), (5.0, -90.0)]


@pytest.mark.parametrize("proj", PROJECTIONS)
@pytest.mark.parametrize("form", ["CD", "PC", "CROTA"])
@pytest.mark.parametrize("crval", CRVALS, ids=lambda c: f"{c[0]}_{c[1]}")
def test_projection_matches_astropy(proj: str, form: str, crval: tuple[float, float]) -> None:
    x, y = grid_points()
    check_against_astropy(base_cards(proj, crval, form=form), x, y)


@pytest.mark.parametrize("proj", PROJECTIONS)
def test_wide_field_and_unflipped(proj: str) -> None:
    """30° from the reference point (0.02°/px), no flip: exercises the projection formulas."""
    cards = base_cards(proj, (33.0, -60.0), scale=0.02, flip=False, rot=-70.0)
    x, y = grid_points(3000, -500.0, 2500.0)
    check_against_astropy(cards, x, y)


def test_ra_wraps_across_zero() -> None:
    cards = base_cards("TAN", (0.01, 5.0), scale=1e-4)
    lite = LiteWcs.from_header(cards)
    assert lite is not None
    x, y = grid_points()
    ra, _dec = lite.pixel_to_world_values(x, y)
    assert ra.min() < 0.1 and ra.max() > 359.9  # both sides of RA = 0 present, in [0, 360)
    check_against_astropy(cards, x, y)


@pytest.mark.parametrize("lonpole", [170.0, 0.0, -35.0])
def test_lonpole_latpole_cards(lonpole: float) -> None:
    cards = base_cards("STG", (80.0, 40.0)) | {"LONPOLE": lonpole, "LATPOLE": 40.0}
    lite = LiteWcs.from_header(cards)
    assert lite is not None and lite.lonpole == lonpole
    check_against_astropy(cards, *grid_points())


def test_pole_default_lonpole_is_zero() -> None:
    lite = LiteWcs.from_header(base_cards("TAN", (12.0, 90.0)))
    ref = astropy_wcs(base_cards("TAN", (12.0, 90.0)))
    assert lite is not None
    assert {k: v for k, v, _ in lite.to_cards()}["LONPOLE"] == ref.wcs.lonpole == 0.0


def test_validity_domain() -> None:
    """SIN outside its disc / TAN on the far hemisphere are NaN, as astropy."""
    sin = LiteWcs.from_header(base_cards("SIN", (0.0, 0.0), scale=0.05))
    assert sin is not None
    ra, dec = sin.pixel_to_world_values([1000.0, 3000.0], [800.0, 800.0])  # 100° off: outside
    assert np.isfinite(ra[0]) and np.isnan(ra[1]) and np.isnan(dec[1])
    tan = LiteWcs.from_header(base_cards("TAN", (0.0, 0.0)))
    assert tan is not None
    x, y = tan.world_to_pixel_values([0.0, 180.0], [0.0, 0.0])
    assert np.isfinite(x[0]) and np.isnan(x[1]) and np.isnan(y[1])


# ---- SIP ---------------------------------------------------------------------------------------


def sip_cards(
    order: int, coeffs: list[float], distortion_px: float, rot: float, crval: Any
) -> dict[str, Any]:
    """TAN-SIP with random terms of degree 2..order, ``distortion_px`` at the 2048x4096 corners."""
    cards = base_cards("TAN", crval, scale=0.168 / 3600, rot=rot, crpix=(1024.5, 2048.5))
    cards["CTYPE1"] += "-SIP"
    cards["CTYPE2"] += "-SIP"
    cards["A_ORDER"] = cards["B_ORDER"] = order
    radius = math.hypot(1024.0, 2048.0)
    terms = [(p, d - p) for d in range(2, order + 1) for p in range(d + 1)]
    it = iter(coeffs)
    for name in ("A", "B"):
        for p, q in terms:
            cards[f"{name}_{p}_{q}"] = next(it) * distortion_px / len(terms) / radius ** (p + q)
    return cards


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.integers(2, 4),
    coeffs=st.lists(st.floats(-1.0, 1.0), min_size=28, max_size=28),
    distortion=st.floats(0.5, 8.0),
    rot=st.floats(-180.0, 180.0),
    crval=st.tuples(st.floats(0.0, 359.999), st.floats(-89.0, 89.0)),
)
def test_random_tan_sip_matches_astropy(
    order: int, coeffs: list[float], distortion: float, rot: float, crval: tuple[float, float]
) -> None:
    cards = sip_cards(order, coeffs, distortion, rot, crval)
    x, y = grid_points(1500, -300.0, 4400.0, seed=order)
    y = y * 1.0
    x = x * 0.5
    check_against_astropy(cards, x, y)


def test_sip_inverse_speed_bench_like(capsys: pytest.CaptureFixture[str]) -> None:
    """The warp grid case: 421x421 destination nodes mapped into a TAN-SIP CCD (timing printed)."""
    cards = sip_cards(3, [0.7, -0.4, 0.2] + [0.5] * 25, 5.0, 0.0, (150.0, 2.0))
    src = LiteWcs.from_header(cards)
    dest = LiteWcs.from_header(base_cards("TAN", (150.0, 2.0), scale=0.2 / 3600, rot=30.0))
    assert src is not None and dest is not None
    yy, xx = np.mgrid[-1:4200:10, -1:4200:10].astype(float)
    ra, dec = dest.pixel_to_world_values(xx.ravel(), yy.ravel())
    times, pair_times = [], []
    for _ in range(5):
        t0 = time.process_time()
        x, y = src.world_to_pixel_values(ra, dec)
        times.append(time.process_time() - t0)
        t0 = time.process_time()
        px, py = pair_transform(src, dest)(xx.ravel(), yy.ravel())
        pair_times.append(time.process_time() - t0)
    ref = astropy_wcs(cards)
    t0 = time.process_time()
    ax, ay = ref.all_world2pix(ra, dec, 0, tolerance=1e-12, maxiter=100, quiet=True)
    t_astropy = time.process_time() - t0
    assert np.max(np.hypot(x - ax, y - ay)) <= PIX_TOL
    assert np.max(np.hypot(px - x, py - y)) <= 1e-9
    with capsys.disabled():
        print(
            f"\n[lite_wcs] {ra.size} points TAN-SIP world_to_pixel: {min(times) * 1e3:.1f} ms CPU "
            f"(pixel-pair transform {min(pair_times) * 1e3:.1f} ms; astropy all_world2pix "
            f"tolerance=1e-12: {t_astropy * 1e3:.0f} ms)"
        )


def test_sip_nonconvergent_points_are_nan() -> None:
    """Where ``u + A(u, v) = U`` has no solution Newton cannot converge: NaN, not junk."""
    linear = base_cards("TAN", (10.0, 10.0), scale=1e-4, crpix=(1.0, 1.0))
    cards = linear | {"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP"}
    cards |= {"A_ORDER": 2, "B_ORDER": 2, "A_2_0": 1e-4}  # u + 1e-4 u² >= -2500 for every u
    lite, plain = LiteWcs.from_header(cards), LiteWcs.from_header(linear)
    assert lite is not None and plain is not None
    ra, dec = lite.pixel_to_world_values([100.0, -300.0], [100.0, 50.0])
    far_ra, far_dec = plain.pixel_to_world_values(-3000.0, 0.0)  # intermediate U = -3000
    x, y = lite.world_to_pixel_values(np.r_[ra, far_ra], np.r_[dec, far_dec])
    assert np.allclose(x[:2], [100.0, -300.0], atol=1e-9)
    assert np.allclose(y[:2], [100.0, 50.0], atol=1e-9)
    assert np.isnan(x[2]) and np.isnan(y[2])


# ---- what is (not) supported -----------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"CTYPE1": "RA---TPV", "CTYPE2": "DEC--TPV", "PV1_1": 1.0, "PV2_1": 1.0},
        {"CTYPE1": "RA---CAR", "CTYPE2": "DEC--CAR"},
        {"CTYPE1": "RA---ZPN", "CTYPE2": "DEC--ZPN", "PV2_1": 1.0},
        {"CTYPE1": "RA---AZP", "CTYPE2": "DEC--AZP"},
        {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--STG"},
        {"CTYPE1": "DEC--TAN", "CTYPE2": "RA---TAN"},
        {"CTYPE1": "RA---TAN", "CTYPE2": "GLAT-TAN"},
        {"CTYPE1": "FREQ", "CTYPE2": "DEC--TAN"},
        {"PV2_1": 0.1},
        {"CPDIS1": "Lookup", "DP1": "EXTVER: 1"},
        {"D2IMDIS1": "Lookup"},
        {"WCSAXES": 3},
        {"NAXIS": 3},
        {"CTYPE3": "FREQ"},
        {"CUNIT1": "arcsec", "CUNIT2": "arcsec"},
        {"PC1_1": 1.0},  # CD and PC together
        {"CDELT1": 2.0},  # CD and a non-unit CDELT
        {"CRVAL1": "150"},
        {"CD1_1": True},
        {"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP"},  # -SIP without coefficients
        {"A_ORDER": 2},  # B_ORDER missing
        {"CD1_1": 0.0, "CD1_2": 0.0},  # singular
    ],
)
def test_unsupported_headers_give_none(change: dict[str, Any]) -> None:
    cards = base_cards("TAN", (150.0, 2.0)) | change
    assert LiteWcs.from_header(cards) is None


def test_missing_ctype_gives_none() -> None:
    cards = base_cards("TAN", (150.0, 2.0))
    del cards["CTYPE2"]
    assert LiteWcs.from_header(cards) is None


def test_from_astropy_rejects_other_distortions() -> None:
    tpv_cards = {"CTYPE1": "RA---TPV", "CTYPE2": "DEC--TPV", "PV1_1": 1.0, "PV2_1": 1.0}
    tpv = astropy_wcs(base_cards("TAN", (1.0, 2.0)) | tpv_cards | {"PV1_4": 1e-3})
    assert LiteWcs.from_astropy(tpv) is None
    car = astropy_wcs(base_cards("CAR", (1.0, 2.0)))
    assert LiteWcs.from_astropy(car) is None
    three = WCS(naxis=3)
    assert LiteWcs.from_astropy(three) is None


def test_galactic_axes_supported() -> None:
    cards = base_cards("ZEA", (120.0, -5.0)) | {"CTYPE1": "GLON-ZEA", "CTYPE2": "GLAT-ZEA"}
    lite = LiteWcs.from_header(cards)
    assert lite is not None and lite.axes == ("GLON", "GLAT")
    check_against_astropy(cards, *grid_points())


# ---- serialisation ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["CD", "PC"])
def test_to_cards_round_trip(form: str) -> None:
    cards = sip_cards(3, [0.3] * 28, 4.0, 12.0, (210.0, -40.0))
    if form == "PC":
        for key in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
            cards[key.replace("CD", "PC")] = cards.pop(key) / 5e-5
        cards.update(CDELT1=5e-5, CDELT2=5e-5)
    cards |= {"RADESYS": "FK5", "EQUINOX": 2000.0}
    lite = LiteWcs.from_header(cards)
    assert lite is not None
    out = {k: v for k, v, _ in lite.to_cards()}
    again = LiteWcs.from_header(out)
    assert again == lite
    header = fits.Header()  # an astropy Header works as the card mapping too
    for key, value, comment in lite.to_cards():
        header[key] = (value, comment)
    header["HISTORY"] = "commentary cards are ignored"
    assert LiteWcs.from_header(header) == lite
    assert out["RADESYS"] == "FK5" and out["EQUINOX"] == 2000.0
    assert ("CD1_1" in out) == (form == "CD")
    x, y = grid_points(500)
    ra, dec = lite.pixel_to_world_values(x, y)
    ra2, dec2 = astropy_wcs(out).all_pix2world(x, y, 0)
    assert np.max(sky_sep_deg(ra, dec, ra2, dec2)) <= SKY_TOL_DEG


def test_shapes_and_scalars() -> None:
    lite = LiteWcs.from_header(base_cards("TAN", (150.0, 2.0)))
    assert lite is not None
    ra, dec = lite.pixel_to_world_values(3.0, 4.0)
    assert ra.shape == () and dec.shape == ()
    grid = np.zeros((7, 5))
    ra, dec = lite.pixel_to_world_values(grid, 2.0)
    assert ra.shape == (7, 5)
    x, y = lite.world_to_pixel_values(ra, dec)
    assert x.shape == (7, 5) and np.allclose(x, 0.0, atol=1e-9) and np.allclose(y, 2.0, atol=1e-9)
    vec = lite.pixel_to_vector(grid, grid)
    assert vec.shape == (3, 7, 5) and np.allclose(np.sum(vec**2, axis=0), 1.0)
    vx, _vy = lite.vector_to_pixel(vec)
    assert np.allclose(vx, 0.0, atol=1e-9)


@pytest.mark.parametrize("crota", [{"CROTA1": 0.0}, {"CROTA2": 33.0, "CROTA1": 33.0}])
def test_crota_variants(crota: dict[str, float]) -> None:
    cards = base_cards("TAN", (250.0, 36.0), form="none") | {"CDELT1": -2e-4, "CDELT2": 2e-4}
    check_against_astropy(cards | crota, *grid_points())


def test_lone_nonzero_crota1_falls_back() -> None:
    cards = base_cards("TAN", (250.0, 36.0), form="none") | {"CDELT1": -2e-4, "CDELT2": 2e-4}
    assert LiteWcs.from_header(cards | {"CROTA1": 10.0}) is None


def test_inputs_are_not_modified() -> None:
    cards = sip_cards(3, [0.4] * 28, 5.0, 10.0, (150.0, 2.0))
    lite = LiteWcs.from_header(cards)
    assert lite is not None
    x, y = grid_points(40000)  # more than one chunk
    x0, y0 = x.copy(), y.copy()
    ra, dec = lite.pixel_to_world_values(x, y)
    ra0, dec0 = ra.copy(), dec.copy()
    lite.world_to_pixel_values(ra, dec)
    pair_transform(lite, lite)(x, y)
    assert np.array_equal(x, x0) and np.array_equal(y, y0)
    assert np.array_equal(ra, ra0) and np.array_equal(dec, dec0)


def test_pickle_round_trip() -> None:
    """Executors (Dask) ship WCSs between processes: the copy must be identical."""
    import pickle

    lite = LiteWcs.from_header(sip_cards(3, [0.2] * 28, 3.0, 5.0, (150.0, 2.0)))
    assert lite is not None
    copy = pickle.loads(pickle.dumps(lite))
    x, y = grid_points(100)
    assert copy == lite
    assert np.array_equal(copy.pixel_to_world_values(x, y), lite.pixel_to_world_values(x, y))
