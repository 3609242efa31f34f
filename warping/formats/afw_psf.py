"""PSFs persisted in an afw FITS archive (the PSF of a calexp or of a visitSummary row).

:func:`read_archived_psf` turns archive object ``obj_id`` into a :class:`warping.psf.base.Psf`:

============================  ==============================================================
archive class (index name)    model
============================  ==============================================================
``GaussianPsf``               :class:`~warping.psf.analytic.GaussianPsf`
``DoubleGaussianPsf``         :class:`~warping.psf.analytic.DoubleGaussianPsf`
``PsfexPsf``                  :class:`~warping.psf.image.PsfexPsf` (2-D, one group)
``PcaPsf``                    :class:`~warping.psf.kernel.PcaPsf` (``LinearCombinationKernel``)
``KernelPsf``                 :class:`~warping.psf.kernel.KernelPsf` (``FixedKernel`` or
                              ``LinearCombinationKernel``)
============================  ==============================================================

Kernels are made of ``FixedKernel`` basis images and ``Chebyshev1Function2D`` /
``PolynomialFunction2D`` spatial functions (``D`` or ``F`` variants), or constant ``amplitudes``.
Both table layouts are read: modern afw tables (points as ``<name>_x``/``<name>_y`` columns) and
version-0 tables (points as 2-element arrays, ``cat_archive`` index columns), e.g. meas_modelfit's
2016 ``calexp.fits``.

Any other class raises :class:`UnsupportedPsfError`. PSFs that afw stores by pickling Python
objects (``PiffPsf``) are recognised by their class name in the archive index and refused without
their bytes ever being decoded: unpickling a file's contents can run arbitrary code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from warping.errors import FormatError
from warping.psf.analytic import DoubleGaussianPsf, GaussianPsf
from warping.psf.base import Psf
from warping.psf.image import PsfexPsf
from warping.psf.kernel import (
    Chebyshev1Function2D,
    KernelPsf,
    LinearCombinationKernel,
    PcaPsf,
    PolynomialFunction2D,
    SpatialFunction,
)

if TYPE_CHECKING:
    from warping.formats.lsst_afw import LsstArchive

logger = logging.getLogger(__name__)

__all__ = [
    "PICKLED_PSF_CLASSES",
    "PSF_CLASS_KEY",
    "PSF_REASON_KEY",
    "SUPPORTED_PSF_CLASSES",
    "UnsupportedPsfError",
    "read_archived_psf",
    "register_psf_reader",
]

#: Exposure metadata key naming the archived PSF class that could not be read.
PSF_CLASS_KEY = "LSST_UNSUPPORTED_PSF"
#: Exposure metadata key holding why it could not be read.
PSF_REASON_KEY = "LSST_UNSUPPORTED_PSF_REASON"

#: PSF classes whose archive payload is a Python pickle: refused by name, never decoded.
PICKLED_PSF_CLASSES = {"PiffPsf": "lsst.meas.extensions.piff"}


class UnsupportedPsfError(FormatError):
    """An archived PSF is of a class this reader does not evaluate (or refuses to decode).

    ``psf_class`` is the archive's class name and ``reason`` the message without the file name.
    """

    def __init__(self, source: str, psf_class: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.psf_class = psf_class
        self.reason = reason


# -- row helpers ---------------------------------------------------------------------------------
class _Row:
    """One archive row with afw's two column conventions hidden."""

    def __init__(self, archive: LsstArchive, obj_id: int, catalog: int = 0) -> None:
        cats = archive.catalogs(obj_id)
        self.source = archive.source
        self.what = f"{archive.name(obj_id)} (archive id {obj_id})"
        if catalog >= len(cats) or len(cats[catalog]) < 1:
            raise FormatError(f"{self.source}: {self.what} has no catalog {catalog} row")
        self.row = cats[catalog][0]
        self.names = list(cats[catalog].columns.names)

    def has(self, name: str) -> bool:
        return name in self.names

    def get(self, name: str) -> Any:
        if name not in self.names:
            raise FormatError(
                f"{self.source}: {self.what} lacks column {name!r} (has {self.names})"
            )
        return self.row[name]

    def array(self, name: str, dtype: type = float) -> np.ndarray:
        return np.atleast_1d(np.asarray(self.get(name), dtype=dtype))

    def point(self, name: str, dtype: type = float) -> tuple[Any, Any]:
        """A point: ``name_x``/``name_y`` columns (modern) or one 2-element array (version 0)."""
        if f"{name}_x" in self.names and f"{name}_y" in self.names:
            return dtype(self.row[f"{name}_x"]), dtype(self.row[f"{name}_y"])
        arr = self.array(name, dtype)
        if arr.size != 2:
            raise FormatError(
                f"{self.source}: {self.what} column {name!r} has {arr.size} values, not a point"
            )
        return dtype(arr[0]), dtype(arr[1])


