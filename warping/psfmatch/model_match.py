"""Match a warped CCD to a model PSF (LSST ``ModelPsfMatchTask.run`` on arrays)."""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from warping._threads import submit, thread_limit
from warping.geom import Box2I
from warping.masks import MaskPlanes
from warping.psf.base import Psf
from warping.psfmatch.arrays import check_mask_dtype, float_pair, int32_mask
from warping.psfmatch.basis import make_separable_basis
from warping.psfmatch.cells import CellSet, build_cell_set
from warping.psfmatch.config import PsfMatchConfig
from warping.psfmatch.convolve import ConvolutionInfo, convolve_spatial
from warping.psfmatch.dilation import dilate_mask
from warping.psfmatch.errors import PsfMatchError, PsfMatchRejected
from warping.psfmatch.options import ConvolutionOptions
from warping.psfmatch.solve import FitDiagnostics, SpatialKernel, fit_spatial_kernel
from warping.psfmatch.spectra import TileSpectra, plan_tile_spectra
from warping.psfmatch.workspace import ConvolutionWorkspace

logger = logging.getLogger(__name__)

__all__ = ["DeconvolutionCheck", "PsfMatchResult", "check_deconvolution", "match_to_model"]

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class DeconvolutionCheck:
    """Comparison of model and science PSF second moments over the cells.

    ``min_eigenvalue`` is the smallest eigenvalue (px²) of ``M_model - M_science`` over all
    cells; negative means the model is narrower than the science PSF along some direction.
    """

    deconvolves: bool
    n_cells_deconvolving: int
    min_eigenvalue: float
    worst_position: tuple[float, float]
    science_fwhm_major: float  # FWHM (px) along the science PSF's major axis, worst cell
    model_fwhm_minor: float  # FWHM (px) along the model's minor axis, same cell
    max_science_fwhm_major: float  # largest science major-axis FWHM over the cells


def _moment_matrices(stamps: np.ndarray) -> np.ndarray:
    """Unweighted 2x2 second-moment matrices ``[[Ixx, Ixy], [Ixy, Iyy]]`` of each stamp."""
    size = stamps.shape[1]
    pos = np.arange(size, dtype=float)
    px = stamps.sum(axis=1)  # (n, x) marginal
    py = stamps.sum(axis=2)  # (n, y) marginal
    s = px.sum(axis=1)
    cx = px @ pos / s
    cy = py @ pos / s
    ixx = px @ (pos * pos) / s - cx * cx
    iyy = py @ (pos * pos) / s - cy * cy
    ixy = (stamps @ pos) @ pos / s - cx * cy
    return np.stack([np.stack([ixx, ixy], -1), np.stack([ixy, iyy], -1)], -2)


def check_deconvolution(cells: CellSet, *, rel_tol: float = 1e-6) -> DeconvolutionCheck:
    """Detect whether matching needs deconvolution in any direction at any cell.

    The model is too narrow where ``M_model - M_science`` (unweighted second moments of the PSF
    stamps) has a negative eigenvalue below ``-rel_tol * trace(M_science)``.
    """
    m_sci = _moment_matrices(cells.science_stamps)
    m_mod = _moment_matrices(cells.model_stamps)
    diff_eig = np.linalg.eigvalsh(m_mod - m_sci)[:, 0]
    sci_eig = np.linalg.eigvalsh(m_sci)
    mod_eig = np.linalg.eigvalsh(m_mod)
    tol = rel_tol * np.trace(m_sci, axis1=1, axis2=2)
    bad = diff_eig < -tol
    worst = int(np.argmin(diff_eig))
    return DeconvolutionCheck(
        deconvolves=bool(bad.any()),
        n_cells_deconvolving=int(bad.sum()),
        min_eigenvalue=float(diff_eig[worst]),
        worst_position=(float(cells.centres[worst, 0]), float(cells.centres[worst, 1])),
        science_fwhm_major=float(np.sqrt(sci_eig[worst, 1]) * _FWHM_PER_SIGMA),
        model_fwhm_minor=float(np.sqrt(mod_eig[worst, 0]) * _FWHM_PER_SIGMA),
        max_science_fwhm_major=float(np.sqrt(sci_eig[:, 1].max()) * _FWHM_PER_SIGMA),
    )


