"""Public warping API: control object, WCS-based and transform-based warps, destination bbox."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from warping._threads import thread_limit
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.row_padding import as_rows
from warping.warp._kernels import KERNEL_NAMES, KernelSpec, parse_kernel
from warping.warp._transform import (
    DestToSrc,
    frame_change,
    pixel_to_world,
    wcs_pair_transform,
    world_to_pixel,
)

if TYPE_CHECKING:
    from warping.exposure import Exposure

__all__ = [
    "WarpResult",
    "WarpingControl",
    "compute_warped_bbox",
    "warp_exposure",
    "warp_image",
    "warp_with_transform",
]

logger = logging.getLogger(__name__)

#: Destination rows per band when ``interp_length == 0`` (exact per-pixel transform), to bound
#: the memory of the per-pixel position grid.
EXACT_BAND_ROWS = 256


@dataclass(frozen=True)
class WarpingControl:
    """How to warp (afw ``WarpingControl``).

    Parameters
    ----------
    kernel
        Image/variance kernel: ``nearest``, ``bilinear`` or ``lanczos2`` ... ``lanczos5``.
    mask_kernel
        Kernel whose footprint ORs the mask planes not listed in ``grow_full_mask``;
        ``""`` means the same as ``kernel``. It may not be larger than ``kernel``.
    interp_length
        Evaluate the exact WCS transform every ``interp_length`` destination pixels and
        interpolate bilinearly inside each cell; ``0`` evaluates every pixel exactly.
    grow_full_mask
        Mask planes OR'ed over the full image-kernel footprint.
    threads
        Number of threads for the compiled core (``None``: all available cores).
    conserve_flux
        Multiply by the relative pixel area (LSST, conserves total flux). ``False`` conserves
        surface brightness (SWarp, reproject, Montage).
    """

    kernel: str = "lanczos3"
    mask_kernel: str = "bilinear"
    interp_length: int = 10
    grow_full_mask: tuple[str, ...] = ("EDGE",)
    threads: int | None = None
    conserve_flux: bool = True

    def __post_init__(self) -> None:
        spec = parse_kernel(self.kernel)
        object.__setattr__(self, "kernel", spec.name)
        if self.mask_kernel:
            mspec = parse_kernel(self.mask_kernel)
            if mspec.size > spec.size:
                allowed = [k for k in KERNEL_NAMES if parse_kernel(k).size <= spec.size]
                raise ValueError(
                    f"mask_kernel {self.mask_kernel!r} (size {mspec.size}) is larger than kernel "
                    f"{self.kernel!r} (size {spec.size}); allowed: {', '.join(allowed)} or ''"
                )
            object.__setattr__(self, "mask_kernel", mspec.name)
        if not isinstance(self.interp_length, int | np.integer) or self.interp_length < 0:
            raise ValueError(
                f"interp_length must be an integer >= 0 (0 = exact), got {self.interp_length!r}"
            )
        if isinstance(self.grow_full_mask, str):
            raise ValueError(
                f"grow_full_mask must be a tuple of plane names, got the string "
                f"{self.grow_full_mask!r}; write ({self.grow_full_mask!r},)"
            )
        object.__setattr__(self, "grow_full_mask", tuple(self.grow_full_mask))
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")

    @property
    def kernel_spec(self) -> KernelSpec:
        """The parsed image kernel."""
        return parse_kernel(self.kernel)

    @property
    def mask_kernel_spec(self) -> KernelSpec:
        """The parsed mask kernel (the image kernel when ``mask_kernel == ""``)."""
        return parse_kernel(self.mask_kernel or self.kernel)


@dataclass
class WarpResult:
    """Arrays on the destination bbox returned by :func:`warp_with_transform`.

    ``variance`` is ``None`` when no source variance was given; ``mask`` is always present
    (NO_DATA on pad pixels). ``n_good`` counts the pixels computed from source data.
    """

    image: np.ndarray
    variance: np.ndarray | None
    mask: np.ndarray
    n_good: int
    bbox: Box2I


def _n_threads(threads: int | None) -> int:
    """Threads for the compiled core: ``threads`` capped at :func:`warping._threads.thread_limit`
    (usable cores, ``REPO_BUTLER_THREADS``); all of those when None."""
    limit = thread_limit()
    return limit if threads is None else max(1, min(threads, limit))


def warp_with_transform(
    image: np.ndarray,
    variance: np.ndarray | None,
    mask: np.ndarray | None,
    src_xy0: tuple[int, int],
    dest_bbox: Box2I,
    dest_to_src: DestToSrc,
    *,
    control: WarpingControl,
    pad_value: float = math.nan,
    mask_planes: MaskPlanes | None = None,
    want_mask: bool = True,
    out_image: np.ndarray | None = None,
) -> WarpResult:
    """Warp image (+ variance, + mask) through an arbitrary destination-to-source pixel map.

    Parameters
    ----------
    image, variance, mask
        Source arrays of one shape (variance and mask may be ``None``).
    src_xy0
        Parent position of source element ``[0, 0]``.
    dest_bbox
        Parent bbox of the destination arrays.
    dest_to_src
        Maps parent destination positions ``(x, y)`` (arrays) to parent source positions. It is
        evaluated only on the ``interp_length`` grid (plus row and column ``-1``).
    control
        Kernels, interpolation length, threads.
    pad_value
        Image value of destination pixels whose kernel footprint leaves the source.
    mask_planes
        Planes of ``mask`` (for ``NO_DATA`` and ``grow_full_mask``); default afw planes.
    want_mask
        Produce the output mask (``False`` saves memory for plain images; ``mask`` is then empty).
    out_image
        Write the image into this array (shape ``dest_bbox.shape``, the dtype of the result,
        contiguous rows; e.g. a view of a larger grid) instead of a new one.

    Returns
    -------
    WarpResult
        Image and variance (dtype of ``image`` if floating, else float64), int32 mask and the
        number of good pixels.
    """
    from warping.warp._core import (
        OutputPixels,
        PixelRules,
        PositionGrid,
        SourcePixels,
        WarpKernel,
        warp_band,
    )

    img = np.asarray(image)
    if img.dtype not in (np.float32, np.float64):
        img = img.astype(np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")
    img = as_rows(img)  # rows as read (padded by the FITS reader): no copy
    do_var = variance is not None
    # variance shares the image dtype: two compiled signatures per kernel, not four
    var = as_rows(variance, img.dtype) if variance is not None else np.zeros((1, 1), img.dtype)
    if do_var and var.shape != img.shape:
        raise ValueError(f"variance shape {var.shape} differs from image shape {img.shape}")
    mask_in = mask is not None
    msk = as_rows(mask, np.int32) if mask is not None else np.zeros((1, 1), dtype=np.int32)
    if mask_in and msk.shape != img.shape:
        raise ValueError(f"mask shape {msk.shape} differs from image shape {img.shape}")

    planes = mask_planes if mask_planes is not None else MaskPlanes.default()
    nodata = planes.bitmask_if_present("NO_DATA")
    grow = planes.bitmask_if_present(*control.grow_full_mask)
    spec = control.kernel_spec
    mspec = control.mask_kernel_spec

    hd, wd = dest_bbox.shape
    if out_image is None:
        out_img = np.empty((hd, wd), dtype=img.dtype)
    else:
        out_img = out_image
        if out_img.shape != (hd, wd) or out_img.dtype != img.dtype:
            raise ValueError(
                f"out_image must have shape {(hd, wd)} and dtype {img.dtype}, got "
                f"{out_img.shape} {out_img.dtype}"
            )
    out_var = np.empty((hd, wd) if do_var else (1, 1), dtype=var.dtype)
    out_mask = np.empty((hd, wd) if want_mask else (0, 0), dtype=np.int32)
    result = WarpResult(out_img, out_var if do_var else None, out_mask, 0, dest_bbox)
    if dest_bbox.is_empty():
        return result
    hs, ws = img.shape
    if hs < spec.size or ws < spec.size:  # afw: a source smaller than the kernel gives all pad
        logger.debug("source %dx%d smaller than kernel %s: all pad", ws, hs, spec.name)
        out_img.fill(pad_value)
        out_var.fill(np.inf)
        out_mask.fill(nodata)
        return result

    n_threads = _n_threads(control.threads)
    x0s, y0s = int(src_xy0[0]), int(src_xy0[1])
    length = control.interp_length
    step = length if length > 0 else 1
    nodes_x = np.arange(-1, wd, dtype=np.float64) if length == 0 else _nodes(wd, step)
    if length > 0:
        bands = [(0, hd)]
    else:
        bands = [(r, min(r + EXACT_BAND_ROWS, hd)) for r in range(0, hd, EXACT_BAND_ROWS)]
    source = SourcePixels(img, var, msk, do_var, mask_in)
    kernel = WarpKernel.from_specs(spec, mspec)
    outputs = OutputPixels(out_img, out_var, out_mask, want_mask)
    rules = PixelRules(grow, nodata, float(pad_value), control.conserve_flux)
    n_good = 0
    for r0, r1 in bands:
        if length > 0:
            nodes_y = _nodes(hd, step)
            origin_y = -1
            ext = 0
        else:  # one extra row each side so the area derivatives are centred at band edges
            nodes_y = np.arange(r0 - 2, r1 + 1, dtype=np.float64)
            origin_y = r0 - 1
            ext = 1
        xx, yy = np.meshgrid(nodes_x + dest_bbox.x0, nodes_y + dest_bbox.y0)
        sx, sy = dest_to_src(xx, yy)
        gx = np.asarray(sx, dtype=np.float64).reshape(xx.shape) - x0s
        gy = np.asarray(sy, dtype=np.float64).reshape(xx.shape) - y0s
        if control.conserve_flux:
            ga = _area_grid(gx, gy, nodes_x, nodes_y)
        else:
            ga = np.ones((1, 1))
        if ext:
            gx, gy, nodes_y = gx[1:-1], gy[1:-1], nodes_y[1:-1]
            ga = ga[1:-1] if control.conserve_flux else ga
        grid = PositionGrid(nodes_x, nodes_y, gx, gy, ga, step, origin_y)
        n_good += warp_band(source, grid, kernel, outputs, rules, (r0, r1), n_threads)
    result.n_good = n_good
    return result


def _area_grid(
    gx: np.ndarray, gy: np.ndarray, nodes_x: np.ndarray, nodes_y: np.ndarray
) -> np.ndarray:
    """Relative area ``|det d(src)/d(dest)|`` at the grid nodes.

    Derivatives are second-order finite differences over the grid nodes (``numpy.gradient`` with
    the node coordinates), i.e. the Jacobian at the pixel centre. afw instead differences the
    interpolated positions half a pixel up and left of the centre; that carries an O(dA/dx / 2)
    bias and, with ``interp_length > 1``, the slope error of the bilinear interpolant.
    """
    with np.errstate(invalid="ignore"):
        eox: Literal[1, 2] = 2 if len(nodes_x) >= 3 else 1
        eoy: Literal[1, 2] = 2 if len(nodes_y) >= 3 else 1
        dxdx = np.gradient(gx, nodes_x, axis=1, edge_order=eox)
        dydx = np.gradient(gy, nodes_x, axis=1, edge_order=eox)
        dxdy = np.gradient(gx, nodes_y, axis=0, edge_order=eoy)
        dydy = np.gradient(gy, nodes_y, axis=0, edge_order=eoy)
        return np.ascontiguousarray(np.abs(dxdx * dydy - dxdy * dydx))


def _nodes(n: int, step: int) -> np.ndarray:
    from warping.warp._transform import grid_nodes

    return grid_nodes(n, step, origin=-1)


def compute_warped_bbox(
    src_bbox: Box2I, src_wcs: Any, dest_wcs: Any, *, edge_samples: int = 0
) -> Box2I:
    """Destination parent bbox covering the source bbox (afw ``computeWarpedBBox``).

    The four corners of the source's continuous extent (``x0 - 0.5 ... x1 + 0.5``) are mapped
    through ``dest_wcs.sky_to_pixel(src_wcs.pixel_to_sky(.))`` (sky coordinates transformed to the
    destination's celestial frame if it differs) and the result is expanded to whole
    pixels. ``edge_samples > 0`` also maps that many points inside every edge, so that a strongly
    distorted (bulging) edge is not cut off; the box is then a superset of afw's.
    Returns an empty box when no corner maps to a finite position.
    """
    if src_bbox.is_empty():
        return Box2I(0, 0, 0, 0)
    corners = src_bbox.corners()
    pts = [corners]
    if edge_samples > 0:
        t = (np.arange(1, edge_samples + 1) / (edge_samples + 1))[:, None]
        for k in range(4):
            a, b = corners[k], corners[(k + 1) % 4]
            pts.append(a + t * (b - a))
    p = np.concatenate(pts)
    change = frame_change(dest_wcs, src_wcs)  # source frame -> destination frame
    with np.errstate(invalid="ignore"):
        ra, dec = pixel_to_world(src_wcs, p[:, 0], p[:, 1])
        if change is not None:
            ra, dec = change(ra, dec)
        x, y = world_to_pixel(dest_wcs, ra, dec)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return Box2I(0, 0, 0, 0)
    return Box2I.from_float_extent(
        float(x[ok].min()), float(y[ok].min()), float(x[ok].max()), float(y[ok].max())
    )


def warp_image(
    image: np.ndarray,
    src_wcs: Any,
    dest_wcs: Any,
    dest_shape: tuple[int, int],
    *,
    control: WarpingControl | None = None,
) -> np.ndarray:
    """Warp a plain 2-D image onto a full destination grid (NaN where there is no data).

    Parameters
    ----------
    image
        Source image; ``src_wcs`` maps its pixel positions (origin 0) to the sky.
    src_wcs, dest_wcs
        Celestial WCSs (astropy ``WCS`` or any APE-14 low-level WCS).
    dest_shape
        ``(height, width)`` of the destination grid.
    control
        Kernel and transform settings (default Lanczos-3, ``interp_length=10``).

    Returns
    -------
    numpy.ndarray
        ``dest_shape`` array (float32 for float32 input, else float64). Only the bbox of the
        source footprint (sampled densely along its edges) is computed.
    """
    control = control or WarpingControl()
    img = np.asarray(image)
    h, w = int(dest_shape[0]), int(dest_shape[1])
    full = Box2I(0, 0, w, h)
    src_bbox = Box2I(0, 0, img.shape[1], img.shape[0])
    bbox = compute_warped_bbox(src_bbox, src_wcs, dest_wcs, edge_samples=16).intersection(full)
    dtype = np.float32 if img.dtype == np.float32 else np.float64
    out = np.full((h, w), np.nan, dtype=dtype)
    if bbox.is_empty():
        logger.info("source does not overlap the destination grid")
        return out
    warp_with_transform(
        img,
        None,
        None,
        (0, 0),
        bbox,
        wcs_pair_transform(src_wcs, dest_wcs),
        control=control,
        want_mask=False,
        out_image=out[bbox.slices(full)],
    )
    return out


def warp_exposure(
    exposure: Exposure,
    dest_wcs: Any,
    *,
    max_bbox: Box2I | None = None,
    dest_bbox: Box2I | None = None,
    control: WarpingControl | None = None,
) -> Exposure:
    """Warp an exposure's image, variance and mask onto ``dest_wcs`` (afw ``Warper.warpExposure``).

    Parameters
    ----------
    exposure
        Source exposure; its ``wcs`` maps parent pixels (origin 0) to the sky.
    dest_wcs
        Destination WCS in parent pixels (e.g. a tract WCS).
    max_bbox
        Clip the destination bbox to this box (e.g. a patch outer bbox).
    dest_bbox
        Use this destination bbox instead of computing it from the source footprint.
    control
        Warping settings (default: Lanczos-3 image, bilinear mask, EDGE grown, interpLength 10).

    Returns
    -------
    Exposure
        On the destination bbox, with ``dest_wcs``, the source's mask planes (plus NO_DATA and EDGE
        if missing), photo_calib, visit_info, filter, id and a copy of the metadata; no PSF.
        Pixels whose kernel footprint leaves the source are NaN / NO_DATA / +inf. An empty bbox
        gives a 0x0 exposure.
    """
    from warping.exposure import Exposure

    control = control or WarpingControl()
    if exposure.wcs is None:
        raise ValueError("warp_exposure needs an exposure with a WCS; attach one (exposure.wcs)")
    if dest_bbox is None:
        dest_bbox = compute_warped_bbox(exposure.bbox, exposure.wcs, dest_wcs)
        if max_bbox is not None:
            dest_bbox = dest_bbox.intersection(max_bbox)
    if dest_bbox.is_empty():
        dest_bbox = Box2I(dest_bbox.x0, dest_bbox.y0, 0, 0)
    planes = exposure.mask_planes.with_plane("NO_DATA").with_plane("EDGE")
    res = warp_with_transform(
        exposure.image,
        exposure.variance,
        exposure.mask,
        exposure.xy0,
        dest_bbox,
        wcs_pair_transform(exposure.wcs, dest_wcs),
        control=control,
        mask_planes=planes,
    )
    assert res.variance is not None
    logger.debug("warped %s onto %s: %d good pixels", exposure.bbox, dest_bbox, res.n_good)
    return Exposure(
        res.image,
        res.mask,
        res.variance,
        mask_planes=planes,
        xy0=(dest_bbox.x0, dest_bbox.y0),
        wcs=dest_wcs,
        psf=None,
        photo_calib=exposure.photo_calib,
        visit_info=exposure.visit_info,
        filter=exposure.filter,
        id=exposure.id,
        metadata=copy.deepcopy(exposure.metadata),
    )
