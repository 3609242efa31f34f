"""A small synthetic direct warp with every component the afw-layout writer stores, and the
checks that two warps are the same (for the afw-layout tests)."""

from __future__ import annotations

import numpy as np

from warping.apcorr import ApCorrMap
from warping.coadd_inputs import CcdRecord, CoaddInputs, VisitRecord
from warping.coadd_psf import CoaddPsf
from warping.exposure import Exposure, VisitInfo
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.photocalib import ChebyshevBoundedField, PhotoCalib
from warping.polygon import ValidPolygon
from warping.psf.analytic import GaussianPsf, VariableGaussianPsf
from warping.psf.registry import deep_equal
from warping.warp.testing import make_sip_wcs, make_tan_wcs

#: Header cards, a nested value, NaN, a key that is no FITS keyword, one the layout uses
#: (``EXPTIME``) and a string too long for one card.
METADATA = {
    "BUNIT": "nJy", "PSFMATCH_NOISE": {"lags": [[1, 0]], "f": 1.5}, "N": 3, "lower case": "x",
    "NAN": float("nan"), "EXPTIME": "not the visit's", "T": True, "F": 0.1,
    "CCDS_UNUSABLE": ",".join(str(i) for i in range(40)),
}  # fmt: skip


def synthetic_warp() -> Exposure:
    """A 60x50 direct warp at xy0 (1000, 2000) from two CCDs of one visit: a TAN CCD with a
    Gaussian PSF, a valid polygon, aperture corrections and a spatially varying PhotoCalib, and a
    TAN-SIP CCD with a VariableGaussianPsf (no afw persistable: stored as a RepoButlerPsf)."""
    rng = np.random.default_rng(26)
    tract = make_tan_wcs(150.0, 2.0, (1030.0, 2025.0), 0.2)
    ccds = []
    for k, psf in enumerate(
        (GaussianPsf(1.7, 15), VariableGaussianPsf((1.6, 0.1), (0.02,), (0.0, 0.01), size=17))
    ):
        bbox = Box2I(0, 0, 200, 400)
        field = ChebyshevBoundedField(bbox, np.array([[2.0, 0.01], [0.02, 0.0]]))
        ccds.append(
            CcdRecord(
                id=1000 + k, ccd=16 + k, visit=903988, goodpix=1500 - k, weight=1.0,
                filter="HSC-I", bbox=bbox,
                wcs=(
                    make_tan_wcs(150.0, 2.0, (100.0, 200.0), 0.17) if k == 0  # a TAN-SIP CCD too
                    else make_sip_wcs(149.996, 2.0, (400, 200), 0.17, 2.0, rotation_deg=1.5)
                ),
                psf=psf,
                photo_calib=PhotoCalib(None, 0.01, field) if k == 0 else PhotoCalib(2.5, 0.02),
                valid_bbox=Box2I(2, 3, 196, 394),
                data_id={"visit": 903988, "ccd": 16 + k, "filter": "HSC-I"},
                valid_polygon=(
                    ValidPolygon(np.array([[-0.5, -0.5], [199.5, -0.5], [199.5, 399.5],
                                           [-0.5, 300.0], [-0.5, -0.5]]))
                    if k == 0 else None
                ),
                ap_corr_map=(
                    ApCorrMap({"base_PsfFlux_instFlux": ChebyshevBoundedField(
                        bbox, np.array([[0.97, 0.001, 0.0002]]))})
                    if k == 0 else None
                ),
            )
        )  # fmt: skip
    planes = MaskPlanes.default()
    shape = (50, 60)
    mask = rng.integers(0, 1 << 6, shape).astype(np.int32)
    image = rng.normal(0.0, 3.0, shape).astype(np.float32)
    image[0, :5] = np.nan
    warp = Exposure(
        image,
        mask,
        rng.uniform(8.0, 10.0, shape).astype(np.float32),
        mask_planes=planes,
        xy0=(1000, 2000),
        wcs=tract,
        photo_calib=PhotoCalib(1.0),
        visit_info=VisitInfo(200.0, 57000.02, 150.01, 1.99, 90.0, 1.1),
        filter="HSC-I",
        id=180797616,
        metadata=METADATA,
        coadd_inputs=CoaddInputs([VisitRecord(903988, 2999, float("nan"), "HSC-I")], ccds),
    )
    warp.psf = CoaddPsf(ccds, tract)
    return warp


