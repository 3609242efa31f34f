"""PSF-quality CCD selection (``MakeWarpConfig.select``), as Gen3's ``PsfWcsSelectImagesTask``.

:func:`select_ccd` is pure compute: a CCD's summary statistics (:class:`PsfStats`, by
visitSummary column name) and the config give a :class:`SelectDecision`. :func:`ccd_psf_stats`
is the adapter that takes those statistics from the CCD's row of its visit's visitSummary.

Each cut compares one statistic with its threshold and rejects the CCD unless
``statistic <= threshold`` (so a NaN statistic, which the pipeline writes when it could not
measure it, rejects the CCD, as in Gen3):

============================== ==================================================================
cut                            statistic (visitSummary columns)
============================== ==================================================================
maxPsfFwhm                     psfSigma x pixelScale x sqrt(8 ln 2), arcsec
maxEllipResidual               hypot(psfStarDeltaE1Median, psfStarDeltaE2Median)
maxSizeScatter                 psfStarDeltaSizeScatter
maxScaledSizeScatter           psfStarScaledDeltaSizeScatter
maxPsfTraceRadiusDelta         psfTraceRadiusDelta
maxPsfApFluxDelta              psfApFluxDelta
maxPsfApCorrSigmaScaledDelta   psfApCorrSigmaScaledDelta
minNPsfStarPerBand             nPsfStar (rejects when *below* the band's threshold)
maxStarEPerBand                starEMedian
maxStarUnNormalizedEPerBand    starUnNormalizedEMedian
============================== ==================================================================

The per-band cuts take the threshold of the row's ``band`` (or of ``fallback``); 0 turns a cut
off for that band, as in Gen3.

Unlike Gen3 (which stops at the first failing cut and drops a CCD its visitSummary lacks), every
cut is evaluated and reported, and a cut whose statistic is absent (no visitSummary, no row for
the CCD, or no such column: real visitSummaries written before 2023 have no
``psfTraceRadiusDelta``) is *not evaluated*: the CCD is kept and the run summary lists the cut
and the CCDs (``cuts_not_evaluated``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from warping.task.config_select import FALLBACK, PsfWcsSelectImagesConfig

if TYPE_CHECKING:
    from warping.geom import Box2I
    from warping.task.inputs import CcdInput

logger = logging.getLogger(__name__)

__all__ = [
    "BAND_STATISTICS",
    "CUT_STATISTICS",
    "PsfStats",
    "SelectDecision",
    "ccd_psf_stats",
    "deselected",
    "pixel_scale_arcsec",
    "psf_statistic",
    "select_ccd",
    "select_input",
]

#: sqrt(8 ln 2): FWHM / sigma of a Gaussian.
SIGMA_TO_FWHM = math.sqrt(8.0 * math.log(2.0))

#: The visitSummary columns each cut needs.
CUT_STATISTICS: Mapping[str, tuple[str, ...]] = {
    "maxPsfFwhm": ("psfSigma", "pixelScale"),
    "maxEllipResidual": ("psfStarDeltaE1Median", "psfStarDeltaE2Median"),
    "maxSizeScatter": ("psfStarDeltaSizeScatter",),
    "maxScaledSizeScatter": ("psfStarScaledDeltaSizeScatter",),
    "maxPsfTraceRadiusDelta": ("psfTraceRadiusDelta",),
    "maxPsfApFluxDelta": ("psfApFluxDelta",),
    "maxPsfApCorrSigmaScaledDelta": ("psfApCorrSigmaScaledDelta",),
}
#: The visitSummary column each per-band cut compares.
BAND_STATISTICS: Mapping[str, str] = {
    "minNPsfStarPerBand": "nPsfStar",
    "maxStarEPerBand": "starEMedian",
    "maxStarUnNormalizedEPerBand": "starUnNormalizedEMedian",
}
_LABEL = {"maxPsfFwhm": "PSF FWHM", "maxEllipResidual": "median ellipticity residual"}
_UNIT = {"maxPsfFwhm": " arcsec", "maxPsfTraceRadiusDelta": " px"}


@dataclass(frozen=True)
class PsfStats:
    """One CCD's summary statistics.

    Attributes
    ----------
    detector
        The CCD (detector) id.
    values
        Statistics by visitSummary column name (``psfSigma``, ``pixelScale``, ...); a column
        that is absent is a statistic that was not measured.
    source
        Where they come from, for messages (``visitSummary FILE (visit V)``).
    missing
        Why there are no statistics at all (``no visitSummary for visit V``), or None.
    band
        The row's ``band`` (which threshold the per-band cuts take), or None.
    """

    detector: int
    values: Mapping[str, float] = field(default_factory=dict)
    source: str = "visitSummary"
    missing: str | None = None
    band: str | None = None


@dataclass(frozen=True)
class SelectDecision:
    """What the selection made of one CCD.

    Attributes
    ----------
    detector
        The CCD (detector) id.
    rejected
        Failed cuts (``excludeDetectors`` included): field name -> why.
    not_evaluated
        Cuts that are on but whose statistic the CCD lacks: field name -> why.
    """

    detector: int
    rejected: Mapping[str, str] = field(default_factory=dict)
    not_evaluated: Mapping[str, str] = field(default_factory=dict)

    @property
    def selected(self) -> bool:
        """True when no cut rejected the CCD."""
        return not self.rejected

    @property
    def reason(self) -> str:
        """The rejection reasons in one line (empty when selected)."""
        return "; ".join(self.rejected.values())


def psf_statistic(cut: str, values: Mapping[str, float]) -> float | None:
    """The statistic ``cut`` compares with its threshold, or None when a column it needs is
    absent from ``values``."""
    needed = CUT_STATISTICS[cut]
    if any(name not in values for name in needed):
        return None
    v = [float(values[name]) for name in needed]
    if cut == "maxPsfFwhm":
        return v[0] * v[1] * SIGMA_TO_FWHM
    if cut == "maxEllipResidual":
        return math.hypot(v[0], v[1])
    return v[0]


def select_ccd(stats: PsfStats, config: PsfWcsSelectImagesConfig) -> SelectDecision:
    """Apply the ``select`` cuts that are on to one CCD's statistics (pure compute).

    A cut rejects the CCD unless its statistic is ``<=`` the threshold (NaN rejects); a cut
    whose statistic is absent is not evaluated. ``excludeDetectors`` rejects by detector id.
    """
    rejected: dict[str, str] = {}
    not_evaluated: dict[str, str] = {}
    if stats.detector in config.excludeDetectors:
        rejected["excludeDetectors"] = f"detector {stats.detector} is in select.excludeDetectors"
    for cut, threshold in config.thresholds.items():
        value = psf_statistic(cut, stats.values)
        if value is None:
            lacking = [n for n in CUT_STATISTICS[cut] if n not in stats.values]
            not_evaluated[cut] = stats.missing or f"{stats.source} has no {', '.join(lacking)}"
            continue
        if value <= threshold:
            continue
        label = _LABEL.get(cut, CUT_STATISTICS[cut][0])
        unit = _UNIT.get(cut, "")
        if math.isfinite(value):
            rejected[cut] = (
                f"{label} {value:.4g}{unit} > select.{cut}={threshold:g}{unit} ({stats.source})"
            )
        else:
            rejected[cut] = f"{label} is not finite ({stats.source}): select.{cut} rejects it"
    for cut, by_band in config.band_thresholds.items():
        key = stats.band if stats.band is not None and stats.band in by_band else FALLBACK
        limit = by_band[key]
        column = BAND_STATISTICS[cut]
        if not limit:  # 0: off for this band
            continue
        if column not in stats.values:
            not_evaluated[cut] = stats.missing or f"{stats.source} has no {column}"
            continue
        value = float(stats.values[column])
        name = f"select.{cut}[{key!r}]={limit:g}"
        if cut == "minNPsfStarPerBand":
            if value < limit:  # NaN passes, as in Gen3
                rejected[cut] = f"{column} {value:g} < {name} ({stats.source})"
        elif not value <= limit:
            shown = f"{value:.4g} >" if math.isfinite(value) else "is not finite, not <="
            rejected[cut] = f"{column} {shown} {name} ({stats.source})"
    return SelectDecision(stats.detector, rejected, not_evaluated)


def pixel_scale_arcsec(wcs: Any, bbox: Box2I) -> float:
    """The pixel scale (sqrt of a pixel's solid angle, arcsec) of ``wcs`` at the centre of
    ``bbox``, as afw ``SkyWcs.getPixelScale`` gives it and the ``pixelScale`` summary column
    holds it: from the local Jacobian of the gnomonic projection about the centre."""
    cx, cy = (bbox.x0 + bbox.x1) / 2.0, (bbox.y0 + bbox.y1) / 2.0
    ra, dec = (
        np.radians(np.asarray(v, dtype=float))
        for v in wcs.pixel_to_world_values(np.array([cx, cx + 1.0, cx]), np.array([cy, cy, cy + 1]))
    )
    # unit vectors, projected onto the plane tangent at the centre (gnomonic: divide by cos)
    vec = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)
    east = np.array([-np.sin(ra[0]), np.cos(ra[0]), 0.0])
    north = np.cross(vec[0], east)
    proj = vec / (vec @ vec[0])[:, None]
    dx, dy = proj[1] - proj[0], proj[2] - proj[0]
    det = (dx @ east) * (dy @ north) - (dx @ north) * (dy @ east)
    return float(np.degrees(math.sqrt(abs(det))) * 3600.0)


def ccd_psf_stats(inp: CcdInput) -> PsfStats:
    """A CCD's statistics from its row of ``inp.visit_summary`` (the adapter).

    No visitSummary, or none with a row for the CCD, gives no statistics (every cut is then
    not evaluated). Without a ``pixelScale`` column, the pixel scale comes from the row's WCS.

    Raises
    ------
    FileNotFoundError, repo_butler.errors.FormatterError
        When the visitSummary file cannot be read (the caller skips the CCD with the reason).
    """
    ccd = inp.ccd
    visit = inp.data_id.get("visit")
    if inp.visit_summary is None:
        return PsfStats(ccd, missing=f"no visitSummary for visit {visit}")
    catalog = inp.visit_summary.get()
    rows = getattr(catalog, "rows", None)
    if rows is None:
        raise TypeError(
            f"CCD {ccd}: the select cuts need a VisitSummaryCatalog, got {type(catalog).__name__}"
        )
    source = f"{catalog.source} (visit {catalog.visit})"
    row = rows.get(int(ccd))
    if row is None:
        return PsfStats(ccd, source=source, missing=f"{source} has no row for detector {ccd}")
    values = {
        k: float(v)
        for k, v in row.summary.items()
        if isinstance(v, int | float | np.number) and not isinstance(v, bool)
    }
    band = row.summary.get("band")
    band = band if isinstance(band, str) and band else None
    if "pixelScale" not in values and row.wcs is not None and "psfSigma" in values:
        try:
            values["pixelScale"] = pixel_scale_arcsec(row.wcs, row.bbox)
        except Exception as err:  # a row WCS that cannot be evaluated: maxPsfFwhm not evaluated
            logger.warning("%s: no pixel scale for detector %s: %s", source, ccd, err)
    return PsfStats(ccd, values, source, band=band)


def select_input(inp: CcdInput, config: PsfWcsSelectImagesConfig) -> SelectDecision:
    """Apply the ``select`` cuts to one task input (statistics read only when a cut needs them).

    Raises
    ------
    warping.task.calibrate.UnusableCcdError
        When the visit's visitSummary cannot be read (missing file, corrupt, modified since it
        was registered): the CCD is skipped with that reason.
    """
    from repo_butler.errors import FormatterError
    from repo_butler.writes import ChecksumMismatchError
    from warping.task.calibrate import UnusableCcdError

    if not config.needs_statistics:
        return select_ccd(PsfStats(inp.ccd), config)
    try:
        stats = ccd_psf_stats(inp)
    except FileNotFoundError as err:
        raise UnusableCcdError(
            f"the visitSummary the select cuts need is missing: {err}; run `rb verify`"
        ) from None
    except (FormatterError, ChecksumMismatchError) as err:
        raise UnusableCcdError(
            f"the visitSummary the select cuts need cannot be read: {err}"
        ) from None
    return select_ccd(stats, config)


def deselected(inp: CcdInput, config: PsfWcsSelectImagesConfig) -> bool:
    """True when the unit will skip this CCD for the ``select`` cuts (rejected, or its
    visitSummary unreadable): a patch's PSF survey must not count CCDs its warps will not hold."""
    from warping.task.calibrate import UnusableCcdError

    if not config.active or inp.missing:
        return False
    try:
        return not select_input(inp, config).selected
    except UnusableCcdError:
        return True
