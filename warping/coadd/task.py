"""The coadd over a repository: read the warp stack, assemble it, write ``deepCoadd``.

:func:`assemble_coadd` opens the patch's warps with :func:`warping.stack.open_warp_stack`
(one chunk per warp, of which each tile reads only its rows, through the datastore), reads
their PSFs and inputs tables with :func:`warping.stack.warp_metadata`, combines the pixels with
:func:`warping.coadd.assemble` and writes the coadd as an :class:`~warping.exposure.Exposure`
with the tract WCS, the coadd's CoaddPsf, PhotoCalib 1.0 (nJy), its inputs table and a
provenance record naming every warp (data ID, run, checksum) and giving its weight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from warping.coadd.assemble import CoaddResult, Progress, assemble
from warping.coadd.config import CoaddConfig
from warping.coadd.errors import CoaddError, MismatchedWarpsError
from warping.coadd.psf import coadd_inputs, coadd_psf

if TYPE_CHECKING:
    from repo_butler import Butler
    from warping.exposure import Exposure

__all__ = ["OUTPUT_TYPES", "TASK_NAME", "CoaddSummary", "assemble_coadd", "coadd_exposure"]

logger = logging.getLogger(__name__)

TASK_NAME = "assembleCoadd"
#: The coadd dataset type written from each warp type.
OUTPUT_TYPES = {
    "deepCoadd_directWarp": "deepCoadd",
    "deepCoadd_psfMatchedWarp": "deepCoadd_psfMatched",
}
PACKAGES = ("repo-butler", "numpy", "xarray", "dask", "astropy")


@dataclass
class CoaddSummary:
    """What :func:`assemble_coadd` combined and wrote."""

    data_id: dict[str, Any]
    dataset_type: str
    uri: str
    run: str
    statistic: str
    weighting: str
    weights: dict[int, float]  # visit -> weight, the visits combined
    skipped: dict[int, str] = field(default_factory=dict)  # visit -> why it was left out
    n_ccds: int = 0
    shape: tuple[int, int] = (0, 0)
    n_no_data: int = 0
    n_clipped: int = 0
    n_tiles: int = 0
    seconds: float = 0.0

    @property
    def incomplete(self) -> bool:
        """True when a warp of the patch was left out."""
        return bool(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "data_id": self.data_id,
            "dataset_type": self.dataset_type,
            "uri": self.uri,
            "run": self.run,
            "statistic": self.statistic,
            "weighting": self.weighting,
            "weights": {str(v): w for v, w in self.weights.items()},
            "skipped": {str(v): why for v, why in self.skipped.items()},
            "n_ccds": self.n_ccds,
            "shape": list(self.shape),
            "n_no_data": self.n_no_data,
            "n_clipped": self.n_clipped,
            "n_tiles": self.n_tiles,
            "incomplete": self.incomplete,
            "seconds": round(self.seconds, 3),
        }


def _units(stack: Any, metas: list[Any]) -> str:
    found = {str(m.metadata.get("BUNIT", "")) for m in metas if m.metadata.get("BUNIT")}
    if len(found) > 1:
        raise MismatchedWarpsError(
            f"the warps have different pixel units ({', '.join(sorted(found))}); make them "
            "again with one calibration"
        )
    return found.pop() if found else str(stack.attrs.get("units", "") or "nJy")


def coadd_exposure(
    result: CoaddResult, metas: list[Any], *, filter: str, units: str = "nJy"
) -> Exposure:
    """The coadd as an exposure: pixels of ``result``, the warps' WCS, the coadd's CoaddPsf and
    inputs table (weights of ``result``), PhotoCalib 1.0."""
    from warping.exposure import Exposure
    from warping.photocalib import PhotoCalib

    used = [m for m in metas if m.visit in result.weights]
    wcs = next((m.wcs for m in used if m.wcs is not None), None)
    inputs = coadd_inputs(used, result.weights)
    psf = coadd_psf(used, result.weights, wcs, inputs) if wcs is not None else None
    exposure = Exposure(
        result.image,
        result.mask,
        result.variance,
        mask_planes=result.mask_planes,
        xy0=(result.bbox.x0, result.bbox.y0),
        wcs=wcs,
        psf=psf,
        photo_calib=PhotoCalib(1.0),
        filter=filter,
        metadata={
            "BUNIT": units,
            "COADDSTA": result.statistic,
            "COADDWGT": result.weighting,
            "NWARPS": len(result.weights),
        },
    )
    exposure.coadd_inputs = inputs
    return exposure


def assemble_coadd(
    butler: Butler,
    *,
    tract: int,
    patch: Any,
    filter: str,
    config: CoaddConfig | None = None,
    dataset_type: str = "deepCoadd_directWarp",
    where: str | None = None,
    weights: Mapping[int, float] | None = None,
    client: Any = None,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> CoaddSummary:
    """Coadd the warps of one patch and filter and write the coadd to the output run.

    Parameters
    ----------
    butler
        Repository (its rerun holds the warps and receives the coadd).
    tract, patch, filter
        The patch.
    config
        Statistic, weighting, clipping, tile size and mask rules.
    dataset_type
        Warp type to combine; ``deepCoadd_directWarp`` gives ``deepCoadd``,
        ``deepCoadd_psfMatchedWarp`` gives ``deepCoadd_psfMatched``.
    where
        Further constraint on the warps (e.g. ``"visit IN (903986, 903988)"``).
    weights
        Visit -> weight instead of LSST's 1 / mean variance.
    client
        A ``distributed.Client``: one Dask task per tile.
    progress
        ``progress(done, total, stage)`` after each warp weighed and each tile combined.
    overwrite
        Replace a coadd of this patch already in the output run.

    Raises
    ------
    CoaddError
        If the repository has no coadd dataset type for ``dataset_type`` or the warps cannot be
        combined (none usable, mixed units or filters).
    warping.stack.WarpStackError
        If no warp matches or the warps do not share a grid.
    """
    from repo_butler import Provenance
    from repo_butler.provenance import ProvenanceInput, now_iso
    from warping.stack import open_warp_stack, warp_metadata

    config = config or CoaddConfig()
    output_type = OUTPUT_TYPES.get(dataset_type)
    if output_type is None:
        raise CoaddError(
            f"cannot coadd {dataset_type!r}: the warp types are {', '.join(OUTPUT_TYPES)}"
        )
    if output_type not in butler.dataset_types:
        raise CoaddError(
            f"{butler.root} has no {output_type!r} dataset type (the repository predates "
            f"coadds); add it to butler.yaml's dataset_types as in a new repository "
            f"(rb create) and run again"
        )
    t0 = time.perf_counter()
    start = now_iso()
    data_id = {"tract": int(tract), "patch": str(patch), "filter": str(filter)}
    stack = open_warp_stack(
        butler, tract=int(tract), patch=patch, filter=filter, dataset_type=dataset_type,
        where=where,
    )  # fmt: skip
    metas = warp_metadata(butler, stack)
    units = _units(stack, metas)
    result = assemble(stack, config, weights=weights, client=client, progress=progress)
    exposure = coadd_exposure(result, metas, filter=str(filter), units=units)
    used = [m for m in metas if m.visit in result.weights]
    recorded = {
        **config.to_dict(),
        "warp_dataset_type": dataset_type,
        "where": where or "",
        "weights": {str(v): w for v, w in result.weights.items()},
        "skipped": {str(v): why for v, why in result.skipped.items()},
        "warps": {str(m.visit): m.ref.uri for m in used},
    }
    provenance = Provenance.build(
        TASK_NAME,
        recorded,
        [ProvenanceInput.from_ref(m.ref) for m in used],
        start=start,
        end=now_iso(),
        packages=PACKAGES,
    )
    ref = butler.put(exposure, output_type, data_id, provenance=provenance, overwrite=overwrite)
    summary = CoaddSummary(
        data_id=data_id,
        dataset_type=output_type,
        uri=ref.uri,
        run=ref.run,
        statistic=result.statistic,
        weighting=result.weighting,
        weights=dict(result.weights),
        skipped=dict(result.skipped),
        n_ccds=len(exposure.coadd_inputs.ccds),
        shape=(int(result.image.shape[0]), int(result.image.shape[1])),
        n_no_data=result.n_no_data,
        n_clipped=result.n_clipped,
        n_tiles=result.n_tiles,
        seconds=time.perf_counter() - t0,
    )
    logger.debug(
        "%s %s: %d warps combined (%s), %d left out, %.1f%% pixels without data",
        output_type, data_id, len(summary.weights), summary.statistic, len(summary.skipped),
        100.0 * summary.n_no_data / max(1, int(np.prod(summary.shape))),
    )  # fmt: skip
    return summary
