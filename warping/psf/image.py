"""PSF models defined by pixel images: a fixed kernel image and PSFEx models."""

from __future__ import annotations

import logging
import os
from typing import Any, ClassVar

import numpy as np
from astropy.io import fits

from warping.geom import Box2I
from warping.psf._sampling import fourier_shift, lanczos_matrix, stamp_offsets
from warping.psf.registry import SerializablePsf

logger = logging.getLogger(__name__)

__all__ = ["ImagePsf", "PsfexPsf"]

#: Lanczos order used to shift/resample image-based PSFs.
LANCZOS_ORDER = 5


def _resample(grid: np.ndarray, gx: np.ndarray, gy: np.ndarray, order: int) -> np.ndarray:
    """Evaluate ``grid`` (rows y, cols x) at the separable positions ``gy`` x ``gx``."""
    wy = lanczos_matrix(gy, grid.shape[0], order)
    wx = lanczos_matrix(gx, grid.shape[1], order)
    return np.asarray(wy @ grid @ wx.T, dtype=float)


def _normalised(img: np.ndarray, what: str) -> np.ndarray:
    s = float(img.sum())
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"{what} has non-positive or non-finite sum {s}; cannot normalise")
    return img / s


class ImagePsf(SerializablePsf):
    """A spatially constant PSF given as an odd-sized kernel image centred on its middle pixel.

    ``compute_image(x, y)`` shifts the kernel to the sub-pixel position by an exact sinc (Fourier)
    shift, which preserves the centroid for band-limited kernels whose edges are ~0, and
    renormalises it to sum 1.
    """

    type_name: ClassVar[str] = "ImagePsf"

    def __init__(self, kernel: np.ndarray, average_position: tuple[float, float] = (0.0, 0.0)):
        k = np.array(kernel, dtype=float)
        if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
            raise ValueError(f"ImagePsf kernel must be an odd square 2-D array, got {k.shape}")
        self.kernel = _normalised(k, "ImagePsf kernel")
        self._average_position = (float(average_position[0]), float(average_position[1]))

    @property
    def size(self) -> int:
        """Kernel width (= height)."""
        return int(self.kernel.shape[0])

    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        """The (normalised) kernel itself."""
        return self.kernel.copy()

    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        """Kernel shifted to the sub-pixel position ``(x, y)`` (exact sinc shift via FFT)."""
        dx, dy, bbox = stamp_offsets(x, y, self.size)
        c = self.size // 2
        fx = -(dx[0] + c)  # sub-pixel offset of (x, y) from the stamp's centre pixel
        fy = -(dy[0] + c)
        if fx == 0.0 and fy == 0.0:
            return self.kernel.copy(), bbox
        img = fourier_shift(self.kernel, fx, fy)
        return _normalised(img, "shifted ImagePsf"), bbox

    def average_position(self) -> tuple[float, float]:
        """Representative position."""
        return self._average_position

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict (the kernel as an array)."""
        return {
            "type": self.type_name,
            "kernel": self.kernel,
            "average_position": list(self._average_position),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImagePsf:
        """Inverse of :meth:`to_dict`."""
        ap = d.get("average_position", (0.0, 0.0))
        return cls(np.asarray(d["kernel"]), (float(ap[0]), float(ap[1])))


class PsfexPsf(SerializablePsf):
    """A PSFEx model: polynomial-in-position combination of basis images on a sampled grid.

    At parent pixel ``(x, y)`` the context is ``u = (x + context_origin - polzero[0]) / polscal[0]``
    and likewise ``v``; the model grid is ``sum_k B_k(u, v) comp[k]`` with the PSFEx basis order
    ``u^i v^j`` for ``j = 0..deg``, ``i = 0..deg-j`` (``1, u, u², v, uv, v²`` for degree 2). Grid
    pixel ``g`` lies ``(g - n//2) * sample`` image pixels from the star centre; image pixels are
    resampled from the grid with Lanczos-5 interpolation and normalised to sum 1.

    ``context_origin`` is 1 for SExtractor/PSFEx ``.psf`` files (``X_IMAGE`` is 1-based) and 0 for
    models fitted by the LSST stack on 0-based positions.
    """

    type_name: ClassVar[str] = "PsfexPsf"

    def __init__(
        self,
        comp: np.ndarray,
        sample: float,
        polzero: tuple[float, float],
        polscal: tuple[float, float],
        degree: int,
        context_origin: float = 0.0,
        average_position: tuple[float, float] = (0.0, 0.0),
        size: int | None = None,
    ) -> None:
        comp = np.array(comp, dtype=float)
        if comp.ndim == 2:
            comp = comp[None]
        if comp.ndim != 3:
            raise ValueError(f"PSFEx components must be (ncomp, ny, nx), got shape {comp.shape}")
        degree = int(degree)
        nbasis = (degree + 1) * (degree + 2) // 2
        if comp.shape[0] != nbasis:
            raise ValueError(
                f"PSFEx degree {degree} needs {nbasis} components, got {comp.shape[0]}"
            )
        if not sample > 0:
            raise ValueError(f"PSFEx sampling step must be > 0, got {sample}")
        self.comp = comp
        self.sample = float(sample)
        self.polzero = (float(polzero[0]), float(polzero[1]))
        self.polscal = (float(polscal[0]), float(polscal[1]))
        self.degree = degree
        self.context_origin = float(context_origin)
        self._average_position = (float(average_position[0]), float(average_position[1]))
        if size is None:
            half = int(((min(comp.shape[1:]) - 1) / 2) * self.sample)
            size = 2 * max(half, 1) + 1
        if size % 2 == 0 or size < 1:
            raise ValueError(f"PSFEx output size must be odd and positive, got {size}")
        self.size = int(size)

    # -- construction from files --------------------------------------------------------------
    @classmethod
    def from_fits(cls, source: str | os.PathLike[str] | fits.HDUList) -> PsfexPsf:
        """Read a PSFEx ``.psf`` file (the ``PSF_DATA`` table with ``PSF_MASK``).

        Raises ``ValueError`` naming the file when the layout is not a 2-D ``X_IMAGE``/``Y_IMAGE``
        PSFEx model.
        """
        name = (
            getattr(source, "filename", lambda: None)()
            if isinstance(source, fits.HDUList)
            else source
        )
        if isinstance(source, fits.HDUList):
            return cls._from_hdul(source, str(name or "<HDUList>"))
        with fits.open(source) as hdul:
            return cls._from_hdul(hdul, str(source))

    @classmethod
    def _from_hdul(cls, hdul: fits.HDUList, name: str) -> PsfexPsf:
        hdu = None
        for h in hdul:
            if isinstance(h, fits.BinTableHDU) and (
                h.header.get("EXTNAME") == "PSF_DATA" or "PSF_MASK" in (h.columns.names or [])
            ):
                hdu = h
                break
        if hdu is None:
            raise ValueError(f"{name}: no PSF_DATA table with a PSF_MASK column; not a PSFEx file")
        hdr = hdu.header
        try:
            naxis = int(hdr["POLNAXIS"])
            if naxis != 2:
                raise ValueError(f"POLNAXIS={naxis}; only 2-D (X_IMAGE, Y_IMAGE) models supported")
            names = (str(hdr["POLNAME1"]).strip(), str(hdr["POLNAME2"]).strip())
            if names != ("X_IMAGE", "Y_IMAGE"):
                raise ValueError(f"context axes {names}; only X_IMAGE, Y_IMAGE supported")
            if int(hdr.get("POLNGRP", 1)) != 1:
                raise ValueError(f"POLNGRP={hdr['POLNGRP']}; only one polynomial group supported")
            degree = int(hdr["POLDEG1"])
            polzero = (float(hdr["POLZERO1"]), float(hdr["POLZERO2"]))
            polscal = (float(hdr["POLSCAL1"]), float(hdr["POLSCAL2"]))
            sample = float(hdr["PSF_SAMP"])
            comp = np.array(hdu.data["PSF_MASK"][0], dtype=float)
        except KeyError as err:
            raise ValueError(f"{name}: PSFEx header keyword {err} missing") from None
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        if "ACCEPTED" in hdr:
            logger.debug("%s: PSFEx model from %s accepted stars", name, hdr["ACCEPTED"])
        return cls(
            comp,
            sample,
            polzero,
            polscal,
            degree,
            context_origin=1.0,
            average_position=(polzero[0] - 1.0, polzero[1] - 1.0),
        )

    # -- evaluation ---------------------------------------------------------------------------
    def basis(self, x: float, y: float) -> np.ndarray:
        """Polynomial basis values at parent position ``(x, y)``."""
        u = (x + self.context_origin - self.polzero[0]) / self.polscal[0]
        v = (y + self.context_origin - self.polzero[1]) / self.polscal[1]
        vals = []
        for j in range(self.degree + 1):
            for i in range(self.degree + 1 - j):
                vals.append(u**i * v**j)
        return np.array(vals)

    def model_grid(self, x: float, y: float) -> np.ndarray:
        """The PSFEx-sampled model (not resampled, not normalised) at ``(x, y)``."""
        return np.tensordot(self.basis(x, y), self.comp, axes=1)

    def _image(self, dx: np.ndarray, dy: np.ndarray, x: float, y: float) -> np.ndarray:
        grid = self.model_grid(x, y)
        cy, cx = grid.shape[0] // 2, grid.shape[1] // 2
        img = _resample(grid, cx + dx / self.sample, cy + dy / self.sample, LANCZOS_ORDER)
        return _normalised(img, f"PSFEx model at ({x}, {y})")

    def evaluate_offsets(self, dx: np.ndarray, dy: np.ndarray, x: float, y: float) -> np.ndarray:
        """Model of a star at ``(x, y)`` on the separable grid of image-pixel offsets ``dy`` x
        ``dx`` (any spacing, e.g. finer than a pixel), normalised to sum 1 over the grid."""
        return self._image(np.asarray(dx, dtype=float), np.asarray(dy, dtype=float), x, y)

    def compute_kernel_image(self, x: float, y: float) -> np.ndarray:
        """Kernel at ``(x, y)`` in image pixels, centred, sum 1."""
        half = self.size // 2
        d = np.arange(-half, half + 1, dtype=float)
        return self._image(d, d, x, y)

    def compute_image(self, x: float, y: float) -> tuple[np.ndarray, Box2I]:
        """Unit-flux image of a point source at the sub-pixel position ``(x, y)``."""
        dx, dy, bbox = stamp_offsets(x, y, self.size)
        return self._image(dx, dy, x, y), bbox

    def average_position(self) -> tuple[float, float]:
        """Mean position of the stars used to build the model."""
        return self._average_position

    def to_dict(self) -> dict[str, Any]:
        """Parameters as a dict (``comp`` as an array)."""
        return {
            "type": self.type_name,
            "comp": self.comp,
            "sample": self.sample,
            "polzero": list(self.polzero),
            "polscal": list(self.polscal),
            "degree": self.degree,
            "context_origin": self.context_origin,
            "average_position": list(self._average_position),
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PsfexPsf:
        """Inverse of :meth:`to_dict`."""
        return cls(
            np.asarray(d["comp"]),
            float(d["sample"]),
            (float(d["polzero"][0]), float(d["polzero"][1])),
            (float(d["polscal"][0]), float(d["polscal"][1])),
            int(d["degree"]),
            float(d["context_origin"]),
            (float(d["average_position"][0]), float(d["average_position"][1])),
            int(d["size"]),
        )
