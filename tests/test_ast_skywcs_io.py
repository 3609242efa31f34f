"""AST SkyWcs models through every reader and writer of the package (exposure files, the
footprint reader, the skywcs formatter, warp inputs tables, CoaddPsf, xarray/CCDData) and through
the warper, whose output must match the header TAN-SIP approximation to what their 0.16 mas
difference implies."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from warping.ast_wcs import AstSkyWcs
from warping.coadd_inputs import CcdRecord, CoaddInputs, VisitRecord, cell_text, wcs_from_text
from warping.coadd_psf import CoaddPsf
from warping.exposure import Exposure
from warping.formats.afw_visit_summary import read_visit_summary_file
from warping.formats.calib_fits import read_skywcs, skywcs_from_bytes, skywcs_to_bytes
from warping.formats.exposure_fits import (
    exposure_from_bytes,
    exposure_to_bytes,
    read_exposure,
    read_wcs_and_bbox,
)
from warping.geom import Box2I
from warping.psf import GaussianPsf
from warping.sip_fit import max_separation_px
from warping.skywcs import wcs_from_header
from warping.warp import WarpingControl, warp_exposure, wcs_pair_transform
from warping.warp.testing import make_tan_wcs

pytestmark = pytest.mark.realdata

CFHT_DIR = "lsst-jointcal-cfht_minimal"
CFHT_BOX = Box2I(0, 0, 2048, 4612)


@pytest.fixture(scope="module")
def cfht_wcs(shared_data: Path) -> AstSkyWcs:
    """CFHT 849375/12's SkyWcs (its visitSummary row holds the calexp's model, bit for bit)."""
    wcs = read_visit_summary_file(str(shared_data / CFHT_DIR / "visitSummary-849375.fits"))
    model = wcs.row(12).wcs
    assert isinstance(model, AstSkyWcs)
    return model


@pytest.fixture(scope="module")
def cfht_header_wcs(shared_data: Path) -> WCS:
    """The TAN-SIP approximation afw wrote into the calexp's image header."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = fits.getheader(shared_data / CFHT_DIR / "calexp-849375-12.fits.fz", 1)
    wcs = wcs_from_header(header)
    assert wcs is not None
    return wcs


def grid(box: Box2I, n: int = 7) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = np.meshgrid(np.linspace(box.x0, box.x1, n), np.linspace(box.y0, box.y1, n))
    return gx.ravel(), gy.ravel()


def same_model(a: object, b: object, box: Box2I) -> None:
    x, y = grid(box)
    np.testing.assert_array_equal(
        a.pixel_to_world_values(x, y),  # type: ignore[attr-defined]
        b.pixel_to_world_values(x, y),  # type: ignore[attr-defined]
    )


# -- exposure files --------------------------------------------------------------------------
def test_exposure_with_ast_wcs_round_trips_exactly(cfht_wcs: AstSkyWcs) -> None:
    box = Box2I(700, 2000, 60, 40)
    exp = Exposure.empty(box, wcs=cfht_wcs, fill_no_data=False)
    exp.image[:] = np.arange(exp.image.size, dtype=np.float32).reshape(exp.image.shape)
    data = exposure_to_bytes(exp)
    back = exposure_from_bytes(data, "mem")
    assert isinstance(back.wcs, AstSkyWcs) and back.wcs == cfht_wcs
    same_model(back.wcs, cfht_wcs, box)
    np.testing.assert_array_equal(back.image, exp.image)
    wcs, bbox = read_wcs_and_bbox(data, source="mem")  # the footprint reader agrees
    assert bbox == box and wcs == cfht_wcs
    with fits.open(__import__("io").BytesIO(data)) as hdul:
        names = [h.header.get("EXTNAME") for h in hdul[1:]]
        assert names == ["IMAGE", "MASK", "VARIANCE", "SKYWCS"]
        header = hdul["IMAGE"].header
        assert 0 <= header["WCSAPPRX"] < 1e-6
        # a reader that predates SKYWCS (drop it) gets the TAN-SIP approximation of the cards
        old = exposure_from_bytes(
            __import__("warping.formats._common", fromlist=["x"]).hdulist_to_bytes(
                fits.HDUList([h for h in hdul if h.header.get("EXTNAME") != "SKYWCS"])
            ),
            "old",
        )
    assert isinstance(old.wcs, WCS) and old.wcs.sip is not None
    assert max_separation_px(cfht_wcs, old.wcs, box) < 1e-6


