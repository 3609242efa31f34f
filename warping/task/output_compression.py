"""The compression of a unit's warps: what the ``exposure`` formatter is handed, and the
configuration recorded in each warp's provenance (with the dither seed actually used)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from warping.exposure import Exposure
from warping.formats.afw_exposure_write import AfwLayoutExposure
from warping.formats.compression import CompressedExposure, dither_seed, get_recipe
from warping.task.config import MakeWarpConfig

__all__ = ["effective_seed", "warp_payload"]


def effective_seed(config: MakeWarpConfig, data_id: Mapping[str, Any]) -> int:
    """``outputCompression.ditherSeed``, or the seed derived from ``data_id`` when it is 0."""
    return config.outputCompression.ditherSeed or dither_seed(data_id)


def warp_payload(
    exposure: Exposure, data_id: Mapping[str, Any], config: MakeWarpConfig, config_dict: Any
) -> tuple[Exposure | CompressedExposure | AfwLayoutExposure, Any]:
    """What to write for one warp, and its provenance configuration.

    Parameters
    ----------
    exposure
        The warp.
    data_id
        Its data ID (the dither seed derives from it unless the config sets one).
    config
        The task configuration (``outputCompression``).
    config_dict
        ``config_to_dict(config)``, recorded in provenance.

    Returns
    -------
    payload, provenance_config
        ``exposure`` itself (recipe ``none``), a :class:`CompressedExposure`, or an
        :class:`AfwLayoutExposure` (``warpFormat='afw'``); for a lossy
        recipe the provenance configuration records the effective ``ditherSeed`` (so rerunning
        with the recorded configuration writes the same bytes).
    """
    if config.warpFormat == "afw":  # issue #26: afw's layout (validate() refuses compression)
        return AfwLayoutExposure(exposure), config_dict
    oc = config.outputCompression
    recipe = get_recipe(oc.recipe, quantize_level=oc.quantizeLevel)
    if recipe is None:
        return exposure, config_dict
    seed = effective_seed(config, data_id)
    if recipe.lossy:
        config_dict = {
            **config_dict,
            "outputCompression": {**config_dict["outputCompression"], "ditherSeed": seed},
        }
    return CompressedExposure(exposure, recipe, seed), config_dict
