"""The coverage map: calexp (CCD) footprints over a patch, one colour per visit.

CCDs used for the warps are drawn in their visit's colour, calexps that were not used in grey
and dashed; the patch's outer bbox (solid) and inner bbox (dotted) are black; the legend names
all of them. CCD numbers label the footprints, fewer where they would overlap. The axes fit every
polygon. matplotlib is imported lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from warping.geom import Box2I
from warping.quicklook import require_matplotlib, save_figure, wrap_title

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from repo_butler import Butler

logger = logging.getLogger(__name__)

__all__ = ["CcdFootprint", "calexp_footprints", "coverage_figure", "render_coverage"]

#: distinct visit colours (matplotlib's tab10 without its grey, which marks unused calexps)
_VISIT_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
    "#17becf", "#000080", "#808000", "#800000",
)  # fmt: skip
UNUSED_COLOUR = "0.55"


@dataclass(frozen=True)
class CcdFootprint:
    """One calexp's outline in tract pixels and whether it went into the warps."""

    visit: int
    ccd: int
    vertices: np.ndarray  # (N, 2) tract-pixel x, y
    used: bool = True


def visit_colour(index: int) -> str:
    """The colour of the ``index``-th visit (cycling after 12)."""
    return _VISIT_COLOURS[index % len(_VISIT_COLOURS)]


def _limits(boxes: Sequence[Box2I], footprints: Sequence[CcdFootprint]) -> tuple[float, ...]:
    pts = [f.vertices for f in footprints]
    for b in boxes:
        pts.append(np.array([[b.x0 - 0.5, b.y0 - 0.5], [b.x1 + 0.5, b.y1 + 0.5]]))
    allp = np.concatenate(pts)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    pad = 0.04 * float(max(hi - lo))
    return (lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad)


def _label_ccds(ax: Axes, footprints: Sequence[CcdFootprint]) -> None:
    """CCD numbers at footprint centres: one per CCD where its visits' footprints coincide,
    then, drawing in order, a label whose box would overlap an earlier one is left out."""
    placed: list[tuple[int, np.ndarray, float]] = []
    for f in sorted(footprints, key=lambda f: (not f.used, f.ccd, f.visit)):
        centre = f.vertices.mean(axis=0)
        size = float(np.ptp(f.vertices, axis=0).min())
        if any(c == f.ccd and np.hypot(*(centre - p)) < 0.3 * s for c, p, s in placed):
            continue
        placed.append((f.ccd, centre, size))
    fig = ax.get_figure()
    assert fig is not None
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # an Agg canvas
    kept: list[Any] = []
    for ccd, centre, _ in placed:
        text = ax.text(centre[0], centre[1], f"ccd {ccd}", fontsize=7, ha="center", va="center",
                       clip_on=True, bbox={"boxstyle": "round,pad=0.15", "fc": "white",
                                           "ec": "none", "alpha": 0.75})  # fmt: skip
        box = text.get_window_extent(renderer)
        if any(box.overlaps(k) for k in kept):
            text.remove()
            continue
        kept.append(box)