@dataclass
class PsfMatchResult:
    """The PSF-matched masked image and how it was made.

    ``image``, ``variance`` and ``mask`` cover the input bbox; a border of ``kernel_size // 2``
    pixels is NaN / +inf / NO_DATA. ``model_psf`` (resized to the PSF stamp when needed) is the
    PSF of the result. ``eroded_bbox`` is the valid bbox shrunk by the kernel half-width: the
    area the inputs table should record.
    """

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    kernel: SpatialKernel
    model_psf: Psf
    fit_seconds: float
    convolve_seconds: float
    n_cells: int
    eroded_bbox: Box2I
    psf_size: int
    fit: FitDiagnostics
    convolution: ConvolutionInfo
    deconvolution: DeconvolutionCheck
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _MatchJob:
    """One match: the CCD's arrays (native dtypes, contiguous rows), where and how to match."""

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray  # int32
    bbox: Box2I  # of the arrays
    region: Box2I  # the valid part of ``bbox``, where the cells go
    science_psf: Psf
    model_psf: Psf
    config: PsfMatchConfig
    mask_planes: MaskPlanes
    fit_region: str
    convolution: ConvolutionOptions

    @property
    def no_data(self) -> int:
        return int(self.mask_planes.bitmask("NO_DATA"))

    @property
    def half_width(self) -> int:
        return self.config.kernel_size // 2


@dataclass(frozen=True)
class _KernelFit:
    """The fitted kernel and what was learned fitting it."""

    kernel: SpatialKernel
    fit: FitDiagnostics
    cells: CellSet
    deconvolution: DeconvolutionCheck
    warnings: list[str]


def match_to_model(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    bbox: Box2I,
    science_psf: Psf,
    model_psf: Psf,
    *,
    config: PsfMatchConfig,
    mask_planes: MaskPlanes,
    valid_bbox: Box2I | None = None,
    fit_region: str = "stamp",
    workspace: ConvolutionWorkspace | None = None,
) -> PsfMatchResult:
    """PSF-match a warped CCD to ``model_psf`` with a spatially varying Alard–Lupton kernel.

    Parameters
    ----------
    image, variance, mask
        The warped CCD's arrays covering ``bbox`` (parent pixels of the warp).
    bbox
        Bbox of the arrays.
    science_psf
        PSF of the warped CCD in the warp's pixel frame; evaluated only at cell centres.
    model_psf
        The PSF to match to (resized to the PSF stamp size when needed).
    config
        Matching configuration.
    mask_planes
        Mask plane bits of ``mask`` (needs ``NO_DATA``).
    valid_bbox
        Part of ``bbox`` holding the CCD's data; cells are laid over it. Defaults to ``bbox``.
    fit_region
        ``"stamp"`` (default): fit every pixel of the padded PSF stamps. ``"valid"``: LSST's
        "good" region only (see :func:`~warping.psfmatch.solve.fit_spatial_kernel`).
    workspace
        Scratch buffers of the convolution kept by the caller for its next match (a caller
        matching many CCDs keeps one and passes it every time: same-size CCDs then reuse about
        110 MB of buffers instead of allocating them). ``None``: buffers of this call only.

    Returns
    -------
    PsfMatchResult

    Raises
    ------
    PsfMatchError
        Insufficient area, kernel larger than the PSF stamp, or no usable cell. The caller
        skips the CCD for the psfMatched warp and reports the message.
    PsfMatchRejected
        (a PsfMatchError) The model is narrower than the science PSF along some direction beyond
        ``config.deconvolution_tolerance`` (checked before the fit), or the fitted kernel's
        noise gain or sum |K| exceeds ``config.max_noise_gain`` / ``max_kernel_abs_sum``.
    """
    if image.shape != bbox.shape or variance.shape != bbox.shape or mask.shape != bbox.shape:
        raise ValueError(
            f"image {image.shape}, variance {variance.shape} and mask {mask.shape} must all "
            f"have the bbox shape {bbox.shape}"
        )
    region = bbox if valid_bbox is None else bbox.intersection(valid_bbox)
    if region.is_empty():
        raise PsfMatchError(
            f"Insufficient area to match: valid bbox {valid_bbox} does not overlap the image "
            f"bbox {bbox.to_list()}"
        )
    # Native, row-contiguous arrays for the compiled loops, converted (if at all) once here
    # rather than by each of the dilation, the tile FFTs and the convolution.
    check_mask_dtype(mask)
    image, variance = float_pair(image, variance)
    job = _MatchJob(
        image, variance, int32_mask(mask), bbox, region, science_psf, model_psf, config,
        mask_planes, fit_region, ConvolutionOptions(workers=min(2, thread_limit())),
    )  # fmt: skip
    # Only small matrices go through BLAS/LAPACK here; multi-threaded OpenBLAS next to the FFT
    # and tile thread pools was measured to turn 3 ms solves into 0.5-1 s on 2 busy cores.
    with threadpool_limits(limits=1, user_api="blas"):
        return _match(job, workspace if workspace is not None else ConvolutionWorkspace())