def _unsupported(
    archive: LsstArchive, psf_class: str, part: str | None = None, part_class: str = ""
) -> UnsupportedPsfError:
    what = f"PSF class {psf_class!r}"
    if part is not None:
        what += f" with a {part} of class {part_class!r}"
    return UnsupportedPsfError(
        archive.source,
        psf_class,
        f"{what} is not supported; the readable PSF classes are "
        f"{', '.join(sorted(SUPPORTED_PSF_CLASSES))} (kernels of FixedKernel basis images with "
        "Chebyshev1Function2D/PolynomialFunction2D spatial functions). Use a calexp whose PSF is "
        "one of these; make-warp skips this CCD and reports why.",
    )


# -- PSF classes ---------------------------------------------------------------------------------
def _gaussian(archive: LsstArchive, obj_id: int) -> Psf:
    row = _Row(archive, obj_id)
    return GaussianPsf(float(row.get("sigma")), row.point("dimensions", int)[0])


def _double_gaussian(archive: LsstArchive, obj_id: int) -> Psf:
    row = _Row(archive, obj_id)
    return DoubleGaussianPsf(
        row.point("dimensions", int)[0],
        float(row.get("sigma1")),
        float(row.get("sigma2")),
        float(row.get("b")),
    )


def _psfex(archive: LsstArchive, obj_id: int) -> Psf:
    head = _Row(archive, obj_id, 0)
    body = _Row(archive, obj_id, 1)
    size = body.array("_size", int)  # (nx, ny, ncomp)
    comp = body.array("_comp").reshape(int(size[2]), int(size[1]), int(size[0]))
    ndim, ngroup = int(head.get("ndim")), int(head.get("ngroup"))
    if ndim != 2 or ngroup != 1:
        raise UnsupportedPsfError(
            archive.source,
            "PsfexPsf",
            f"PsfexPsf with ndim={ndim}, ngroup={ngroup} is not supported (only 2-D, one group)",
        )
    first = body.array("_context_first")
    second = body.array("_context_second")
    return PsfexPsf(
        comp,
        float(head.get("_pixstep")),
        (float(first[0]), float(first[1])),
        (float(second[0]), float(second[1])),
        int(body.array("degree", int)[0]),
        context_origin=0.0,
        average_position=head.point("averagePosition"),
    )


def _kernel_psf(cls: type[KernelPsf]) -> Callable[[LsstArchive, int], Psf]:
    def read(archive: LsstArchive, obj_id: int) -> Psf:
        row = _Row(archive, obj_id)
        kid = int(row.get("kernel"))
        if kid <= 0:
            raise FormatError(f"{archive.source}: {row.what} has no kernel (id {kid})")
        kernel = _read_kernel(archive, kid, cls.type_name, fixed_ok=cls is KernelPsf)
        return cls(kernel, row.point("averagePosition"))

    return read


_READERS: dict[str, Callable[[LsstArchive, int], Psf]] = {
    "GaussianPsf": _gaussian,
    "DoubleGaussianPsf": _double_gaussian,
    "PsfexPsf": _psfex,
    "PcaPsf": _kernel_psf(PcaPsf),
    "KernelPsf": _kernel_psf(KernelPsf),
}

#: Archive PSF class names :func:`read_archived_psf` reads (without registered readers).
SUPPORTED_PSF_CLASSES = frozenset(_READERS)


def register_psf_reader(name: str, reader: Callable[[LsstArchive, int], Psf]) -> None:
    """Read archive class ``name`` with ``reader(archive, obj_id)`` from now on (a module above
    this one, e.g. :mod:`warping.formats.afw_coadd_read` for ``CoaddPsf``)."""
    _READERS[name] = reader


