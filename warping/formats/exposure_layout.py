"""Exposures the ``exposure`` formatter writes in a layout other than ours.

:class:`~warping.formats.exposure_fits.ExposureFormatter` stores an :class:`ExposureLayout` by
writing the HDUs it builds; reading needs nothing more, since the reader recognises each layout
from the file (ours by ``RBFMTV``, afw's by its image extensions). The afw layout of warps is
:class:`warping.formats.afw_exposure_write.AfwLayoutExposure`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from astropy.io import fits

__all__ = ["ExposureLayout"]


class ExposureLayout(ABC):
    """An exposure together with the layout to write it in."""

    @abstractmethod
    def to_hdulist(self) -> fits.HDUList:
        """The HDUs to write."""
