""":func:`assemble`: combine a warp stack (``xarray.Dataset`` ``(visit, y, x)``) tile by tile.

Tiles are bands of whole rows of about ``tile**2`` pixels, so each warp's part of a tile is one
contiguous span of its file (reads of a Dask-backed stack chunked one warp per chunk touch only
those bytes). Memory is bounded by one tile of every warp (``tile**2 x n_warps`` pixels) plus the
coadd's own planes: a warp's full planes are never all in memory at once. The scalar weights
need one pass over each warp's variance and mask first (one warp at a time); pass ``weights``
to skip it.
With a Dask ``client``, each tile (and each warp's weight) is one task on the cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from warping.coadd.combine import CoaddPlanes, TileResult, coadd_planes, combine_tile
from warping.coadd.config import CoaddConfig
from warping.coadd.errors import MismatchedWarpsError, NoWarpsError
from warping.coadd.weights import warp_weight
from warping.geom import Box2I
from warping.masks import MaskPlanes

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["CoaddResult", "Progress", "assemble", "stack_mask_planes", "tile_boxes"]

logger = logging.getLogger(__name__)

#: ``progress(done, total, stage)``: stage is ``"weights"`` or ``"tiles"``.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class CoaddResult:
    """A combined patch.

    ``image``/``variance`` float32 (NaN/+inf where no input), ``mask`` int32 with
    ``mask_planes``, ``n_inputs`` int32 (good inputs per pixel); ``weights`` maps each combined
    visit to its scalar weight (also with ``pixel`` weighting: it is the weight of the visit's
    PSF in the CoaddPsf); ``skipped`` maps each visit left out to the reason.
    """

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    n_inputs: np.ndarray
    mask_planes: MaskPlanes
    bbox: Box2I
    weights: Mapping[int, float]
    skipped: Mapping[int, str] = field(default_factory=dict)
    statistic: str = "MEANCLIP"
    weighting: str = "scalar"
    n_clipped: int = 0
    n_tiles: int = 0

    @property
    def visits(self) -> tuple[int, ...]:
        """The visits combined, in stack order."""
        return tuple(self.weights)

    @property
    def n_no_data(self) -> int:
        """Pixels without any good input."""
        return int((self.n_inputs == 0).sum())


def stack_mask_planes(stack: xr.Dataset) -> MaskPlanes:
    """The warps' mask planes from the stack's ``mask`` attributes (``mask_planes`` dict, else
    the CF ``flag_masks``/``flag_meanings``)."""
    attrs = stack["mask"].attrs
    planes = attrs.get("mask_planes")
    if isinstance(planes, Mapping) and planes:
        return MaskPlanes({str(k): int(v) for k, v in planes.items()})
    names = str(attrs.get("flag_meanings", "")).split()
    masks = [int(m) for m in np.atleast_1d(attrs.get("flag_masks", []))]
    if names and len(names) == len(masks):
        return MaskPlanes({n: int(m).bit_length() - 1 for n, m in zip(names, masks, strict=True)})
    return MaskPlanes.default()


def _check_stack(stack: xr.Dataset) -> None:
    for name in ("image", "variance", "mask"):
        if name not in stack:
            raise MismatchedWarpsError(f"the warp stack has no {name!r} variable")
        if stack[name].dims != ("visit", "y", "x"):
            raise MismatchedWarpsError(
                f"stack variable {name!r} has dimensions {stack[name].dims}, expected "
                "('visit', 'y', 'x')"
            )
    if stack.sizes["visit"] == 0:
        what = " ".join(
            f"{k}={stack.attrs[k]}" for k in ("tract", "patch", "filter") if k in stack.attrs
        )
        raise NoWarpsError(f"the warp stack of {what or 'this patch'} holds no warps")
    if "filter" in stack.coords:
        filters = sorted({str(f) for f in np.atleast_1d(stack["filter"].values)})
        if len(filters) > 1:
            raise MismatchedWarpsError(
                f"the warps have different filters ({', '.join(filters)}); select one filter"
            )


def _bbox(stack: xr.Dataset) -> Box2I:
    ys, xs = stack["y"].values, stack["x"].values
    if ys.size and xs.size:
        if np.any(np.diff(ys) != 1) or np.any(np.diff(xs) != 1):
            raise MismatchedWarpsError("the stack's y/x coordinates are not consecutive pixels")
        return Box2I(int(xs[0]), int(ys[0]), int(xs.size), int(ys.size))
    return Box2I(0, 0, int(stack.sizes["x"]), int(stack.sizes["y"]))


def tile_boxes(height: int, width: int, tile: int) -> list[tuple[slice, slice]]:
    """Array slices ``(rows, cols)`` of the tiles covering ``height x width``: bands of whole
    rows holding about ``tile**2`` pixels each (at least one row), so that each warp's part of a
    tile is one contiguous span of its file."""
    rows = max(1, (tile * tile) // max(1, width))
    return [(slice(y, min(y + rows, height)), slice(0, width)) for y in range(0, height, rows)]


def _tile_job(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    weights: np.ndarray,
    config: CoaddConfig,
    planes: CoaddPlanes,
) -> TileResult:
    return combine_tile(
        np.asarray(image, dtype=np.float32),
        np.asarray(variance, dtype=np.float32),
        np.asarray(mask, dtype=np.int32),
        weights,
        config,
        planes,
    )


def _weight_job(variance: Any, mask: Any, bad: int, config: CoaddConfig) -> tuple[float, str]:
    return warp_weight(np.asarray(variance), np.asarray(mask), bad, config)


class _Lazy:
    """Arrays (numpy or Dask) that Dask must not unpack into a task's dependencies."""

    __slots__ = ("arrays",)

    def __init__(self, arrays: tuple[Any, ...]) -> None:
        self.arrays = arrays