def grid(bbox: Box2I, n: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """``n`` x ``n`` parent positions over ``bbox``'s pixel edges."""
    xs, ys = np.meshgrid(
        np.linspace(bbox.x0 - 0.5, bbox.x1 + 0.5, n), np.linspace(bbox.y0 - 0.5, bbox.y1 + 0.5, n)
    )
    return xs.ravel(), ys.ravel()


def max_sky_difference(a: object, b: object, bbox: Box2I) -> float:
    """Largest RA/Dec difference (deg) of two WCSs over ``bbox`` (RA scaled by cos Dec)."""
    xs, ys = grid(bbox)
    ra1, dec1 = a.pixel_to_world_values(xs, ys)  # type: ignore[attr-defined]
    ra2, dec2 = b.pixel_to_world_values(xs, ys)  # type: ignore[attr-defined]
    dra = (np.asarray(ra1) - np.asarray(ra2) + 180.0) % 360.0 - 180.0
    return float(max(np.abs(dra * np.cos(np.radians(dec1))).max(), np.abs(dec1 - dec2).max()))


def assert_same_warp(got: Exposure, want: Exposure, *, wcs_tol_deg: float = 1e-12) -> None:
    """Pixels, planes, calibrations, metadata and inputs equal; WCSs equal to ``wcs_tol_deg``."""
    for plane in ("image", "mask", "variance"):
        a, b = getattr(got, plane), getattr(want, plane)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), plane
    assert dict(got.mask_planes.bits) == dict(want.mask_planes.bits)
    assert got.xy0 == want.xy0 and got.filter == want.filter and got.id == want.id
    assert got.photo_calib == want.photo_calib
    assert deep_equal(got.metadata, want.metadata), (got.metadata, want.metadata)
    gv, wv = got.visit_info, want.visit_info
    assert (gv is None) == (wv is None)
    if gv is not None and wv is not None:
        for name in ("exposure_time", "boresight_ra", "boresight_dec", "rotation_angle", "airmass"):
            assert getattr(gv, name) == getattr(wv, name), name
        assert abs(gv.mid_time_mjd - wv.mid_time_mjd) * 86400 < 1e-6  # DATE-AVG: ns text
    assert max_sky_difference(got.wcs, want.wcs, got.bbox) <= wcs_tol_deg
    gi, wi = got.coadd_inputs, want.coadd_inputs
    assert (gi.visit_goodpix, gi.ccd_weights) == (wi.visit_goodpix, wi.ccd_weights)
    assert [(v.id, v.goodpix, v.filter) for v in gi.visits] == [
        (v.id, v.goodpix, v.filter) for v in wi.visits
    ]
    assert np.array_equal([v.weight for v in gi.visits], [v.weight for v in wi.visits], True)
    assert len(gi.ccds) == len(wi.ccds)
    for g, w in zip(gi.ccds, wi.ccds, strict=True):
        for name in ("id", "ccd", "visit", "goodpix", "weight", "filter", "bbox", "data_id",
                     "psf", "photo_calib", "valid_polygon", "ap_corr_map"):  # fmt: skip
            assert getattr(g, name) == getattr(w, name), name
        assert (g.valid_bbox or g.bbox) == (w.valid_bbox or w.bbox)
        assert max_sky_difference(g.wcs, w.wcs, g.bbox) <= wcs_tol_deg


def assert_same_psf(got: object, want: object, points: list[tuple[float, float]]) -> None:
    """The same kernel images (1e-9: the WCSs agree to ~1e-14 deg) at ``points``."""
    assert type(got) is type(want)
    for x, y in points:
        a = got.compute_kernel_image(x, y)  # type: ignore[attr-defined]
        b = want.compute_kernel_image(x, y)  # type: ignore[attr-defined]
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 1e-9, (x, y)
