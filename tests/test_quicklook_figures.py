"""The quicklook and coverage-map figures (issue 20, point 9): colour bar with unit and stretch,
NO_DATA legend, axis labels, a N/E compass that points where the WCS says, nothing clipped;
coverage legend per visit, unused calexps, inner bbox, non-overlapping labels, axes fitting
every polygon."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from matplotlib.patches import Polygon
from matplotlib.text import Annotation, Text

from warping.coverage_map import CcdFootprint, coverage_figure
from warping.exposure import Exposure
from warping.geom import Box2I
from warping.photocalib import PhotoCalib
from warping.quicklook import quicklook_figure

XY0 = (2000, 1500)


def _parent_wcs(rotation_deg: float, east_right: bool) -> WCS:
    """TAN WCS of **parent** pixels, 0.2"/px, rotated; ``east_right`` flips the parity."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [2101.0, 1601.0]  # FITS 1-based: parent pixel (2100, 1600)
    th = np.radians(rotation_deg)
    s = 0.2 / 3600.0
    flip = 1.0 if east_right else -1.0
    w.wcs.cd = s * np.array([[flip * np.cos(th), -np.sin(th)], [flip * np.sin(th), np.cos(th)]])
    return w


def _exposure(rotation_deg: float = 0.0, east_right: bool = False, *, calexp: bool = False
              ) -> Exposure:  # fmt: skip
    exp = Exposure.empty(Box2I(XY0[0], XY0[1], 240, 180), wcs=_parent_wcs(rotation_deg, east_right),
                         fill_no_data=False)  # fmt: skip
    exp.image[:] = np.random.default_rng(5).normal(10.0, 2.0, exp.image.shape)
    exp.image[:, :60] = np.nan
    exp.mask[:, :60] = exp.mask_planes.bitmask("NO_DATA")
    exp.photo_calib = PhotoCalib(0.25 if calexp else 1.0)
    return exp


def _assert_nothing_clipped(fig: Any) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tight = fig.get_tightbbox(renderer)  # inches, every drawn artist
    w, h = fig.get_size_inches()
    assert tight.x0 >= -0.01 and tight.y0 >= -0.01, tight
    assert tight.x1 <= w + 0.01 and tight.y1 <= h + 0.01, (tight, w, h)
    shown = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    hidden = _ticks_out_of_view(fig)
    for text in shown:
        box = text.get_window_extent(renderer)
        if any(text is t for t in hidden):
            continue
        assert box.x0 >= fig.bbox.x0 - 1 and box.x1 <= fig.bbox.x1 + 1, text.get_text()
        assert box.y0 >= fig.bbox.y0 - 1 and box.y1 <= fig.bbox.y1 + 1, text.get_text()


def _ticks_out_of_view(fig: Any) -> list[Any]:
    """Tick labels of ticks outside the view limits (matplotlib keeps but does not draw them)."""
    out: list[Any] = []
    for ax in fig.axes:
        for labels, lim, i in ((ax.get_xticklabels(), ax.get_xlim(), 0),
                               (ax.get_yticklabels(), ax.get_ylim(), 1)):  # fmt: skip
            lo, hi = sorted(lim)
            out += [t for t in labels if not lo <= t.get_position()[i] <= hi]
    return out


def _expected_directions(exp: Exposure, parent_xy: tuple[float, float]) -> dict[str, np.ndarray]:
    """North and east at a parent pixel, from the parent-pixel WCS and astropy's sky offsets
    (independent of the quicklook's array-origin WCS and its own offset arithmetic)."""
    wcs = exp.wcs
    assert isinstance(wcs, WCS)
    centre = wcs.pixel_to_world(*parent_xy)
    out = {}
    for name, pa in (("N", 0.0), ("E", 90.0)):
        moved: SkyCoord = centre.directional_offset_by(pa * u.deg, 2.0 * u.arcsec)
        px, py = wcs.world_to_pixel(moved)
        vec = np.array([float(px) - parent_xy[0], float(py) - parent_xy[1]])
        out[name] = vec / np.hypot(*vec)
    return out


