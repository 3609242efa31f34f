"""Errors of the warp stack API; each subclasses :class:`WarpStackError` and a builtin."""

from __future__ import annotations

from warping.errors import WarpingError

__all__ = [
    "NoWarpsError",
    "NoWcsError",
    "UnknownWarpTypeError",
    "WarpBBoxMismatchError",
    "WarpStackError",
]


class WarpStackError(WarpingError):
    """Base class of the errors raised while opening or reading a warp stack."""


class NoWarpsError(WarpStackError, LookupError):
    """No warp matches the query (the message names the query and what to check)."""


class WarpBBoxMismatchError(WarpStackError, ValueError):
    """The warps of one patch do not share one bounding box (the message names them)."""


class UnknownWarpTypeError(WarpStackError, KeyError):
    """The dataset type is not a warp type of the repository (the message lists them)."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class NoWcsError(WarpStackError, ValueError):
    """Sky coordinates were asked for warps without a WCS."""
