"""Configuration of model-PSF matching (LSST ``ModelPsfMatchConfig`` + ``PsfMatchConfigAL``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from repo_butler.errors import ConfigError

__all__ = ["LSST_FIELD_NAMES", "PsfMatchConfig"]

#: LSST config field name -> our field name (for ``kernel['AL'].kernelSize=27``-style overrides).
LSST_FIELD_NAMES: dict[str, str] = {
    "kernelSize": "kernel_size",
    "sizeCellX": "size_cell_x",
    "sizeCellY": "size_cell_y",
    "alardSigGauss": "alard_sig_gauss",
    "alardDegGauss": "alard_deg_gauss",
    "spatialKernelOrder": "spatial_kernel_order",
    "doAutoPadPsf": "do_auto_pad_psf",
    "autoPadPsfTo": "auto_pad_psf_to",
    "padPsfBy": "pad_psf_by",
    "deconvolutionTolerance": "deconvolution_tolerance",
    "maxNoiseGain": "max_noise_gain",
    "maxKernelAbsSum": "max_kernel_abs_sum",
}
_OUR_TO_LSST = {v: k for k, v in LSST_FIELD_NAMES.items()}


def _bad(field_name: str, value: object, why: str) -> ConfigError:
    lsst = _OUR_TO_LSST.get(field_name, field_name)
    return ConfigError(f"Invalid PSF-matching config {lsst} ({field_name}) = {value!r}: {why}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class PsfMatchConfig:
    """Alard–Lupton model-PSF matching configuration (LSST defaults).

    Parameters
    ----------
    kernel_size
        Width of the square matching kernel in pixels; odd, >= 3 (LSST ``kernelSize``).
    size_cell_x, size_cell_y
        Size of the spatial cells, one PSF pair per cell (``sizeCellX``/``sizeCellY``).
    alard_sig_gauss
        Sigmas in pixels of the Gaussians of the basis (``alardSigGauss``).
    alard_deg_gauss
        Polynomial degree that multiplies each Gaussian (``alardDegGauss``); same length.
    spatial_kernel_order
        Order of the Chebyshev spatial model of the kernel (``spatialKernelOrder``).
    do_auto_pad_psf
        Pad the science PSF stamp to at least ``next_odd(kernel_size * auto_pad_psf_to)``.
    auto_pad_psf_to
        Minimum ratio of PSF stamp size to kernel size, in ``[1, 2]`` (``autoPadPsfTo``).
    pad_psf_by
        Pixels added to the PSF stamp when ``do_auto_pad_psf`` is False; even (``padPsfBy``).
    deconvolution_tolerance
        A CCD is rejected (:class:`~warping.psfmatch.errors.PsfMatchRejected`) when, in some
        cell and along some direction, the model's second moment is below the science PSF's by
        more than this fraction of the science PSF's ``Ixx + Iyy``: matching would deconvolve.
    max_noise_gain
        Rejected when the fitted kernel's white-noise gain ``sqrt(sum K²)`` exceeds this in some
        cell (a positive kernel has gain < 1).
    max_kernel_abs_sum
        Rejected when ``sum |K|`` of the normalised kernel exceeds this in some cell (1 for a
        positive kernel; more means negative lobes, an oscillating kernel).

    Raises
    ------
    ConfigError
        When a value is out of range; the message names the LSST and the Python field.
    """

    kernel_size: int = 21
    size_cell_x: int = 128
    size_cell_y: int = 128
    alard_sig_gauss: tuple[float, ...] = (0.7, 1.5, 3.0)
    alard_deg_gauss: tuple[int, ...] = (4, 2, 2)
    spatial_kernel_order: int = 2
    do_auto_pad_psf: bool = True
    auto_pad_psf_to: float = 1.4
    pad_psf_by: int = 0
    deconvolution_tolerance: float = 0.01
    max_noise_gain: float = 1.0
    max_kernel_abs_sum: float = 1.5

    def __post_init__(self) -> None:
        # Accept lists (config files write ``[1.5, 3.0, 6.0]``) and store tuples.
        try:
            sig = tuple(float(s) for s in self.alard_sig_gauss)
        except (TypeError, ValueError):
            raise _bad(
                "alard_sig_gauss", self.alard_sig_gauss, "must be a list of numbers"
            ) from None
        try:
            deg = tuple(self.alard_deg_gauss)
        except TypeError:
            raise _bad("alard_deg_gauss", self.alard_deg_gauss, "must be a list of ints") from None
        object.__setattr__(self, "alard_sig_gauss", sig)
        object.__setattr__(self, "alard_deg_gauss", deg)
        if not _is_int(self.kernel_size) or self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise _bad("kernel_size", self.kernel_size, "must be an odd integer >= 3")
        for name in ("size_cell_x", "size_cell_y"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise _bad(name, v, "must be a positive integer number of pixels")
        if not sig:
            raise _bad("alard_sig_gauss", sig, "needs at least one Gaussian")
        if any(not math.isfinite(s) or s <= 0 for s in sig):
            raise _bad("alard_sig_gauss", sig, "sigmas must be finite and > 0")
        if any(not _is_int(d) or d < 0 for d in deg):
            raise _bad("alard_deg_gauss", deg, "degrees must be integers >= 0")
        if len(sig) != len(deg):
            raise _bad(
                "alard_deg_gauss",
                deg,
                f"needs one degree per Gaussian of alardSigGauss ({len(sig)} sigmas, "
                f"{len(deg)} degrees)",
            )
        if not _is_int(self.spatial_kernel_order) or self.spatial_kernel_order < 0:
            raise _bad("spatial_kernel_order", self.spatial_kernel_order, "must be an int >= 0")
        if not isinstance(self.do_auto_pad_psf, bool):
            raise _bad("do_auto_pad_psf", self.do_auto_pad_psf, "must be True or False")
        apt = self.auto_pad_psf_to
        if isinstance(apt, bool) or not isinstance(apt, int | float) or not 1.0 <= apt <= 2.0:
            raise _bad("auto_pad_psf_to", apt, "must be a number in [1, 2]")
        if not _is_int(self.pad_psf_by) or self.pad_psf_by < 0:
            raise _bad("pad_psf_by", self.pad_psf_by, "must be an even integer >= 0")
        if self.pad_psf_by % 2:
            raise _bad(
                "pad_psf_by",
                self.pad_psf_by,
                "must be even so the padded PSF stamp stays odd-sized and centred; "
                "use e.g. padPsfBy=6",
            )

        for name in ("deconvolution_tolerance", "max_noise_gain", "max_kernel_abs_sum"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise _bad(name, v, "must be a finite number")
        if self.deconvolution_tolerance < 0:
            raise _bad("deconvolution_tolerance", self.deconvolution_tolerance, "must be >= 0")
        if self.max_noise_gain <= 0:
            raise _bad("max_noise_gain", self.max_noise_gain, "must be > 0")
        if self.max_kernel_abs_sum < 1:
            raise _bad("max_kernel_abs_sum", self.max_kernel_abs_sum, "must be >= 1")

    @property
    def n_basis(self) -> int:
        """Number of Alard–Lupton basis kernels, ``sum((d+1)(d+2)/2)`` (27 by default)."""
        return sum((d + 1) * (d + 2) // 2 for d in self.alard_deg_gauss)

    @property
    def n_spatial_terms(self) -> int:
        """Number of Chebyshev spatial terms, ``(order+1)(order+2)/2`` (6 for order 2)."""
        o = self.spatial_kernel_order
        return (o + 1) * (o + 2) // 2

    @classmethod
    def from_lsst(
        cls, overrides: Mapping[str, Any], base: PsfMatchConfig | None = None
    ) -> PsfMatchConfig:
        """Build from LSST-named overrides such as ``{"kernelSize": 27, "sizeCellX": 64}``.

        Python field names are accepted too. Unknown names raise :class:`ConfigError`.
        """
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {} if base is None else {f: getattr(base, f) for f in known}
        for key, value in overrides.items():
            name = LSST_FIELD_NAMES.get(key, key)
            if name not in known:
                raise ConfigError(
                    f"Unknown PSF-matching config field {key!r}; known fields: "
                    f"{sorted(LSST_FIELD_NAMES)}"
                )
            values[name] = value
        return cls(**values)