def _compass(fig: Any) -> dict[str, Annotation]:
    ax = fig.axes[0]
    return {t.get_text(): t for t in ax.texts if isinstance(t, Annotation) and t.get_text() in "NE"}


@pytest.mark.parametrize(("rotation", "east_right"), [(0.0, False), (35.0, False), (-120.0, True)])
def test_compass_points_north_and_east_as_the_wcs_says(rotation: float, east_right: bool) -> None:
    exp = _exposure(rotation, east_right)
    compass = _compass(quicklook_figure(exp, title="compass"))
    assert set(compass) == {"N", "E"}
    for name, ann in compass.items():
        base = tuple(float(v) for v in ann.xy)
        tip = np.array(ann.xyann, dtype=float)
        got = (tip - np.array(base)) / np.hypot(*(tip - np.array(base)))
        want = _expected_directions(exp, base)[name]  # type: ignore[arg-type]
        angle = np.degrees(np.arccos(np.clip(np.dot(got, want), -1.0, 1.0)))
        assert angle < 0.5, (name, got, want)
        # the compass lies inside the image
        x0, y0 = exp.xy0
        assert x0 <= base[0] <= x0 + exp.width and y0 <= base[1] <= y0 + exp.height
        assert x0 <= tip[0] <= x0 + exp.width and y0 <= tip[1] <= y0 + exp.height


def test_warp_figure_has_unit_stretch_legend_labels_and_nothing_clipped() -> None:
    exp = _exposure()
    fig = quicklook_figure(exp, title="deepCoadd_directWarp: tract=0 patch=5,4 filter=HSC-I "
                           "visit=903988  [rerun ci_hsc]", pixel_frame="tract pixels")  # fmt: skip
    ax = fig.axes[0]
    cbar = ax.images[0].colorbar
    assert cbar is not None
    label = cbar.ax.get_ylabel()
    assert label.startswith("nJy") and "asinh stretch" in label and "zscale" in label, label
    # the colour bar spans the zscale limits named in its label, in data units
    lo, hi = cbar.ax.get_ylim()
    assert f"{lo:.3g} to {hi:.3g} nJy" in label
    assert lo < 10.0 < hi  # the data's centre (mean 10) is inside
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert any(t.startswith("NO_DATA") and "25.0%" in t for t in legend), legend  # 60 of 240
    assert ax.get_xlabel() == "x (tract pixels)" and ax.get_ylabel() == "y (tract pixels)"
    assert "visit=903988" in fig.get_suptitle()
    _assert_nothing_clipped(fig)


def test_calexp_figure_is_in_counts_with_its_calibration_and_linear_stretch() -> None:
    exp = _exposure(calexp=True)
    fig = quicklook_figure(exp, stretch="linear", pixel_frame="CCD pixels")
    label = fig.axes[0].images[0].colorbar.ax.get_ylabel()
    assert label.startswith("count") and "0.25 nJy/count" in label and "linear stretch" in label
    _assert_nothing_clipped(fig)


def test_tall_and_binned_images_stay_inside_the_figure() -> None:
    exp = Exposure.empty(Box2I(123456, 98765, 300, 2000), wcs=_parent_wcs(10.0, False),
                         fill_no_data=False)  # fmt: skip
    exp.image[:] = np.random.default_rng(6).normal(0.0, 1.0, exp.image.shape)
    fig = quicklook_figure(exp, title="a long title " * 30, max_pixels=500)
    assert "block-averaged 4x4" in fig.axes[0].get_title()
    _assert_nothing_clipped(fig)


def test_no_wcs_no_compass_and_the_legend_says_so() -> None:
    exp = _exposure()
    exp.wcs = None
    fig = quicklook_figure(exp)
    assert not _compass(fig)
    assert any("no WCS" in t.get_text() for lg in fig.legends for t in lg.get_texts())


# -- coverage map -----------------------------------------------------------------------------


def _ccd(visit: int, ccd: int, x: float, y: float, rot: float, *, used: bool = True
         ) -> CcdFootprint:  # fmt: skip
    w, h = 190.0, 380.0
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]]) - [w / 2, h / 2]
    th = np.radians(rot)
    r = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    return CcdFootprint(visit, ccd, corners @ r.T + [x, y], used)


