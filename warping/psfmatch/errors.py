"""Errors raised by PSF matching."""

from __future__ import annotations

from repo_butler.errors import RepoButlerError

__all__ = ["PsfMatchError"]


class PsfMatchError(RepoButlerError, ValueError):
    """A warped CCD cannot be PSF-matched (insufficient area, kernel larger than the PSF stamp...).

    The caller skips the CCD for the psfMatched warp and records the message as the reason.
    """
