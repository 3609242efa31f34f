"""What a dataset holds, as JSON-comparable values: the truth the committed fixture repositories
are checked against (``tests/fixtures/repo-v1/expected.json``).

:func:`describe` reduces what ``Butler.get`` returns to exact digests of stored arrays (image,
mask and variance pixels, table columns) plus a few evaluated values (WCS positions, calibration
and background values at fixed pixels) that later code must reproduce to ``rtol`` 1e-9.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

__all__ = ["compare", "describe"]

_PIXELS = ((0.0, 0.0), (10.5, 20.25), (30.0, 7.0))


def _sha(array: Any, dtype: str) -> str:
    data = np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype))
    return hashlib.sha256(data.tobytes()).hexdigest()


def _sky(wcs: Any, offset: tuple[float, float] = (0.0, 0.0)) -> list[list[float]]:
    xs = np.array([p[0] + offset[0] for p in _PIXELS])
    ys = np.array([p[1] + offset[1] for p in _PIXELS])
    ra, dec = wcs.pixel_to_world_values(xs, ys)
    return [[float(r), float(d)] for r, d in zip(ra, dec, strict=True)]


def _values(func: Any) -> list[float]:
    return [float(np.asarray(func(x, y))) for x, y in _PIXELS]


def describe(obj: Any) -> dict[str, Any]:
    """JSON-comparable description of a dataset read with ``Butler.get``."""
    from astropy.table import Table
    from astropy.wcs import WCS

    from warping.background import BackgroundList
    from warping.exposure import Exposure
    from warping.photocalib import PhotoCalib
    from warping.skymap.skymaps import BaseSkyMap

    if isinstance(obj, Exposure):
        out: dict[str, Any] = {
            "kind": "exposure",
            "shape": list(obj.image.shape),
            "xy0": list(obj.xy0),
            "image": _sha(obj.image, "<f4"),
            "mask": _sha(obj.mask, "<i4"),
            "variance": _sha(obj.variance, "<f4"),
            "mask_planes": dict(sorted(obj.mask_planes.bits.items())),
            "filter": obj.filter,
            "id": obj.id,
            "sky": _sky(obj.wcs, obj.xy0) if obj.wcs is not None else None,
            "photo_calib": None if obj.photo_calib is None else _values(obj.photo_calib.evaluate),
            "psf": None,
            "coadd_inputs": None,
        }
        if obj.psf is not None:
            # a pixel with data (a warp's CoaddPsf is undefined where no CCD lands): the valid
            # pixel nearest to the centroid of the valid pixels
            valid = np.argwhere(np.isfinite(obj.image) & (obj.variance > 0))
            iy, ix = valid[np.argmin(((valid - valid.mean(axis=0)) ** 2).sum(axis=1))]
            cx, cy = float(obj.xy0[0] + ix), float(obj.xy0[1] + iy)
            kernel = np.asarray(obj.psf.compute_kernel_image(cx, cy), dtype=float)
            out["psf"] = {"at": [cx, cy], "shape": list(kernel.shape), "sum": float(kernel.sum()),
                          "peak": float(kernel.max())}  # fmt: skip
        inputs = getattr(obj, "coadd_inputs", None)
        if inputs is not None:
            out["coadd_inputs"] = {
                "visits": [[v.id, v.goodpix] for v in inputs.visits],
                "ccds": [[c.visit, c.ccd, c.goodpix, c.bbox.to_list()] for c in inputs.ccds],
            }
        return out
    if isinstance(obj, BackgroundList):
        image = np.asarray(obj.get_image(), dtype=float)
        return {"kind": "background", "shape": list(image.shape), "sum": float(image.sum()),
                "samples": [float(image[0, 0]), float(image[-1, -1])]}  # fmt: skip
    if isinstance(obj, PhotoCalib):
        return {"kind": "photocalib", "values": _values(obj.evaluate)}
    if isinstance(obj, WCS):
        return {"kind": "wcs", "sky": _sky(obj)}
    if isinstance(obj, BaseSkyMap):
        tract = obj[0]
        return {"kind": "skymap", "n_tracts": len(obj), "sky": _sky(tract.wcs),
                "patch_5_4": tract.patch("5,4").outer_bbox.to_list()}  # fmt: skip
    if isinstance(obj, Table):
        columns = {n: _sha(obj[n], obj[n].dtype.newbyteorder("<").str) for n in obj.colnames}
        return {"kind": "table", "rows": len(obj), "columns": columns}
    raise TypeError(f"no description for {type(obj).__name__}")


def compare(found: Any, expected: Any, where: str = "") -> list[str]:
    """Differences between two descriptions (floats to rtol 1e-9); empty when they match."""
    if isinstance(expected, float) or isinstance(found, float):
        ok = isinstance(found, int | float) and math.isclose(found, expected, rel_tol=1e-9,
                                                             abs_tol=1e-12)  # fmt: skip
        return [] if ok else [f"{where}: {found!r} != {expected!r}"]
    if isinstance(expected, dict) and isinstance(found, dict):
        if set(found) != set(expected):
            return [f"{where}: keys {sorted(found)} != {sorted(expected)}"]
        return [d for k in expected for d in compare(found[k], expected[k], f"{where}.{k}")]
    if isinstance(expected, list) and isinstance(found, list):
        if len(found) != len(expected):
            return [f"{where}: length {len(found)} != {len(expected)}"]
        return [d for i, (f, e) in enumerate(zip(found, expected, strict=True))
                for d in compare(f, e, f"{where}[{i}]")]  # fmt: skip
    return [] if found == expected else [f"{where}: {found!r} != {expected!r}"]
