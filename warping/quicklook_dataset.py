"""Quicklooks of a repository's datasets: what ``rb quicklook`` does.

:func:`quicklook_dataset` resolves a dataset type and data ID (errors name them), reads the
exposure and writes the :func:`warping.quicklook.quicklook_figure` PNG titled with the dataset
type, data ID and run. :func:`patch_coverage` draws the coverage map of a patch: every calexp of
the filter, those its warps used (from their provenance) in their visit's colour.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warping.errors import NotAnImageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from repo_butler import Butler

logger = logging.getLogger(__name__)

__all__ = ["Quicklook", "default_png_name", "patch_coverage", "quicklook_dataset"]

#: the formatter of the dataset types that read as an :class:`~warping.exposure.Exposure`
IMAGE_FORMATTER = "exposure"


@dataclass(frozen=True)
class Quicklook:
    """A drawn dataset: its full data ID, its run ("rerun NAME" or "root run"), the figure and
    where it was written."""

    dataset_type: str
    data_id: dict[str, Any]
    run: str
    figure: Figure
    path: Path


def default_png_name(dataset_type: str, data_id: Mapping[str, Any]) -> str:
    """E.g. ``deepCoadd_directWarp-0-5,4-HSC-I-903988.png``."""
    return "-".join([dataset_type, *(str(v) for v in data_id.values())]) + ".png"


def _pixel_frame(dimensions: tuple[str, ...]) -> str:
    if "tract" in dimensions:
        return "tract pixels"
    if "ccd" in dimensions or "detector" in dimensions:
        return "CCD pixels"
    return "parent pixels"


#: At most this many reruns are named in a "found in" hint.
_HINT_RUNS = 8


def _elsewhere(butler: Butler, dataset_type: str, data_id: Mapping[str, Any]) -> str:
    """A hint naming the reruns not searched that hold the dataset ("" when none is unsearched)."""
    others = sorted(r for r in butler.registry.runs() if r and r not in butler.search_runs)
    if not others:
        return ""
    holding = [r for r in others if butler.query_datasets(dataset_type, data_id=dict(data_id),
                                                         runs=[r])]  # fmt: skip
    if not holding:
        return f"; none of the {len(others)} other rerun(s) holds it either"
    shown = ", ".join(holding[:_HINT_RUNS])
    more = f" and {len(holding) - _HINT_RUNS} more" if len(holding) > _HINT_RUNS else ""
    return f"; found in rerun(s) {shown}{more} (pass --rerun NAME)"


def _find(butler: Butler, dataset_type: str, data_id: Mapping[str, Any]) -> Any:
    """The dataset's ref; when it is not found, the message also names the reruns that hold it."""
    from repo_butler.errors import DatasetNotFoundError

    try:
        return butler.get_ref(dataset_type, dict(data_id))
    except DatasetNotFoundError as err:
        hint = _elsewhere(butler, dataset_type, data_id)
        if not hint:
            raise
        raise DatasetNotFoundError(f"{err}{hint}") from None


def quicklook_dataset(
    butler: Butler,
    dataset_type: str,
    data_id: Mapping[str, Any],
    path: str | Path | None = None,
    *,
    stretch: str = "asinh",
    directory: str | Path = ".",
) -> Quicklook:
    """Draw one warp or calexp of ``butler`` and write it to ``path``.

    Parameters
    ----------
    butler
        The repository (with the rerun to search).
    dataset_type, data_id
        The dataset; a partial data ID is completed when exactly one dataset matches.
    path
        PNG to write; default :func:`default_png_name` of the full data ID in ``directory``.
    stretch
        ``"asinh"`` or ``"linear"``.

    Raises
    ------
    repo_butler.errors.DatasetTypeError, DataIdError, DatasetNotFoundError
        From the butler: unknown dataset type, ambiguous data ID, no such dataset.
    NotAnImageError
        If the dataset type does not hold exposures.
    """
    from warping.exposure import Exposure
    from warping.quicklook import quicklook_figure, save_figure

    dt = butler.dataset_type(dataset_type)
    if dt.formatter != IMAGE_FORMATTER:
        raise NotAnImageError(
            f"{dataset_type} is not an image (formatter {dt.formatter!r}): quicklooks draw "
            "calexps and warps (deepCoadd_directWarp, deepCoadd_psfMatchedWarp)"
        )
    ref = _find(butler, dataset_type, data_id)
    full_id = ref.data_id.to_dict()
    id_text = " ".join(f"{k}={v}" for k, v in full_id.items())
    exposure = butler.get(ref)
    if not isinstance(exposure, Exposure):  # a formatter registered under the same name
        raise NotAnImageError(f"{dataset_type} {id_text} read as {type(exposure).__name__}")
    run = f"rerun {ref.run}" if ref.run else "root run"
    title = f"{dataset_type}: {id_text}  [{run}]"
    fig = quicklook_figure(exposure, title=title, stretch=stretch,
                           pixel_frame=_pixel_frame(dt.dimensions))  # fmt: skip
    if path is None:
        path = Path(directory) / default_png_name(dataset_type, full_id)
    out = Path(path)
    written = save_figure(fig, out)
    logger.debug("wrote %s", written)
    return Quicklook(dataset_type, full_id, run, fig, written)


