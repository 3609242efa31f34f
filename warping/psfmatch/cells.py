"""The cell set of PSF pairs used to fit the matching kernel (LSST ``_buildCellSet``)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from warping.geom import Box2I
from warping.psf.base import Psf, PsfError
from warping.psfmatch.config import PsfMatchConfig
from warping.psfmatch.errors import PsfMatchError

logger = logging.getLogger(__name__)

__all__ = [
    "CellSet",
    "ResizedPsf",
    "build_cell_set",
    "compute_padding",
    "next_odd_integer",
    "pad_stamp",
    "resize_psf",
]


def next_odd_integer(value: float) -> int:
    """Smallest odd integer >= ``ceil(value)`` (LSST ``nextOddInteger``)."""
    n = math.ceil(value)
    return n + 1 if n % 2 == 0 else n


def compute_padding(psf_size: int, config: PsfMatchConfig) -> int:
    """Pixels added to the science PSF stamp of size ``psf_size``.

    With ``do_auto_pad_psf`` the stamp is grown to ``next_odd(kernel_size * auto_pad_psf_to)``
    (31 for the defaults) if smaller; otherwise ``pad_psf_by`` (even) is added.
    """
    if config.do_auto_pad_psf:
        min_size = next_odd_integer(config.kernel_size * config.auto_pad_psf_to)
        return max(0, min_size - psf_size)
    return config.pad_psf_by


def pad_stamp(stamp: np.ndarray, size: int) -> np.ndarray:
    """Centre ``stamp`` (odd, centred kernel image) in a ``size²`` zero array, or crop it."""
    h, w = stamp.shape
    out = np.zeros((size, size), dtype=float)
    # Offsets of the stamp origin in the output; negative values crop symmetrically.
    oy, ox = (size - h) // 2, (size - w) // 2
    sy0, sx0 = max(0, -oy), max(0, -ox)
    dy0, dx0 = max(0, oy), max(0, ox)
    ny, nx = min(h - sy0, size - dy0), min(w - sx0, size - dx0)
    out[dy0 : dy0 + ny, dx0 : dx0 + nx] = stamp[sy0 : sy0 + ny, sx0 : sx0 + nx]
    return out


class ResizedPsf(Psf):
    """A PSF whose kernel images are zero-padded or cropped to ``size²`` and renormalised.

    Used only when the model PSF has no ``resized(size)`` method of its own.
    """

    def __init__(self, psf: Psf, size: int) -> None:
        if size < 1 or size % 2 == 0:
            raise ValueError(f"resized PSF size must be odd and positive, got {size}")
        self._psf = psf
        self._size = int(size)

    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        """Kernel image of the wrapped PSF padded/cropped to ``size²``, sum 1."""
        k = pad_stamp(np.asarray(self._psf.compute_kernel_image(x, y), dtype=float), self._size)
        return k / k.sum()

    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        """Image of the wrapped PSF at ``(x, y)`` (its own bbox: resizing only affects kernels)."""
        return self._psf.compute_image(x, y)

    def average_position(self) -> tuple[float, float]:
        """The wrapped PSF's average position."""
        return self._psf.average_position()


def resize_psf(psf: Psf, size: int) -> Psf:
    """``psf.resized(size)`` when the PSF implements it, else a :class:`ResizedPsf` wrapper."""
    resized = getattr(psf, "resized", None)
    if callable(resized):
        out = resized(size)
        if not isinstance(out, Psf):
            raise TypeError(f"{type(psf).__name__}.resized() returned {type(out).__name__}")
        return out
    return ResizedPsf(psf, size)


def _science_kernels(psf: Psf, xs: np.ndarray, ys: np.ndarray) -> list[np.ndarray | PsfError]:
    """Kernel images of ``psf`` at the cell centres, or the :class:`PsfError` where it fails.

    Uses the PSF's batch ``compute_kernel_images`` when it has one (e.g.
    :class:`warping.coadd_psf.WarpedPsf`), else one call per centre.
    """
    batch = getattr(psf, "compute_kernel_images", None)
    if callable(batch):
        out = batch(np.asarray(xs, float), np.asarray(ys, float))
        return [o if isinstance(o, PsfError) else np.asarray(o, dtype=float) for o in out]
    res: list[np.ndarray | PsfError] = []
    for x, y in zip(xs, ys, strict=True):
        try:
            res.append(np.asarray(psf.compute_kernel_image(float(x), float(y)), dtype=float))
        except PsfError as exc:
            res.append(exc)
    return res


def _constant_kernel(psf: Psf) -> np.ndarray | None:
    """The kernel image of a spatially constant analytic PSF (one evaluation), else ``None``."""
    from warping.psf.analytic import DoubleGaussianPsf, GaussianPsf

    if type(psf) in (GaussianPsf, DoubleGaussianPsf):
        return np.asarray(psf.compute_kernel_image(0.0, 0.0), dtype=float)
    return None


@dataclass
class CellSet:
    """PSF pairs at the centres of a grid of cells covering ``bbox`` (the grown region).

    ``science_stamps[c]`` (padded, ``psf_size²``) convolved with the matching kernel should give
    ``model_stamps[c]``.
    """

    bbox: Box2I
    n_cells_x: int
    n_cells_y: int
    psf_size: int
    padding: int
    centres: np.ndarray  # (n, 2) as (x, y)
    science_stamps: np.ndarray  # (n, P, P)
    model_stamps: np.ndarray  # (n, P, P)
    model_psf: Psf
    skipped: list[str] = field(default_factory=list)

    @property
    def n_cells(self) -> int:
        """Number of cells with a usable PSF pair."""
        return len(self.centres)