def _read_and_run(fn: Callable[..., Any], lazy: _Lazy) -> Any:
    """In a worker: compute the job's arrays there (one threaded Dask computation), run ``fn``."""
    if not any(hasattr(a, "__dask_graph__") for a in lazy.arrays):  # numpy: Dask not needed
        return fn(*lazy.arrays)
    import dask

    return fn(*dask.compute(*lazy.arrays, scheduler="threads", traverse=False))


def _run(
    jobs: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]],
    client: Any,
    stage: str,
    progress: Progress | None,
) -> Iterator[tuple[int, Any]]:
    """Run ``(function, arrays)`` jobs here or as Dask tasks; yield ``(index, result)``.

    ``arrays`` are numpy or Dask arrays; every other parameter is bound in ``function``
    (a :func:`functools.partial`), so Dask never rebuilds the configuration objects."""
    total = len(jobs)
    if client is None:
        for i, (fn, args) in enumerate(jobs):
            yield i, _read_and_run(fn, _Lazy(args))
            if progress is not None:
                progress(i + 1, total, stage)
        return
    import dask
    from distributed import as_completed

    # one task per job that reads its own slices on its worker: the pixels never travel
    # between workers, only the job's result comes back
    tasks = [dask.delayed(_read_and_run, pure=False)(fn, _Lazy(args)) for fn, args in jobs]
    futures = client.compute(tasks)
    index = {f.key: i for i, f in enumerate(futures)}
    for done, fut in enumerate(as_completed(futures), start=1):
        yield index[fut.key], fut.result()
        fut.release()
        if progress is not None:
            progress(done, total, stage)


def compute_weights(
    stack: xr.Dataset,
    config: CoaddConfig,
    *,
    client: Any = None,
    progress: Progress | None = None,
) -> tuple[dict[int, float], dict[int, str]]:
    """Scalar weight of every warp of ``stack`` (one warp's planes at a time) and the reasons
    of the warps that cannot be weighted."""
    bad = stack_mask_planes(stack).bitmask_if_present(*config.bad_mask_planes)
    visits = [int(v) for v in stack["visit"].values]
    job = partial(_weight_job, bad=bad, config=config)
    jobs = [(job, (stack["variance"].data[i], stack["mask"].data[i])) for i in range(len(visits))]
    weights: dict[int, float] = {}
    skipped: dict[int, str] = {}
    results: dict[int, tuple[float, str]] = dict(_run(jobs, client, "weights", progress))
    for i, visit in enumerate(visits):
        w, why = results[i]
        if why:
            skipped[visit] = why
            logger.warning("visit %d left out of the coadd: %s", visit, why)
        else:
            weights[visit] = w
            logger.debug("weight of visit %d = %.6g", visit, w)
    return weights, skipped


