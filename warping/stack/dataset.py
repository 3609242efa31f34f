""":func:`open_warp_stack`: the warps of one patch as a lazy ``xarray.Dataset``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from repo_butler.refs import DatasetRef
from warping.masks import MaskPlanes
from warping.stack.errors import (
    NoWarpsError,
    NoWcsError,
    UnknownWarpTypeError,
    WarpBBoxMismatchError,
)
from warping.stack.metadata import (
    READ_THREADS,
    good_pixel_count,
    input_ccds,
    psf_sigma,
    read_warp_files,
)
from warping.stack.planes import PlaneSource, WarpPlaneArray, mask_bit_map
from warping.stack.warp_file import WarpFile

if TYPE_CHECKING:
    import xarray as xr

    from repo_butler.butler import Butler

__all__ = ["WARP_DIMENSIONS", "open_warp_stack", "warp_dataset_types"]

logger = logging.getLogger(__name__)

#: Dimensions every warp dataset type has.
WARP_DIMENSIONS = ("tract", "patch", "visit")
#: Variables of a stack: name and plane.
VARIABLES = {"image": "IMAGE", "variance": "VARIANCE", "mask": "MASK"}


def warp_dataset_types(butler: Butler) -> list[str]:
    """The repository's dataset types that can be stacked: exposure datasets with tract, patch
    and visit dimensions (``deepCoadd_directWarp``, ``deepCoadd_psfMatchedWarp``, ...)."""
    return sorted(
        name
        for name, dt in butler.dataset_types.items()
        if dt.formatter == "exposure" and set(WARP_DIMENSIONS) <= set(dt.dimensions)
    )


def _check_type(butler: Butler, dataset_type: str) -> None:
    known = warp_dataset_types(butler)
    if dataset_type not in known:
        what = (
            "is not a warp dataset type"
            if dataset_type in butler.dataset_types
            else ("is not a dataset type")
        )
        raise UnknownWarpTypeError(
            f"{dataset_type!r} {what} of {butler.root}; warp types: {', '.join(known) or '(none)'}"
        )


def _query(
    butler: Butler, dataset_type: str, data_id: Mapping[str, Any], where: str | None
) -> list[DatasetRef]:
    refs = butler.query_datasets(dataset_type, where, data_id=dict(data_id))
    if refs:
        return sorted(refs, key=lambda r: int(r.data_id["visit"]))
    ids = " ".join(f"{k}={v}" for k, v in data_id.items())
    runs = ", ".join(repr(r) if r else "the root" for r in butler.search_runs)
    query = f"{dataset_type} {ids}" + (f" where {where!r}" if where else "")
    raise NoWarpsError(
        f"no warp matches {query} in {butler.root} (runs searched: {runs}); check the tract, "
        f"patch and filter (rb query-data-ids {butler.root} tract patch filter visit "
        f"--dataset-type {dataset_type}), the rerun the warps were written to (--rerun) and "
        "the where expression"
    )


def _check_bboxes(refs: Sequence[DatasetRef], files: Sequence[WarpFile]) -> None:
    boxes: dict[tuple[int, int, int, int], list[int]] = {}
    for ref, f in zip(refs, files, strict=True):
        key = (f.bbox.x0, f.bbox.y0, f.bbox.width, f.bbox.height)
        boxes.setdefault(key, []).append(int(ref.data_id["visit"]))
    if len(boxes) > 1:
        parts = "; ".join(
            f"[x0, y0, width, height] = {list(box)}: visits {', '.join(map(str, visits))}"
            for box, visits in boxes.items()
        )
        ref = refs[0]
        raise WarpBBoxMismatchError(
            f"the {ref.dataset_type} warps of tract {ref.data_id['tract']} patch "
            f"{ref.data_id['patch']} have different bounding boxes ({parts}); they were made "
            "with different skymaps or configurations: select one set with --where/where"
        )


def _merged_planes(files: Sequence[WarpFile]) -> MaskPlanes:
    merged = files[0].mask_planes
    for f in files[1:]:
        for name in sorted(f.mask_planes.bits, key=f.mask_planes.bit):
            if name not in merged:
                merged = merged.with_plane(name)
    return merged


def _token(refs: Sequence[DatasetRef], plane: str, chunks: tuple[int, int]) -> str:
    from dask.base import tokenize

    return tokenize([(r.uri, r.checksum) for r in refs], plane, chunks)


def _variables(
    butler: Butler,
    refs: Sequence[DatasetRef],
    files: Sequence[WarpFile],
    planes: MaskPlanes,
    tile: int | None,
) -> dict[str, Any]:
    import dask.array as da

    io = butler.worker_io()
    box = files[0].bbox
    shape = (box.height, box.width)
    chunks = (tile, tile) if tile else shape
    out = {}
    for var, plane in VARIABLES.items():
        sources = [
            PlaneSource(
                ref,
                f.planes[plane],
                shape,
                mask_bit_map(f.mask_planes, planes) if plane == "MASK" else None,
            )
            for ref, f in zip(refs, files, strict=True)
        ]
        array = WarpPlaneArray(io, sources)
        lazy = da.from_array(
            array,
            chunks=(1, *chunks),
            name=f"warp-stack-{var}-{_token(refs, plane, chunks)}",
            lock=False,
            asarray=False,
            meta=np.empty((0, 0, 0), dtype=array.dtype),
        )
        out[var] = (lazy, sum(s.plane.nbytes_on_disk for s in sources))
    return out


def _wcs_header(wcs: Any, files: Sequence[WarpFile]) -> str:
    from warping.skywcs import fits_wcs, wcs_to_header

    if wcs is None:
        return ""
    box = files[0].bbox
    return str(wcs_to_header(fits_wcs(wcs, box), (box.x0, box.y0)).tostring(sep="\n"))


def _radec(ys: np.ndarray, xs: np.ndarray, *, wcs: Any) -> np.ndarray:
    """``[ra, dec]`` (degrees) of the pixel grid ``ys`` x ``xs`` (tract pixels)."""
    gx, gy = np.broadcast_arrays(xs.astype(float), ys.astype(float))
    ra, dec = wcs.pixel_to_world_values(gx, gy)
    return np.stack([np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)])


def _sky_coords(wcs: Any, y: np.ndarray, x: np.ndarray, chunks: tuple[int, int]) -> Any:
    import dask.array as da

    yy = da.from_array(y, chunks=chunks[0])[:, None]
    xx = da.from_array(x, chunks=chunks[1])[None, :]

    both = da.map_blocks(
        _radec, yy, xx, wcs=wcs, new_axis=0, chunks=((2,), yy.chunks[0], xx.chunks[1]), dtype=float,
        meta=np.empty((0, 0, 0), dtype=float),
    )  # fmt: skip
    return both[0], both[1]


def _per_visit(
    butler: Butler, refs: Sequence[DatasetRef], files: Sequence[WarpFile]
) -> dict[str, Any]:
    io = butler.worker_io()
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(refs))) as pool:
        sigmas = list(pool.map(psf_sigma, files))
        goodpix = list(
            pool.map(lambda rf: good_pixel_count(io, *rf), zip(refs, files, strict=True))
        )
    ccds = [input_ccds(f) for f in files]
    return {
        "mjd": ("visit", np.array([f.mjd for f in files], dtype=np.float64)),
        "filter": ("visit", np.array([f.filter for f in files], dtype=str)),
        "psf_sigma": ("visit", np.array(sigmas, dtype=np.float64)),
        "n_good_pixels": ("visit", np.array(goodpix, dtype=np.int64)),
        "n_ccds": ("visit", np.array([len(c) for c in ccds], dtype=np.int64)),
        "ccds": ("visit", np.array([",".join(map(str, c)) for c in ccds], dtype=str)),
        "ref": ("visit", np.array([r.uri for r in refs], dtype=str)),
        "data_id": ("visit", np.array([r.data_id.key for r in refs], dtype=str)),
    }


def open_warp_stack(
    butler: Butler,
    *,
    tract: int,
    patch: Any,
    filter: str,
    dataset_type: str = "deepCoadd_directWarp",
    where: str | None = None,
    tile: int | None = None,
    sky: bool = False,
) -> xr.Dataset:
    """The warps of one patch and filter as a lazy ``xarray.Dataset`` on ``(visit, y, x)``.

    Parameters
    ----------
    butler : Butler
        The repository (with the rerun holding the warps).
    tract : int
        Tract.
    patch : str or tuple
        Patch ``"x,y"`` (or ``(x, y)``).
    filter : str
        Filter name (e.g. ``HSC-I``).
    dataset_type : str
        A warp dataset type: ``deepCoadd_directWarp`` or ``deepCoadd_psfMatchedWarp``.
    where : str, optional
        A further constraint, e.g. ``"visit IN (903986, 903988)"``.
    tile : int, optional
        Chunk the planes in ``tile`` x ``tile`` pixel tiles (default: one chunk per warp).
    sky : bool
        Add ``ra`` and ``dec`` (degrees, lazy, on ``(y, x)``) from the warps' WCS.

    Returns
    -------
    xarray.Dataset
        ``image``, ``variance`` (float32) and ``mask`` (int32) backed by Dask; nothing but the
        headers and tables of the warps is read until values are computed, and then only the
        pixels asked for. See ``docs/coadd.md`` ("Warp stacks") for every coordinate and
        attribute.

    Raises
    ------
    MissingExtraError
        If Dask (the ``[dask]`` extra) is not installed.
    UnknownWarpTypeError
        If ``dataset_type`` is not a warp dataset type of the repository.
    NoWarpsError
        If no warp matches.
    WarpBBoxMismatchError
        If the warps do not share one bounding box.
    DataIdError, QuerySyntaxError
        If a data ID value or ``where`` is invalid.
    """
    import xarray as xr

    from repo_butler.extras import require

    require("dask.array", "dask", "a warp stack (open_warp_stack, rb stack-info)")
    _check_type(butler, dataset_type)
    if tile is not None and int(tile) < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    data_id = {"tract": tract, "patch": patch, "filter": filter}
    refs = _query(butler, dataset_type, data_id, where)
    files = read_warp_files(butler, refs)
    _check_bboxes(refs, files)
    planes = _merged_planes(files)
    box = files[0].bbox
    y = np.arange(box.y0, box.y0 + box.height, dtype=np.int64)
    x = np.arange(box.x0, box.x0 + box.width, dtype=np.int64)
    visits = np.array([int(r.data_id["visit"]) for r in refs], dtype=np.int64)
    variables = _variables(butler, refs, files, planes, tile)
    unit = files[0].unit
    names = sorted(planes.bits, key=planes.bit)
    var_attrs: dict[str, dict[str, Any]] = {
        "image": {"units": unit},
        "variance": {"units": f"{unit}2" if unit else ""},
        "mask": {
            "flag_masks": [1 << planes.bit(n) for n in names],
            "flag_meanings": " ".join(names),
            "mask_planes": dict(planes.bits),
        },
    }
    data_vars = {
        var: (("visit", "y", "x"), lazy, {**var_attrs[var], "bytes_on_disk": int(nbytes)})
        for var, (lazy, nbytes) in variables.items()
    }
    coords: dict[str, Any] = {"visit": visits, "y": y, "x": x, **_per_visit(butler, refs, files)}
    wcs = files[0].wcs
    if sky:
        if wcs is None:
            raise NoWcsError(f"{refs[0].uri}: the warp has no WCS; open the stack with sky=False")
        chunks = (tile, tile) if tile else (box.height, box.width)
        ra, dec = _sky_coords(wcs, y, x, chunks)
        coords["ra"] = (("y", "x"), ra, {"units": "deg"})
        coords["dec"] = (("y", "x"), dec, {"units": "deg"})
    first = refs[0].data_id
    attrs = {
        "dataset_type": dataset_type,
        "tract": int(first["tract"]),
        "patch": str(first["patch"]),
        "filter": str(first["filter"]),
        "skymap": "deepCoadd_skyMap",
        "bbox": [box.x0, box.y0, box.width, box.height],
        "wcs": _wcs_header(wcs, files),
        "units": unit,
        "where": where or "",
        "repo": butler.root,
        "run": ",".join(sorted({r.run for r in refs})),
    }
    stack = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    logger.debug("opened a stack of %d %s warps, %s", len(refs), dataset_type, box)
    return stack
