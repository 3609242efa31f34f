"""The Gen3 dataset types a ``warping`` repository imports (``rb import-gen3``), as data.

Passed to :func:`repo_butler.gen3.import_gen3`: each Gen3 dataset type name maps to this
preset's dataset type (:mod:`warping.repo_preset`) and the Gen3 formatters whose files our
formatters read. Gen3 has no Gen2 ``pointing``; where a target type needs one it takes the
visit number (``pointing = visit``, the same rule default as header ingest,
:mod:`warping.ingest_rules`).

Gen3's sky map (``skyMap``, ``deepCoadd_skyMap``) is a pickled Python object: it is never
loaded (unpickling runs code) and is skipped with that reason; make the sky map here with
``rb make-skymap`` from the same geometry.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from repo_butler.gen3 import Gen3TypeRule

__all__ = ["GEN3_TYPES"]

_EXPOSURE = frozenset({"lsst.obs.base.formatters.fitsExposure.FitsExposureFormatter"})
_GENERIC = frozenset({"lsst.obs.base.formatters.fitsGeneric.FitsGenericFormatter"})
_POINTING = MappingProxyType({"pointing": "visit"})
_PICKLE = (
    "a Gen3 sky map is a pickled Python object, never loaded here (unpickling runs code); "
    "make it with `rb make-skymap` from the same geometry"
)

GEN3_TYPES: Mapping[str, Gen3TypeRule] = MappingProxyType(
    {
        "calexp": Gen3TypeRule("calexp", _EXPOSURE, _POINTING),
        "calexpBackground": Gen3TypeRule("calexpBackground", _GENERIC, _POINTING),
        "skyCorr": Gen3TypeRule("skyCorr", _GENERIC, _POINTING),
        # the per-visit ExposureCatalog of detector calibrations (useVisitSummary*)
        "visitSummary": Gen3TypeRule("visitSummary", _GENERIC),
        "deepCoadd_directWarp": Gen3TypeRule("deepCoadd_directWarp", _EXPOSURE),
        "deepCoadd_psfMatchedWarp": Gen3TypeRule("deepCoadd_psfMatchedWarp", _EXPOSURE),
        "skyMap": Gen3TypeRule("", refuse=_PICKLE),
        "deepCoadd_skyMap": Gen3TypeRule("", refuse=_PICKLE),
    }
)
