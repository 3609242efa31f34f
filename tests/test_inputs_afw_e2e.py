"""``rb make-warp`` on an afw-layout calexp with a valid polygon and an ApCorrMap in its archive
(issue #22, items 5 and 6): the warp loses the pixels outside the polygon and its inputs table
carries both, as written; driven through the CLI, read back through the butler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from afw_archive import ArchiveObject, Point, ap_corr_objects, polygon_object, write_afw_calexp
from cli_support import run_rb, write_small_cli_repo
from corrupt_inputs import reregister
from matplotlib.path import Path as MplPath
from numpy.polynomial import chebyshev
from test_valid_polygon import _distance_to_boundary as distance_to_boundary

from repo_butler import Butler

VISIT, CCD = 1000, 0
#: Cuts the upper part of the 256 x 512 CCD along a slanted line.
POLYGON = np.array([(-0.5, -0.5), (255.5, -0.5), (255.5, 200.3), (-0.5, 380.7), (-0.5, -0.5)])
BOX = (0, 0, 255, 511)  # inclusive, as afw stores it
AP_CORR = {
    "base_PsfFlux_instFlux": (BOX, np.array([[0.97, 0.004, -0.001], [0.002, 0.0005, 0.0]])),
    "base_PsfFlux_instFluxErr": (BOX, np.array([[0.01]])),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_small_cli_repo(tmp_path_factory.mktemp("afwpoly") / "repo")
    out = run_rb("make-warp", str(root), "--rerun", "plain", "--id", "tract=0", "filter=HSC-I",
                 "--selectId", f"visit={VISIT}")  # fmt: skip
    assert out.returncode == 0, out.stderr
    ids = {"visit": VISIT, "ccd": CCD}
    butler = Butler(str(root))
    calexp = butler.get("calexp", ids)
    path = Path(butler.get_ref("calexp", ids).uri.removeprefix("file://"))
    psf = ArchiveObject(1, "GaussianPsf", "lsst.afw.detection", [
        {"dimensions": Point(25, 25), "sigma": 2.0}])  # fmt: skip
    objects = [psf, polygon_object(2, POLYGON), *ap_corr_objects(10, AP_CORR)]
    write_afw_calexp(path, calexp, objects, 1, {"VALID_POLYGON": 2, "AP_CORR_MAP": 10})
    reregister(str(root), "calexp", ids)
    out = run_rb("make-warp", str(root), "--rerun", "poly", "--id", "tract=0", "filter=HSC-I",
                 "--selectId", f"visit={VISIT}")  # fmt: skip
    assert out.returncode == 0, out.stderr
    return root


def test_warps_lose_the_pixels_outside_the_polygon_and_record_it(repo: Path) -> None:
    butler = Butler(str(repo), writeable=False)
    ccd_wcs = butler.get("calexp", {"visit": VISIT, "ccd": CCD}).wcs
    refs = butler.query_datasets("deepCoadd_directWarp", runs=["poly"])
    plains = {r.data_id: r for r in butler.query_datasets("deepCoadd_directWarp", runs=["plain"])}
    lost = kept = 0  # warp pixels the cut removed / kept, over every patch
    for ref in refs:
        warp = butler.get(ref)
        plain = butler.get(plains[ref.data_id])
        rows = [r for r in warp.coadd_inputs.ccds if r.ccd == CCD]
        if not rows:
            continue
        (row,) = rows
        assert np.array_equal(row.valid_polygon.vertices, POLYGON)
        assert list(row.ap_corr_map) == list(AP_CORR)
        xs = np.array([0.0, 100.5, 255.0, 17.0])
        ys = np.array([0.0, 300.25, 511.0, 450.0])
        for name, ((x0, y0, x1, y1), coeffs) in AP_CORR.items():
            xp = 2.0 * (xs - (x0 + x1) / 2.0) / (x1 - x0 + 1)
            yp = 2.0 * (ys - (y0 + y1) / 2.0) / (y1 - y0 + 1)
            truth = chebyshev.chebval2d(yp, xp, coeffs)
            np.testing.assert_allclose(row.ap_corr_map.evaluate(name, xs, ys), truth, rtol=1e-15)
        # warp pixel centres in the CCD's pixels, through astropy
        yy, xx = np.mgrid[0 : warp.height, 0 : warp.width]
        ra, dec = warp.wcs.pixel_to_world_values(xx + warp.xy0[0], yy + warp.xy0[1])
        cx, cy = (np.asarray(v) for v in ccd_wcs.world_to_pixel_values(ra, dec))
        on_ccd = (cx > 2) & (cx < 253) & (cy > 2) & (cy < 509)
        inside = MplPath(POLYGON).contains_points(np.column_stack([cx.ravel(), cy.ravel()]))
        inside = inside.reshape(cx.shape)
        far = distance_to_boundary(cx, cy, POLYGON[:-1]) > np.sqrt(2.0)  # open vertex list
        # beyond the cut, the CCD gave nothing (no other CCD of the visit covers its pixels)
        assert not np.isfinite(warp.image[on_ccd & ~inside]).any()
        lost += int(np.isfinite(plain.image[on_ccd & ~inside & far]).sum())
        # inside, the pixels are those of the run without a polygon
        keep = on_ccd & inside & far & np.isfinite(plain.image)
        np.testing.assert_allclose(warp.image[keep], plain.image[keep], rtol=1e-5, atol=1e-3)
        kept += int(keep.sum())
    assert lost > 1000 and kept > 1000, (lost, kept)
