"""Exceptions raised by :mod:`warping`.

Every error subclasses :class:`WarpingError` (itself a :class:`repo_butler.errors.RepoButlerError`)
and the builtin exception matching its meaning, so callers can catch either.
"""

from __future__ import annotations

from repo_butler.errors import FormatterError, RepoButlerError

__all__ = [
    "FormatError",
    "MissingExposureError",
    "NotAnImageError",
    "PatchIndexError",
    "RunConfigMismatchError",
    "SimulationError",
    "UnknownTractError",
    "WarpingError",
]


class WarpingError(RepoButlerError):
    """Base class of every error raised by :mod:`warping`."""


class MissingExposureError(WarpingError, LookupError):
    """A calexp (or one of its calibration products) needed for a warp does not exist."""


class FormatError(WarpingError, FormatterError):
    """A file is corrupt, truncated or of an unsupported layout; the message names the file."""


class SimulationError(WarpingError, ValueError):
    """A simulation configuration is inconsistent (e.g. a CCD id outside the focal plane)."""


class UnknownTractError(WarpingError, KeyError):
    """A tract number the skymap does not have (the message lists the valid ones)."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class PatchIndexError(WarpingError, ValueError):
    """A patch index that is malformed or outside its tract (the message gives the range)."""


class RunConfigMismatchError(WarpingError, ValueError):
    """A run was made with another task configuration than the one given (the message lists
    the differing fields and says how to write anyway)."""


class NotAnImageError(WarpingError, TypeError):
    """A dataset asked to be drawn as an image (``rb quicklook``) is not an exposure."""
