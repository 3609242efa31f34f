"""Photometric calibration: nJy per count, optionally varying over the CCD.

Conventions (LSST afw ``PhotoCalib``):

* ``flux[nJy] = instFlux[counts] * c(x, y)``; ``c`` is the *calibration* in nJy/count.
* AB magnitudes use ``referenceFlux = 1e23 * 10**(48.6 / -2.5) * 1e9`` nJy (3630.78 Jy), so
  1 nJy is AB 31.4.
* When a :class:`ChebyshevBoundedField` is given, it **is** ``c(x, y)`` in absolute nJy/count
  (not a relative factor), and :attr:`PhotoCalib.calibration_mean` is its mean over its bbox.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.polynomial import chebyshev as cheb

from warping.geom import Box2I

logger = logging.getLogger(__name__)

__all__ = [
    "AB_REFERENCE_FLUX_NJY",
    "ChebyshevBoundedField",
    "PhotoCalib",
    "ab_mag_to_njy",
    "njy_to_ab_mag",
]

#: AB reference flux density in nJy (afw ``referenceFlux``): AB mag 0.
AB_REFERENCE_FLUX_NJY: float = 1e23 * 10 ** (48.6 / -2.5) * 1e9


def njy_to_ab_mag(flux_njy: Any) -> Any:
    """AB magnitude of a flux in nJy (``31.4 - 2.5 log10(flux)``, to the afw constant)."""
    return -2.5 * np.log10(np.asarray(flux_njy, dtype=float) / AB_REFERENCE_FLUX_NJY)


def ab_mag_to_njy(mag: Any) -> Any:
    """Flux in nJy of an AB magnitude."""
    return AB_REFERENCE_FLUX_NJY * 10.0 ** (-0.4 * np.asarray(mag, dtype=float))


@dataclass(frozen=True, eq=False)
class ChebyshevBoundedField:
    """A 2-D Chebyshev series on a pixel bbox (afw ``ChebyshevBoundedField``).

    ``coefficients[j, i]`` multiplies ``T_j(y') T_i(x')``, where ``x'`` maps the continuous extent
    of ``bbox`` (``x0 - 0.5 .. x1 + 0.5``) onto ``[-1, 1]`` (likewise ``y'``).
    """

    bbox: Box2I
    coefficients: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        c = np.array(self.coefficients, dtype=float)
        if c.ndim == 0:
            c = c.reshape(1, 1)
        if c.ndim != 2 or c.size == 0:
            raise ValueError(f"Chebyshev coefficients must be a non-empty 2-D array, got {c.shape}")
        if self.bbox.is_empty():
            raise ValueError("ChebyshevBoundedField needs a non-empty bbox")
        object.__setattr__(self, "coefficients", c)

    def _scaled(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        xmin, xmax = self.bbox.x0 - 0.5, self.bbox.x1 + 0.5
        ymin, ymax = self.bbox.y0 - 0.5, self.bbox.y1 + 0.5
        xs = (2.0 * np.asarray(x, dtype=float) - (xmin + xmax)) / (xmax - xmin)
        ys = (2.0 * np.asarray(y, dtype=float) - (ymin + ymax)) / (ymax - ymin)
        return xs, ys

    def evaluate(self, x: Any, y: Any) -> np.ndarray:
        """Field values at parent positions ``(x, y)`` (broadcast together)."""
        xs, ys = self._scaled(x, y)
        xs, ys = np.broadcast_arrays(xs, ys)
        # chebval2d(x, y, c) uses c[i, j] * T_i(x) T_j(y): pass (ys, xs) for c[j, i].
        return np.asarray(cheb.chebval2d(ys, xs, self.coefficients))

    def evaluate_grid(self, bbox: Box2I) -> np.ndarray:
        """Field on every pixel of ``bbox`` as a ``bbox.shape`` array (separable evaluation)."""
        xs, _ = self._scaled(np.arange(bbox.x0, bbox.x0 + bbox.width), 0.0)
        _, ys = self._scaled(0.0, np.arange(bbox.y0, bbox.y0 + bbox.height))
        return np.asarray(cheb.chebgrid2d(ys, xs, self.coefficients))

    def mean(self) -> float:
        """Mean of the field over the continuous extent of its bbox (exact integral)."""

        def integral_means(n: int) -> np.ndarray:
            out = np.zeros(n)
            for k in range(n):
                out[k] = 0.0 if k % 2 == 1 else 1.0 / (1.0 - k * k)
            return out  # mean of T_k over [-1, 1]

        ny, nx = self.coefficients.shape
        return float(integral_means(ny) @ self.coefficients @ integral_means(nx))

    @classmethod
    def fit(
        cls, bbox: Box2I, values: np.ndarray, order_x: int, order_y: int
    ) -> ChebyshevBoundedField:
        """Least-squares fit to ``values`` given on every pixel of ``bbox`` (sub-sampled)."""
        step = max(1, min(bbox.width, bbox.height) // 64)
        yy, xx = np.mgrid[0 : bbox.height : step, 0 : bbox.width : step]
        v = values[::step, ::step].ravel()
        probe = cls(bbox, np.zeros((order_y + 1, order_x + 1)))
        xs, ys = probe._scaled(xx.ravel() + bbox.x0, yy.ravel() + bbox.y0)
        a = cheb.chebvander2d(ys, xs, [order_y, order_x])
        coef, *_ = np.linalg.lstsq(a, v, rcond=None)
        return cls(bbox, coef.reshape(order_y + 1, order_x + 1))

    def to_dict(self) -> dict[str, Any]:
        """``{"bbox": [x0, y0, w, h], "coefficients": array}``."""
        return {"bbox": self.bbox.to_list(), "coefficients": self.coefficients}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChebyshevBoundedField:
        """Inverse of :meth:`to_dict`."""
        return cls(Box2I(*[int(v) for v in d["bbox"]]), np.asarray(d["coefficients"], dtype=float))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChebyshevBoundedField):
            return NotImplemented
        return self.bbox == other.bbox and np.array_equal(self.coefficients, other.coefficients)

    __hash__ = None  # type: ignore[assignment]


class PhotoCalib:
    """Conversion from counts to nJy.

    Parameters
    ----------
    calibration_mean
        Mean calibration in nJy/count. ``None`` with a ``field``: taken from ``field.mean()``.
    calibration_err
        1-sigma uncertainty of ``calibration_mean`` (nJy/count).
    field
        Optional spatially varying calibration ``c(x, y)`` in nJy/count on parent pixels. When
        given, :meth:`evaluate` returns the field, and ``calibration_mean`` must agree with the
        field's mean (relative 1e-3) or be ``None``.
    """

    def __init__(
        self,
        calibration_mean: float | None,
        calibration_err: float = 0.0,
        field: ChebyshevBoundedField | None = None,
    ) -> None:
        if calibration_mean is None:
            if field is None:
                raise ValueError("PhotoCalib needs a calibration_mean or a field")
            calibration_mean = field.mean()
        elif field is not None:
            fm = field.mean()
            if not math.isclose(fm, calibration_mean, rel_tol=1e-3):
                raise ValueError(
                    f"calibration_mean {calibration_mean} disagrees with the field mean {fm}; "
                    "pass calibration_mean=None to use the field's mean"
                )
        if not (np.isfinite(calibration_mean) and calibration_mean > 0):
            raise ValueError(f"calibration_mean must be finite and > 0, got {calibration_mean}")
        self.calibration_mean = float(calibration_mean)
        self.calibration_err = float(calibration_err)
        self.field = field

    # -- evaluation ---------------------------------------------------------------------------
    @property
    def is_constant(self) -> bool:
        """True when there is no spatially varying field."""
        return self.field is None

    def evaluate(self, x: Any, y: Any) -> np.ndarray:
        """Calibration ``c(x, y)`` in nJy/count at parent pixel positions."""
        if self.field is None:
            return np.full(np.broadcast(np.asarray(x), np.asarray(y)).shape, self.calibration_mean)
        return self.field.evaluate(x, y)

    def calibration_image(self, bbox: Box2I) -> np.ndarray:
        """``c`` on every pixel of ``bbox`` (float64, ``bbox.shape``)."""
        if self.field is None:
            return np.full(bbox.shape, self.calibration_mean)
        return self.field.evaluate_grid(bbox)

    def calibrate_image(
        self,
        image: np.ndarray,
        variance: np.ndarray,
        xy0: tuple[int, int] = (0, 0),
        *,
        in_place: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(image * c, variance * c²)`` as float32 (nJy, nJy²).

        The inputs are unchanged unless ``in_place`` (float32 inputs are then overwritten and
        returned). ``xy0`` is the parent position of ``image[0, 0]``. The calibration
        uncertainty is not propagated (current afw behaviour).
        """
        if image.shape != variance.shape:
            raise ValueError(f"image {image.shape} and variance {variance.shape} differ in shape")
        f32 = image.dtype == np.float32 and variance.dtype == np.float32
        if in_place and f32 and image.flags.writeable and variance.flags.writeable:
            out_image, out_variance = image, variance
        else:
            out_image = np.empty(image.shape, dtype=np.float32)
            out_variance = np.empty(image.shape, dtype=np.float32)
        # Products are computed in float64 and rounded once to float32 (numpy's buffered
        # casting loop: no float64 temporaries of the image's size).
        if self.field is None:
            c = np.float64(self.calibration_mean)
            np.multiply(image, c, out=out_image, casting="same_kind")
            np.multiply(variance, c * c, out=out_variance, casting="same_kind")
            return out_image, out_variance
        h, w = image.shape
        grid = self.calibration_image(Box2I(int(xy0[0]), int(xy0[1]), w, h))
        np.multiply(image, grid, out=out_image, casting="same_kind")
        np.multiply(grid, grid, out=grid)
        np.multiply(variance, grid, out=out_variance, casting="same_kind")
        return out_image, out_variance

    def instflux_to_njy(self, instflux: Any, x: Any = None, y: Any = None) -> Any:
        """Flux in nJy of ``instflux`` counts (at ``(x, y)`` if the calibration varies)."""
        c = self.calibration_mean if (x is None or y is None) else self.evaluate(x, y)
        return np.asarray(instflux, dtype=float) * c

    def njy_to_instflux(self, flux: Any, x: Any = None, y: Any = None) -> Any:
        """Counts that give ``flux`` nJy."""
        c = self.calibration_mean if (x is None or y is None) else self.evaluate(x, y)
        return np.asarray(flux, dtype=float) / c

    def instflux_to_ab_mag(self, instflux: Any, x: Any = None, y: Any = None) -> Any:
        """AB magnitude of ``instflux`` counts."""
        return njy_to_ab_mag(self.instflux_to_njy(instflux, x, y))

    njy_to_ab_mag = staticmethod(njy_to_ab_mag)
    ab_mag_to_njy = staticmethod(ab_mag_to_njy)

    @property
    def zero_point(self) -> float:
        """Instrumental zero point: AB magnitude of 1 count at the mean calibration."""
        return float(njy_to_ab_mag(self.calibration_mean))

    @property
    def instflux_at_zero_magnitude(self) -> float:
        """Counts of an AB-0 source (afw ``FLUXMAG0``)."""
        return AB_REFERENCE_FLUX_NJY / self.calibration_mean

    @classmethod
    def from_zero_point(cls, zero_point: float, zero_point_err: float = 0.0) -> PhotoCalib:
        """Constant calibration from an AB zero point (magnitude of 1 count)."""
        mean = float(ab_mag_to_njy(zero_point))
        return cls(mean, mean * zero_point_err * math.log(10) / 2.5)

    # -- persistence / equality -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict (the field as a nested dict)."""
        d: dict[str, Any] = {
            "calibration_mean": self.calibration_mean,
            "calibration_err": self.calibration_err,
        }
        if self.field is not None:
            d["field"] = self.field.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhotoCalib:
        """Inverse of :meth:`to_dict`."""
        fld = ChebyshevBoundedField.from_dict(d["field"]) if d.get("field") else None
        pc = cls.__new__(cls)
        pc.calibration_mean = float(d["calibration_mean"])
        pc.calibration_err = float(d["calibration_err"])
        pc.field = fld
        return pc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PhotoCalib):
            return NotImplemented
        return (
            self.calibration_mean == other.calibration_mean
            and self.calibration_err == other.calibration_err
            and self.field == other.field
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kind = "constant" if self.field is None else f"field {self.field.coefficients.shape}"
        return (
            f"PhotoCalib(mean={self.calibration_mean!r} nJy/count, "
            f"err={self.calibration_err!r}, {kind})"
        )
