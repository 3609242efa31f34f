"""Quicklook of one dataset of a repository: what ``rb quicklook`` does.

Resolves the dataset type and data ID (errors name them), reads the exposure and writes the
:func:`warping.quicklook.quicklook_figure` PNG titled with the dataset type, data ID and run.
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

__all__ = ["Quicklook", "default_png_name", "quicklook_dataset"]

#: the formatter of the dataset types that read as an :class:`~warping.exposure.Exposure`
IMAGE_FORMATTER = "exposure"


@dataclass(frozen=True)
class Quicklook:
    """A drawn dataset: its full data ID and run, the figure and where it was written."""

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


def _find(butler: Butler, dataset_type: str, data_id: Mapping[str, Any]) -> Any:
    """The dataset's ref; when it is not found, the message also names the reruns not searched."""
    from repo_butler.errors import DatasetNotFoundError

    try:
        return butler.get_ref(dataset_type, dict(data_id))
    except DatasetNotFoundError as err:
        others = sorted(r for r in butler.registry.runs() if r and r not in butler.search_runs)
        if not others:
            raise
        raise DatasetNotFoundError(
            f"{err}; reruns not searched: {', '.join(others)} (pass --rerun NAME)"
        ) from None


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
    run = ref.run or "(root)"
    title = f"{dataset_type}: {id_text}  [{f'rerun {run}' if ref.run else 'root run'}]"
    fig = quicklook_figure(exposure, title=title, stretch=stretch,
                           pixel_frame=_pixel_frame(dt.dimensions))  # fmt: skip
    if path is None:
        path = Path(directory) / default_png_name(dataset_type, full_id)
    out = Path(path)
    written = save_figure(fig, out)
    logger.debug("wrote %s", written)
    return Quicklook(dataset_type, full_id, run, fig, written)
