"""Transitional alias of :mod:`warping.psfmatch._match_loops` for ``warping/coadd_psf.py``.

Delete once ``warping/coadd_psf.py`` imports ``resample_lanczos`` from ``_match_loops``.
"""

from warping.psfmatch._match_loops import resample_lanczos

__all__ = ["resample_lanczos"]
