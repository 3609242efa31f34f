"""Quicklook PNGs: NO_DATA pixels get their own colour; data pixels are grey levels."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np

from warping.coverage_map import CcdFootprint, render_coverage
from warping.exposure import Exposure
from warping.geom import Box2I
from warping.quicklook import NO_DATA_RGB, render_quicklook, stretch_image


def test_stretch_maps_to_unit_interval_and_keeps_nan() -> None:
    rng = np.random.default_rng(1)
    img = rng.normal(100.0, 5.0, (64, 64))
    img[0, 0] = np.nan
    s = stretch_image(img)
    assert np.isnan(s[0, 0])
    assert np.nanmin(s) >= 0.0 and np.nanmax(s) <= 1.0


def test_quicklook_shows_no_data_distinctly(tmp_path: Path) -> None:
    exp = Exposure.empty(Box2I(100, 200, 80, 60), fill_no_data=False)
    rng = np.random.default_rng(2)
    exp.image[:] = rng.normal(0.0, 1.0, exp.image.shape)
    exp.image[:, :40] = np.nan
    exp.mask[:, :40] = exp.mask_planes.bitmask("NO_DATA")
    path = render_quicklook(exp, tmp_path / "q.png", title="test")
    rgba = mpimg.imread(path)
    colours = rgba[..., :3].reshape(-1, 3)
    no_data = np.all(np.abs(colours - np.array(NO_DATA_RGB)) < 0.02, axis=1)
    grey = np.all(np.abs(colours - colours[:, :1]) < 1e-3, axis=1)
    assert no_data.sum() > 0.1 * len(colours)  # a large region is drawn in the NO_DATA colour
    assert grey.sum() > 0.1 * len(colours)  # and data are grey levels


def test_coverage_map_writes_png(tmp_path: Path) -> None:
    verts = np.array([[0, 0], [50, 0], [50, 80], [0, 80]], dtype=float)
    path = render_coverage(Box2I(10, 10, 60, 60), [CcdFootprint(903988, 16, verts)],
                           tmp_path / "c.png")  # fmt: skip
    assert mpimg.imread(path).shape[2] in (3, 4)


def test_quicklook_keeps_large_tick_labels_inside_the_png(tmp_path: Path) -> None:
    """Tract coordinates have 5-6 digits: no label may be cut at the image edge (the outermost
    pixel columns and rows are background)."""
    exp = Exposure.empty(Box2I(123456, 98765, 300, 200), fill_no_data=False)
    exp.image[:] = np.random.default_rng(3).normal(0.0, 1.0, exp.image.shape)
    rgba = mpimg.imread(render_quicklook(exp, tmp_path / "q.png", title="edges"))
    rgb = rgba[..., :3]
    for edge in (rgb[:, 0], rgb[:, -1], rgb[0], rgb[-1]):
        assert np.all(edge > 0.95), "something is drawn on the image border (cut label?)"


def test_binned_quicklook_of_a_half_empty_warp_warns_nothing(tmp_path: Path) -> None:
    """Issue 20, point 8: ``rb demo`` leaked "Mean of empty slice" from all-NO_DATA blocks."""
    import warnings

    exp = Exposure.empty(Box2I(0, 0, 400, 300), fill_no_data=True)
    exp.image[:, 200:] = np.random.default_rng(4).normal(0.0, 1.0, (300, 200))
    exp.mask[:, 200:] = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = render_quicklook(exp, tmp_path / "q.png", max_pixels=100)  # 4x4 binning
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], caught
    colours = mpimg.imread(path)[..., :3].reshape(-1, 3)
    no_data = np.all(np.abs(colours - np.array(NO_DATA_RGB)) < 0.02, axis=1)
    assert no_data.sum() > 0.1 * len(colours)  # the empty half is drawn as NO_DATA