def coverage_figure(
    patch_bbox: Box2I,
    footprints: Sequence[CcdFootprint],
    *,
    inner_bbox: Box2I | None = None,
    title: str | None = None,
) -> Figure:
    """The coverage map of ``footprints`` over the patch (``patch_bbox`` is the outer bbox)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Polygon, Rectangle

    boxes = [patch_bbox] + ([inner_bbox] if inner_bbox is not None else [])
    x_lo, x_hi, y_lo, y_hi = _limits(boxes, footprints)
    # the axes take the data's shape (about 5.6 in on the long side); the legend needs 7.5 in
    aspect = (y_hi - y_lo) / (x_hi - x_lo)
    ax_w, ax_h = (5.6 / aspect, 5.6) if aspect >= 1 else (7.0, 7.0 * aspect)
    fig = Figure(figsize=(max(ax_w + 1.3, 7.5), max(ax_h, 2.5) + 2.0), dpi=110,
                 layout="constrained")  # fmt: skip
    FigureCanvasAgg(fig)  # Agg renders it (label sizes are measured with its renderer)
    ax = fig.add_subplot()
    visits = sorted({f.visit for f in footprints if f.used})
    handles: list[Any] = []
    for i, visit in enumerate(visits):
        n = sum(1 for f in footprints if f.used and f.visit == visit)
        label = f"visit {visit} ({n} CCD{'s' if n != 1 else ''} used)"
        handles.append(Line2D([], [], color=visit_colour(i), lw=1.8, label=label))
    for f in sorted(footprints, key=lambda f: f.used):  # the used ones drawn on top
        if f.used:
            style = {"ec": visit_colour(visits.index(f.visit)), "lw": 1.4, "ls": "-"}
        else:
            style = {"ec": UNUSED_COLOUR, "lw": 1.0, "ls": "--"}
        ax.add_patch(Polygon(f.vertices, closed=True, fill=False, **style))
    unused = [f for f in footprints if not f.used]
    if unused:
        of = ", ".join(str(v) for v in sorted({f.visit for f in unused}))
        label = f"calexp not used ({len(unused)}; visit(s) {of})"
        handles.append(Line2D([], [], color=UNUSED_COLOUR, lw=1.0, ls="--", label=label))
    for box, ls, label in (
        (patch_bbox, "-", "patch outer bbox (the warp's extent, with border)"),
        (inner_bbox, ":", "patch inner bbox (the area the patch owns)"),
    ):
        if box is None:
            continue
        ax.add_patch(Rectangle((box.x0 - 0.5, box.y0 - 0.5), box.width, box.height,
                               fill=False, lw=2.0, ls=ls, ec="black"))  # fmt: skip
        handles.append(Line2D([], [], color="black", lw=2.0, ls=ls, label=label))
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("x (tract pixels)")
    ax.set_ylabel("y (tract pixels)")
    ax.tick_params(labelsize=7)
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    fig.suptitle(wrap_title(title or "CCD footprints over the patch"), fontsize=9)
    fig.canvas.draw()  # final layout, so label boxes are measured where they will be drawn
    _label_ccds(ax, footprints)
    return fig


def render_coverage(
    patch_bbox: Box2I,
    footprints: Sequence[CcdFootprint],
    path: str | Path,
    *,
    inner_bbox: Box2I | None = None,
    title: str | None = None,
) -> Path:
    """Write the coverage map (see :func:`coverage_figure`) as a PNG and return its path."""
    fig = coverage_figure(patch_bbox, footprints, inner_bbox=inner_bbox, title=title)
    return save_figure(fig, path)


def calexp_footprints(
    butler: Butler,
    tract_wcs: Any,
    data_id: Mapping[str, Any],
    used: Collection[tuple[int, int]],
) -> list[CcdFootprint]:
    """Footprints in tract pixels of every calexp matching ``data_id`` (e.g. the filter).

    ``used`` holds the ``(visit, ccd)`` pairs that went into the warps; the others are marked
    unused. A calexp without a WCS cannot be placed and is left out (logged).
    """
    from warping.calexp_footprint import read_wcs_and_bbox_of

    out: list[CcdFootprint] = []
    for ref in butler.query_datasets("calexp", data_id=dict(data_id)):
        wcs, bbox = read_wcs_and_bbox_of(butler.open_file, ref)
        if wcs is None:
            logger.info("calexp %s has no WCS: not on the coverage map", ref.data_id)
            continue
        corners = bbox.corners()
        ra, dec = wcs.pixel_to_world_values(corners[:, 0], corners[:, 1])
        x, y = tract_wcs.world_to_pixel_values(ra, dec)
        visit, ccd = int(ref.data_id["visit"]), int(ref.data_id["ccd"])
        out.append(CcdFootprint(visit, ccd, np.column_stack([x, y]), (visit, ccd) in used))
    return out
