"""Quicklook pictures of an exposure (warp or calexp): a stretched image with a colour bar in the
pixel unit, NO_DATA in its own colour with a legend, pixel axes and a N/E compass from the WCS.

The plotting functions return a :class:`matplotlib.figure.Figure` (built without pyplot, so no
global backend state; it renders with Agg) and ``render_*`` save it. matplotlib is imported
lazily: importing this module does not need it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from repo_butler.extras import require
from warping.exposure import Exposure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

__all__ = [
    "NO_DATA_RGB",
    "Stretch",
    "compass_directions",
    "quicklook_figure",
    "render_quicklook",
    "require_matplotlib",
    "save_figure",
    "stretch_image",
    "wrap_title",
    "zscale_stretch",
]

#: RGB used for pixels without data (NO_DATA or non-finite): a muted blue, never a grey level.
NO_DATA_RGB = (0.13, 0.20, 0.45)
#: colour of the compass arrows and letters (readable on grey levels and on NO_DATA blue)
COMPASS_RGB = (1.0, 0.55, 0.0)
STRETCHES = ("asinh", "linear")
#: softening of the asinh stretch (astropy's ``AsinhStretch(a=0.1)``: linear below ~0.1)
_ASINH_A = 0.1


@dataclass(frozen=True)
class Stretch:
    """A display mapping: pixel values in ``[vmin, vmax]`` (zscale limits) to ``[0, 1]``."""

    name: str  # "asinh" or "linear"
    vmin: float
    vmax: float

    def describe(self, unit: str) -> str:
        """E.g. ``"asinh stretch, zscale limits -3.1 to 12 nJy"``."""
        return f"{self.name} stretch, zscale limits {self.vmin:.3g} to {self.vmax:.3g} {unit}"

    def forward(self, values: Any) -> np.ndarray:
        """Pixel values to display levels: [vmin, vmax] to [0, 1] (monotonic outside too, so a
        colour bar places no tick of an outside value at its ends)."""
        t = (np.asarray(values, dtype=np.float64) - self.vmin) / (self.vmax - self.vmin)
        if self.name == "asinh":
            return np.arcsinh(t / _ASINH_A) / np.arcsinh(1.0 / _ASINH_A)
        return t

    def inverse(self, levels: Any) -> np.ndarray:
        """Display levels in [0, 1] back to pixel values."""
        u = np.asarray(levels, dtype=np.float64)
        t = np.sinh(u * np.arcsinh(1.0 / _ASINH_A)) * _ASINH_A if self.name == "asinh" else u
        return self.vmin + t * (self.vmax - self.vmin)

    def normalize(self) -> Any:
        """The matching matplotlib norm (a ``FuncNorm``: masked pixels stay masked, and a colour
        bar is labelled in pixel values)."""
        from matplotlib.colors import FuncNorm

        return FuncNorm((self.forward, self.inverse), vmin=self.vmin, vmax=self.vmax, clip=True)


def require_matplotlib() -> None:
    """Import matplotlib, or raise a one-line error naming the ``[plots]`` extra."""
    require("matplotlib", "plots", "drawing pictures (rb quicklook, rb demo)")


def zscale_stretch(image: np.ndarray, *, stretch: str = "asinh") -> Stretch:
    """The zscale limits of the finite pixels of ``image`` with the named stretch.

    Raises
    ------
    ValueError
        If ``stretch`` is not one of :data:`STRETCHES`.
    """
    from astropy.visualization import ZScaleInterval

    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}: use one of {', '.join(STRETCHES)}")
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return Stretch(stretch, 0.0, 1.0)
    vmin, vmax = (float(v) for v in ZScaleInterval().get_limits(finite))
    if vmax <= vmin:
        vmax = vmin + 1.0
    return Stretch(stretch, vmin, vmax)


def stretch_image(image: np.ndarray, *, stretch: str = "asinh") -> np.ndarray:
    """Map an image to [0, 1] with a zscale interval and an asinh (or linear) stretch.

    Non-finite pixels come back as NaN.
    """
    out = np.full(image.shape, np.nan)
    finite = np.isfinite(image)
    if finite.any():
        levels = zscale_stretch(image, stretch=stretch).forward(image[finite])
        out[finite] = np.clip(levels, 0.0, 1.0)
    return out


def _calibration_note(exposure: Exposure) -> str:
    """For uncalibrated pixels (a calexp: counts), the photoCalib's mean nJy per count."""
    mean = getattr(exposure.photo_calib, "calibration_mean", None)
    if exposure.unit == "nJy" or not mean:
        return ""
    return f" (photoCalib mean {mean:.4g} nJy/{exposure.unit})"


def _no_data_mask(exposure: Exposure) -> np.ndarray:
    no_data = ~np.isfinite(exposure.image)
    if "NO_DATA" in exposure.mask_planes:
        no_data |= (exposure.mask & exposure.mask_planes.bitmask("NO_DATA")) != 0
    return no_data


def _binned(image: np.ndarray, factor: int) -> np.ndarray:
    """Block means of ``factor`` x ``factor`` pixels; a block without finite pixels is NaN
    (computed from sums and counts, so an empty block raises no "Mean of empty slice")."""
    if factor <= 1:
        return image
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor)
    finite = np.isfinite(blocks)
    counts = finite.sum(axis=(1, 3))
    sums = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
    out = np.full(counts.shape, np.nan)
    np.divide(sums, counts, out=out, where=counts > 0)
    return out