def _used_calexps(butler: Butler, ref: Any) -> set[tuple[int, int]]:
    """``(visit, ccd)`` of the calexps a warp was made from: its provenance inputs, else the
    CCD table the warp carries (read with the warp)."""
    prov = butler.get_provenance_dict(ref.dataset_type, ref.data_id.to_dict())
    if prov is not None:
        return {
            (int(i["data_id"]["visit"]), int(i["data_id"]["ccd"]))
            for i in prov.get("inputs", ())
            if i.get("dataset_type") == "calexp"
        }
    inputs = getattr(butler.get(ref), "coadd_inputs", None)
    return {(int(c.visit), int(c.ccd)) for c in getattr(inputs, "ccds", ())}


def patch_coverage(
    butler: Butler,
    dataset_type: str,
    data_id: Mapping[str, Any],
    path: str | Path | None = None,
    *,
    directory: str | Path = ".",
) -> Quicklook:
    """Draw the coverage map of the patch of ``data_id`` (tract, patch, filter; a visit narrows
    the warps) and write it to ``path`` (default ``coverage-TRACT-PATCH-FILTER.png``).

    Every calexp of the filter is drawn; those listed as inputs of the patch's warps of
    ``dataset_type`` are in their visit's colour, the others grey and dashed.

    Raises
    ------
    repo_butler.errors.DataIdError
        If tract, patch or filter is missing.
    repo_butler.errors.DatasetNotFoundError
        If the patch has no warps of ``dataset_type`` in the runs searched.
    """
    from repo_butler.errors import DataIdError, DatasetNotFoundError
    from warping.coverage_map import calexp_footprints, coverage_figure
    from warping.quicklook import save_figure

    id_text = " ".join(f"{k}={v}" for k, v in data_id.items())
    missing = [k for k in ("tract", "patch", "filter") if k not in data_id]
    if missing:
        raise DataIdError(
            f"a coverage map needs tract, patch and filter; {', '.join(missing)} missing from "
            f"the data ID '{id_text}' (e.g. -d tract=0 -d patch=5,4 -d filter=HSC-I)"
        )
    if "tract" not in butler.dataset_type(dataset_type).dimensions:
        raise NotAnImageError(
            f"a coverage map is drawn for a patch's warps: {dataset_type} is not a warp "
            "(use deepCoadd_directWarp or deepCoadd_psfMatchedWarp)"
        )
    refs = butler.query_datasets(dataset_type, data_id=dict(data_id))
    if not refs:
        hint = _elsewhere(butler, dataset_type, data_id)
        raise DatasetNotFoundError(
            f"no {dataset_type} with data ID {id_text} in the runs searched, so no coverage "
            f"map{hint}"
        )
    tract, patch, band = int(data_id["tract"]), str(data_id["patch"]), str(data_id["filter"])
    skymap = butler.get("deepCoadd_skyMap", {})
    tract_info = skymap[tract]
    patch_info = tract_info.patch(patch)
    used: set[tuple[int, int]] = set()
    for ref in refs:
        used |= _used_calexps(butler, ref)
    footprints = calexp_footprints(butler, tract_info.wcs, {"filter": band}, used)
    runs = ", ".join(sorted({f"rerun {r.run}" if r.run else "root run" for r in refs}))
    title = (
        f"calexps of filter {band} over tract {tract} patch {patch_info.name}; coloured: "
        f"inputs of {len(refs)} {dataset_type} ({runs})"
    )
    fig = coverage_figure(
        patch_info.outer_bbox,
        footprints,
        inner_bbox=patch_info.inner_bbox,
        title=title,
    )
    if path is None:
        path = Path(directory) / f"coverage-{tract}-{patch_info.name}-{band}.png"
    written = save_figure(fig, path)
    full_id = {"tract": tract, "patch": str(patch_info.name), "filter": band}
    return Quicklook(dataset_type, full_id, runs, fig, written)
