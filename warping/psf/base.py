"""The PSF model interface shared by every PSF implementation."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from warping.geom import Box2I

__all__ = ["Psf", "PsfError"]


class PsfError(ValueError):
    """A PSF cannot be evaluated at the requested position (e.g. no input covers it)."""


class Psf(ABC):
    """A (possibly spatially varying) point-spread function in parent pixel coordinates.

    Conventions follow LSST afw: kernel images are odd-sized, centred on the origin, and sum to 1;
    ``compute_image`` draws the PSF of a point source located at the sub-pixel position ``(x, y)``
    into the returned bbox (parent pixels). ``compute_kernel_image`` evaluates the model that
    applies at ``(x, y)`` but centred on pixel ``(0, 0)``.
    """

    @abstractmethod
    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        """Kernel image at ``(x, y)``, odd square, centre pixel at index ``(n//2, n//2)``, sum 1."""

    @abstractmethod
    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        """Image of a unit-flux point source at ``(x, y)`` and the parent-pixel bbox it covers."""

    def compute_bbox(self, x: float, y: float) -> Box2I:
        """Bbox of the kernel image at ``(x, y)``, centred on ``(0, 0)``."""
        k = self.compute_kernel_image(x, y)
        h, w = k.shape
        return Box2I(-(w // 2), -(h // 2), w, h)

    @abstractmethod
    def average_position(self) -> tuple[float, float]:
        """A representative position (parent pixels) where the model is best constrained."""

    def second_moments(self, x: float, y: float) -> tuple[float, float, float]:
        """Unweighted second moments ``(Ixx, Iyy, Ixy)`` of the kernel image at ``(x, y)``.

        Raises ``ValueError`` if the image has no positive, finite flux.
        """
        k = self.compute_kernel_image(x, y).astype(float)
        h, w = k.shape
        yy, xx = np.mgrid[0:h, 0:w]
        s = k.sum()
        if not (np.isfinite(s) and s > 0):
            raise ValueError("the PSF stamp has no positive, finite flux")
        cx = (k * xx).sum() / s
        cy = (k * yy).sum() / s
        ixx = (k * (xx - cx) ** 2).sum() / s
        iyy = (k * (yy - cy) ** 2).sum() / s
        ixy = (k * (xx - cx) * (yy - cy)).sum() / s
        return float(ixx), float(iyy), float(ixy)

    def fwhm(self, x: float, y: float) -> float:
        """FWHM in pixels of the Gaussian with the same determinant radius as the kernel."""
        ixx, iyy, ixy = self.second_moments(x, y)
        sigma = max(ixx * iyy - ixy * ixy, 0.0) ** 0.25
        return float(sigma * 2.0 * np.sqrt(2.0 * np.log(2.0)))
