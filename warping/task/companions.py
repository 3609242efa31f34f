"""The direct warp's companions (Gen3 ``MakeDirectWarpTask``): masked fraction and noise warps.

For each CCD, :func:`warp_companions` makes

* ``maskedFraction``: an indicator image (1 where the CCD pixel is masked: negative or infinite
  variance, or a plane of ``maskedFractionMaskPlanes``; 0 elsewhere) warped with
  ``maskedFractionWarper`` (bilinear by default) *without* the relative-area factor, so each warp
  pixel holds the kernel-weighted fraction of its footprint that came from masked pixels, in
  [0, 1] for a non-negative kernel;
* ``noise0`` ... ``noise{N-1}``: Gaussian noise images of the calibrated CCD (standard deviation
  the square root of its variance plane, or of the median of its finite variance with
  ``useMedianVariance``) carrying that variance as their variance plane, warped with the image's
  kernel and settings exactly as the image is.

Noise seeds (:func:`noise_generator`): realization ``n`` of the CCD ``(visit, ccd)`` is drawn by
numpy's PCG64 generator seeded with ``SeedSequence([visit, ccd, n, seedOffset mod 2**64])``. It
depends on nothing else (not on the patch, the other CCDs or their order), so a rerun writes the
same bits, and the overlap of two patches' warps of a visit holds the same noise.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from warping.exposure import Exposure

if TYPE_CHECKING:
    from warping.task.config import MakeWarpConfig
    from warping.task.make_warp import SkyInfo

logger = logging.getLogger(__name__)

__all__ = [
    "masked_indicator",
    "noise_exposure",
    "noise_generator",
    "noise_seed",
    "warp_companions",
]

_U64 = (1 << 64) - 1


def noise_seed(data_id: Mapping[str, Any], realization: int, seed_offset: int = 0) -> list[int]:
    """The entropy of a CCD's noise realization: ``[visit, ccd, realization, seedOffset mod
    2**64]`` (``data_id`` must hold ``visit`` and ``ccd``)."""
    try:
        visit, ccd = int(data_id["visit"]), int(data_id["ccd"])
    except KeyError as err:
        raise ValueError(
            f"noise realizations need the CCD's visit and ccd; data ID {dict(data_id)} lacks {err}"
        ) from None
    return [visit, ccd, int(realization), int(seed_offset) & _U64]


def noise_generator(
    data_id: Mapping[str, Any], realization: int, seed_offset: int = 0
) -> np.random.Generator:
    """numpy's PCG64 generator of one CCD's noise realization (see the module docstring)."""
    seq = np.random.SeedSequence(noise_seed(data_id, realization, seed_offset))
    return np.random.Generator(np.random.PCG64(seq))


def median_variance(exposure: Exposure) -> float:
    """Median of the variance over pixels whose image and variance are finite (NaN if none)."""
    var = exposure.variance
    ok = np.isfinite(var) & np.isfinite(exposure.image)
    return float(np.median(var[ok])) if ok.any() else float("nan")


def noise_exposure(
    calexp: Exposure, rng: np.random.Generator, *, use_median_variance: bool
) -> Exposure:
    """A pure-noise copy of ``calexp``: image ``N(0, variance)``, the variance used as its variance
    plane, and ``calexp``'s mask (shared, not copied), WCS and calibration.

    Pixels whose variance is not finite or is negative get a NaN image (per-pixel mode). One
    standard normal is drawn per pixel in row order whatever the variance, so the stream does
    not depend on the mask.
    """
    image = rng.standard_normal(calexp.image.shape, dtype=np.float32)
    if use_median_variance:
        median = median_variance(calexp)
        var = np.full(calexp.image.shape, median, dtype=np.float32)
        image *= np.float32(np.sqrt(median) if median >= 0 else np.nan)
    else:
        var = calexp.variance  # read only
        with np.errstate(invalid="ignore"):
            image *= np.sqrt(var)  # NaN where the variance is negative or NaN
        image[~np.isfinite(image)] = np.nan  # and where it is infinite
    return dataclasses.replace(calexp, image=image, variance=var, metadata=dict(calexp.metadata))


def masked_indicator(calexp: Exposure, mask_planes: tuple[str, ...]) -> Exposure:
    """``calexp`` with image 1.0 where the pixel counts as masked (variance < 0 or infinite, or a
    plane of ``mask_planes`` set), 0.0 elsewhere, and a zero variance plane."""
    var = calexp.variance
    bits = calexp.mask_planes.bitmask_if_present(*mask_planes)
    bad = (var < 0) | np.isinf(var)
    if bits:
        bad |= (calexp.mask & bits) != 0
    zero = np.zeros(var.shape, dtype=np.float32)
    return dataclasses.replace(
        calexp, image=bad.astype(np.float32), variance=zero, metadata=dict(calexp.metadata)
    )


def _control(config: MakeWarpConfig, *, masked_fraction: bool) -> Any:
    from warping.warp import WarpingControl

    if masked_fraction:
        w = config.maskedFractionWarper
        return WarpingControl(
            kernel=w.warpingKernelName,
            mask_kernel=w.maskWarpingKernelName,
            interp_length=w.interpLength,
            grow_full_mask=tuple(w.growFullMask),
            conserve_flux=False,  # a fraction, not a flux
        )
    w = config.warpAndPsfMatch.warp
    return WarpingControl(
        kernel=w.warpingKernelName,
        mask_kernel=w.maskWarpingKernelName,
        interp_length=w.interpLength,
        grow_full_mask=tuple(w.growFullMask),
    )


def warp_companions(
    calexp: Exposure,
    sky_info: SkyInfo,
    config: MakeWarpConfig,
    data_id: Mapping[str, Any],
    direct: Exposure | None = None,
) -> Iterator[tuple[str, Exposure]]:
    """Warp one calibrated CCD's companions (``config.companion_types``) onto the patch, one at a
    time (each is yielded before the next is made, so one is in memory at a time).

    Parameters
    ----------
    calexp
        The calibrated CCD (nJy), as warped for the direct warp.
    sky_info
        The patch (its bbox grown by ``border``) and tract WCS.
    config
        The task configuration.
    data_id
        The CCD's data ID (``visit`` and ``ccd`` seed its noise).
    direct
        The CCD's direct warp (``calexp`` warped with ``warpAndPsfMatch.warp``), or None. Given,
        the noise warps take its mask (and, per-pixel, its variance), which warping their own
        would reproduce bit for bit, and warp only their image (and median variance).

    Yields
    ------
    tuple
        ``(companion type, warped exposure)`` on the CCD's footprint within the patch.
    """
    from warping.warp import warp_exposure

    if config.doWarpMaskedFraction:
        indicator = masked_indicator(calexp, tuple(config.maskedFractionMaskPlanes))
        control = _control(config, masked_fraction=True)
        yield (
            "maskedFraction",
            warp_exposure(indicator, sky_info.wcs, max_bbox=sky_info.bbox, control=control),
        )
        del indicator
    control = _control(config, masked_fraction=False)
    for n in range(config.numberOfNoiseRealizations):
        rng = noise_generator(data_id, n, config.seedOffset)
        noise = noise_exposure(calexp, rng, use_median_variance=config.useMedianVariance)
        if direct is None:
            warped = warp_exposure(noise, sky_info.wcs, max_bbox=sky_info.bbox, control=control)
        else:
            warped = _warp_like(noise, direct, control, same_variance=not config.useMedianVariance)
        del noise
        yield f"noise{n}", warped


def _warp_like(
    source: Exposure, direct: Exposure, control: Any, *, same_variance: bool
) -> Exposure:
    """``source`` (a copy of the direct warp's CCD with another image, and variance unless
    ``same_variance``) warped onto ``direct``'s bbox, with ``direct``'s mask (and variance)."""
    from warping.warp import warp_with_transform, wcs_pair_transform

    assert source.wcs is not None and direct.wcs is not None
    res = warp_with_transform(
        source.image,
        None if same_variance else source.variance,
        None,
        source.xy0,
        direct.bbox,
        wcs_pair_transform(source.wcs, direct.wcs),
        control=control,
        want_mask=False,
    )
    variance = direct.variance if res.variance is None else res.variance
    return Exposure(
        res.image, direct.mask, variance, mask_planes=direct.mask_planes, xy0=direct.xy0,
        wcs=direct.wcs, photo_calib=direct.photo_calib,
    )  # fmt: skip


def check_companion_dataset_types(
    dataset_types: Mapping[str, Any], root: str, config: MakeWarpConfig
) -> None:
    """Refuse to plan companions into a repository that lacks their dataset types.

    A repository made by ``rb create`` since the ``warping`` preset defines them needs nothing;
    an older one gets the ``butler.yaml`` lines that add them.

    Raises
    ------
    DatasetTypeError
        Naming the missing dataset types, the config fields that need them and the lines to add.
    """
    from repo_butler.errors import DatasetTypeError
    from warping.repo_preset import butler_preset

    missing = [
        config.dataset_type(t)
        for t in config.companion_types
        if config.dataset_type(t) not in dataset_types
    ]
    if not missing:
        return
    preset = butler_preset()["dataset_types"]
    prefix = f"{config.coaddName}Coadd"
    lines = []
    for name in missing:
        spec = preset[name.replace(prefix, "deepCoadd", 1)]
        template = spec["template"].replace("deepCoadd/", f"{prefix}/", 1)
        lines.append(
            f"{name}: {{dimensions: [{', '.join(spec['dimensions'])}], "
            f"formatter: {spec['formatter']}, template: '{template}'}}"
        )
    fields = []
    if config.doWarpMaskedFraction:
        fields.append("doWarpMaskedFraction=True")
    if config.numberOfNoiseRealizations:
        fields.append(f"numberOfNoiseRealizations={config.numberOfNoiseRealizations}")
    raise DatasetTypeError(
        f"{' and '.join(fields)} needs the dataset type(s) {', '.join(missing)}, which the "
        f"repository at {root} does not define (it was created before the warping preset had "
        "them): add under dataset_types in its butler.yaml  " + "  ".join(lines) + "  or turn "
        "the field(s) off. Nothing was run."
    )
