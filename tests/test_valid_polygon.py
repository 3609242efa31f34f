"""Valid polygons (issue #22, item 5): membership, the warps' clipping, the inputs table.

Truth is independent of :mod:`warping.polygon`: matplotlib's ``Path.contains_points`` for
membership, astropy's WCS for the warp -> CCD pixel map, and numpy point-to-segment distances.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.path import Path as MplPath

from tests.test_make_warp_run import SKY, ccd_inputs, make_ccd
from warping.coadd_inputs import CcdRecord, CoaddInputs, VisitRecord
from warping.exposure import Exposure
from warping.formats.exposure_fits import ExposureFormatter
from warping.geom import Box2I
from warping.polygon import ValidPolygon, mask_outside
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.make_warp import MakeWarpTask

#: A convex hexagon on the 220 x 260 test CCD: two corners cut off (vertices in CCD pixels).
HEXAGON = np.array(
    [(-0.5, -0.5), (150.3, -0.5), (219.5, 70.2), (219.5, 259.5), (60.7, 259.5), (-0.5, 180.4)]
)


def star_polygon(seed: int, n: int, box: Box2I) -> np.ndarray:
    """A simple (star-shaped) polygon of ``n`` random vertices inside ``box``."""
    rng = np.random.default_rng(seed)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radius = rng.uniform(0.2, 0.5, n) * min(box.width, box.height)
    cx, cy = box.x0 + box.width / 2, box.y0 + box.height / 2
    return np.column_stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 12), closed=st.booleans())
def test_pixel_mask_and_contains_agree_with_matplotlib(seed: int, n: int, closed: bool) -> None:
    box = Box2I(-7, 3, 61, 47)
    verts = star_polygon(seed, n, box)
    if closed:
        verts = np.vstack([verts, verts[:1]])
    poly = ValidPolygon(verts)
    yy, xx = np.mgrid[box.y0 : box.y0 + box.height, box.x0 : box.x0 + box.width]
    truth = MplPath(verts[:n]).contains_points(np.column_stack([xx.ravel(), yy.ravel()]))
    truth = truth.reshape(box.shape)
    np.testing.assert_array_equal(poly.pixel_mask(box), truth)
    np.testing.assert_array_equal(poly.contains(xx, yy), truth)


def test_polygon_refuses_degenerate_vertices() -> None:
    with pytest.raises(ValueError, match="at least 3 distinct"):
        ValidPolygon([(0, 0), (1, 1), (0, 0)])
    with pytest.raises(ValueError, match="finite"):
        ValidPolygon([(0, 0), (1, np.nan), (2, 0)])


def _distance_to_boundary(px: np.ndarray, py: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Distance from each point to the polygon's edges (numpy, independent of the code)."""
    a, b = verts, np.roll(verts, -1, axis=0)
    out = np.full(px.shape, np.inf)
    for (ax, ay), (bx, by) in zip(a, b, strict=True):
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        out = np.minimum(out, np.hypot(px - (ax + t * dx), py - (ay + t * dy)))
    return out


def _with_polygon(exp: Exposure, verts: np.ndarray) -> Exposure:
    exp.valid_polygon = ValidPolygon(verts)
    return exp


def _ccd_positions(ccd: Exposure) -> tuple[np.ndarray, np.ndarray]:
    """Every warp pixel centre in the CCD's pixels, through astropy (tract -> sky -> CCD)."""
    yy, xx = np.mgrid[0 : SKY.bbox.height, 0 : SKY.bbox.width]
    ra, dec = SKY.wcs.pixel_to_world_values(xx + SKY.bbox.x0, yy + SKY.bbox.y0)
    cx, cy = ccd.wcs.world_to_pixel_values(ra, dec)
    return np.asarray(cx), np.asarray(cy)


