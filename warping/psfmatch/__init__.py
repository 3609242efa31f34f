"""Alard–Lupton matching of warped CCDs to a model PSF (LSST ``ModelPsfMatchTask``).

Entry point: :func:`match_to_model` with a :class:`PsfMatchConfig`. Large scratch buffers are
kept between calls (same-size CCDs reuse them); :func:`release_buffers` frees them.
"""

from warping.psfmatch.config import LSST_FIELD_NAMES, PsfMatchConfig
from warping.psfmatch.convolve import clear_spectra, clear_workspaces
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
    "release_buffers",
]


def release_buffers() -> None:
    """Free the FFT workspaces and tile spectra kept between :func:`match_to_model` calls."""
    clear_workspaces()
    clear_spectra()