def assemble(
    stack: xr.Dataset,
    config: CoaddConfig | None = None,
    *,
    weights: Mapping[int, float] | None = None,
    client: Any = None,
    progress: Progress | None = None,
) -> CoaddResult:
    """Combine the warps of ``stack`` with ``config.statistic``, tile by tile.

    Parameters
    ----------
    stack
        The warps: ``image``, ``variance``, ``mask`` on ``(visit, y, x)`` (numpy- or
        Dask-backed), mask planes in ``mask.attrs``, ``y``/``x`` parent-pixel coordinates.
    config
        Statistic, weighting, clipping, tile size and mask rules (default :class:`CoaddConfig`).
    weights
        Visit -> scalar weight; computed from the variance planes when not given. Visits
        missing from it, or with a weight that is not positive, are left out.
    client
        A ``distributed.Client``: run each warp's weight and each tile as a Dask task
        (``rb assemble-coadd --jobs N`` starts a local cluster).
    progress
        Called after each warp weighted and each tile combined.

    Raises
    ------
    NoWarpsError
        If no warp can be combined.
    MismatchedWarpsError
        If the stack mixes filters or is not on one pixel grid.
    """
    config = config or CoaddConfig()
    _check_stack(stack)
    bbox = _bbox(stack)
    visits = [int(v) for v in stack["visit"].values]
    skipped: dict[int, str] = {}
    # pixel weighting: the per-warp weights (of the CoaddPsf) come from the tile pass itself
    accumulate = weights is None and config.weighting == "pixel"
    if accumulate:
        weights = dict.fromkeys(visits, 1.0)
    elif weights is None:
        weights, skipped = compute_weights(stack, config, client=client, progress=progress)
    else:
        for v in visits:
            given = weights.get(v)
            if given is None or not (np.isfinite(given) and given > 0):
                skipped[v] = f"weight {given} is not a positive number"
    used = [i for i, v in enumerate(visits) if v not in skipped]
    if not used:
        reasons = "; ".join(f"visit {v}: {why}" for v, why in skipped.items())
        raise NoWarpsError(f"none of the {len(visits)} warps can be combined ({reasons})")
    kept = {visits[i]: float(weights[visits[i]]) for i in used}
    w = np.array(list(kept.values()), dtype=np.float64)
    planes = coadd_planes(stack_mask_planes(stack), config)
    # one indexing step per tile (visits, rows, columns): a lazy stack folds it into its reads
    pick: slice | list[int] = slice(None) if len(used) == len(visits) else used
    height, width = bbox.height, bbox.width
    image = np.full((height, width), np.nan, dtype=np.float32)
    variance = np.full((height, width), np.inf, dtype=np.float32)
    mask = np.full((height, width), planes.no_data, dtype=np.int32)
    n_inputs = np.zeros((height, width), dtype=np.int32)
    boxes = tile_boxes(height, width, config.tile)
    job = partial(_tile_job, weights=w, config=config, planes=planes)
    jobs = [
        (job, tuple(stack[name].data[pick, rows, cols] for name in ("image", "variance", "mask")))
        for rows, cols in boxes
    ]
    n_clipped = 0
    vsums = np.zeros(len(used))
    counts = np.zeros(len(used), dtype=np.int64)
    for k, tile in _run(jobs, client, "tiles", progress):
        rows, cols = boxes[k]
        image[rows, cols] = tile.image
        variance[rows, cols] = tile.variance
        mask[rows, cols] = tile.mask
        n_inputs[rows, cols] = tile.n_inputs
        n_clipped += tile.n_clipped
        vsums += tile.variance_sums
        counts += tile.good_counts
    if accumulate:  # 1 / mean variance over the good pixels, as the tiles counted them
        combined = list(kept)
        kept = {}
        for visit, vsum, count in zip(combined, vsums, counts, strict=True):
            if count > 0 and vsum > 0:
                kept[visit] = float(count / vsum)
            else:
                skipped[visit] = "no good pixels (every pixel is NO_DATA, masked or non-finite)"
        if not kept:
            raise NoWarpsError(f"none of the {len(visits)} warps has a good pixel")
    return CoaddResult(
        image=image,
        variance=variance,
        mask=mask,
        n_inputs=n_inputs,
        mask_planes=planes.planes,
        bbox=bbox,
        weights=kept,
        skipped=skipped,
        statistic=config.statistic,
        weighting=config.weighting,
        n_clipped=n_clipped,
        n_tiles=len(boxes),
    )