def _demo_like_footprints() -> list[CcdFootprint]:
    """Three dithered visits of a 2x2 CCD block over the patch, plus CCD 9 of each below it
    (unused) reaching far under the patch: where the old map cut CCDs off."""
    out = []
    dithers = ((12, -8, 4), (0, 0, 0), (-10, 10, -3))
    for visit, (dx, dy, rot) in zip((903986, 903988, 904010), dithers, strict=True):
        for ccd, (cx, cy) in ((16, (1560, 1150)), (17, (1755, 1150)), (23, (1560, 1540)),
                              (24, (1755, 1540)), (9, (1560, 760))):  # fmt: skip
            out.append(_ccd(visit, ccd, cx + dx, cy + dy, rot, used=ccd != 9))
    return out


def _legend_texts(fig: Any) -> list[str]:
    return [t.get_text() for lg in fig.legends for t in lg.get_texts()]


def test_coverage_legend_colours_labels_and_limits() -> None:
    fps = _demo_like_footprints()
    fig = coverage_figure(Box2I(1480, 1180, 340, 340), fps, inner_bbox=Box2I(1500, 1200, 300, 300),
                          title="coverage")  # fmt: skip
    ax = fig.axes[0]
    legend = _legend_texts(fig)
    for visit in (903986, 903988, 904010):
        assert sum(t.startswith(f"visit {visit}") for t in legend) == 1, legend
    assert sum("not used" in t for t in legend) == 1 and sum("inner bbox" in t for t in legend) == 1
    assert sum("outer bbox" in t for t in legend) == 1
    # visit colours are clearly distinct (RGB distance), none of them grey
    handles = [h for lg in fig.legends for h in lg.legend_handles]
    from matplotlib.colors import to_rgb

    colours = [np.array(to_rgb(h.get_color())) for h, t in zip(handles, legend, strict=True)
               if t.startswith("visit")]  # fmt: skip
    for a, b in itertools.combinations(colours, 2):
        assert np.linalg.norm(a - b) > 0.4, (a, b)
    # unused calexps: grey dashed polygons
    polys = [p for p in ax.patches if isinstance(p, Polygon)]
    assert len(polys) == len(fps)
    unused = [p for p in polys if p.get_linestyle() in ("--", "dashed")]
    assert len(unused) == 3
    for p in unused:
        r, g, b = to_rgb(p.get_edgecolor())
        assert abs(r - g) < 0.05 and abs(g - b) < 0.05
    # every polygon inside the axes limits (nothing cut at an edge)
    fig.canvas.draw()
    (x_lo, x_hi), (y_lo, y_hi) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    for p in polys:
        xy = p.get_xy()
        assert xy[:, 0].min() >= x_lo and xy[:, 0].max() <= x_hi
        assert xy[:, 1].min() >= y_lo and xy[:, 1].max() <= y_hi
    # one label per CCD (the visits' footprints coincide), none overlapping
    labels = [t for t in ax.texts if t.get_text().startswith("ccd")]
    assert sorted(t.get_text() for t in labels) == ["ccd 16", "ccd 17", "ccd 23", "ccd 24", "ccd 9"]
    _assert_labels_apart(fig, labels)
    _assert_nothing_clipped(fig)


def _assert_labels_apart(fig: Any, labels: list[Any]) -> None:
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in labels]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)


def test_crowded_coverage_labels_never_overlap() -> None:
    """Sixty small CCDs of twelve far-dithered visits: labels are dropped, never overlapped."""
    rng = np.random.default_rng(7)
    fps = [
        _ccd(1000 + v, c, 1500 + 900 * rng.random(), 1500 + 900 * rng.random(), 0.0)
        for v in range(12)
        for c in range(5)
    ]
    fig = coverage_figure(Box2I(1700, 1700, 400, 400), fps)
    fig.canvas.draw()
    labels = [t for t in fig.axes[0].texts if t.get_text().startswith("ccd")]
    assert 0 < len(labels) <= len(fps)
    _assert_labels_apart(fig, labels)
    assert sum(t.startswith("visit") for t in _legend_texts(fig)) == 12
    _assert_nothing_clipped(fig)
