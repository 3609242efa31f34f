"""warping's butler vocabulary: dimensions and dataset types of an HSC/LSST Gen2-style repository.

Contributed to repo_butler as the repository preset ``warping`` (entry-point group
``repo_butler.presets``), so ``rb create`` lays a new repository out for make-warp: calexps,
their backgrounds and sky corrections, external (jointcal/FGCM) calibrations, per-visit
``visitSummary`` catalogs, the sky map, the direct and PSF-matched warps, the direct warp's
masked-fraction and noise companions, and the coadds of the warps. The formatters
named here are warping's own entry points in the ``repo_butler.formatters`` group
(``visit_summary`` reads LSST's afw ExposureCatalog files).

Gen3 key names are declared as aliases: ``detector`` for ``ccd``, ``exposure`` for ``visit``,
``physical_filter`` for ``filter`` (which holds physical filter names such as ``HSC-I``), and
``band`` as a key implied by ``filter`` (accepted beside it, refused alone: one band has several
physical filters).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["butler_preset"]

_FILTER = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
_NAME = r"[A-Za-z][A-Za-z0-9_.+-]*"
_CORR = "{pointing:05d}/{filter}/corr"
_JOINTCAL = "jointcal-results/{filter}/{tract:04d}"
_WARP_DIR = "deepCoadd/{filter}/{tract:d}/{patch}"
_WARP_TAIL = "{filter}-{tract:d}-{patch}-{visit:d}.fits"
_COADD_TAIL = "Coadd-{filter}-{tract:d}-{patch}.fits"

_PRESET: dict[str, Any] = {
    "dimensions": {
        "instrument": {"type": "str", "pattern": _NAME, "doc": "Camera name, e.g. HSC."},
        "skymap": {"type": "str", "pattern": _NAME, "doc": "Sky map name."},
        "tract": {"type": "int", "minimum": 0, "doc": "Sky map tract index."},
        "patch": {
            "type": "str",
            "pattern": r"(0|[1-9][0-9]*),(0|[1-9][0-9]*)",
            "join_sequence": ",",
            "doc": "Patch index 'x,y' within a tract; (x, y) tuples are accepted.",
        },
        "pointing": {
            "type": "int",
            "minimum": 0,
            "doc": "Telescope pointing number.",
            "determined_by": ["visit"],
        },
        "filter": {
            "type": "str",
            "pattern": _FILTER,
            "doc": "Filter name, e.g. HSC-I.",
            "aliases": ["physical_filter"],
            "implies": ["band"],
            "determined_by": ["visit"],
        },
        "visit": {
            "type": "int",
            "minimum": 0,
            "doc": "Exposure (visit) number.",
            "aliases": ["exposure"],
        },
        "ccd": {"type": "int", "minimum": 0, "doc": "Detector number.", "aliases": ["detector"]},
    },
    "dataset_types": {
        "calexp": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "exposure",
            "template": f"{_CORR}/CORR-{{visit:07d}}-{{ccd:03d}}.fits",
        },
        "calexpBackground": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "background",
            "template": f"{_CORR}/BKGD-{{visit:07d}}-{{ccd:03d}}.fits",
        },
        "skyCorr": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "background",
            "template": f"{_CORR}/skyCorr-{{visit:07d}}-{{ccd:03d}}.fits",
        },
        "jointcal_wcs": {
            "dimensions": ["filter", "tract", "visit", "ccd"],
            "formatter": "skywcs",
            "template": f"{_JOINTCAL}/jointcal_wcs-{{visit:07d}}-{{ccd:03d}}.fits",
        },
        "jointcal_photoCalib": {
            "dimensions": ["filter", "tract", "visit", "ccd"],
            "formatter": "photocalib",
            "template": f"{_JOINTCAL}/jointcal_photoCalib-{{visit:07d}}-{{ccd:03d}}.fits",
        },
        "fgcm_photoCalib": {
            "dimensions": ["filter", "visit", "ccd"],
            "formatter": "photocalib",
            "template": "fgcm-results/{filter}/fgcm_photoCalib-{visit:05d}-{ccd:03d}.fits",
        },
        "visitSummary": {
            "dimensions": ["filter", "visit"],
            "formatter": "visit_summary",
            "template": "visitSummary/{filter}/visitSummary-{visit:07d}.fits",
            "doc": "A visit's per-detector calibrations (afw ExposureCatalog): useVisitSummary*.",
        },
        "deepCoadd_skyMap": {
            "dimensions": [],
            "formatter": "skymap",
            "template": "deepCoadd/skyMap.yaml",
        },
        "deepCoadd_directWarp": {
            "dimensions": ["filter", "tract", "patch", "visit"],
            "formatter": "exposure",
            "template": f"{_WARP_DIR}/warp-{_WARP_TAIL}",
        },
        "deepCoadd_psfMatchedWarp": {
            "dimensions": ["filter", "tract", "patch", "visit"],
            "formatter": "exposure",
            "template": f"{_WARP_DIR}/psfMatchedWarp-{_WARP_TAIL}",
        },
        # the direct warp's companions (Gen3 MakeDirectWarp, MakeWarpConfig.doWarpMaskedFraction
        # and numberOfNoiseRealizations)
        "deepCoadd_directWarp_maskedFraction": {
            "dimensions": ["filter", "tract", "patch", "visit"],
            "formatter": "exposure",
            "template": f"{_WARP_DIR}/warp_maskedFraction-{_WARP_TAIL}",
            "doc": "Per warp pixel, the fraction of its kernel footprint from masked CCD pixels.",
        },
        **{
            f"deepCoadd_directWarp_noise{n}": {
                "dimensions": ["filter", "tract", "patch", "visit"],
                "formatter": "exposure",
                "template": f"{_WARP_DIR}/warp_noise{n}-{_WARP_TAIL}",
                "doc": f"Noise realization {n} of the direct warp, warped like its image.",
            }
            for n in range(3)  # MakeWarpConfig's MAX_NUMBER_OF_NOISE_REALIZATIONS
        },
        # the coadd of a patch's warps (AssembleCoaddTask; ``rb assemble-coadd``)
        "deepCoadd": {
            "dimensions": ["filter", "tract", "patch"],
            "formatter": "exposure",
            "template": f"{_WARP_DIR}/deep{_COADD_TAIL}",
            "doc": "Coadd of the patch's direct warps, with its CoaddPsf and inputs table.",
        },
        "deepCoadd_psfMatched": {
            "dimensions": ["filter", "tract", "patch"],
            "formatter": "exposure",
            "template": f"{_WARP_DIR}/psfMatched{_COADD_TAIL}",
            "doc": "Coadd of the patch's PSF-matched warps.",
        },
        "truth_catalog": {
            "dimensions": [],
            "formatter": "fits_table",
            "template": "simulation/truth.fits",
        },
    },
}


def butler_preset() -> dict[str, Any]:
    """The configuration overlay of the ``warping`` repository preset (a fresh copy)."""
    return copy.deepcopy(_PRESET)
