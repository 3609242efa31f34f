"""Skymap checks against published HSC numbers, tract-corner lookups and a warp onto a patch."""

from __future__ import annotations

import numpy as np

from warping.exposure import Exposure
from warping.geom import Box2I
from warping.skymap import DiscreteSkyMap, RingsSkyMap, SkyMapConfig, SkyPolygon
from warping.warp import warp_exposure
from warping.warp.testing import make_tan_wcs


def test_hsc_rings_cosmos_is_tract_9813_patch_5_4() -> None:
    """HSC-SSP data releases put COSMOS (RA 150.1, Dec 2.2) in tract 9813, patch 5,4."""
    sm = RingsSkyMap(SkyMapConfig.hsc())
    assert len(sm) == 18938  # tracts in HSC's 120-ring skymap
    tract = sm.find_tract(150.1, 2.2)
    assert tract.id == 9813
    assert tract.num_patches == (9, 9)
    assert tract.find_patch(150.1, 2.2).name == "5,4"


def test_polygon_in_a_tract_bbox_corner_finds_that_tract() -> None:
    sm = RingsSkyMap(SkyMapConfig.hsc())
    tract = sm[9813]
    # the bbox corner lies farther from the centre than sqrt(2) (radius + overlap)
    corner = SkyPolygon.from_wcs_bbox(tract.wcs, Box2I(100, 100, 50, 50))
    assert 9813 in [t.id for t in sm.find_tracts_overlapping(corner)]


def test_warp_ccd_onto_patch_outer_bbox() -> None:
    cfg = SkyMapConfig(patch_inner_dimensions=(400, 400), patch_border=20, pixel_scale_arcsec=0.2)
    sm = DiscreteSkyMap(cfg, [45.0], [-30.0], [0.02])
    tract = sm[0]
    ccd_wcs = make_tan_wcs(45.0, -30.0, (100.0, 60.0), 0.17, rotation_deg=12.0)
    exp = Exposure(np.ones((120, 200)), np.zeros((120, 200)), np.ones((120, 200)), wcs=ccd_wcs)
    poly = SkyPolygon.from_wcs_bbox(ccd_wcs, exp.bbox)
    patches = tract.find_patches_overlapping(poly)
    assert patches
    for patch in patches:
        warp = warp_exposure(exp, tract.wcs, max_bbox=patch.outer_bbox)
        assert warp.bbox.intersection(patch.outer_bbox) == warp.bbox
        good = np.isfinite(warp.image)
        assert good.any()
        # flux conserving: each destination pixel holds (0.2/0.17)^2 source pixels of value 1
        np.testing.assert_allclose(warp.image[good], (0.2 / 0.17) ** 2, rtol=1e-3)
