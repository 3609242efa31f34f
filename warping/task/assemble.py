"""Per-visit warp assembly helpers: mask-plane remapping and LSST's ``copyGoodPixels``."""

from __future__ import annotations

import numpy as np

from warping.exposure import Exposure
from warping.masks import MaskPlanes

__all__ = ["copy_good_pixels", "merge_mask_planes", "remap_mask"]


def merge_mask_planes(dest: MaskPlanes, src: MaskPlanes) -> MaskPlanes:
    """``dest`` extended with the planes of ``src`` it lacks (existing bits never move)."""
    merged = dest
    for name in src.bits:
        merged = merged.with_plane(name)
    return merged


def remap_mask(mask: np.ndarray, src: MaskPlanes, dest: MaskPlanes) -> np.ndarray:
    """Re-express a mask written with ``src`` bit numbers in ``dest`` bit numbers, by plane name.

    Bits that ``src`` does not name are dropped. Raises ``KeyError`` if ``dest`` lacks a plane
    of ``src`` (merge the planes first with :func:`merge_mask_planes`).
    """
    if dict(src.bits) == {n: dest.bits[n] for n in src.bits if n in dest.bits} and all(
        n in dest for n in src.bits
    ):
        known = 0
        for b in src.bits.values():
            known |= 1 << b
        return np.bitwise_and(mask, np.int32(known))
    out = np.zeros_like(mask)
    for name, bit in src.bits.items():
        dbit = dest.bit(name)
        out |= ((mask >> bit) & 1).astype(mask.dtype) << dbit
    return out


def copy_good_pixels(dest: Exposure, src: Exposure, bad_mask_planes: tuple[str, ...]) -> int:
    """Copy image, mask and variance of ``src`` pixels without any bad plane into ``dest``.

    Works on the parent-pixel overlap of the two bboxes; later calls overwrite earlier ones where
    both are good ("last wins"). ``dest``'s mask planes are extended with ``src``'s if needed
    (bits are matched by plane name). Returns the number of pixels copied.
    """
    overlap = dest.bbox.intersection(src.bbox)
    if overlap.is_empty():
        return 0
    planes = merge_mask_planes(dest.mask_planes, src.mask_planes)
    if planes != dest.mask_planes:
        dest.mask = remap_mask(dest.mask, dest.mask_planes, planes)
        dest.mask_planes = planes
    ds = overlap.slices(dest.bbox)
    ss = overlap.slices(src.bbox)
    src_mask = remap_mask(src.mask[ss], src.mask_planes, planes)
    bad = src.mask_planes.bitmask_if_present(*bad_mask_planes)
    good = (src.mask[ss] & bad) == 0
    n = int(np.count_nonzero(good))
    if n:
        dest.image[ds][good] = src.image[ss][good]
        dest.variance[ds][good] = src.variance[ss][good]
        dest.mask[ds][good] = src_mask[good]
    return n
