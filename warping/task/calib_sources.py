"""Where each calibration component of a CCD comes from: the calexp, a Gen2 external product or
the visit's ``visitSummary``.

=============== ================ ===================================== =============================
component       calexp's own     Gen2 external product                 visitSummary row (Gen3)
=============== ================ ===================================== =============================
WCS             default          ``doApplyExternalSkyWcs``             ``useVisitSummaryWcs``
PhotoCalib      default          ``doApplyExternalPhotoCalib``         ``useVisitSummaryPhotoCalib``
PSF             default          (none)                                ``useVisitSummaryPsf``
=============== ================ ===================================== =============================

Asking for one component from two sources is refused at validation. The ``visitSummary``
dataset type (one file per visit, rows by detector) comes with the ``warping`` repository preset;
repositories created before it was added lack it, and :func:`check_dataset_type` says how to add
it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from repo_butler.errors import ConfigError, DatasetTypeError

if TYPE_CHECKING:
    from warping.task.config import MakeWarpConfig

__all__ = [
    "COMPONENT_FIELDS",
    "VISIT_SUMMARY",
    "check_calibration_sources",
    "check_dataset_type",
    "visit_summary_components",
]

#: The dataset type holding a visit's per-detector calibrations.
VISIT_SUMMARY = "visitSummary"

#: The config field taking each component from the visitSummary, in the order they are applied.
COMPONENT_FIELDS: Mapping[str, str] = {
    "wcs": "useVisitSummaryWcs",
    "photo_calib": "useVisitSummaryPhotoCalib",
    "psf": "useVisitSummaryPsf",
}


def visit_summary_components(config: MakeWarpConfig) -> tuple[str, ...]:
    """The components (``wcs``, ``photo_calib``, ``psf``) the config takes from the visitSummary."""
    return tuple(name for name, fld in COMPONENT_FIELDS.items() if getattr(config, fld))


def check_calibration_sources(config: MakeWarpConfig) -> None:
    """Refuse a component asked for from both a Gen2 external product and the visitSummary.

    Raises
    ------
    ConfigError
        Naming both fields and which one to drop.
    """
    clashes = (
        ("doApplyExternalSkyWcs", "useVisitSummaryWcs", "WCS", config.externalSkyWcsName + "_wcs"),
        (
            "doApplyExternalPhotoCalib",
            "useVisitSummaryPhotoCalib",
            "PhotoCalib",
            config.externalPhotoCalibName + "_photoCalib",
        ),
    )
    for gen2, gen3, what, product in clashes:
        if getattr(config, gen2) and getattr(config, gen3):
            raise ConfigError(
                f"{gen2}=True and {gen3}=True both replace the calexp's {what} ({product} vs the "
                f"visitSummary row): drop {gen3}=True to use {product}, or drop {gen2}=True to "
                "use the visitSummary."
            )


def _dataset_type_spec() -> Mapping[str, Any]:
    from warping.repo_preset import butler_preset

    spec: Mapping[str, Any] = butler_preset()["dataset_types"][VISIT_SUMMARY]
    return spec


def check_dataset_type(dataset_types: Mapping[str, Any], root: str, fields: str) -> None:
    """Refuse to plan with a visitSummary field on a repository without the dataset type.

    Parameters
    ----------
    dataset_types
        The repository's dataset types by name (``Butler.dataset_types``).
    root
        The repository root, for the message.
    fields
        The config fields that need it (``useVisitSummaryWcs=True``), for the message.

    Raises
    ------
    DatasetTypeError
        With the ``butler.yaml`` lines that add it (a repository made by ``rb create`` since the
        preset has it needs nothing).
    """
    if VISIT_SUMMARY in dataset_types:
        return
    spec = _dataset_type_spec()
    dims = ", ".join(spec["dimensions"])
    raise DatasetTypeError(
        f"{fields} needs the dataset type {VISIT_SUMMARY!r}, which the repository at {root} "
        "does not define (it was created before the warping preset had it): add under "
        f"dataset_types in its butler.yaml  {VISIT_SUMMARY}: {{dimensions: [{dims}], "
        f"formatter: {spec['formatter']}, template: '{spec['template']}'}}  then ingest each "
        f"visit's file with `rb ingest REPO {VISIT_SUMMARY} FILES`; "
        "or turn the field off."
    )