def compass_directions(wcs: Any, x: float, y: float) -> dict[str, np.ndarray]:
    """Unit vectors (in array pixels) pointing north and east at array pixel ``(x, y)``.

    ``wcs`` is an array-origin astropy WCS (:attr:`Exposure.astropy_wcs`). Each direction is the
    pixel offset of a point 1 arcsec away along the local meridian / parallel.
    """
    ra, dec = (float(v) for v in wcs.pixel_to_world_values(x, y))
    step = 1.0 / 3600.0
    out: dict[str, np.ndarray] = {}
    for name, (d_ra, d_dec) in (
        ("N", (0.0, step)),
        ("E", (step / max(np.cos(np.radians(dec)), 1e-6), 0.0)),
    ):
        px, py = (float(v) for v in wcs.world_to_pixel_values(ra + d_ra, dec + d_dec))
        vec = np.array([px - x, py - y])
        out[name] = vec / np.hypot(*vec)
    return out


def _draw_compass(ax: Axes, exposure: Exposure, extent: tuple[float, float, float, float]) -> None:
    """N and E arrows near the lower-left corner of the image (``extent`` in parent pixels)."""
    wcs = exposure.astropy_wcs
    if wcs is None:
        return
    import matplotlib.patheffects as pe

    x_lo, x_hi, y_lo, y_hi = extent
    length = 0.11 * min(x_hi - x_lo, y_hi - y_lo)
    ox, oy = x_lo + 1.7 * length, y_lo + 1.7 * length
    # array pixel of the compass origin: parent minus xy0
    dirs = compass_directions(wcs, ox - exposure.xy0[0], oy - exposure.xy0[1])
    outline = [pe.withStroke(linewidth=2.5, foreground="black")]
    for name, vec in dirs.items():
        tip = (ox + 1.3 * length * vec[0], oy + 1.3 * length * vec[1])
        ax.annotate(
            name,
            xy=(ox, oy),
            xytext=tip,
            ha="center",
            va="center",
            color=COMPASS_RGB,
            fontsize=9,
            fontweight="bold",
            path_effects=outline,
            arrowprops={"arrowstyle": "<-", "color": COMPASS_RGB, "lw": 1.8, "shrinkA": 5,
                        "shrinkB": 0},
        )  # fmt: skip


def quicklook_figure(
    exposure: Exposure,
    *,
    title: str | None = None,
    stretch: str = "asinh",
    pixel_frame: str = "parent pixels",
    max_pixels: int = 1600,
) -> Figure:
    """A figure of ``exposure``: image, colour bar, NO_DATA legend, pixel axes, N/E compass.

    Parameters
    ----------
    exposure
        The warp or calexp.
    title
        Figure title (e.g. dataset type and data ID).
    stretch
        ``"asinh"`` or ``"linear"``, over the zscale limits of the data pixels.
    pixel_frame
        What the parent pixel coordinates are, for the axis labels ("tract pixels" for a warp,
        "CCD pixels" for a calexp).
    max_pixels
        Images larger than this on a side are block-averaged (NO_DATA blocks stay NO_DATA).
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    no_data = _no_data_mask(exposure)
    image = np.where(no_data, np.nan, exposure.image.astype(np.float64))
    factor = max(1, int(np.ceil(max(image.shape) / max_pixels)))
    shown = _binned(image, factor)
    scale = zscale_stretch(shown, stretch=stretch)
    grey: Any = ListedColormap(
        np.repeat(np.linspace(0.0, 1.0, 256)[:, None], 3, axis=1), "grey"
    ).with_extremes(bad=NO_DATA_RGB)
    x0, y0 = exposure.xy0
    extent = (
        x0 - 0.5,
        x0 - 0.5 + shown.shape[1] * factor,
        y0 - 0.5,
        y0 - 0.5 + shown.shape[0] * factor,
    )
    aspect = shown.shape[0] / max(shown.shape[1], 1)
    fig = Figure(figsize=(7.0, float(np.clip(5.3 * aspect + 1.3, 3.5, 11.0))), dpi=120,
                 layout="constrained")  # fmt: skip
    FigureCanvasAgg(fig)  # rendered with Agg, whatever pyplot's backend
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=grey, norm=scale.normalize(), origin="lower",
                   extent=extent, interpolation="nearest")  # fmt: skip
    unit = exposure.unit
    cbar = fig.colorbar(im, ax=ax, shrink=0.9, pad=0.02)
    cbar.set_label(f"{unit}{_calibration_note(exposure)}  ({scale.describe(unit)})", fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    ax.set_xlabel(f"x ({pixel_frame})")
    ax.set_ylabel(f"y ({pixel_frame})")
    ax.tick_params(labelsize=7)
    _draw_compass(ax, exposure, extent)
    frac = float(no_data.mean()) if no_data.size else 0.0
    handles = [
        Patch(facecolor=NO_DATA_RGB, edgecolor="black", lw=0.5,
              label=f"NO_DATA (no input pixels): {frac:.1%} of the image"),
    ]  # fmt: skip
    if exposure.astropy_wcs is None:
        handles.append(Patch(facecolor="none", edgecolor="none", label="no WCS: no compass"))
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, frameon=False)
    fig.suptitle(wrap_title(title or ""), fontsize=9)
    if factor > 1:
        ax.set_title(f"block-averaged {factor}x{factor} for display", fontsize=7)
    return fig


def wrap_title(title: str, width: int = 88) -> str:
    """A title in lines of at most ``width`` characters (about a 7-inch figure at 9 pt)."""
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in title.splitlines())


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (parent directories created) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def render_quicklook(
    exposure: Exposure,
    path: str | Path,
    *,
    stretch: str = "asinh",
    title: str | None = None,
    pixel_frame: str = "parent pixels",
    max_pixels: int = 1600,
) -> Path:
    """Write a PNG of ``exposure`` (see :func:`quicklook_figure`) and return its path."""
    fig = quicklook_figure(exposure, title=title, stretch=stretch, pixel_frame=pixel_frame,
                           max_pixels=max_pixels)  # fmt: skip
    return save_figure(fig, path)
