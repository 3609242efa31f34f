"""Analytic PSF models: single and double Gaussians, LSST's model-PSF factory, and a spatially
varying elliptical Gaussian used by the simulator.

All analytic models are *point-sampled* at pixel centres (afw ``GaussianPsf`` semantics) and
normalised to sum 1 over their stamp. ``compute_image(x, y)`` evaluates the profile at the exact
sub-pixel offsets ``(i - x, j - y)``, so the centroid sits at ``(x, y)``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import numpy as np

from warping.geom import Box2I
from warping.psf._sampling import gaussian_samples, odd_size, stamp_offsets
from warping.psf.registry import SerializablePsf

logger = logging.getLogger(__name__)

__all__ = [
    "SIGMA_PER_FWHM",
    "DoubleGaussianPsf",
    "GaussianPsf",
    "VariableGaussianPsf",
    "make_model_psf",
]

#: ``1 / (2 sqrt(2 ln 2))``: Gaussian sigma per unit FWHM.
SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def _check_size(size: int) -> int:
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"PSF kernel size must be a positive odd integer, got {size}")
    return size


class _StampPsf(SerializablePsf):
    """Helper base: subclasses implement ``_profile(dx, dy, x, y)`` and set ``size``."""

    size: int
    _average_position: tuple[float, float] = (0.0, 0.0)

    def _profile(self, dx: np.ndarray, dy: np.ndarray, x: float, y: float) -> np.ndarray:
        raise NotImplementedError

    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        """Kernel at ``(x, y)``: odd square, centred on the middle pixel, sum 1."""
        half = self.size // 2
        d = np.arange(-half, half + 1, dtype=float)
        k = self._profile(d, d, x, y)
        return k / k.sum()

    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        """Unit-flux image of a point source at the sub-pixel position ``(x, y)``."""
        dx, dy, bbox = stamp_offsets(x, y, self.size)
        img = self._profile(dx, dy, x, y)
        return img / img.sum(), bbox

    def average_position(self) -> tuple[float, float]:
        """Representative position (parent pixels)."""
        return self._average_position


class GaussianPsf(_StampPsf):
    """A circular Gaussian PSF of width ``sigma`` (pixels) on a ``size`` x ``size`` stamp.

    Parameters
    ----------
    sigma
        Gaussian sigma in pixels.
    size
        Odd kernel size; default ``odd(8 sigma)`` (at least 5).
    """

    type_name: ClassVar[str] = "GaussianPsf"

    def __init__(self, sigma: float, size: int | None = None) -> None:
        if not sigma > 0:
            raise ValueError(f"GaussianPsf sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self.size = _check_size(size if size is not None else max(5, odd_size(8.0 * sigma)))

    def _profile(self, dx: np.ndarray, dy: np.ndarray, x: float, y: float) -> np.ndarray:
        s2 = self.sigma**2
        return gaussian_samples(dx, dy, s2, s2, 0.0)

    def resized(self, size: int) -> GaussianPsf:
        """Same sigma on a different stamp size."""
        return GaussianPsf(self.sigma, size)

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict."""
        return {"type": self.type_name, "sigma": self.sigma, "size": self.size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GaussianPsf:
        """Inverse of :meth:`to_dict`."""
        return cls(float(d["sigma"]), int(d["size"]))

    def __repr__(self) -> str:
        return f"GaussianPsf(sigma={self.sigma!r}, size={self.size})"


class DoubleGaussianPsf(_StampPsf):
    """Sum of two concentric circular Gaussians, ``exp(-r²/2σ1²) + b exp(-r²/2σ2²)``.

    ``b`` is the ratio of the peak amplitudes (afw ``DoubleGaussianPsf``); the kernel image is
    normalised to sum 1.
    """

    type_name: ClassVar[str] = "DoubleGaussianPsf"

    def __init__(self, size: int, sigma1: float, sigma2: float = 1.0, b: float = 0.0) -> None:
        if not sigma1 > 0 or not sigma2 > 0:
            raise ValueError(f"DoubleGaussianPsf sigmas must be > 0, got {sigma1}, {sigma2}")
        if b < 0:
            raise ValueError(f"DoubleGaussianPsf amplitude ratio b must be >= 0, got {b}")
        self.size = _check_size(size)
        self.sigma1 = float(sigma1)
        self.sigma2 = float(sigma2)
        self.b = float(b)

    def _profile(self, dx: np.ndarray, dy: np.ndarray, x: float, y: float) -> np.ndarray:
        s1 = self.sigma1**2
        s2 = self.sigma2**2
        prof = gaussian_samples(dx, dy, s1, s1, 0.0)
        if self.b != 0.0:
            prof = prof + self.b * gaussian_samples(dx, dy, s2, s2, 0.0)
        return prof

    def resized(self, size: int) -> DoubleGaussianPsf:
        """Same profile on a ``size`` x ``size`` stamp."""
        return DoubleGaussianPsf(size, self.sigma1, self.sigma2, self.b)

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict."""
        return {
            "type": self.type_name,
            "size": self.size,
            "sigma1": self.sigma1,
            "sigma2": self.sigma2,
            "b": self.b,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DoubleGaussianPsf:
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["size"]), float(d["sigma1"]), float(d["sigma2"]), float(d["b"]))

    def __repr__(self) -> str:
        return (
            f"DoubleGaussianPsf(size={self.size}, sigma1={self.sigma1!r}, "
            f"sigma2={self.sigma2!r}, b={self.b!r})"
        )


def make_model_psf(
    default_fwhm: float = 3.0,
    add_wing: bool = True,
    wing_fwhm_factor: float = 2.5,
    wing_amplitude: float = 0.1,
    size_factor: float = 3.0,
    min_size: int = 5,
    max_size: int | None = None,
    size: int | None = None,
) -> GaussianPsf | DoubleGaussianPsf:
    """LSST's ``GaussianPsfFactory.apply``: the model PSF used for PSF-matched warps.

    Parameters
    ----------
    default_fwhm
        FWHM in **pixels** of the core Gaussian.
    add_wing, wing_fwhm_factor, wing_amplitude
        Add a second Gaussian of ``wing_fwhm_factor`` times the core sigma with peak-amplitude
        ratio ``wing_amplitude`` (a :class:`DoubleGaussianPsf`); otherwise a :class:`GaussianPsf`.
    size_factor, min_size, max_size, size
        Kernel size ``(int(size_factor * fwhm) // 2) * 2 + 1`` clamped to ``[min_size, max_size]``,
        unless ``size`` is given explicitly.
    """
    if not default_fwhm > 0:
        raise ValueError(f"default_fwhm must be > 0 pixels, got {default_fwhm}")
    if size is None:
        size = (int(size_factor * default_fwhm) // 2) * 2 + 1
        if min_size is not None and size < min_size:
            size = min_size
        if max_size is not None and size > max_size:
            size = max_size
    sigma = default_fwhm * SIGMA_PER_FWHM
    if add_wing:
        return DoubleGaussianPsf(size, sigma, wing_fwhm_factor * sigma, wing_amplitude)
    return GaussianPsf(sigma, size)


def _poly2(coeffs: tuple[float, ...], u: float, v: float) -> float:
    """Evaluate ``c0 + c1 u + c2 v + c3 u² + c4 uv + c5 v²`` (shorter tuples = lower degree)."""
    terms = (1.0, u, v, u * u, u * v, v * v)
    return float(sum(c * t for c, t in zip(coeffs, terms, strict=False)))


class VariableGaussianPsf(_StampPsf):
    """An elliptical Gaussian whose width and ellipticity vary smoothly over the focal plane.

    At parent pixel ``(x, y)`` let ``u = (x + x_offset) / scale`` and ``v = (y + y_offset) / scale``
    (focal-plane coordinates when the offsets are the CCD's position in the focal plane). Then
    ``sigma = P(sigma_coeffs)``, ``e1 = P(e1_coeffs)``, ``e2 = P(e2_coeffs)`` with
    ``P(c) = c0 + c1 u + c2 v + c3 u² + c4 uv + c5 v²``, and the second moments are
    ``Ixx = sigma²(1 + e1)``, ``Iyy = sigma²(1 - e1)``, ``Ixy = sigma² e2``.
    """

    type_name: ClassVar[str] = "VariableGaussianPsf"

    def __init__(
        self,
        sigma_coeffs: tuple[float, ...] | list[float],
        e1_coeffs: tuple[float, ...] | list[float] = (0.0,),
        e2_coeffs: tuple[float, ...] | list[float] = (0.0,),
        size: int = 21,
        x_offset: float = 0.0,
        y_offset: float = 0.0,
        scale: float = 1000.0,
        average_position: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        for name, c in (("sigma", sigma_coeffs), ("e1", e1_coeffs), ("e2", e2_coeffs)):
            if not 1 <= len(c) <= 6:
                raise ValueError(f"{name}_coeffs must have 1..6 terms, got {len(c)}")
        self.sigma_coeffs = tuple(float(c) for c in sigma_coeffs)
        self.e1_coeffs = tuple(float(c) for c in e1_coeffs)
        self.e2_coeffs = tuple(float(c) for c in e2_coeffs)
        self.size = _check_size(size)
        self.x_offset = float(x_offset)
        self.y_offset = float(y_offset)
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = float(scale)
        self._average_position = (float(average_position[0]), float(average_position[1]))

    def moments(self, x: float, y: float) -> tuple[float, float, float]:
        """Model second moments ``(Ixx, Iyy, Ixy)`` in pixels² at parent position ``(x, y)``."""
        u = (x + self.x_offset) / self.scale
        v = (y + self.y_offset) / self.scale
        sigma = _poly2(self.sigma_coeffs, u, v)
        e1 = _poly2(self.e1_coeffs, u, v)
        e2 = _poly2(self.e2_coeffs, u, v)
        if not sigma > 0 or e1 * e1 + e2 * e2 >= 1.0:
            raise ValueError(
                f"VariableGaussianPsf is invalid at ({x}, {y}): sigma={sigma}, e=({e1}, {e2})"
            )
        s2 = sigma * sigma
        return s2 * (1.0 + e1), s2 * (1.0 - e1), s2 * e2

    def _profile(self, dx: np.ndarray, dy: np.ndarray, x: float, y: float) -> np.ndarray:
        return gaussian_samples(dx, dy, *self.moments(x, y))

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict."""
        return {
            "type": self.type_name,
            "sigma_coeffs": list(self.sigma_coeffs),
            "e1_coeffs": list(self.e1_coeffs),
            "e2_coeffs": list(self.e2_coeffs),
            "size": self.size,
            "x_offset": self.x_offset,
            "y_offset": self.y_offset,
            "scale": self.scale,
            "average_position": list(self._average_position),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VariableGaussianPsf:
        """Inverse of :meth:`to_dict`."""
        ap = d.get("average_position", (0.0, 0.0))
        return cls(
            tuple(d["sigma_coeffs"]),
            tuple(d["e1_coeffs"]),
            tuple(d["e2_coeffs"]),
            int(d["size"]),
            float(d["x_offset"]),
            float(d["y_offset"]),
            float(d["scale"]),
            (float(ap[0]), float(ap[1])),
        )

    def __repr__(self) -> str:
        return (
            f"VariableGaussianPsf(sigma_coeffs={self.sigma_coeffs}, size={self.size}, "
            f"offset=({self.x_offset}, {self.y_offset}), scale={self.scale})"
        )
