"""Read the per-CCD components a warp's inputs table carries from afw archives: the valid
polygon (``Polygon``) and the aperture corrections (``ApCorrMap`` of ``ChebyshevBoundedField``).

Layouts (``../shared/reference/lsst-real-products.md`` §0, §4): a ``Polygon`` is ``nrows`` rows
of ``vertices_x``, ``vertices_y`` (parent pixels, a closed ring); an ``ApCorrMap`` is rows of
``name`` and ``field`` (the archive id of each bounded field). Checked on the real obs_base calexp
(polygon and 46 corrections), the CFHT calexps (4 corrections) and visitSummary_1176 (polygons).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from warping.apcorr import ApCorrMap
from warping.errors import FormatError
from warping.geom import Box2I
from warping.photocalib import ChebyshevBoundedField
from warping.polygon import ValidPolygon

if TYPE_CHECKING:
    from warping.formats.lsst_afw import LsstArchive

__all__ = ["read_archived_ap_corr_map", "read_archived_chebyshev", "read_archived_polygon"]


def read_archived_chebyshev(archive: LsstArchive, obj_id: int) -> ChebyshevBoundedField:
    """The ``ChebyshevBoundedField`` of archive id ``obj_id`` (PhotoCalib and ApCorrMap fields)."""
    row = archive.catalogs(obj_id)[0][0]
    order_x = int(row["order_x"])
    bbox = Box2I.from_minmax(
        int(row["bbox_min_x"]),
        int(row["bbox_min_y"]),
        int(row["bbox_max_x"]),
        int(row["bbox_max_y"]),
    )
    coeffs = np.atleast_1d(np.asarray(row["coefficients"], dtype=float))
    nx = order_x + 1
    if coeffs.size % nx:
        raise FormatError(
            f"{archive.source}: ChebyshevBoundedField has {coeffs.size} coefficients, "
            f"not a multiple of order_x+1={nx}"
        )
    return ChebyshevBoundedField(bbox, coeffs.reshape(-1, nx))


def read_archived_polygon(archive: LsstArchive, obj_id: int) -> ValidPolygon:
    """The ``Polygon`` of archive id ``obj_id``.

    Raises
    ------
    FormatError
        If the object is not a Polygon or its vertices are malformed.
    """
    name = archive.name(obj_id)
    if name != "Polygon":
        raise FormatError(f"{archive.source}: archive object {obj_id} is a {name}, not a Polygon")
    rows = archive.catalogs(obj_id)[0]
    names = [n.lower() for n in rows.columns.names]
    if "vertices_x" in names and "vertices_y" in names:
        xs = np.asarray(rows["vertices_x"], dtype=np.float64)
        ys = np.asarray(rows["vertices_y"], dtype=np.float64)
    elif "vertices" in names:  # version-0 tables: one 2-element array per vertex
        pts = np.asarray(rows["vertices"], dtype=np.float64).reshape(-1, 2)
        xs, ys = pts[:, 0], pts[:, 1]
    else:
        raise FormatError(f"{archive.source}: Polygon {obj_id} has no vertices columns")
    try:
        return ValidPolygon(np.column_stack([xs, ys]))
    except ValueError as err:
        raise FormatError(f"{archive.source}: Polygon {obj_id}: {err}") from None


def read_archived_ap_corr_map(archive: LsstArchive, obj_id: int) -> ApCorrMap:
    """The ``ApCorrMap`` of archive id ``obj_id`` (names in the file's row order).

    Raises
    ------
    FormatError
        If the object is not an ApCorrMap, or one of its fields is not a
        ``ChebyshevBoundedField``.
    """
    name = archive.name(obj_id)
    if name != "ApCorrMap":
        raise FormatError(
            f"{archive.source}: archive object {obj_id} is a {name}, not an ApCorrMap"
        )
    fields = {}
    for row in archive.catalogs(obj_id)[0]:
        key = row["name"]
        key = (key.decode() if isinstance(key, bytes) else str(key)).strip()
        field_id = int(row["field"])
        kind = archive.name(field_id)
        if kind != "ChebyshevBoundedField":
            raise FormatError(
                f"{archive.source}: aperture correction {key!r} is a {kind}; only "
                "ChebyshevBoundedField is supported"
            )
        fields[key] = read_archived_chebyshev(archive, field_id)
    return ApCorrMap(fields)
