"""Fit of the spatially varying matching kernel: per-cell normal equations + Chebyshev model."""

from __future__ import annotations

import itertools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from warping._threads import thread_limit
from warping.geom import Box2I
from warping.psfmatch._match_loops import cell_gram
from warping.psfmatch.basis import SeparableBasis
from warping.psfmatch.cells import CellSet
from warping.psfmatch.errors import PsfMatchError

logger = logging.getLogger(__name__)

__all__ = [
    "FitDiagnostics",
    "SpatialKernel",
    "chebyshev_1d",
    "chebyshev_terms",
    "fit_spatial_kernel",
]


def chebyshev_1d(t: np.ndarray, order: int) -> np.ndarray:
    """Chebyshev polynomials ``T_0..T_order`` (first kind) at ``t``; shape ``(order+1, *t)``."""
    t = np.asarray(t, dtype=float)
    out = np.empty((order + 1, *t.shape))
    out[0] = 1.0
    if order >= 1:
        out[1] = t
    for n in range(2, order + 1):
        out[n] = 2.0 * t * out[n - 1] - out[n - 2]
    return out


def term_exponents(order: int) -> list[tuple[int, int]]:
    """``(nx, ny)`` of the spatial terms ``T_nx(x') T_ny(y')``.

    Order: ``1, T1(x), T1(y), T2(x), T1(x)T1(y), T2(y), ...`` (afw ``Chebyshev1Function2``).
    """
    return [(n - j, j) for n in range(order + 1) for j in range(n + 1)]


def chebyshev_terms(xn: np.ndarray, yn: np.ndarray, order: int) -> np.ndarray:
    """afw ``Chebyshev1Function2`` terms at normalised coordinates; shape ``(n_terms, *xn)``."""
    tx = chebyshev_1d(xn, order)
    ty = chebyshev_1d(yn, order)
    return np.array([tx[a] * ty[b] for a, b in term_exponents(order)])