def test_direct_warp_is_clipped_to_the_polygon_within_a_pixel() -> None:
    ccd = _with_polygon(make_ccd(16, (110.0, 130.0), 20.0), HEXAGON)
    plain = make_ccd(16, (110.0, 130.0), 20.0)
    warp = MakeWarpTask().run(ccd_inputs([ccd]), SKY, 7).exposures["direct"]
    full = MakeWarpTask().run(ccd_inputs([plain]), SKY, 7).exposures["direct"]
    assert warp is not None and full is not None
    got = np.isfinite(warp.image)
    cx, cy = _ccd_positions(plain)
    inside = MplPath(HEXAGON).contains_points(np.column_stack([cx.ravel(), cy.ravel()]))
    inside = inside.reshape(got.shape)
    dist = _distance_to_boundary(cx, cy, HEXAGON)  # CCD pixels
    # away from the CCD's own edges (where warping loses its kernel-width border anyway)
    interior = np.isfinite(full.image)
    interior &= (cx > 5) & (cx < 214) & (cy > 5) & (cy < 254)
    wrong = (got != inside) & interior
    # the bilinear mask kernel reaches the 4 CCD pixel centres around a mapped position, at most
    # sqrt(2) CCD pixels away: that is the bound (1.19 warp pixels of 0.2" for 0.168" CCD pixels)
    assert wrong.sum() > 0 and np.all(dist[wrong] <= np.sqrt(2.0)), np.max(dist[wrong])
    # no pixel whose centre maps outside the (convex) polygon was kept, anywhere
    assert not np.any(got & ~inside)
    # and the clip is real: pixels the unclipped CCD gave are lost beyond the cut corners
    lost = np.isfinite(full.image) & ~got
    assert (lost & ~inside).sum() > 1000
    # pixels kept have the unclipped values: the polygon changes which pixels, not values
    np.testing.assert_array_equal(warp.image[got], full.image[got])
    row = warp.coadd_inputs.ccds[0]
    assert row.valid_polygon == ValidPolygon(HEXAGON)
    assert row.goodpix == int(got.sum())


def test_psf_matched_warp_is_inside_the_polygon_and_eroded_by_the_kernel() -> None:
    config = apply_overrides(
        MakeWarpConfig(),
        [
            "makePsfMatched=True",
            "modelPsf.defaultFwhm=7.0",
            "warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize=21",
        ],
    )
    ccd = _with_polygon(make_ccd(16, (110.0, 130.0), 20.0), HEXAGON)
    res = MakeWarpTask(config).run(ccd_inputs([ccd]), SKY, 7)
    direct, matched = res.exposures["direct"], res.exposures["psfMatched"]
    assert direct is not None and matched is not None
    got, direct_got = np.isfinite(matched.image), np.isfinite(direct.image)
    cx, cy = _ccd_positions(ccd)
    inside = MplPath(HEXAGON).contains_points(np.column_stack([cx.ravel(), cy.ravel()]))
    inside = inside.reshape(got.shape)
    assert got.sum() > 0 and not np.any(got & ~inside) and not np.any(got & ~direct_got)
    # matched pixels are those whose 21x21 kernel footprint lies on direct-warp data
    from scipy.ndimage import binary_erosion

    expected = binary_erosion(direct_got, np.ones((21, 21), bool), border_value=0)
    assert np.array_equal(got, expected)
    assert matched.coadd_inputs.ccds[0].valid_polygon == ValidPolygon(HEXAGON)


def test_mask_outside_sets_no_data_only_outside() -> None:
    exp = make_ccd(16, (110.0, 130.0), 0.0)
    before = exp.image.copy()
    n = mask_outside(exp, ValidPolygon(HEXAGON))
    yy, xx = np.mgrid[0 : exp.height, 0 : exp.width]
    outside = ~MplPath(HEXAGON).contains_points(np.column_stack([xx.ravel(), yy.ravel()]))
    outside = outside.reshape(exp.image.shape)
    no_data = (exp.mask & exp.mask_planes.bitmask("NO_DATA")) != 0
    np.testing.assert_array_equal(no_data, outside)
    assert n == int(outside.sum()) > 0
    np.testing.assert_array_equal(exp.image, before)


polygons = st.builds(
    lambda seed, n: ValidPolygon(star_polygon(seed, n, Box2I(0, 0, 2048, 4176))),
    st.integers(0, 2**32 - 1),
    st.integers(3, 20),
)


@settings(max_examples=25, deadline=None)
@given(polys=st.lists(st.one_of(st.none(), polygons), min_size=0, max_size=5))
def test_inputs_table_round_trips_polygons_exactly(polys: list[ValidPolygon | None]) -> None:
    rows = [
        CcdRecord(
            id=i,
            ccd=i,
            visit=1,
            goodpix=10,
            weight=1.0,
            filter="r",
            bbox=Box2I(0, 0, 2048, 4176),
            wcs=None,
            valid_polygon=p,
        )
        for i, p in enumerate(polys)
    ]
    inputs = CoaddInputs([VisitRecord(1, 10 * len(rows))], rows)
    warp = Exposure.empty(Box2I(0, 0, 4, 4))
    warp.coadd_inputs = inputs
    fmt = ExposureFormatter()
    back = fmt.from_bytes(fmt.to_bytes(warp), source="memory").coadd_inputs
    assert [r.valid_polygon for r in back.ccds] == polys
    for r, p in zip(back.ccds, polys, strict=True):
        if p is not None:  # bit-exact vertices
            assert r.valid_polygon.vertices.tobytes() == p.vertices.tobytes()