def _match(job: _MatchJob, workspace: ConvolutionWorkspace) -> PsfMatchResult:
    """Body of :func:`match_to_model`."""
    t0 = time.perf_counter()
    # The output mask and the tiles' forward FFTs do not depend on the kernel: a second thread
    # computes them while the kernel is being fitted. With one usable thread (Dask workers:
    # REPO_BUTLER_THREADS=1) everything runs on the calling thread.
    workers = job.convolution.threads
    background = ThreadPoolExecutor(max_workers=1) if workers > 1 else None
    with background or contextlib.nullcontext():
        masked = submit(
            background, dilate_mask, job.image, job.variance, job.mask, job.half_width,
            job.no_data,
        )  # fmt: skip
        # The convolution computes the tiles the background thread has not started by then.
        spectra = plan_tile_spectra(
            job.image, job.variance, job.mask, job.half_width, job.no_data, job.convolution,
            workspace=workspace,
        )  # fmt: skip
        if background is not None:
            background.submit(spectra.fill)
        try:
            fitted = _fit_kernel(job)
            t1 = time.perf_counter()
            return _convolve(job, fitted, masked, spectra, workspace, (t0, t1))
        except BaseException:
            spectra.release()  # waits for a tile being computed, then stops the filling
            raise


def _fit_kernel(job: _MatchJob) -> _KernelFit:
    """Lay the cells, check for deconvolution, fit the kernel and judge it."""
    config, region = job.config, job.region
    warn: list[str] = []
    cells = build_cell_set(region, job.science_psf, job.model_psf, config)
    if cells.skipped:
        warn.append(
            f"{len(cells.skipped)} of {len(cells.skipped) + cells.n_cells} PSF cells skipped "
            f"(science PSF not available there), e.g. {cells.skipped[0]}"
        )
    deconv = check_deconvolution(cells, rel_tol=config.deconvolution_tolerance)
    if deconv.deconvolves:
        raise PsfMatchRejected(
            f"PSF matching would deconvolve: the model PSF is narrower than the science PSF "
            f"along some direction in {deconv.n_cells_deconvolving} of {cells.n_cells} cells "
            f"(beyond deconvolutionTolerance={config.deconvolution_tolerance:g}; worst at "
            f"({deconv.worst_position[0]:.0f}, {deconv.worst_position[1]:.0f}): science "
            f"major-axis FWHM {deconv.science_fwhm_major:.2f} px vs model minor-axis FWHM "
            f"{deconv.model_fwhm_minor:.2f} px); raise modelPsf.defaultFwhm to at least "
            f"{deconv.max_science_fwhm_major:.2f} px (the worst-seeing visit), or leave it unset "
            f"for the automatic per-patch model"
        )
    basis = make_separable_basis(config.kernel_size, config.alard_sig_gauss, config.alard_deg_gauss)
    kernel, fit = fit_spatial_kernel(
        cells, basis, config.spatial_kernel_order, fit_region=job.fit_region,
        workers=job.convolution.threads,
    )  # fmt: skip
    _check_kernel_bounds(fit, cells, region, config)
    return _KernelFit(kernel, fit, cells, deconv, warn)


