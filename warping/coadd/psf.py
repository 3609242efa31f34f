"""The coadd's inputs table and PSF, from the warps' own (LSST ``assembleMetadata``).

Every visit row and every CCD row of the warps' :class:`~warping.coadd_inputs.CoaddInputs`
goes into the coadd's, with the warp's weight as the row weight (LSST ``addVisitToCoadd``).
For direct warps the coadd's PSF is a :class:`~warping.coadd_psf.CoaddPsf` over all these CCDs:
at a position, the weighted mean of the warped PSFs of the CCDs containing it, so where each
visit has one CCD there it equals ``sum(w_i K_i) / sum(w_i)`` over the warps ``i`` covering the
position, ``K_i`` warp ``i``'s PSF. For PSF-matched warps (whose PSF is the model PSF) it is the
widest of the warps' model PSFs, as LSST.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from warping.coadd_inputs import CoaddInputs, VisitRecord
from warping.coadd_psf import CoaddPsf
from warping.psf.base import Psf, PsfError
from warping.skywcs import SkyWcs

__all__ = ["WarpModels", "coadd_inputs", "coadd_psf"]


class WarpModels(Protocol):
    """What the coadd needs of a warp besides its pixels (:class:`warping.stack.WarpMeta`)."""

    @property
    def visit(self) -> int: ...

    @property
    def psf(self) -> Any: ...

    @property
    def coadd_inputs(self) -> Any: ...


def coadd_inputs(warps: Sequence[WarpModels], weights: Mapping[int, float]) -> CoaddInputs:
    """The coadd's inputs: each combined warp's visit and CCD rows, weighted by its weight.

    Warps whose visit is not in ``weights`` (left out of the coadd) are not listed.
    """
    visits: list[VisitRecord] = []
    ccds = []
    for warp in warps:
        if warp.visit not in weights:
            continue
        w = float(weights[warp.visit])
        inputs = warp.coadd_inputs
        if inputs is None:
            visits.append(VisitRecord(int(warp.visit), None, w, ""))
            continue
        for v in inputs.visits:
            visits.append(dataclasses.replace(v, weight=w))
        for c in inputs.ccds:
            ccds.append(dataclasses.replace(c, weight=w))
    visits.sort(key=lambda v: v.id)
    ccds.sort(key=lambda c: c.id)
    return CoaddInputs(visits, ccds)


def coadd_psf(
    warps: Sequence[WarpModels],
    weights: Mapping[int, float],
    coadd_wcs: SkyWcs,
    inputs: CoaddInputs | None = None,
) -> Psf | None:
    """The coadd's PSF (see the module docstring); ``None`` when no warp has one."""
    used = [w for w in warps if w.visit in weights and w.psf is not None]
    if not used:
        return None
    if all(isinstance(w.psf, CoaddPsf) for w in used):
        kernel = used[0].psf.kernel
        inputs = inputs or coadd_inputs(used, weights)
        return CoaddPsf(inputs.ccds, coadd_wcs, kernel=kernel)

    # PSF-matched warps: the widest model PSF (LSST), measured at its average position
    def width(psf: Psf) -> int:
        try:
            x, y = psf.average_position()
            return int(psf.compute_kernel_image(x, y).shape[1])
        except PsfError:
            return 0

    return max((w.psf for w in used), key=width)
