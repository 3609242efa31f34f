"""Alard–Lupton matching of warped CCDs to a model PSF (LSST ``ModelPsfMatchTask``).

Entry point: :func:`match_to_model` with a :class:`PsfMatchConfig`.
"""

from warping.psfmatch.config import LSST_FIELD_NAMES, PsfMatchConfig
from warping.psfmatch.errors import PsfMatchError
from warping.psfmatch.model_match import PsfMatchResult, match_to_model
from warping.psfmatch.solve import SpatialKernel

__all__ = [
    "LSST_FIELD_NAMES",
    "PsfMatchConfig",
    "PsfMatchError",
    "PsfMatchResult",
    "SpatialKernel",
    "match_to_model",
]
