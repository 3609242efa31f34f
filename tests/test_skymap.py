"""Skymap geometry against LSST's definitions (spec §4) and sky-polygon overlap at hard places."""

from __future__ import annotations

import math

import numpy as np
import pytest

from warping.errors import FormatError
from warping.geom import Box2I
from warping.skymap import (
    DiscreteSkyMap,
    RingsSkyMap,
    SkyMapConfig,
    SkyPolygon,
    make_discrete_skymap,
    polygons_overlap,
)
from warping.skymap.geometry import angular_separation_deg, offset_position, radec_to_xyz
from warping.skymap.io import SkyMapFormatter, skymap_from_yaml, skymap_to_yaml
from warping.skymap.tract import make_tract_wcs


def _square(ra: float, dec: float, half_deg: float) -> SkyPolygon:
    pts = [offset_position(ra, dec, b, half_deg * math.sqrt(2)) for b in (45, 135, 225, 315)]
    return SkyPolygon.from_vertices([p[0] for p in pts], [p[1] for p in pts])


def test_tract_wcs_cd_matrix_and_origin() -> None:
    cfg = SkyMapConfig(pixel_scale_arcsec=0.168, projection="TAN")
    w = make_tract_wcs(10.0, 20.0, cfg)
    s = 0.168 / 3600
    np.testing.assert_allclose(w.wcs.cd, [[-s, 0], [0, s]])
    ra, dec = w.pixel_to_world_values(0.0, 0.0)
    assert (float(ra), float(dec)) == pytest.approx((10.0, 20.0))
    # +x points to decreasing RA (east left), +y north
    ra1, dec1 = w.pixel_to_world_values(100.0, 0.0)
    assert ra1 < 10.0 and dec1 == pytest.approx(20.0, abs=1e-6)


def test_discrete_tract_bbox_and_patches_follow_lsst() -> None:
    cfg = SkyMapConfig()  # LSST defaults: 0.333"/px, STG, 4000+100, overlap 1 deg
    sm = DiscreteSkyMap(cfg, [0.0], [45.0], [0.1])
    t = sm[0]
    # minimum bbox from points at radius + overlap (1.1 deg) N/E/S/W, rounded out to patches
    half = 1.1 * 3600 / 0.333
    nx = math.ceil((2 * half) / 4000)
    assert t.num_patches[0] in (nx, nx + 1)
    assert t.bbox.x0 == 0 and t.bbox.y0 == 0
    assert t.bbox.width == 4000 * t.num_patches[0]
    # the tract centre is near the bbox centre (patch rounding is split evenly)
    cx, cy = t.wcs.world_to_pixel_values(0.0, 45.0)
    assert abs(float(cx) - t.bbox.width / 2) < 4000 and abs(float(cy) - t.bbox.height / 2) < 4000
    p = t.patch("1,1")
    assert p.inner_bbox == Box2I(4000, 4000, 4000, 4000)
    assert p.outer_bbox == Box2I(3900, 3900, 4200, 4200)
    corner = t.patch((0, 0))
    assert corner.outer_bbox == Box2I(0, 0, 4100, 4100)  # no border at tract edges
    assert t.patch(p.sequential_index) == p
    assert t.patch(str(p.sequential_index)) == p
    for bad in ("99,0", "a,b", (-1, 0), 10**6):
        with pytest.raises(ValueError, match="patch"):
            t.patch(bad)


def test_hsc_patch_5_4_bboxes() -> None:
    cfg = SkyMapConfig.hsc(tract_overlap_deg=0.0)
    t = DiscreteSkyMap(cfg, [150.0], [2.0], [0.65])[0]
    p = t.patch("5,4")
    assert p.inner_bbox == Box2I(20000, 16000, 4000, 4000)
    assert p.outer_bbox == Box2I(19900, 15900, 4200, 4200)


def test_rings_skymap_hsc_numbers() -> None:
    sm = RingsSkyMap(SkyMapConfig.hsc(), num_rings=120)
    ring = math.pi / 121
    assert math.degrees(ring) == pytest.approx(1.4876, abs=1e-4)
    assert sm[0].dec_deg == -90.0 and sm[len(sm) - 1].dec_deg == 90.0
    # ring 0 has ringNums[0] tracts; tract 1 is its first, at RA 0
    assert sm[1].ra_deg == pytest.approx(0.0) and sm[1].dec_deg == pytest.approx(
        math.degrees(ring - math.pi / 2)
    )
    eq = sm.find_tract(30.0, 0.5)
    assert abs(eq.dec_deg) < 1.0
    assert sm[5000].radius_deg == pytest.approx(math.degrees(ring) / 2)
    # HSC (derived): 9x9 patches of 4000 px
    assert eq.num_patches == (9, 9)
    # neighbouring tracts in a ring are separated by 360/ringNums
    r = 60
    start = ring * (r + 0.5) - math.pi / 2
    n = int(2 * math.pi * math.cos(min(abs(start), abs(start + ring))) / ring) + 1
    assert n == sm.ring_nums[r]