def _check_kernel_bounds(
    fit: FitDiagnostics, cells: CellSet, region: Box2I, config: PsfMatchConfig
) -> None:
    """Reject a kernel whose noise gain or sum |K| exceeds the configured bounds where it is
    applied (cells centred inside ``region``; all cells when none is)."""
    inside = np.array([region.contains_point(x, y) for x, y in cells.centres])
    use = inside if inside.any() else np.ones(len(inside), dtype=bool)
    gain = np.sqrt(np.where(use, fit.kernel_sum_sq, -np.inf).clip(min=0.0))
    l1 = np.where(use, fit.kernel_l1, -np.inf)
    worst = int(np.argmax(l1))
    worst_gain = int(np.argmax(gain))
    bad = []
    if l1[worst] > config.max_kernel_abs_sum:
        bad.append(f"sum|K| = {l1[worst]:.2f} > maxKernelAbsSum={config.max_kernel_abs_sum:g}")
    if gain[worst_gain] > config.max_noise_gain:
        bad.append(
            f"noise gain sqrt(sum K^2) = {gain[worst_gain]:.2f} > "
            f"maxNoiseGain={config.max_noise_gain:g}"
        )
    if bad:
        at = cells.centres[worst if l1[worst] > config.max_kernel_abs_sum else worst_gain]
        raise PsfMatchRejected(
            f"the matching kernel oscillates ({'; '.join(bad)} at cell ({at[0]:.0f}, "
            f"{at[1]:.0f})): its psfMatched pixels would carry checkered noise. Widen the basis "
            f"(leave kernel['AL'].alardSigGauss unset to scale it with the PSF widths) or widen "
            f"the model PSF"
        )


def _convolve(
    job: _MatchJob,
    fitted: _KernelFit,
    masked: Future[np.ndarray],
    spectra: TileSpectra,
    workspace: ConvolutionWorkspace,
    times: tuple[float, float],
) -> PsfMatchResult:
    """Apply the fitted kernel (``masked`` yields the dilated output mask; ``times``: the
    match's start and the fit's end, ``time.perf_counter`` seconds)."""
    t0, t1 = times
    bbox = job.bbox
    out_img, out_var, out_mask, conv = convolve_spatial(
        job.image, job.variance, job.mask, (bbox.x0, bbox.y0), fitted.kernel, job.mask_planes,
        job.convolution, dilated_mask=masked.result(), spectra=spectra, workspace=workspace,
    )  # fmt: skip
    t2 = time.perf_counter()
    cells = fitted.cells
    logger.info(
        "PSF-matched %s: %d cells, stamp %d px, fit %.3f s, convolution %.3f s",
        bbox.to_list(),
        cells.n_cells,
        cells.psf_size,
        t1 - t0,
        t2 - t1,
    )
    return PsfMatchResult(
        image=out_img,
        variance=out_var,
        mask=out_mask,
        kernel=fitted.kernel,
        model_psf=cells.model_psf,
        fit_seconds=t1 - t0,
        convolve_seconds=t2 - t1,
        n_cells=cells.n_cells,
        eroded_bbox=job.region.grow(-job.half_width),
        psf_size=cells.psf_size,
        fit=fitted.fit,
        convolution=conv,
        deconvolution=fitted.deconvolution,
        warnings=fitted.warnings,
    )
