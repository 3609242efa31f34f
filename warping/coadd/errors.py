"""Errors of the coadd: each names the patch or warp concerned and says what to do."""

from __future__ import annotations

from warping.errors import WarpingError

__all__ = ["CoaddConfigError", "CoaddError", "MismatchedWarpsError", "NoWarpsError"]


class CoaddError(WarpingError):
    """Base class of the coadd's errors."""


class CoaddConfigError(CoaddError, ValueError):
    """A coadd configuration value is out of range or unknown (the message lists the choices)."""


class NoWarpsError(CoaddError, LookupError):
    """No warp of the patch can be combined (none found, or none with usable pixels)."""


class MismatchedWarpsError(CoaddError, ValueError):
    """The warps of a stack do not share a grid, a unit or a filter."""
