"""The module name warps record for their inputs table; the model is :mod:`warping.coadd_inputs`.

Warps written by every release name this module in the FITS card that tells a reader which
module registers the ``COADD_INPUTS`` extension; importing it registers the extension.
"""

from __future__ import annotations

from warping.coadd_inputs import CcdRecord, CoaddInputs, VisitRecord

__all__ = ["CcdRecord", "CoaddInputs", "VisitRecord"]
