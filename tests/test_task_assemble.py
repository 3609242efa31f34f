"""copyGoodPixels semantics: overlap, bad planes, last-wins and mask-plane remapping by name."""

from __future__ import annotations

import numpy as np
import pytest

from warping.exposure import Exposure
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.task.assemble import copy_good_pixels, remap_mask


def _exp(bbox: Box2I, value: float, planes: MaskPlanes | None = None) -> Exposure:
    e = Exposure.empty(bbox, mask_planes=planes, fill_no_data=False)
    e.image[:] = value
    e.variance[:] = value * 10
    return e


def test_copy_overlap_and_counts() -> None:
    dest = Exposure.empty(Box2I(0, 0, 10, 8))
    src = _exp(Box2I(5, 4, 10, 10), 3.0)
    src.mask[0, 0] = src.mask_planes.bitmask("NO_DATA")
    n = copy_good_pixels(dest, src, ("NO_DATA",))
    assert n == 5 * 4 - 1
    assert np.isnan(dest.image[4, 5]) and np.isinf(dest.variance[4, 5])
    assert dest.image[5, 6] == 3.0 and dest.variance[5, 6] == 30.0
    assert dest.mask[5, 6] == 0
    assert np.isnan(dest.image[:4]).all()


def test_last_wins_only_where_good() -> None:
    dest = Exposure.empty(Box2I(0, 0, 4, 4))
    a = _exp(Box2I(0, 0, 4, 4), 1.0)
    b = _exp(Box2I(0, 0, 4, 4), 2.0)
    b.mask[:2] = b.mask_planes.bitmask("NO_DATA")
    assert copy_good_pixels(dest, a, ("NO_DATA",)) == 16
    assert copy_good_pixels(dest, b, ("NO_DATA",)) == 8
    assert (dest.image[:2] == 1.0).all() and (dest.image[2:] == 2.0).all()


def test_disjoint_copies_nothing() -> None:
    dest = Exposure.empty(Box2I(0, 0, 4, 4))
    assert copy_good_pixels(dest, _exp(Box2I(10, 10, 3, 3), 1.0), ("NO_DATA",)) == 0


def test_mask_bits_follow_plane_names() -> None:
    src_planes = MaskPlanes({"SAT": 0, "CR": 5, "NO_DATA": 3, "FOO": 7})
    dest = Exposure.empty(Box2I(0, 0, 2, 1))
    src = _exp(Box2I(0, 0, 2, 1), 1.0, src_planes)
    src.mask[0, 0] = src_planes.bitmask("SAT", "CR", "FOO")
    copy_good_pixels(dest, src, ("NO_DATA",))
    assert dest.mask_planes.names(int(dest.mask[0, 0])) == ["SAT", "CR", "FOO"]
    assert "FOO" in dest.mask_planes
    back = remap_mask(src.mask, src_planes, dest.mask_planes)
    assert back[0, 0] == dest.mask[0, 0]
    with pytest.raises(KeyError, match="Unknown mask plane"):
        remap_mask(dest.mask, dest.mask_planes, src_planes)
