"""Errors raised by PSF matching."""

from __future__ import annotations

from repo_butler.errors import RepoButlerError

__all__ = ["PsfMatchError", "PsfMatchRejected"]


class PsfMatchError(RepoButlerError, ValueError):
    """A warped CCD cannot be PSF-matched (insufficient area, kernel larger than the PSF stamp...).

    The caller skips the CCD for the psfMatched warp and records the message as the reason.
    """


class PsfMatchRejected(PsfMatchError):
    """Matching this CCD would deconvolve, or its kernel exceeds a documented bound.

    Raised by :func:`~warping.psfmatch.match_to_model` (before the fit for deconvolution, after
    it for the kernel bounds ``max_noise_gain`` / ``max_kernel_abs_sum``); MakeWarp skips the CCD
    for the psfMatched warp with this message as the reason.
    """