def test_schema_describes_the_skywcs_hdu(cfht_wcs: AstSkyWcs) -> None:
    import json

    import jsonschema

    from warping.formats.exposure_fits import exposure_to_hdulist
    from warping.formats.fits_dict import hdulist_layout

    schema = json.loads(
        (Path(__file__).resolve().parents[1] / "schemas" / "exposure-fits.schema.json").read_text()
    )
    exp = Exposure.empty(Box2I(0, 0, 8, 8), wcs=cfht_wcs, fill_no_data=False)
    layout = hdulist_layout(exposure_to_hdulist(exp))
    jsonschema.validate(layout, schema)
    assert layout["SKYWCS"]["WCSCLASS"] == "AstSkyWcs"
    assert layout["PRIMARY"]["WCSEXACT"] == "SKYWCS"
    bad = dict(layout, SKYWCS={**layout["SKYWCS"], "WCSCLASS": "Other"})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_calexps_prefer_the_archive_and_old_files_read_the_header(shared_data: Path) -> None:
    path = shared_data / CFHT_DIR / "calexp-849375-12.fits.fz"
    with open(path, "rb") as f:
        wcs, bbox = read_wcs_and_bbox(f, source=str(path))  # planning: headers + archive only
    assert isinstance(wcs, AstSkyWcs) and bbox == CFHT_BOX
    assert wcs == read_skywcs(path)
    # meas_modelfit (2016): only a WCS_ID TanWcs in the archive -> the header, as afw does
    old = shared_data / "lsst-meas_modelfit" / "calexp.fits"
    exp = read_exposure(old)
    assert isinstance(exp.wcs, WCS)
    wcs_old, box_old = read_wcs_and_bbox(old)
    assert isinstance(wcs_old, WCS)
    same_model(wcs_old, exp.wcs, box_old)


