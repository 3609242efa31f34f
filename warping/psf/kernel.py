"""Kernel PSFs: afw ``KernelPsf`` / meas_algorithms ``PcaPsf``.

A :class:`LinearCombinationKernel` is a stack of fixed basis images ``B_k`` (all the same size,
sharing one centre pixel) and, per basis image, either a spatial function ``f_k(x, y)`` of the
parent-pixel position or a constant amplitude. Its image at ``(x, y)`` is

.. math:: K = \\sum_k a_k B_k / \\sum_k a_k S_k, \\qquad a_k = f_k(x, y),

where ``S_k`` is the pixel sum of ``B_k``; element ``[r, c]`` is the offset
``(c - center_x, r - center_y)`` from the star. This is afw's normalised
``LinearCombinationKernel.computeImage``; a ``FixedKernel`` is the one-component case with
amplitude 1.

:class:`KernelPsf` wraps such a kernel; :class:`PcaPsf` is the same model under meas_algorithms'
name (the kernel built by its PCA PSF determiner). ``compute_kernel_image`` returns ``K`` padded to
an odd square around the centre pixel (the :class:`~warping.psf.base.Psf` convention);
``compute_image(x, y)`` shifts it by the sub-pixel residual of ``(x, y)`` from the nearest pixel
(afw ``Psf::recenterKernelImage``) and renormalises it to sum 1. The shift is the exact sinc
(Fourier) shift that :class:`~warping.psf.image.ImagePsf` uses (here on the kernel zero-padded,
so nothing wraps around), not afw's Lanczos-5 ``offsetImage``: a truncated Lanczos kernel moves a
well-sampled star's centroid by up to ~0.01 px less than asked (measured on a σ = 2 px Gaussian),
the sinc shift by < 1e-7 px.

Spatial functions implement afw's ``Chebyshev1Function2D`` and ``PolynomialFunction2D``: their
coefficients are ordered by total degree ``n`` and, within a degree, by decreasing power of x
(``1, x, y, x², xy, y², x³, ...``).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from warping.geom import Box2I
from warping.psf._sampling import fourier_shift, stamp_offsets
from warping.psf.base import PsfError
from warping.psf.registry import SerializablePsf

logger = logging.getLogger(__name__)

#: Zero pixels around the kernel for its sub-pixel shift: the model is zero outside its images,
#: so flux near one edge (e.g. the noisy wings of a PCA basis) must not wrap to the other.
SHIFT_PAD = 8

__all__ = [
    "Chebyshev1Function2D",
    "KernelPsf",
    "LinearCombinationKernel",
    "PcaPsf",
    "PolynomialFunction2D",
    "SpatialFunction",
    "order_from_ncoeffs",
    "spatial_function_from_dict",
]


def order_from_ncoeffs(n: int) -> int:
    """Polynomial order ``N`` with ``(N + 1)(N + 2) / 2 == n`` terms; ValueError otherwise."""
    order = round((math.sqrt(8 * n + 1) - 3) / 2)
    if n < 1 or (order + 1) * (order + 2) // 2 != n:
        raise ValueError(
            f"{n} coefficients is not a triangular number (1, 3, 6, 10, ...): no 2-D polynomial "
            "order has that many terms"
        )
    return order


@functools.lru_cache(maxsize=32)
def _powers(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Exponents ``(px, py)`` of each coefficient in afw's term order."""
    px, py = [], []
    for n in range(order + 1):
        for j in range(n + 1):
            px.append(n - j)
            py.append(j)
    return np.array(px), np.array(py)


def _chebyshev_t(u: float, order: int) -> np.ndarray:
    t = np.empty(order + 1)
    t[0] = 1.0
    if order >= 1:
        t[1] = u
    for k in range(2, order + 1):
        t[k] = 2.0 * u * t[k - 1] - t[k - 2]
    return t


class SpatialFunction:
    """A function of parent-pixel position giving one basis image's amplitude."""

    persistence_name: ClassVar[str]
    coefficients: tuple[float, ...]

    def __call__(self, x: float, y: float) -> float:
        return float(np.dot(self.coefficients, self.terms(x, y)))

    def terms(self, x: float, y: float) -> np.ndarray:
        """The basis values at ``(x, y)`` that the coefficients multiply, in afw's order."""
        raise NotImplementedError

    def basis_key(self) -> tuple[Any, ...]:
        """Functions with equal keys share :meth:`terms` (evaluated once for all of them)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict with a ``"kind"`` entry."""
        raise NotImplementedError

    @property
    def order(self) -> int:
        """Polynomial order (from the number of coefficients)."""
        return order_from_ncoeffs(len(self.coefficients))