@dataclass(frozen=True)
class SpatialKernel:
    """``K(x, y) = sum_i a_i(x, y) B_i`` with ``a_i`` Chebyshev polynomials over ``domain``.

    ``coefficients[i, t]`` multiplies spatial term ``t`` of basis kernel ``i``; basis 0 has only a
    constant term (its coefficient is the kernel sum). Kernel images are indexed ``[v+h, u+h]``
    for pixel offsets ``(u, v)`` and are applied as a true convolution,
    ``out(x, y) = sum_{u,v} K(u, v) in(x-u, y-v)``.
    """

    basis: np.ndarray  # (n_basis, k, k)
    coefficients: np.ndarray  # (n_basis, n_terms)
    order: int
    domain: Box2I  # the Chebyshev variables span this box's continuous extent

    @property
    def size(self) -> int:
        """Kernel width in pixels."""
        return int(self.basis.shape[-1])

    @property
    def half_width(self) -> int:
        """``size // 2``."""
        return self.size // 2

    def normalized_xy(
        self, x: np.ndarray | float, y: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map parent pixel positions to ``[-1, 1]`` over the domain's extent (pixel edges)."""
        d = self.domain
        xmin, xmax = d.x0 - 0.5, d.x1 + 0.5
        ymin, ymax = d.y0 - 0.5, d.y1 + 0.5
        xn = (2.0 * np.asarray(x, float) - (xmin + xmax)) / (xmax - xmin)
        yn = (2.0 * np.asarray(y, float) - (ymin + ymax)) / (ymax - ymin)
        return xn, yn

    def spatial_terms(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Values of the spatial terms at ``(x, y)``; shape ``(n_terms, *x)``."""
        xn, yn = self.normalized_xy(x, y)
        return chebyshev_terms(xn, yn, self.order)

    def term_kernels(self) -> np.ndarray:
        """Fixed kernels ``K_t = sum_i coefficients[i, t] B_i``; ``K(x,y) = sum_t T_t(x,y) K_t``."""
        return np.einsum("it,ivu->tvu", self.coefficients, self.basis)

    def kernel_sum(self, x: float, y: float) -> float:
        """Sum of the (unnormalised) kernel image at ``(x, y)``."""
        sums = self.term_kernels().sum(axis=(1, 2))
        return float(sums @ self.spatial_terms(x, y))

    def kernel_image(self, x: float, y: float, *, normalize: bool = True) -> np.ndarray:
        """Kernel image at ``(x, y)``; normalised to unit sum unless ``normalize=False``."""
        img = np.tensordot(self.spatial_terms(x, y), self.term_kernels(), axes=(0, 0))
        if normalize:
            img = img / img.sum()
        return np.asarray(img)


@dataclass(frozen=True)
class FitDiagnostics:
    """Quality of the kernel fit over the cells.

    ``residual_rms`` and ``residual_max`` are per cell, relative to the model stamp's peak, of
    ``model - science * K(cell)`` over the stamp pixels the fit uses. ``kernel_l1`` much above 1
    means an oscillating kernel, which amplifies pixel noise by ``sqrt(kernel_sum_sq)``.
    ``residual_max`` needs one convolution per cell and is computed on first access.
    """

    residual_rms: np.ndarray
    condition_number: float
    kernel_l1: np.ndarray  # per cell, sum |K| of the normalised kernel (1 for a positive kernel)
    kernel_sum_sq: np.ndarray  # per cell, sum K^2: white-noise variance gain of the matching
    _residual_inputs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool] = field(
        repr=False, compare=False
    )
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def residual_max(self) -> np.ndarray:
        """Per cell, the largest ``|model - science * K(cell)|`` relative to the model peak."""
        if "residual_max" not in self._cache:
            science, kernels, target, peak, full = self._residual_inputs
            pred = _convolve_stamps(science, kernels, full=full).reshape(len(target), -1)
            self._cache["residual_max"] = np.abs(target - pred).max(axis=1) / peak
        return self._cache["residual_max"]


def _fft_workers() -> int:
    """Threads for scipy's FFTs here: 2, or 1 where only one is usable (Dask workers)."""
    return min(2, thread_limit())


def _cell_design(science: np.ndarray, basis: np.ndarray, *, full: bool) -> np.ndarray:
    """``C[c, i, p]``: science stamp ``c`` convolved with basis ``i`` at the fitted pixels ``p``.

    ``full=False``: LSST's "good" region, the ``(P-k+1)²`` pixels where the kernel lies inside the
    stamp. ``full=True``: all ``P²`` stamp pixels, the stamp being zero outside (it is a
    zero-padded PSF model, so this convolution is exact too).
    """
    n, size, _ = science.shape
    nb, k, _ = basis.shape
    h = k // 2
    nfft = sfft.next_fast_len(size + k - 1, real=True)
    fs = sfft.rfft2(science, s=(nfft, nfft), workers=_fft_workers())  # (n, nfft, nfft//2+1)
    fb = sfft.rfft2(basis, s=(nfft, nfft))  # (nb, ...)
    out = np.empty((n, nb, size, size) if full else (n, nb, size - 2 * h, size - 2 * h))
    chunk = max(1, 4_000_000 // (nb * nfft * nfft))
    for c0 in range(0, n, chunk):
        conv = sfft.irfft2(
            fs[c0 : c0 + chunk, None] * fb[None],
            s=(nfft, nfft),
            axes=(-2, -1),
            workers=_fft_workers(),
        )
        # Full linear convolution index j corresponds to stamp pixel j - h.
        if full:
            out[c0 : c0 + chunk] = conv[:, :, h : h + size, h : h + size]
        else:
            out[c0 : c0 + chunk] = conv[:, :, k - 1 : size, k - 1 : size]
    return out.reshape(n, nb, -1)


def _convolve_stamps(science: np.ndarray, kernels: np.ndarray, *, full: bool) -> np.ndarray:
    """``science[c] * kernels[c]`` for every cell, on the stamp (``full``) or its valid part."""
    size = science.shape[1]
    k = kernels.shape[-1]
    h = k // 2
    nfft = sfft.next_fast_len(size + k - 1, real=True)
    # float32 is ample for a diagnostic relative to the stamp peak.
    fs = sfft.rfft2(science.astype(np.float32), s=(nfft, nfft), workers=_fft_workers())
    fs *= sfft.rfft2(kernels.astype(np.float32), s=(nfft, nfft), workers=_fft_workers())
    conv = sfft.irfft2(fs, s=(nfft, nfft), workers=_fft_workers(), overwrite_x=True)
    if full:
        return conv[:, h : h + size, h : h + size]
    return conv[:, k - 1 : size, k - 1 : size]


def _separable_normal_equations(
    science: np.ndarray,
    target: np.ndarray,
    sep: SeparableBasis,
    *,
    full: bool,
    chunk: int = 32,
    workers: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell ``M_c = C_c C_c^T``, ``b_c = C_c R_c`` and ``R_c.R_c`` via separable passes.

    ``C_c[i]`` = science stamp ``c`` convolved with basis kernel ``i`` at the fitted pixels (as
    :func:`_cell_design`). The compiled loop (:func:`~warping.psfmatch._match_loops.cell_gram`)
    convolves each stamp with the raw separable kernels (a row pass per 1-D factor, then a
    column pass per raw kernel, ``k``-tap filters), applies the renormalisation
    (``basis = T @ raw``) to those images and forms the Gram matrix of the result together with
    the target, all within the L2 cache. ``target`` is ``(n, pixels)`` in the fitted region.
    Chunks of ``chunk`` cells run on ``workers`` threads (the loop releases the GIL).
    """
    n, size, _ = science.shape
    h = sep.functions.shape[1] // 2
    offset, q = (0, size) if full else (h, size - 2 * h)
    nraw = len(sep.ix)
    science = np.ascontiguousarray(science, dtype=np.float64)
    target = np.ascontiguousarray(target, dtype=np.float64)
    gram = np.empty((n, nraw + 1, nraw + 1))

    def run(c0: int, c1: int) -> None:
        cell_gram(science[c0:c1], target[c0:c1], sep.functions, sep.ix, sep.iy, sep.transform,
                  offset, q, gram[c0:c1])  # fmt: skip

    bounds = [*range(0, n, max(1, chunk)), n]
    parts = list(itertools.pairwise(bounds))
    n_workers = max(1, min(workers, len(parts)))
    if n_workers > 1:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for job in [pool.submit(run, a, b) for a, b in parts]:
                job.result()
    else:
        run(0, n)
    return gram[:, :nraw, :nraw].copy(), gram[:, :nraw, nraw].copy(), gram[:, nraw, nraw].copy()


def fit_spatial_kernel(
    cells: CellSet,
    basis: np.ndarray | SeparableBasis,
    order: int,
    *,
    kernel_sum: float = 1.0,
    fit_region: str = "stamp",
    workers: int = 2,
) -> tuple[SpatialKernel, FitDiagnostics]:
    """Least-squares fit of the spatially varying kernel mapping science PSFs to the model.

    Each cell contributes normal equations ``M_c = C_c^T C_c``, ``b_c = C_c^T R_c`` (constant
    weights, LSST ``constantVarianceWeighting``). ``fit_region="stamp"`` (default) fits every
    pixel of the padded stamp, the science PSF being zero outside its stamp; ``"valid"`` keeps
    only LSST's "good" region ``[h, P-h-1]²``, which leaves the kernel's outer part poorly
    constrained (matched-star second moments off by ~1-2 % with default padding in our tests,
    against ~0.4 % for "stamp"). They are combined with the Chebyshev spatial terms at the cell
    centre. The first basis coefficient is spatially constant and fixed to ``kernel_sum``
    (flux conservation); the remaining ``(n_basis - 1) * n_terms`` coefficients are solved for.

    ``basis`` is either the kernel array (design by one FFT convolution per cell and kernel) or
    a :class:`~warping.psfmatch.basis.SeparableBasis` (same design, from row and column matrix
    products; much faster, equal to 1e-15). The separable normal equations run on ``workers``
    threads.

    Raises
    ------
    PsfMatchError
        If there are no cells or the system has no finite solution.
    """
    sep = basis if isinstance(basis, SeparableBasis) else None
    basis = sep.basis if sep is not None else np.asarray(basis, dtype=float)
    nb, k, _ = basis.shape
    h = k // 2
    n = cells.n_cells
    if n == 0:
        raise PsfMatchError("No kernel candidates for the spatial fit")
    size = cells.psf_size
    if fit_region not in ("stamp", "valid"):
        raise ValueError(f"fit_region must be 'stamp' or 'valid', got {fit_region!r}")
    full = fit_region == "stamp"
    if full:
        r = cells.model_stamps.reshape(n, -1)  # (n, p)
    else:
        r = cells.model_stamps[:, h : size - h, h : size - h].reshape(n, -1)
    if sep is not None:
        m, b, rr = _separable_normal_equations(
            cells.science_stamps, r, sep, full=full, workers=workers
        )
    else:
        c = _cell_design(cells.science_stamps, basis, full=full)  # (n, nb, p)
        # Per-cell normal equations as batched BLAS products.
        m = c @ c.transpose(0, 2, 1)  # (n, nb, nb)
        b = (c @ r[:, :, None])[:, :, 0]
        rr = np.einsum("cp,cp->c", r, r)
    domain = cells.bbox
    probe = SpatialKernel(basis, np.zeros((nb, 1)), order, domain)
    t = probe.spatial_terms(cells.centres[:, 0], cells.centres[:, 1]).T  # (n, nt)
    nt = t.shape[1]
    # Unknowns: a[i, t] for i >= 1. a_0 (constant) is fixed to kernel_sum.
    tt = (t[:, :, None] * t[:, None, :]).reshape(n, nt * nt)  # (n, nt*nt)
    big = (m[:, 1:, 1:].reshape(n, -1).T @ tt).reshape(nb - 1, nb - 1, nt, nt)
    big = big.transpose(0, 2, 1, 3).reshape((nb - 1) * nt, (nb - 1) * nt)
    rhs = np.einsum("ci,ct->it", b[:, 1:], t).reshape(-1)
    rhs -= kernel_sum * np.einsum("ci,ct->it", m[:, 1:, 0], t).reshape(-1)
    # Jacobi scaling keeps the Alard-Lupton system (condition ~1e8..1e12) well-behaved.
    diag = np.sqrt(np.clip(np.diag(big), 1e-300, None))
    scaled = big / diag[:, None] / diag[None, :]
    try:
        sol_scaled = np.linalg.solve(scaled, rhs / diag)
        cond = float(np.linalg.cond(scaled))
        if not np.all(np.isfinite(sol_scaled)) or cond > 1e13:
            raise np.linalg.LinAlgError("ill-conditioned")
    except np.linalg.LinAlgError:
        # Pseudo-inverse, as LSST falls back to an eigen-decomposition when LU fails.
        sol_scaled, *_ = np.linalg.lstsq(scaled, rhs / diag, rcond=1e-13)
        cond = float(np.linalg.cond(scaled))
        logger.debug("Kernel normal matrix is ill-conditioned (%.3g); used a pseudo-inverse", cond)
    sol = sol_scaled / diag
    if not np.all(np.isfinite(sol)):
        raise PsfMatchError(
            f"The kernel fit over {n} cells has no finite solution; try fewer basis functions "
            "(alardDegGauss) or a lower spatialKernelOrder"
        )
    coeffs = np.zeros((nb, nt))
    coeffs[0, 0] = kernel_sum
    coeffs[1:, :] = sol.reshape(nb - 1, nt)
    kernel = SpatialKernel(basis, coeffs, order, domain)
    # Per-cell residuals of the fitted spatial kernel: |R - C a|^2 from the normal equations,
    # the largest pixel from one FFT convolution per cell with the kernel at its centre.
    a_cell = t @ coeffs.T  # (n, nb)
    peak = np.abs(cells.model_stamps).reshape(n, -1).max(axis=1)
    ss = rr - 2.0 * np.einsum("ci,ci->c", a_cell, b) + np.einsum("ci,cij,cj->c", a_cell, m, a_cell)
    kraw = (a_cell @ basis.reshape(nb, -1)).reshape(n, k, k)  # kernels at the cell centres
    kimg = kraw.reshape(n, -1) / kraw.sum(axis=(1, 2))[:, None]
    diag_out = FitDiagnostics(
        residual_rms=np.sqrt(np.clip(ss, 0.0, None) / r.shape[1]) / peak,
        _residual_inputs=(cells.science_stamps, kraw, r, peak, full),
        condition_number=cond,
        kernel_l1=np.abs(kimg).sum(axis=1),
        kernel_sum_sq=(kimg**2).sum(axis=1),
    )
    logger.debug(
        "Fitted %d-term kernel over %d cells: residual rms max %.3g, cond %.3g",
        coeffs.size,
        n,
        float(diag_out.residual_rms.max()),
        cond,
    )
    return kernel, diag_out