# -- standalone skywcs files ----------------------------------------------------------------
def test_skywcs_formatter_writes_afw_layout(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "lsst-jointcal-extra" / "jointcal_wcs-0023900-049.fits"
    wcs = read_skywcs(src)
    assert isinstance(wcs, AstSkyWcs)
    data = skywcs_to_bytes(wcs)
    with fits.open(__import__("io").BytesIO(data)) as mine, fits.open(src) as theirs:
        assert len(mine) == len(theirs) == 3
        assert mine[1].header["EXTTYPE"] == theirs[1].header["EXTTYPE"] == "ARCHIVE_INDEX"
        assert mine[1].columns.names == theirs[1].columns.names
        assert mine[2].columns.names == theirs[2].columns.names == ["wcs"]
    back = skywcs_from_bytes(data, "mem")
    assert back == wcs
    same_model(back, wcs, Box2I(0, 0, 2048, 4176))


# -- warp inputs tables and CoaddPsf ---------------------------------------------------------
def _record(wcs: object, ccd: int) -> CcdRecord:
    return CcdRecord(
        id=ccd,
        ccd=ccd,
        visit=1,
        goodpix=10,
        weight=1.0,
        filter="r",
        bbox=CFHT_BOX,
        wcs=wcs,  # type: ignore[arg-type]
        psf=GaussianPsf(2.0, 17),
    )


def test_inputs_table_keeps_the_exact_model(cfht_wcs: AstSkyWcs, cfht_header_wcs: WCS) -> None:
    inputs = CoaddInputs(
        visits=[VisitRecord(1, 20, filter="r")],
        ccds=[_record(cfht_wcs, 1), _record(cfht_header_wcs, 2)],
    )
    visits, ccds = inputs.to_hdus()
    assert "wcs_exact" in ccds.columns.names
    back = CoaddInputs.from_hdus(visits, ccds)
    assert back.ccds[0].wcs == cfht_wcs
    assert isinstance(back.ccds[1].wcs, WCS)  # header text: exact to the cards' ~1e-12 deg
    assert max_separation_px(back.ccds[1].wcs, cfht_header_wcs, CFHT_BOX) < 1e-7
    # the 'wcs' column alone (what a reader before wcs_exact sees) is the TAN-SIP approximation
    approx = wcs_from_text(cell_text(ccds.data[0]["wcs"]))
    assert isinstance(approx, WCS) and max_separation_px(cfht_wcs, approx, CFHT_BOX) < 1e-6
    # tables of astropy WCSs only keep their old columns
    _, plain = CoaddInputs(ccds=[_record(cfht_header_wcs, 2)]).to_hdus()
    assert "wcs_exact" not in plain.columns.names


def test_coadd_psf_dict_keeps_the_exact_model(cfht_wcs: AstSkyWcs) -> None:
    ra, dec = (float(v) for v in cfht_wcs.pixel_to_world_values(1023.5, 2305.5))
    coadd_wcs = make_tan_wcs(ra, dec, (1000.0, 1000.0), 0.2)
    psf = CoaddPsf([_record(cfht_wcs, 1)], coadd_wcs)
    back = CoaddPsf.from_dict(psf.to_dict())
    assert back.ccds[0].wcs == cfht_wcs
    np.testing.assert_allclose(
        back.compute_kernel_image(1000.0, 1000.0),
        psf.compute_kernel_image(1000.0, 1000.0),
        atol=1e-6,
    )  # the tract WCS goes through header text (~1e-12 deg)


def test_xarray_and_ccddata_exports(cfht_wcs: AstSkyWcs) -> None:
    box = Box2I(100, 200, 30, 20)
    exp = Exposure.empty(box, wcs=cfht_wcs, fill_no_data=False)
    ds = exp.to_xarray()
    assert AstSkyWcs.from_text(ds.attrs["wcs_exact"]) == cfht_wcs
    assert "TAN-SIP" in ds.attrs["wcs_header"]
    ccd = exp.to_ccddata()
    # CCDData's WCS is array-relative: array (0, 0) is parent (100, 200)
    ra, dec = ccd.wcs.pixel_to_world_values(0.0, 0.0)
    ra_e, dec_e = cfht_wcs.pixel_to_world_values(100.0, 200.0)
    assert abs(ra - ra_e) < 1e-9 and abs(dec - dec_e) < 1e-9
    assert exp.copy().wcs is cfht_wcs  # immutable model shared by copies


# -- the warper ------------------------------------------------------------------------------
def _blobs(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A smooth field of Gaussian blobs (sigma 2.5 px) in parent pixel coordinates."""
    out = np.zeros(np.broadcast(x, y).shape)
    for cx in np.arange(705.0, 1100.0, 23.0):
        for cy in np.arange(2005.0, 2400.0, 19.0):
            out += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 2.5**2))
    return out


def test_warp_with_ast_model_matches_header_approximation(
    cfht_wcs: AstSkyWcs, cfht_header_wcs: WCS
) -> None:
    box = Box2I(700, 2000, 400, 400)
    yy, xx = np.mgrid[box.y0 : box.y1 + 1, box.x0 : box.x1 + 1].astype(float)
    exp = Exposure.empty(box, wcs=cfht_wcs, fill_no_data=False)
    exp.image[:] = _blobs(xx, yy)
    exp.variance[:] = 1.0
    ra, dec = (float(v) for v in cfht_wcs.pixel_to_world_values(900.0, 2200.0))
    dest = make_tan_wcs(ra, dec, (250.0, 250.0), 0.2, rotation_deg=10.0)
    dest_box = Box2I(80, 80, 340, 340)
    control = WarpingControl(conserve_flux=False)
    w_ast = warp_exposure(exp, dest, dest_bbox=dest_box, control=control)
    exp.wcs = cfht_header_wcs
    w_hdr = warp_exposure(exp, dest, dest_bbox=dest_box, control=control)
    # where the two models send each destination pixel in the source, and what that implies
    dy, dx = np.mgrid[dest_box.y0 : dest_box.y1 + 1, dest_box.x0 : dest_box.x1 + 1].astype(float)
    ax, ay = wcs_pair_transform(cfht_wcs, dest)(dx.ravel(), dy.ravel())
    hx, hy = wcs_pair_transform(cfht_header_wcs, dest)(dx.ravel(), dy.ravel())
    shift = np.hypot(hx - ax, hy - ay)
    assert 4e-4 < shift.max() < 2e-3  # 0.16 mas at 0.187"/px
    implied = (_blobs(hx, hy) - _blobs(ax, ay)).reshape(dx.shape)
    diff = w_hdr.image.astype(float) - w_ast.image.astype(float)
    ok = np.isfinite(diff)
    assert ok.mean() > 0.95
    assert np.abs(diff[ok]).max() > 0.5 * np.abs(implied[ok]).max()  # they differ ...
    # ... by what the model difference implies (measured: 9 % residual from the Lanczos
    # interpolation of the difference and float32 rounding)
    assert np.abs(diff[ok] - implied[ok]).max() < 0.15 * np.abs(implied[ok]).max() + 3e-7


def test_make_warp_with_an_external_ast_wcs_keeps_it_in_the_warp(
    cfht_wcs: AstSkyWcs, cfht_header_wcs: WCS
) -> None:
    from repo_butler import DataId
    from warping.photocalib import PhotoCalib
    from warping.task.config import MakeWarpConfig
    from warping.task.inputs import CcdInput, InMemoryHandle
    from warping.task.make_warp import MakeWarpTask, SkyInfo

    box = Box2I(700, 2000, 300, 300)
    yy, xx = np.mgrid[box.y0 : box.y1 + 1, box.x0 : box.x1 + 1].astype(float)
    calexp = Exposure.empty(box, wcs=cfht_header_wcs, fill_no_data=False)
    calexp.image[:] = _blobs(xx, yy)
    calexp.variance[:] = 1.0
    calexp.psf = GaussianPsf(2.0, 21)
    calexp.photo_calib = PhotoCalib(0.5)
    ra, dec = (float(v) for v in cfht_wcs.pixel_to_world_values(850.0, 2150.0))
    sky = SkyInfo(0, "0,0", make_tan_wcs(ra, dec, (200.0, 200.0), 0.2), Box2I(0, 0, 400, 400))
    inp = CcdInput(
        DataId(visit=849375, ccd=12), InMemoryHandle(calexp), wcs=InMemoryHandle(cfht_wcs)
    )
    warps = MakeWarpTask(MakeWarpConfig()).run([inp], sky, 849375)
    warp = warps.exposures["direct"]
    assert warp is not None and warps.ccds[0].skipped is None
    assert warp.coadd_inputs.ccds[0].wcs is cfht_wcs  # the external model, not the calexp's
    back = exposure_from_bytes(exposure_to_bytes(warp), "warp")
    assert back.coadd_inputs.ccds[0].wcs == cfht_wcs
    kernel = back.psf.compute_kernel_image(200.0, 200.0)  # CoaddPsf through the AST model
    assert kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(kernel, warp.psf.compute_kernel_image(200.0, 200.0), atol=1e-6)