def _check_coeffs(coefficients: Sequence[float], what: str) -> tuple[float, ...]:
    c = tuple(float(v) for v in np.atleast_1d(np.asarray(coefficients, dtype=float)))
    try:
        order_from_ncoeffs(len(c))
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    if not all(math.isfinite(v) for v in c):
        raise ValueError(f"{what}: coefficients must be finite, got {c}")
    return c


@dataclass(frozen=True)
class PolynomialFunction2D(SpatialFunction):
    """``f(x, y) = Σ c_i x^p_i y^q_i`` on raw parent-pixel coordinates (afw term order)."""

    coefficients: tuple[float, ...]
    persistence_name: ClassVar[str] = "PolynomialFunction2D"

    def __post_init__(self) -> None:
        object.__setattr__(self, "coefficients", _check_coeffs(self.coefficients, "polynomial"))

    def terms(self, x: float, y: float) -> np.ndarray:
        """``x^p y^q`` for each coefficient."""
        order = self.order
        px, py = _powers(order)
        xp = np.cumprod(np.r_[1.0, np.full(order, float(x))])
        yp = np.cumprod(np.r_[1.0, np.full(order, float(y))])
        return np.asarray(xp[px] * yp[py])

    def basis_key(self) -> tuple[Any, ...]:
        """Kind and order."""
        return (self.persistence_name, len(self.coefficients))

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict."""
        return {"kind": self.persistence_name, "coefficients": list(self.coefficients)}


@dataclass(frozen=True)
class Chebyshev1Function2D(SpatialFunction):
    """``f(x, y) = Σ c_i T_p_i(x') T_q_i(y')`` with ``T`` the Chebyshev polynomials of the first
    kind and ``x' = (x - (min_x + max_x)/2) · 2/(max_x - min_x)`` (likewise ``y'``), using
    ``xy_range = (min_x, min_y, max_x, max_y)`` as stored (no half-pixel adjustment).

    Outside the range the polynomials are evaluated as they are (afw does not clip either).
    """

    coefficients: tuple[float, ...]
    xy_range: tuple[float, float, float, float] = (-1.0, -1.0, 1.0, 1.0)
    persistence_name: ClassVar[str] = "Chebyshev1Function2D"

    def __post_init__(self) -> None:
        object.__setattr__(self, "coefficients", _check_coeffs(self.coefficients, "Chebyshev"))
        r = tuple(float(v) for v in self.xy_range)
        if len(r) != 4 or not (r[2] > r[0] and r[3] > r[1]):
            raise ValueError(
                f"Chebyshev xy_range must be (min_x, min_y, max_x, max_y) with max > min, got {r}"
            )
        object.__setattr__(self, "xy_range", r)

    def terms(self, x: float, y: float) -> np.ndarray:
        """``T_p(x') T_q(y')`` for each coefficient."""
        x0, y0, x1, y1 = self.xy_range
        u = (float(x) - 0.5 * (x0 + x1)) * 2.0 / (x1 - x0)
        v = (float(y) - 0.5 * (y0 + y1)) * 2.0 / (y1 - y0)
        order = self.order
        px, py = _powers(order)
        return np.asarray(_chebyshev_t(u, order)[px] * _chebyshev_t(v, order)[py])

    def basis_key(self) -> tuple[Any, ...]:
        """Kind, order and range."""
        return (self.persistence_name, len(self.coefficients), self.xy_range)

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict."""
        return {
            "kind": self.persistence_name,
            "coefficients": list(self.coefficients),
            "xy_range": list(self.xy_range),
        }


def spatial_function_from_dict(d: dict[str, Any]) -> SpatialFunction:
    """Inverse of ``SpatialFunction.to_dict``."""
    kind = d.get("kind")
    if kind == Chebyshev1Function2D.persistence_name:
        r = d["xy_range"]
        return Chebyshev1Function2D(
            tuple(d["coefficients"]), (float(r[0]), float(r[1]), float(r[2]), float(r[3]))
        )
    if kind == PolynomialFunction2D.persistence_name:
        return PolynomialFunction2D(tuple(d["coefficients"]))
    raise ValueError(f"unknown spatial function kind {kind!r}")


