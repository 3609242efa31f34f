"""Quicklook PNGs: a stretched warp image with NO_DATA shown distinctly, and a coverage map."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from warping.exposure import Exposure
from warping.geom import Box2I

logger = logging.getLogger(__name__)

__all__ = ["render_coverage", "render_quicklook", "stretch_image"]

#: RGB used for pixels without data (NO_DATA or non-finite): a muted blue, never a grey level.
NO_DATA_RGB = (0.13, 0.20, 0.45)


def stretch_image(image: np.ndarray, *, stretch: str = "asinh") -> np.ndarray:
    """Map an image to [0, 1] with a zscale interval and an asinh (or linear) stretch.

    Non-finite pixels come back as NaN.
    """
    from astropy.visualization import AsinhStretch, LinearStretch, ZScaleInterval

    finite = np.isfinite(image)
    out = np.full(image.shape, np.nan)
    if not finite.any():
        return out
    vmin, vmax = ZScaleInterval().get_limits(image[finite])
    if vmax <= vmin:
        vmax = vmin + 1.0
    scaled = np.clip((image[finite] - vmin) / (vmax - vmin), 0.0, 1.0)
    fn = AsinhStretch(a=0.1) if stretch == "asinh" else LinearStretch()
    out[finite] = fn(scaled)
    return out


def render_quicklook(
    exposure: Exposure, path: str | Path, *, stretch: str = "asinh", title: str | None = None,
    max_pixels: int = 1600,
) -> Path:  # fmt: skip
    """Write a PNG of ``exposure``: stretched image, NO_DATA in :data:`NO_DATA_RGB`.

    Large images are block-averaged to at most ``max_pixels`` on a side.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = exposure.image.astype(np.float64)
    no_data = ~np.isfinite(image)
    if "NO_DATA" in exposure.mask_planes:
        no_data |= (exposure.mask & exposure.mask_planes.bitmask("NO_DATA")) != 0
    image = np.where(no_data, np.nan, image)
    factor = max(1, int(np.ceil(max(image.shape) / max_pixels)))
    if factor > 1:
        h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
        with warnings.catch_warnings():  # an all-NO_DATA block is NaN, as it should be
            warnings.simplefilter("ignore", RuntimeWarning)
            image = np.nanmean(
                image[:h, :w].reshape(h // factor, factor, w // factor, factor), axis=(1, 3)
            ) if np.isfinite(image).any() else image[:h:factor, :w:factor]  # fmt: skip
    s = stretch_image(image, stretch=stretch)
    rgb = np.repeat(np.nan_to_num(s, nan=0.0)[..., None], 3, axis=2)
    rgb[~np.isfinite(s)] = NO_DATA_RGB
    fig = plt.figure(figsize=(6, 6 * rgb.shape[0] / max(rgb.shape[1], 1) + 0.4), dpi=150)
    ax = fig.add_axes((0.08, 0.06, 0.9, 0.88))
    x0, y0 = exposure.xy0
    extent = (x0 - 0.5, x0 + exposure.width - 0.5, y0 - 0.5, y0 + exposure.height - 0.5)
    ax.imshow(rgb, origin="lower", extent=extent, interpolation="nearest")
    ax.set_xlabel("x (tract pixels)")
    ax.set_ylabel("y (tract pixels)")
    ax.set_title(title or "", fontsize=9)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # "tight": tract coordinates have 5-6 digits and would be cut at the left edge otherwise
    fig.savefig(out, bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)
    return out


def render_coverage(
    patch_bbox: Box2I,
    footprints: Sequence[tuple[str, np.ndarray]],
    path: str | Path,
    *,
    inner_bbox: Box2I | None = None,
    title: str | None = None,
) -> Path:
    """Draw CCD footprints (``(label, (N, 2) tract-pixel vertices)``) over the patch bbox."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon, Rectangle

    fig, ax = plt.subplots(figsize=(7, 7), dpi=120)
    cmap: Any = plt.get_cmap("tab20")
    labels = sorted({lab.split(" ")[0] for lab, _ in footprints})
    for label, verts in footprints:
        colour = cmap(labels.index(label.split(" ")[0]) % 20)
        ax.add_patch(Polygon(verts, closed=True, fill=False, lw=1.0, ec=colour))
        cx, cy = np.asarray(verts).mean(axis=0)
        ax.text(cx, cy, label, fontsize=6, ha="center", va="center", color=colour)
    for box, style in ((patch_bbox, "-"), (inner_bbox, ":")):
        if box is not None:
            ax.add_patch(Rectangle((box.x0 - 0.5, box.y0 - 0.5), box.width, box.height,
                                   fill=False, lw=2.0, ls=style, ec="black"))  # fmt: skip
    pad = 0.6 * max(patch_bbox.width, patch_bbox.height)
    ax.set_xlim(patch_bbox.x0 - pad, patch_bbox.x1 + pad)
    ax.set_ylim(patch_bbox.y0 - pad, patch_bbox.y1 + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("x (tract pixels)")
    ax.set_ylabel("y (tract pixels)")
    ax.set_title(title or "CCD footprints (colour = visit) over the patch (black)", fontsize=9)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
