"""What a warp stack holds, as plain data (``rb stack-info``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["describe_stack"]

VARIABLES = ("image", "variance", "mask")


def _number(value: Any) -> Any:
    """A JSON-safe number (NaN becomes None)."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def describe_stack(stack: xr.Dataset) -> dict[str, Any]:
    """Shape, chunking, types, bytes and per-visit values of a stack from
    :func:`~warping.stack.open_warp_stack`, JSON-ready (NaN as ``None``).

    ``bytes_to_read`` is what computing every variable reads from the files (compressed planes
    count their compressed size; the headers and tables read when opening are not included);
    ``bytes_in_memory`` is the size of the arrays once read.
    """
    attrs = stack.attrs
    variables = {}
    for name in VARIABLES:
        var = stack[name]
        variables[name] = {
            "dtype": str(var.dtype),
            "units": var.attrs.get("units", ""),
            "chunks": [int(c[0]) for c in var.chunks] if var.chunks else list(var.shape),
            "n_chunks": int(math.prod(len(c) for c in var.chunks)) if var.chunks else 1,
            "bytes_to_read": int(var.attrs.get("bytes_on_disk", var.nbytes)),
            "bytes_in_memory": int(var.nbytes),
        }
    visits = []
    for i, visit in enumerate(stack["visit"].values):
        visits.append(
            {
                "visit": int(visit),
                "mjd": _number(stack["mjd"].values[i]),
                "filter": str(stack["filter"].values[i]),
                "psf_sigma": _number(stack["psf_sigma"].values[i]),
                "n_good_pixels": int(stack["n_good_pixels"].values[i]),
                "n_ccds": int(stack["n_ccds"].values[i]),
                "ccds": [int(c) for c in str(stack["ccds"].values[i]).split(",") if c],
                "uri": str(stack["ref"].values[i]),
            }
        )
    mask = stack["mask"].attrs
    return {
        "dataset_type": attrs["dataset_type"],
        "tract": attrs["tract"],
        "patch": attrs["patch"],
        "filter": attrs["filter"],
        "run": attrs.get("run", ""),
        "bbox": list(attrs["bbox"]),
        "shape": {dim: int(size) for dim, size in stack.sizes.items()},
        "units": attrs.get("units", ""),
        "mask_planes": dict(mask.get("mask_planes", {})),
        "variables": variables,
        "bytes_to_read": sum(v["bytes_to_read"] for v in variables.values()),
        "bytes_in_memory": sum(v["bytes_in_memory"] for v in variables.values()),
        "visits": visits,
    }