class LinearCombinationKernel:
    """Basis images with spatial functions (or constant amplitudes): afw's kernel of that name.

    Parameters
    ----------
    basis
        ``(n, height, width)`` basis images; ``basis[k][r, c]`` is offset
        ``(c - center[0], r - center[1])``.
    center
        The centre pixel ``(center_x, center_y)`` (column, row) shared by every basis image.
    spatial_functions
        One function per basis image (a spatially varying kernel), or None.
    amplitudes
        One constant amplitude per basis image (a non-varying kernel), or None. Exactly one of
        ``spatial_functions`` and ``amplitudes`` must be given.
    """

    def __init__(
        self,
        basis: np.ndarray,
        center: tuple[int, int],
        spatial_functions: Sequence[SpatialFunction] | None = None,
        amplitudes: Sequence[float] | None = None,
    ) -> None:
        b = np.array(basis, dtype=float)
        if b.ndim == 2:
            b = b[None]
        if b.ndim != 3 or b.shape[0] < 1 or b.shape[1] < 1 or b.shape[2] < 1:
            raise ValueError(f"basis must be (n, height, width) images, got shape {b.shape}")
        if not np.isfinite(b).all():
            raise ValueError("basis images hold non-finite values")
        n, h, w = b.shape
        cx, cy = int(center[0]), int(center[1])
        if not (0 <= cx < w and 0 <= cy < h):
            raise ValueError(f"kernel centre ({cx}, {cy}) is outside the {w}x{h} basis images")
        if (spatial_functions is None) == (amplitudes is None):
            raise ValueError("give exactly one of spatial_functions and amplitudes")
        funcs = tuple(spatial_functions) if spatial_functions is not None else None
        amps = tuple(float(a) for a in amplitudes) if amplitudes is not None else None
        count = len(funcs) if funcs is not None else len(amps or ())
        if count != n:
            what = "spatial functions" if funcs is not None else "amplitudes"
            raise ValueError(f"{n} basis images but {count} {what}")
        self.basis = b
        self.center = (cx, cy)
        self.spatial_functions = funcs
        self.amplitudes = amps
        self.basis_sums = b.sum(axis=(1, 2))
        # functions sharing a basis (kind, order, range): their terms are evaluated once
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, f in enumerate(funcs or ()):
            groups.setdefault(f.basis_key(), []).append(i)
        self._groups = [
            (funcs[idx[0]], np.array(idx), np.array([funcs[i].coefficients for i in idx]))
            for idx in groups.values()
            if funcs is not None
        ]
        # the basis padded to an odd square centred on the centre pixel, for the Psf convention
        half = max(cx, w - 1 - cx, cy, h - 1 - cy)
        padded = np.zeros((n, 2 * half + 1, 2 * half + 1))
        padded[:, half - cy : half - cy + h, half - cx : half - cx + w] = b
        self._padded = padded

    @property
    def size(self) -> int:
        """Side of the odd square kernel images (the basis padded around its centre pixel)."""
        return int(self._padded.shape[1])

    @property
    def is_spatially_varying(self) -> bool:
        """True when the amplitudes are functions of position."""
        return self.spatial_functions is not None

    def amplitudes_at(self, x: float, y: float) -> np.ndarray:
        """The amplitudes ``a_k`` at parent position ``(x, y)``."""
        if self.spatial_functions is None:
            return np.array(self.amplitudes, dtype=float)
        a = np.empty(len(self.spatial_functions))
        for first, idx, coeffs in self._groups:
            a[idx] = coeffs @ first.terms(x, y)
        return a

    def _combine(self, stack: np.ndarray, x: float, y: float) -> np.ndarray:
        a = self.amplitudes_at(x, y)
        norm = float(np.dot(a, self.basis_sums))
        if not math.isfinite(norm) or norm == 0.0:
            raise PsfError(
                f"kernel cannot be normalised at ({x}, {y}): its sum Σ a_k S_k is {norm}"
            )
        n = stack.shape[0]
        return np.asarray((a @ stack.reshape(n, -1)).reshape(stack.shape[1:]) / norm)

    def image(self, x: float, y: float) -> np.ndarray:
        """The normalised kernel at ``(x, y)`` with the basis images' own shape and centre."""
        return self._combine(self.basis, x, y)

    def padded_image(self, x: float, y: float) -> np.ndarray:
        """The normalised kernel at ``(x, y)`` as an odd square centred on its middle pixel."""
        return self._combine(self._padded, x, y)

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict (basis as an array)."""
        return {
            "basis": self.basis,
            "center": list(self.center),
            "spatial_functions": (
                None
                if self.spatial_functions is None
                else [f.to_dict() for f in self.spatial_functions]
            ),
            "amplitudes": None if self.amplitudes is None else list(self.amplitudes),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LinearCombinationKernel:
        """Inverse of :meth:`to_dict`."""
        funcs = d.get("spatial_functions")
        amps = d.get("amplitudes")
        return cls(
            np.asarray(d["basis"], dtype=float),
            (int(d["center"][0]), int(d["center"][1])),
            None if funcs is None else [spatial_function_from_dict(f) for f in funcs],
            None if amps is None else [float(a) for a in amps],
        )

    def __repr__(self) -> str:
        n, h, w = self.basis.shape
        kind = "spatially varying" if self.is_spatially_varying else "constant"
        return f"LinearCombinationKernel({n} x {w}x{h}, center={self.center}, {kind})"


class KernelPsf(SerializablePsf):
    """A PSF given by a (possibly spatially varying) :class:`LinearCombinationKernel`.

    Parameters
    ----------
    kernel
        The kernel.
    average_position
        Representative position (the mean position of the stars the model was fitted to); also
        where the model is evaluated when asked at a non-finite position (afw behaviour).
    """

    type_name: ClassVar[str] = "KernelPsf"

    def __init__(
        self, kernel: LinearCombinationKernel, average_position: tuple[float, float] = (0.0, 0.0)
    ) -> None:
        if not isinstance(kernel, LinearCombinationKernel):
            raise TypeError(
                f"{type(self).__name__} needs a LinearCombinationKernel, got {kernel!r}"
            )
        self.kernel = kernel
        self._average_position = (float(average_position[0]), float(average_position[1]))

    @property
    def size(self) -> int:
        """Side of the (odd, square) kernel images."""
        return self.kernel.size

    def _position(self, x: float, y: float) -> tuple[float, float]:
        if math.isfinite(x) and math.isfinite(y):
            return float(x), float(y)
        return self._average_position

    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        """Normalised kernel at ``(x, y)``: odd square, centre pixel at ``(n//2, n//2)``, sum 1."""
        return self.kernel.padded_image(*self._position(x, y))

    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        """Unit-flux image of a point source at ``(x, y)``: the kernel at ``(x, y)`` shifted by the
        sub-pixel residual ``x - floor(x + 0.5)`` (and likewise y) with an exact sinc shift."""
        x, y = self._position(x, y)
        k = self.kernel.padded_image(x, y)
        n = k.shape[0]
        dx, dy, bbox = stamp_offsets(x, y, n)
        half = n // 2
        fx = -(dx[0] + half)  # residual of x from the stamp's centre pixel, in [-0.5, 0.5)
        fy = -(dy[0] + half)
        if fx == 0.0 and fy == 0.0:
            return k, bbox
        img = fourier_shift(k, fx, fy, pad=SHIFT_PAD)
        s = float(img.sum())
        if not math.isfinite(s) or s <= 0.0:
            raise PsfError(f"shifted kernel at ({x}, {y}) has non-positive sum {s}")
        return img / s, bbox

    def average_position(self) -> tuple[float, float]:
        """Mean position of the stars used to build the model."""
        return self._average_position

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict."""
        return {
            "type": self.type_name,
            "kernel": self.kernel.to_dict(),
            "average_position": list(self._average_position),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KernelPsf:
        """Inverse of :meth:`to_dict`."""
        ap = d.get("average_position", (0.0, 0.0))
        return cls(LinearCombinationKernel.from_dict(d["kernel"]), (float(ap[0]), float(ap[1])))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kernel!r}, average_position={self._average_position})"


class PcaPsf(KernelPsf):
    """meas_algorithms ``PcaPsf``: a :class:`KernelPsf` whose kernel is the PCA basis of the PSF
    stars with spatially varying amplitudes."""

    type_name: ClassVar[str] = "PcaPsf"