# -- kernels and functions -----------------------------------------------------------------------
def _fixed_kernel(archive: LsstArchive, obj_id: int) -> tuple[np.ndarray, tuple[int, int]]:
    row = _Row(archive, obj_id)
    w, h = row.point("dimensions", int)
    pixels = row.array("image")
    if w < 1 or h < 1 or pixels.size != w * h:
        raise FormatError(
            f"{archive.source}: {row.what} holds {pixels.size} pixels for dimensions {w}x{h}"
        )
    return pixels.reshape(h, w), row.point("center", int)  # row-major: index = y * w + x


def _read_kernel(
    archive: LsstArchive, obj_id: int, psf_class: str, *, fixed_ok: bool
) -> LinearCombinationKernel:
    name = archive.name(obj_id)
    if name == "FixedKernel" and fixed_ok:
        image, center = _fixed_kernel(archive, obj_id)
        return LinearCombinationKernel(image, center, amplitudes=[1.0])
    if name != "LinearCombinationKernel":
        raise _unsupported(archive, psf_class, "kernel", name)
    row = _Row(archive, obj_id)
    dims = row.point("dimensions", int)
    center = row.point("center", int)
    component_ids = row.array("components", int)
    images = []
    for cid in component_ids:
        cname = archive.name(int(cid))
        if cname != "FixedKernel":
            raise _unsupported(archive, psf_class, "basis kernel", cname)
        image, _ = _fixed_kernel(archive, int(cid))
        if (image.shape[1], image.shape[0]) != dims:
            raise FormatError(
                f"{archive.source}: basis kernel {cid} is {image.shape[1]}x{image.shape[0]}, "
                f"its LinearCombinationKernel {obj_id} is {dims[0]}x{dims[1]}"
            )
        images.append(image)
    if not images:
        raise FormatError(f"{archive.source}: LinearCombinationKernel {obj_id} has no components")
    basis = np.stack(images)
    try:
        if row.has("spatialfunctions"):
            fids = row.array("spatialfunctions", int)
            funcs = [_spatial_function(archive, int(f), psf_class) for f in fids]
            return LinearCombinationKernel(basis, center, spatial_functions=funcs)
        return LinearCombinationKernel(basis, center, amplitudes=list(row.array("amplitudes")))
    except ValueError as err:
        if isinstance(err, FormatError):
            raise
        raise FormatError(f"{archive.source}: LinearCombinationKernel {obj_id}: {err}") from None


def _spatial_function(archive: LsstArchive, obj_id: int, psf_class: str) -> SpatialFunction:
    if obj_id <= 0:
        raise FormatError(f"{archive.source}: a spatial function of the {psf_class} kernel is null")
    name = archive.name(obj_id)
    row = _Row(archive, obj_id)
    try:
        if name in ("Chebyshev1Function2D", "Chebyshev1Function2F"):
            lo = row.point("min")
            hi = row.point("max")
            return Chebyshev1Function2D(
                tuple(row.array("coefficients")), (lo[0], lo[1], hi[0], hi[1])
            )
        if name in ("PolynomialFunction2D", "PolynomialFunction2F"):
            return PolynomialFunction2D(tuple(row.array("coefficients")))
    except ValueError as err:
        if isinstance(err, FormatError):
            raise
        raise FormatError(f"{archive.source}: {row.what}: {err}") from None
    raise _unsupported(archive, psf_class, "spatial function", name)


# -- entry point ---------------------------------------------------------------------------------
def read_archived_psf(archive: LsstArchive, obj_id: int) -> Psf:
    """The PSF stored as archive object ``obj_id``.

    Raises
    ------
    UnsupportedPsfError
        The class (or a kernel or function inside it) is not one this reader evaluates, or it is
        a pickled class such as ``PiffPsf`` (refused without decoding).
    FormatError
        The object is malformed (missing columns, inconsistent sizes, dangling ids).
    """
    name = archive.name(obj_id)
    if name in PICKLED_PSF_CLASSES:
        raise UnsupportedPsfError(
            archive.source,
            name,
            f"{name} (from {PICKLED_PSF_CLASSES[name]}) is stored as a Python pickle; it is "
            "refused and never unpickled, since unpickling a file can run arbitrary code. Use a "
            "calexp with a PSFEx or PCA PSF; make-warp skips this CCD and reports why.",
        )
    reader = _READERS.get(name)
    if reader is None:
        raise _unsupported(archive, name)
    try:
        return reader(archive, obj_id)
    except FormatError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise FormatError(
            f"{archive.source}: archived {name} (id {obj_id}) is malformed: {err}"
        ) from None
