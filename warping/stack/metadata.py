"""Per-warp metadata of a stack: :class:`WarpMeta`, :func:`warp_metadata` and the per-visit
values that become coordinates (PSF width, good pixels, input CCDs)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from repo_butler.errors import DatasetNotFoundError
from repo_butler.refs import DatasetRef
from warping.geom import Box2I
from warping.stack.errors import WarpStackError
from warping.stack.planes import REMOTE_BLOCK_SIZE, PlaneSource, read_plane_section
from warping.stack.warp_file import WarpFile, read_warp_file

if TYPE_CHECKING:
    import xarray as xr

    from repo_butler.butler import Butler
    from repo_butler.writes import WorkerIO

__all__ = ["WarpMeta", "good_pixel_count", "psf_sigma", "read_warp_files", "warp_metadata"]

logger = logging.getLogger(__name__)

#: Threads reading warp headers at once (remote files: one request or a few each).
READ_THREADS = 8


@dataclass(frozen=True)
class WarpMeta:
    """One warp's models, read without its pixels.

    Attributes
    ----------
    visit : int
        The warp's visit.
    ref : DatasetRef
        The warp dataset.
    psf : Psf or None
        The warp's PSF (a :class:`~warping.coadd_psf.CoaddPsf` for direct warps, the model PSF
        for PSF-matched warps).
    coadd_inputs : CoaddInputs or None
        The inputs table (visit row and CCD rows).
    wcs : SkyWcs or None
        The warp's WCS (parent = tract pixels).
    photo_calib : PhotoCalib or None
        Its photometric calibration.
    metadata : dict
        Its free metadata.
    bbox : Box2I
        Its parent-pixel bounding box.
    """

    visit: int
    ref: DatasetRef
    psf: Any
    coadd_inputs: Any
    wcs: Any
    photo_calib: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    bbox: Box2I | None = None


def _read_one(io: WorkerIO, ref: DatasetRef, root: str) -> WarpFile:
    block = None if io.datastore().is_local and "://" not in ref.path else REMOTE_BLOCK_SIZE
    try:
        handle = io.open(ref, block_size=block)
    except FileNotFoundError:
        raise DatasetNotFoundError(
            f"{ref.dataset_type} {ref.data_id}: file {ref.uri} is missing; run `rb verify {root}`"
        ) from None
    with handle as fh:
        return read_warp_file(fh, ref.uri)


def read_warp_files(butler: Butler, refs: Sequence[DatasetRef]) -> list[WarpFile]:
    """Headers and tables of each warp (concurrently; never the pixels)."""
    io = butler.worker_io()
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, max(1, len(refs)))) as pool:
        return list(pool.map(lambda r: _read_one(io, r, butler.root), refs))


def psf_sigma(warp: WarpFile) -> float:
    """Gaussian-equivalent width (pixels) of the warp's PSF: the determinant radius
    ``(Ixx Iyy - Ixy^2)^(1/4)`` of its kernel image at the bbox centre, or at the PSF's
    average position where no input covers the centre; NaN without a usable PSF."""
    psf = warp.psf
    if psf is None:
        return float("nan")
    box = warp.bbox
    points = [(box.x0 + (box.width - 1) / 2.0, box.y0 + (box.height - 1) / 2.0)]
    for attempt in range(2):
        for x, y in points:
            try:
                ixx, iyy, ixy = psf.second_moments(x, y)
            except ValueError:  # PsfError (not covered) or a stamp without flux
                continue
            return float(max(ixx * iyy - ixy * ixy, 0.0) ** 0.25)
        if attempt == 0:
            try:
                points = [psf.average_position()]
            except ValueError:
                break
    logger.info("%s: PSF cannot be evaluated at the patch centre nor its average position",
                warp.source)  # fmt: skip
    return float("nan")


def good_pixel_count(io: WorkerIO, ref: DatasetRef, warp: WarpFile) -> int:
    """Pixels of the warp with data: the visit row's ``goodpix`` of its inputs table (what
    make-warp counted while copying CCD pixels), else the pixels without ``NO_DATA``, counted
    from the mask (reads the mask plane)."""
    inputs = warp.coadd_inputs
    if inputs is not None and inputs.visits and inputs.visits[0].goodpix is not None:
        return int(inputs.visits[0].goodpix)
    logger.info("%s: no recorded goodpix; counting NO_DATA pixels in the mask", warp.source)
    shape = (warp.bbox.height, warp.bbox.width)
    mask = read_plane_section(
        io, PlaneSource(ref, warp.planes["MASK"], shape), slice(0, shape[0]), slice(0, shape[1])
    )
    bit = warp.mask_planes.bitmask_if_present("NO_DATA")
    return int(np.count_nonzero((mask & bit) == 0))


def input_ccds(warp: WarpFile) -> list[int]:
    """The CCDs that went into the warp (inputs table rows with good pixels), sorted."""
    inputs = warp.coadd_inputs
    if inputs is None:
        return []
    return sorted({int(c.ccd) for c in inputs.ccds if c.goodpix > 0})


def warp_metadata(butler: Butler, stack: xr.Dataset) -> list[WarpMeta]:
    """Each warp's PSF, inputs, WCS, calibration and metadata, in the stack's visit order,
    reading only the files' headers and tables.

    Parameters
    ----------
    butler : Butler
        A butler on the repository the stack was opened from.
    stack : xarray.Dataset
        A stack from :func:`~warping.stack.open_warp_stack` (its ``data_id`` coordinate and
        ``dataset_type`` attribute find each warp again).

    Raises
    ------
    WarpStackError
        If ``stack`` lacks the coordinates, or the butler finds another file for a warp than the
        one the stack was opened on (another rerun, or the warp was rewritten).
    """
    try:
        dataset_type = str(stack.attrs["dataset_type"])
        data_ids = [json.loads(str(d)) for d in stack["data_id"].values]
        uris = [str(u) for u in stack["ref"].values]
    except KeyError as err:
        raise WarpStackError(
            f"not a warp stack: it has no {err.args[0]!r}; open it with open_warp_stack()"
        ) from None
    refs = [butler.get_ref(dataset_type, d) for d in data_ids]
    for ref, uri in zip(refs, uris, strict=True):
        if ref.uri != uri:
            raise WarpStackError(
                f"{dataset_type} {ref.data_id} is {ref.uri} for this butler, but the stack was "
                f"opened on {uri}; open the stack and the metadata with the same rerun"
            )
    files = read_warp_files(butler, refs)
    return [
        WarpMeta(
            visit=int(ref.data_id["visit"]),
            ref=ref,
            psf=f.psf,
            coadd_inputs=f.coadd_inputs,
            wcs=f.wcs,
            photo_calib=f.photo_calib,
            metadata=dict(f.metadata),
            bbox=f.bbox,
        )
        for ref, f in zip(refs, files, strict=True)
    ]