def build_cell_set(
    bbox: Box2I, science_psf: Psf, model_psf: Psf, config: PsfMatchConfig
) -> CellSet:
    """Build the cell grid and the padded PSF pairs for one warped CCD.

    Parameters
    ----------
    bbox
        Bbox of the warped CCD's data (parent pixels of the warp).
    science_psf
        PSF of the warped CCD in the warp frame; evaluated once per cell centre.
    model_psf
        The model PSF to match to; resized to the stamp size when its size differs.
    config
        Matching configuration.

    Raises
    ------
    PsfMatchError
        Insufficient area, no cell with a valid science PSF, or a kernel larger than the stamp.
    """
    k = config.kernel_size
    if bbox.width < k or bbox.height < k:
        raise PsfMatchError(
            f"Insufficient area to match: the CCD's warped bbox {bbox.to_list()} "
            f"(x0, y0, width, height) is smaller than the {k}x{k} matching kernel, so no pixel "
            f"would survive its {k // 2}-pixel border; the CCD is skipped for the psfMatched warp "
            f"(a smaller kernel['AL'].kernelSize would keep it)"
        )
    sx, sy = config.size_cell_x, config.size_cell_y
    grown = bbox.grow(sx, sy)  # extend so the spatial model reaches the edges
    # Always >= 2 cells per axis because of the growth (LSST's "nCell == 0" check cannot fire).
    ncx, ncy = grown.width // sx, grown.height // sy
    centres: list[tuple[float, float]] = []
    stamps: list[np.ndarray] = []
    skipped: list[str] = []
    cols, rows = np.meshgrid(np.arange(ncx), np.arange(ncy))
    xcs = (grown.x0 + sx * cols + sx // 2).ravel()
    ycs = (grown.y0 + sy * rows + sy // 2).ravel()
    for xc, yc, stamp in zip(xcs, ycs, _science_kernels(science_psf, xcs, ycs), strict=True):
        if isinstance(stamp, PsfError):
            skipped.append(f"cell at ({xc}, {yc}): {stamp}")
            continue
        if stamp.ndim != 2 or stamp.shape[0] % 2 == 0 or stamp.shape[1] % 2 == 0:
            raise PsfMatchError(
                f"science PSF kernel image at ({xc}, {yc}) has shape {stamp.shape}; "
                "kernel images must be 2-D with odd dimensions"
            )
        if not np.all(np.isfinite(stamp)):
            skipped.append(f"cell at ({xc}, {yc}): science PSF has non-finite pixels")
            continue
        centres.append((float(xc), float(yc)))
        stamps.append(stamp)
    if skipped:
        logger.debug("Skipped %d of %d cells: %s", len(skipped), ncx * ncy, skipped[:3])
    if not stamps:
        raise PsfMatchError(
            f"No kernel candidates for the spatial fit: the science PSF could not be evaluated "
            f"at any of the {ncx * ncy} cell centres over {grown.to_list()} "
            f"(first problem: {skipped[0] if skipped else 'none'})"
        )
    psf_size = max(max(s.shape) for s in stamps)
    pad = compute_padding(psf_size, config)
    psf_size += pad
    max_kernel = psf_size - 1
    if max_kernel % 2 == 0:
        max_kernel -= 1
    if k > max_kernel:
        raise PsfMatchError(
            f"Kernel size {k} is too big for the PSF stamp of {psf_size}x{psf_size} pixels "
            f"(largest allowed kernel: {max_kernel}); use a smaller kernel['AL'].kernelSize or "
            f"pad the PSF (doAutoPadPsf=True, or a larger even padPsfBy)"
        )
    cx, cy = bbox.x0 + (bbox.width - 1) / 2.0, bbox.y0 + (bbox.height - 1) / 2.0
    model_shape = np.asarray(model_psf.compute_kernel_image(cx, cy)).shape
    if model_shape != (psf_size, psf_size):
        logger.debug(
            "Adjusted dimensions of reference PSF model from %s to %dx%d",
            model_shape,
            psf_size,
            psf_size,
        )
        model_psf = resize_psf(model_psf, psf_size)
    sci = np.empty((len(stamps), psf_size, psf_size))
    ref = np.empty_like(sci)
    constant = _constant_kernel(model_psf)
    for c, ((px, py), stamp) in enumerate(zip(centres, stamps, strict=True)):
        sci[c] = pad_stamp(stamp, psf_size)
        if constant is None:
            ref[c] = pad_stamp(np.asarray(model_psf.compute_kernel_image(px, py), float), psf_size)
    if constant is not None:
        ref[:] = pad_stamp(constant, psf_size)[None]
    return CellSet(
        bbox=grown,
        n_cells_x=ncx,
        n_cells_y=ncy,
        psf_size=psf_size,
        padding=pad,
        centres=np.array(centres, dtype=float),
        science_stamps=sci,
        model_stamps=ref,
        model_psf=model_psf,
        skipped=skipped,
    )
