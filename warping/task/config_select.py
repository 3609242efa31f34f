"""Configuration of the PSF-quality CCD selection (``MakeWarpConfig.select``), issue #22.

Gen3's coadd tasks hold their CCD selection in a ``select`` subtask whose default is
``PsfWcsSelectImagesTask`` (pipe_tasks ``coaddBase.py`` / ``selectImages.py``), so a Gen3 user
writes ``config.select.maxPsfFwhm = 1.5``; the same line works here. The field names are Gen3's;
the defaults are not: Gen3 turns most cuts on (``maxPsfFwhm`` 1.8, ``maxEllipResidual`` 0.007,
``maxScaledSizeScatter`` 0.019, ``maxPsfTraceRadiusDelta`` 0.7, ``maxPsfApFluxDelta`` 0.24,
``maxPsfApCorrSigmaScaledDelta`` 0.22), here every cut is off (None) so warps of existing
configurations do not change. What each cut compares is in :mod:`warping.task.psf_select`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from repo_butler.errors import ConfigError

__all__ = ["CUT_FIELDS", "PsfWcsSelectImagesConfig"]


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
    def active(self) -> bool:
        """True when some cut (or ``excludeDetectors``) is on."""
        return bool(self.thresholds or self.excludeDetectors)

    @property
    def needs_statistics(self) -> bool:
        """True when a cut needs the CCDs' PSF statistics (a visitSummary)."""
        return bool(self.thresholds)

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
        negative = [d for d in self.excludeDetectors if d < 0]
        if negative:
            raise ConfigError(
                f"select.excludeDetectors lists negative detector ids {negative}; give CCD "
                "numbers as in the calexps' data IDs (ccd=...)."
            )