def test_coadd_psf_containment_and_persistence_honour_the_polygon() -> None:
    ccd = _with_polygon(make_ccd(16, (110.0, 130.0), 20.0), HEXAGON)
    warp = MakeWarpTask().run(ccd_inputs([ccd]), SKY, 7).exposures["direct"]
    assert warp is not None
    fmt = ExposureFormatter()
    back = fmt.from_bytes(fmt.to_bytes(warp), source="memory")
    assert back.psf.ccds[0].valid_polygon == ValidPolygon(HEXAGON)
    cx, cy = _ccd_positions(ccd)
    inside = MplPath(HEXAGON).contains_points(np.column_stack([cx.ravel(), cy.ravel()]))
    inside = inside.reshape(cx.shape)
    on_ccd = (cx > -0.5) & (cx < 219.5) & (cy > -0.5) & (cy < 259.5)
    dist = _distance_to_boundary(cx, cy, HEXAGON)
    rng = np.random.default_rng(3)
    outside_pts = np.argwhere(on_ccd & ~inside & (dist > 0.5))
    inside_pts = np.argwhere(on_ccd & inside & (dist > 0.5))
    for psf in (warp.psf, back.psf):
        for j, i in outside_pts[rng.choice(len(outside_pts), 5, replace=False)]:
            assert psf.containing(float(i), float(j)) == []
        for j, i in inside_pts[rng.choice(len(inside_pts), 5, replace=False)]:
            assert psf.containing(float(i), float(j)) == [0]


def _as_version_2(data: bytes) -> bytes:
    """The same warp as a version-2 release wrote it: no v3 columns, ``CIFMTV = 2``."""
    import io

    from astropy.io import fits

    with fits.open(io.BytesIO(data)) as hdul:
        for i, hdu in enumerate(hdul):
            if hdu.header.get("EXTNAME") == "COADD_INPUTS_CCDS":
                from warping.coadd_inputs import TEXT_COLUMNS, cell_text, text_column

                keep = [
                    text_column(c.name, [cell_text(v) for v in hdu.data[c.name]])
                    if c.name in TEXT_COLUMNS
                    else fits.Column(c.name, c.format, array=hdu.data[c.name])
                    for c in hdu.columns
                    if c.name not in ("valid_polygon", "ap_corr_map")
                ]
                new = fits.BinTableHDU.from_columns(keep, name="COADD_INPUTS_CCDS")
                for card in hdu.header.cards:
                    if card.keyword in ("RBEXT", "RBEXTMOD", "CIFMTV"):
                        new.header[card.keyword] = (card.value, card.comment)
                hdul[i] = new
        for hdu in hdul:
            if hdu.header.get("RBEXT") == "COADD_INPUTS":
                hdu.header["CIFMTV"] = 2
        out = io.BytesIO()
        hdul.writeto(out)
    return out.getvalue()


def test_version_2_tables_read_and_migrate_without_polygons() -> None:
    from warping.formats.migrations import WarpInputsFormat

    ccd = _with_polygon(make_ccd(16, (110.0, 130.0), 20.0), HEXAGON)
    warp = MakeWarpTask().run(ccd_inputs([ccd]), SKY, 7).exposures["direct"]
    assert warp is not None
    fmt = ExposureFormatter()
    v2 = _as_version_2(fmt.to_bytes(warp))
    fmt_v = WarpInputsFormat()
    assert fmt_v.version(v2, "v2.fits") == 2
    old = fmt.from_bytes(v2, source="v2.fits").coadd_inputs
    (row,) = old.ccds
    assert row.valid_polygon is None and row.ap_corr_map is None
    assert (row.id, row.goodpix) == (
        warp.coadd_inputs.ccds[0].id,
        warp.coadd_inputs.ccds[0].goodpix,
    )
    v3 = fmt_v.steps[2](v2, "v2.fits")
    assert fmt_v.version(v3, "v2.fits") == 3
    new = fmt.from_bytes(v3, source="v2.fits").coadd_inputs
    assert [(r.id, r.goodpix, r.bbox, r.valid_polygon) for r in new.ccds] == [
        (r.id, r.goodpix, r.bbox, r.valid_polygon) for r in old.ccds
    ]
