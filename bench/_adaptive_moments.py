"""Adaptive (elliptical-Gaussian-weighted, iterated) second moments, as galsim's HSM
``FindAdaptiveMom`` defines them, in numpy only (the fidelity benchmark must run without galsim).

The weight is an elliptical Gaussian of covariance ``W`` centred on ``c``. Each iteration moves
``c`` to the weighted centroid and sets ``W = 2 M``, ``M`` the weighted second-moment matrix about
``c``. For a Gaussian profile of covariance ``S`` the weighted moments are
``(S⁻¹ + W⁻¹)⁻¹``, so the fixed point is ``W = S``: the result is the covariance of the
best-matching elliptical Gaussian (HSM's ``moments_sigma = det(W)^(1/4)`` and its distortion
``e1 = (Wxx - Wyy) / (Wxx + Wyy)``, ``e2 = 2 Wxy / (Wxx + Wyy)``). Pixel values are taken at pixel
centres, as HSM does. ``tests/test_fidelity_moments.py`` checks the result against analytic
Gaussians and, when it is installed, against galsim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AdaptiveMoments", "MomentsError", "adaptive_moments"]


class MomentsError(ValueError):
    """The adaptive moments did not converge (no flux, a runaway weight, too many iterations)."""


@dataclass(frozen=True)
class AdaptiveMoments:
    """Result of :func:`adaptive_moments` (positions in the stamp's pixel coordinates)."""

    x: float
    y: float
    ixx: float
    iyy: float
    ixy: float
    amplitude: float  # flux of the best-fitting elliptical Gaussian
    iterations: int

    @property
    def sigma(self) -> float:
        """``det(M)^(1/4)``, pixels (HSM ``moments_sigma``)."""
        return float((self.ixx * self.iyy - self.ixy**2) ** 0.25)

    @property
    def e1(self) -> float:
        """Distortion ``(Ixx - Iyy) / (Ixx + Iyy)``."""
        return float((self.ixx - self.iyy) / (self.ixx + self.iyy))

    @property
    def e2(self) -> float:
        """Distortion ``2 Ixy / (Ixx + Iyy)``."""
        return float(2.0 * self.ixy / (self.ixx + self.iyy))


def adaptive_moments(
    image: np.ndarray,
    x0: float,
    y0: float,
    sigma0: float = 2.0,
    *,
    tol: float = 1e-9,
    max_iter: int = 400,
) -> AdaptiveMoments:
    """Adaptive moments of ``image`` starting from ``(x0, y0)`` (array column, row) and a round
    weight of ``sigma0`` pixels.

    Raises
    ------
    MomentsError
        Non-positive weighted flux, a weight that is no longer positive definite or larger than
        the stamp, or no convergence in ``max_iter`` iterations.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or not np.all(np.isfinite(img)):
        raise MomentsError("adaptive moments need a finite 2-D stamp")
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(np.float64)
    cx, cy = float(x0), float(y0)
    w = np.array([[sigma0**2, 0.0], [0.0, sigma0**2]])
    limit = (max(img.shape) / 2.0) ** 2
    for it in range(1, max_iter + 1):
        det = w[0, 0] * w[1, 1] - w[0, 1] ** 2
        if det <= 0 or w[0, 0] > limit or w[1, 1] > limit:
            raise MomentsError(f"adaptive weight diverged (covariance {w.ravel().tolist()})")
        inv = np.array([[w[1, 1], -w[0, 1]], [-w[0, 1], w[0, 0]]]) / det
        dx, dy = xx - cx, yy - cy
        rho2 = inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy
        wi = np.exp(-0.5 * np.minimum(rho2, 200.0)) * img
        s = wi.sum()
        if not s > 0:
            raise MomentsError("non-positive weighted flux")
        mx, my = (wi * dx).sum() / s, (wi * dy).sum() / s
        mxx = (wi * dx * dx).sum() / s
        myy = (wi * dy * dy).sum() / s
        mxy = (wi * dx * dy).sum() / s
        new_w = 2.0 * np.array([[mxx - mx * mx, mxy - mx * my], [mxy - mx * my, myy - my * my]])
        cx, cy = cx + mx, cy + my
        change = np.abs(new_w - w).max() / np.trace(w) + (mx * mx + my * my) ** 0.5 / w.trace()
        w = new_w
        if change < tol:
            # I = A G_W (G_W the unit-flux Gaussian of covariance W) gives sum(weight I) = A / 2
            amp = 2.0 * s
            return AdaptiveMoments(cx, cy, w[0, 0], w[1, 1], w[0, 1], float(amp), it)
    raise MomentsError(f"adaptive moments did not converge in {max_iter} iterations")
