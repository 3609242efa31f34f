"""PSF models behind one interface (:class:`warping.psf.base.Psf`) and their persistence."""

from warping.psf.analytic import (
    SIGMA_PER_FWHM,
    DoubleGaussianPsf,
    GaussianPsf,
    VariableGaussianPsf,
    make_model_psf,
)
from warping.psf.base import Psf, PsfError
from warping.psf.image import ImagePsf, PsfexPsf
from warping.psf.kernel import (
    Chebyshev1Function2D,
    KernelPsf,
    LinearCombinationKernel,
    PcaPsf,
    PolynomialFunction2D,
)
from warping.psf.registry import (
    SerializablePsf,
    psf_from_dict,
    psf_to_dict,
    register_psf_type,
    registered_psf_types,
)

__all__ = [
    "SIGMA_PER_FWHM",
    "Chebyshev1Function2D",
    "DoubleGaussianPsf",
    "GaussianPsf",
    "ImagePsf",
    "KernelPsf",
    "LinearCombinationKernel",
    "PcaPsf",
    "PolynomialFunction2D",
    "Psf",
    "PsfError",
    "PsfexPsf",
    "SerializablePsf",
    "VariableGaussianPsf",
    "make_model_psf",
    "psf_from_dict",
    "psf_to_dict",
    "register_psf_type",
    "registered_psf_types",
]
