"""Configuration of the PSF-quality CCD selection (``MakeWarpConfig.select``), issue #22.

Gen3's coadd tasks hold their CCD selection in a ``select`` subtask whose default is
``PsfWcsSelectImagesTask`` (pipe_tasks ``coaddBase.py`` / ``selectImages.py``), so a Gen3 user
writes ``config.select.maxPsfFwhm = 1.5``; the same line works here. The field names are Gen3's;
the defaults are not: Gen3 turns most cuts on (``maxPsfFwhm`` 1.8, ``maxEllipResidual`` 0.007,
``maxScaledSizeScatter`` 0.019, ``maxPsfTraceRadiusDelta`` 0.7, ``maxPsfApFluxDelta`` 0.24,
``maxPsfApCorrSigmaScaledDelta`` 0.22; the per-band ``minNPsfStarPerBand`` 6,
``maxStarEPerBand`` 0.4, ``maxStarUnNormalizedEPerBand`` 2.8), here every cut is off (None, or
an empty dict) so warps of existing configurations do not change. What each cut compares is in
:mod:`warping.task.psf_select`.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from repo_butler.errors import ConfigError

__all__ = ["BAND_CUT_FIELDS", "CUT_FIELDS", "FALLBACK", "PsfWcsSelectImagesConfig"]


def _doc(text: str, gen3: str) -> dict[str, Any]:
    return {"doc": f"{text} None: off (Gen3 default: {gen3})."}


#: The threshold fields, in the order Gen3 applies them.
CUT_FIELDS = (
    "maxPsfFwhm",
    "maxEllipResidual",
    "maxSizeScatter",
    "maxScaledSizeScatter",
    "maxPsfTraceRadiusDelta",
    "maxPsfApFluxDelta",
    "maxPsfApCorrSigmaScaledDelta",
)
#: The per-band threshold fields (band -> threshold, FALLBACK for the other bands).
BAND_CUT_FIELDS = ("minNPsfStarPerBand", "maxStarEPerBand", "maxStarUnNormalizedEPerBand")
#: The key of a per-band field that applies to the bands it does not list.
FALLBACK = "fallback"


def _no_bands() -> Mapping[str, Any]:
    return types.MappingProxyType({})


def _band_doc(text: str, gen3: str) -> dict[str, Any]:
    return {
        "doc": f"{text} By band, '{FALLBACK}' for the others (required when not empty); a "
        f"band's 0 turns it off for that band; {{}} (default): off (Gen3: {gen3} in every band)."
    }


@dataclass(frozen=True)
class PsfWcsSelectImagesConfig:
    """PSF-quality CCD selection (Gen3 ``select``: ``PsfWcsSelectImagesTask``)."""

    maxPsfFwhm: float | None = field(
        default=None,
        metadata=_doc(
            "Skip a CCD whose PSF FWHM, psfSigma x pixelScale x sqrt(8 ln 2), is above this, "
            "arcseconds (pixelScale from the row's WCS at the CCD centre when the visitSummary "
            "has no pixelScale column).",
            "1.8",
        ),
    )
    maxEllipResidual: float | None = field(
        default=None,
        metadata=_doc(
            "Skip a CCD whose median PSF-star ellipticity residual, "
            "hypot(psfStarDeltaE1Median, psfStarDeltaE2Median), is above this.",
            "0.007",
        ),
    )
    maxSizeScatter: float | None = field(
        default=None,
        metadata=_doc(
            "Skip a CCD whose PSF-star size-residual scatter (psfStarDeltaSizeScatter, pixels) "
            "is above this.",
            "None",
        ),
    )
    maxScaledSizeScatter: float | None = field(
        default=None,
        metadata=_doc(
            "Skip a CCD whose size-residual scatter scaled by the median size "
            "(psfStarScaledDeltaSizeScatter) is above this.",
            "0.019",
        ),
    )
    maxPsfTraceRadiusDelta: float | None = field(
        default=None,
        metadata=_doc(
            "Skip a CCD whose PSF-model trace radius varies (max - min over the unmasked "
            "pixels, psfTraceRadiusDelta) by more than this, pixels.",
            "0.7",
        ),
    )
    maxPsfApFluxDelta: float | None = field(
        default=None,
        metadata=_doc(
            "Skip a CCD whose unit-flux PSF-model aperture flux varies (max - min, "
            "psfApFluxDelta) by more than this.",
            "0.24",
        ),
    )
    maxPsfApCorrSigmaScaledDelta: float | None = field(
        default=None,
        metadata=_doc(
            "Skip a CCD whose PSF aperture correction varies (max - min, divided by psfSigma: "
            "psfApCorrSigmaScaledDelta) by more than this.",
            "0.22",
        ),
    )
    minNPsfStarPerBand: Mapping[str, int] = field(
        default_factory=_no_bands,
        metadata=_band_doc(
            "Skip a CCD whose PSF model used fewer stars (nPsfStar) than this.", "6"
        ),
    )
    maxStarEPerBand: Mapping[str, float] = field(
        default_factory=_no_bands,
        metadata=_band_doc(
            "Skip a CCD whose PSF stars' median ellipticity (starEMedian) is above this.", "0.4"
        ),
    )
    maxStarUnNormalizedEPerBand: Mapping[str, float] = field(
        default_factory=_no_bands,
        metadata=_band_doc(
            "Skip a CCD whose PSF stars' median unnormalized ellipticity, pixels^2 "
            "(starUnNormalizedEMedian), is above this.",
            "2.8",
        ),
    )
    excludeDetectors: tuple[int, ...] = field(
        default=(),
        metadata={"doc": "Skip these detectors (CCDs) of every visit (Gen3 default: [])."},
    )

    @property
    def thresholds(self) -> dict[str, float]:
        """The cuts that are on, by field name, in Gen3's order."""
        out = {name: getattr(self, name) for name in CUT_FIELDS}
        return {name: float(v) for name, v in out.items() if v is not None}

    @property
    def band_thresholds(self) -> dict[str, Mapping[str, float]]:
        """The per-band cuts that are on (not empty), by field name."""
        return {n: getattr(self, n) for n in BAND_CUT_FIELDS if getattr(self, n)}

    @property
    def active(self) -> bool:
        """True when some cut (or ``excludeDetectors``) is on."""
        return bool(self.thresholds or self.band_thresholds or self.excludeDetectors)

    @property
    def needs_statistics(self) -> bool:
        """True when a cut needs the CCDs' PSF statistics (a visitSummary)."""
        return bool(self.thresholds or self.band_thresholds)

    def check(self) -> None:
        """Raise :class:`ConfigError` for a threshold that is not a positive finite number.

        Gen3 turns four of these cuts off with 0 and the other three with None; here None is
        the only way, and 0 (which Gen3 may read either way) is refused rather than guessed.
        """
        for name in CUT_FIELDS:
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"select.{name} must be a positive number, got {value}; set it to None to "
                    "turn the cut off."
                )
        for name, by_band in self.band_thresholds.items():
            if FALLBACK not in by_band:
                raise ConfigError(
                    f"select.{name} = {dict(by_band)} has no {FALLBACK!r} entry; add one (the "
                    f"threshold of the bands it does not list, 0 for none), as Gen3 requires."
                )
            bad = {b: v for b, v in by_band.items() if not (math.isfinite(v) and v >= 0)}
            if bad:
                raise ConfigError(
                    f"select.{name} must map bands to numbers >= 0 (0: off for that band), got "
                    f"{bad}."
                )
        negative = [d for d in self.excludeDetectors if d < 0]
        if negative:
            raise ConfigError(
                f"select.excludeDetectors lists negative detector ids {negative}; give CCD "
                "numbers as in the calexps' data IDs (ccd=...)."
            )