@pytest.mark.parametrize(
    ("ra", "dec"), [(0.0, 0.0), (359.9, 10.0), (180.0, 89.95), (20.0, -89.99), (0.05, 45.0)]
)
def test_overlap_near_poles_and_ra_wrap(ra: float, dec: float) -> None:
    a = _square(ra, dec, 0.2)
    b = _square(*offset_position(ra, dec, 77.0, 0.3), 0.2)  # overlapping corner region
    c = _square(*offset_position(ra, dec, 77.0, 0.7), 0.2)  # disjoint
    inner = _square(ra, dec, 0.05)  # contained
    assert polygons_overlap(a, b) and polygons_overlap(b, a)
    assert not polygons_overlap(a, c) and not polygons_overlap(c, a)
    assert polygons_overlap(a, inner) and polygons_overlap(inner, a)


def test_tracts_and_patches_overlapping_a_polygon_at_ra_zero() -> None:
    cfg = SkyMapConfig(patch_inner_dimensions=(1000, 1000), patch_border=50,
                       tract_overlap_deg=0.0, pixel_scale_arcsec=1.0, projection="TAN")  # fmt: skip
    sm = DiscreteSkyMap(cfg, [359.8, 10.0], [0.0, 0.0], [0.3, 0.3])
    poly = _square(0.0, 0.0, 0.02)
    tracts = sm.find_tracts_overlapping(poly)
    assert [t.id for t in tracts] == [0]
    patches = tracts[0].find_patches_overlapping(poly)
    assert patches
    # every returned patch really overlaps; every other patch does not
    names = {p.name for p in patches}
    for p in tracts[0].patches():
        hit = polygons_overlap(poly, tracts[0].patch_polygon(p))
        assert hit == (p.name in names), p.name


def test_make_discrete_skymap_covers_all_footprints() -> None:
    cfg = SkyMapConfig(pixel_scale_arcsec=0.2, projection="TAN", tract_overlap_deg=0.0)
    fps = []
    for ra in (149.9, 150.1):
        w = make_tract_wcs(ra, 2.0, cfg)
        fps.append((w, Box2I(-500, -500, 1000, 1000)))
    sm = make_discrete_skymap(fps, cfg, border_deg=0.01)
    t = sm[0]
    for w, b in fps:
        c = b.corners()
        ra, dec = w.pixel_to_world_values(c[:, 0], c[:, 1])
        sep = angular_separation_deg(
            radec_to_xyz(t.ra_deg, t.dec_deg)[None, :], radec_to_xyz(ra, dec)
        )
        assert np.all(sep <= t.radius_deg)
        x, y = t.wcs.world_to_pixel_values(ra, dec)
        assert np.all((x > 0) & (x < t.bbox.width) & (y > 0) & (y < t.bbox.height))


@pytest.mark.parametrize(
    "skymap",
    [
        DiscreteSkyMap(SkyMapConfig.hsc(), [150.0, 151.0], [2.0, 2.5], [0.5, 0.4]),
        RingsSkyMap(SkyMapConfig.hsc(), num_rings=120, ra_start_deg=1.5),
    ],
)
def test_yaml_round_trip(skymap: DiscreteSkyMap | RingsSkyMap) -> None:
    fmt = SkyMapFormatter()
    back = fmt.from_bytes(fmt.to_bytes(skymap), source="mem")
    assert back == skymap
    t, tb = skymap[1], back[1]
    assert tb.bbox == t.bbox and np.allclose(tb.wcs.wcs.crpix, t.wcs.wcs.crpix)
    assert "!!python" not in skymap_to_yaml(skymap)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[1, 2]", "mapping"),
        ("format_version: 1\ntype: hexagons\nconfig: {}\n", "does not match"),
        ("a: [", "not valid YAML"),
        ("!!python/object:os.system {}", "not valid YAML"),
    ],
)
def test_bad_skymap_files(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        skymap_from_yaml(text, source="bad.yaml")
