"""``outputCompression``: the MakeWarp configuration of compressed warps (issue #19).

Kept apart from :mod:`warping.task.config` (which holds the field ``outputCompression`` of
:class:`~warping.task.config.MakeWarpConfig`); the recipes themselves live in
:mod:`warping.formats.compression`, whose ``RECIPE_NAMES`` :data:`COMPRESSION_RECIPES` must equal
(``tests/test_warp_compression.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from repo_butler.errors import ConfigError

__all__ = [
    "COMPRESSION_RECIPES",
    "MAX_DITHER_SEED",
    "QUANTIZE_LEVEL_RANGE",
    "OutputCompressionConfig",
]

COMPRESSION_RECIPES = ("none", "lossless", "lossy")
#: Allowed ``outputCompression.quantizeLevel`` (quantization steps per noise sigma).
QUANTIZE_LEVEL_RANGE = (1.0, 1000.0)
#: Largest explicit dither seed (the FITS standard's ``ZDITHER0`` range is 1..10000).
MAX_DITHER_SEED = 10_000


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"doc": text, **extra}


@dataclass(frozen=True)
class OutputCompressionConfig:
    """FITS tile compression of the written warps (a named recipe, like LSST's write recipes)."""

    recipe: str = field(
        default="none",
        metadata=_doc(
            "Recipe: 'none' (plain FITS), 'lossless' (GZIP_2 tiles), 'lossy' (image and "
            "variance quantized to sigma/quantizeLevel, RICE_1; mask always lossless).",
            choices=COMPRESSION_RECIPES,
        ),
    )
    quantizeLevel: float = field(
        default=16.0,
        metadata=_doc(
            "Lossy recipe: quantization steps per noise sigma (STDEV_MASKED scaling: sigma from "
            "the interquartile range of the plane's unmasked pixels), in [1, 1000].",
            maximum=QUANTIZE_LEVEL_RANGE[1],
        ),
    )
    ditherSeed: int = field(
        default=0,
        metadata=_doc(
            "Lossy recipe: subtractive-dither seed in [1, 10000]; 0 derives it from the warp's "
            "data ID (reruns are bit-identical).",
            maximum=MAX_DITHER_SEED,
        ),
    )

    def check(self, prefix: str = "outputCompression.") -> None:
        """Raise :class:`ConfigError` naming the field and its allowed values."""
        if self.recipe not in COMPRESSION_RECIPES:
            raise ConfigError(
                f"{prefix}recipe = {self.recipe!r} is not a compression recipe; allowed: "
                f"{', '.join(COMPRESSION_RECIPES)}."
            )
        lo, hi = QUANTIZE_LEVEL_RANGE
        if not lo <= self.quantizeLevel <= hi:  # also refuses NaN
            raise ConfigError(
                f"{prefix}quantizeLevel = {self.quantizeLevel} is out of range; allowed: "
                f"{lo:g} to {hi:g} (quantization steps per noise sigma)."
            )
        if not 0 <= self.ditherSeed <= MAX_DITHER_SEED:
            raise ConfigError(
                f"{prefix}ditherSeed = {self.ditherSeed} is out of range; allowed: 0 (derived "
                f"from the data ID) or 1 to {MAX_DITHER_SEED}."
            )
