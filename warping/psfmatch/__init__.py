"""Alard–Lupton matching of warped CCDs to a model PSF (LSST ``ModelPsfMatchTask``).

Entry point: :func:`match_to_model` with a :class:`PsfMatchConfig`. A caller matching many CCDs
keeps one :class:`ConvolutionWorkspace` and passes it to every call, so that same-size CCDs
reuse the convolution's large scratch buffers; nothing is kept between calls otherwise.
"""

from warping.psfmatch.config import LSST_FIELD_NAMES, PsfMatchConfig
from warping.psfmatch.errors import PsfMatchError, PsfMatchRejected
from warping.psfmatch.model_match import PsfMatchResult, match_to_model
from warping.psfmatch.options import ConvolutionOptions
from warping.psfmatch.solve import SpatialKernel
from warping.psfmatch.workspace import ConvolutionWorkspace

__all__ = [
    "LSST_FIELD_NAMES",
    "ConvolutionOptions",
    "ConvolutionWorkspace",
    "PsfMatchConfig",
    "PsfMatchError",
    "PsfMatchRejected",
    "PsfMatchResult",
    "SpatialKernel",
    "match_to_model",
]
