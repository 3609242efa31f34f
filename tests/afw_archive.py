"""Write afw FITS archives and afw-layout calexps with astropy, for tests.

The layout follows ``../shared/reference/lsst-real-products.md`` §0: an ``ARCHIVE_INDEX`` binary
table (``id``, ``cat.archive``, ``cat.persistable``, ``row0``, ``nrows``, ``name``, ``module``)
followed by ``ARCHIVE_DATA`` tables; objects whose catalogs share a schema share one data table
(rows ``row0 .. row0 + nrows - 1``). Points are written as ``<name>_x``/``<name>_y`` columns
(modern afw tables, ``AFW_TABLE_VERSION = 3``) or, with ``version0=True``, as one 2-element array
with the index columns spelled ``cat_archive``/``cat_persistable`` (meas_modelfit's 2016 files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from astropy.io import fits

from warping.exposure import Exposure
from warping.photocalib import AB_REFERENCE_FLUX_NJY
from warping.psf.kernel import Chebyshev1Function2D, PolynomialFunction2D, SpatialFunction


class Point(NamedTuple):
    """A point column (afw ``PointKey``)."""

    x: float
    y: float


@dataclass
class ArchiveObject:
    """One persistable: its id, class name, module and one row per catalog."""

    id: int
    name: str
    module: str
    catalogs: list[dict[str, Any] | list[dict[str, Any]]] = field(default_factory=list)
    """One entry per catalog: a row, or a list of rows (a ``Polygon``'s vertices, an
    ``ApCorrMap``'s entries)."""


def _columns(row: dict[str, Any], version0: bool) -> list[tuple[str, str, Any]]:
    """``(name, TFORM, value)`` of each column of one row."""
    out: list[tuple[str, str, Any]] = []
    for name, value in row.items():
        if isinstance(value, Point):
            code = "J" if all(isinstance(v, int | np.integer) for v in value) else "D"
            if version0:
                out.append((name, f"2{code}", np.array(value, dtype=int if code == "J" else float)))
            else:
                out.append((f"{name}_x", f"1{code}", value.x))
                out.append((f"{name}_y", f"1{code}", value.y))
        elif isinstance(value, str):  # afw's fixed-width string fields (ApCorrMap names)
            out.append((name, "64A", value))
        elif isinstance(value, bytes):
            out.append((name, f"{len(value)}B", np.frombuffer(value, dtype=np.uint8)))
        elif isinstance(value, np.ndarray | list | tuple):
            arr = np.asarray(value)
            code = "J" if arr.dtype.kind in "iu" else "D"
            out.append((name, f"{arr.size}{code}", arr.ravel()))
        elif isinstance(value, int | np.integer):
            out.append((name, "1J", int(value)))
        else:
            out.append((name, "1D", float(value)))
    return out


def archive_hdus(objects: Sequence[ArchiveObject], *, version0: bool = False) -> list[Any]:
    """The index HDU and the data HDUs of an archive holding ``objects``."""
    tables: list[dict[str, Any]] = []  # {"key": schema, "rows": [...], "name": first class}
    index_rows = []
    for obj in objects:
        for persistable, catalog in enumerate(obj.catalogs):
            rows = catalog if isinstance(catalog, list) else [catalog]
            all_cols = [_columns(row, version0) for row in rows]
            key = tuple((n, f) for n, f, _ in all_cols[0])
            table = next((t for t in tables if t["key"] == key), None)
            if table is None:
                table = {"key": key, "rows": [], "name": obj.name}
                tables.append(table)
            index_rows.append(
                (
                    obj.id,
                    tables.index(table) + 1,
                    persistable,
                    len(table["rows"]),
                    len(rows),
                    obj.name,
                    obj.module,
                )
            )
            table["rows"].extend([v for _, _, v in cols] for cols in all_cols)
    cat_a, cat_p = (
        ("cat_archive", "cat_persistable") if version0 else ("cat.archive", "cat.persistable")
    )
    ix = list(zip(*index_rows, strict=True))
    index = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="id", format="1J", array=np.array(ix[0])),
            fits.Column(name=cat_a, format="1J", array=np.array(ix[1])),
            fits.Column(name=cat_p, format="1J", array=np.array(ix[2])),
            fits.Column(name="row0", format="1J", array=np.array(ix[3])),
            fits.Column(name="nrows", format="1J", array=np.array(ix[4])),
            fits.Column(name="name", format="64A", array=np.array(ix[5])),
            fits.Column(name="module", format="64A", array=np.array(ix[6])),
        ]
    )
    index.header["EXTTYPE"] = "ARCHIVE_INDEX"
    index.header["AR_CATN"] = 0
    index.header["AR_NCAT"] = len(tables) + 1
    hdus: list[Any] = [index]
    for k, table in enumerate(tables, start=1):
        cols = []
        for c, (name, form) in enumerate(table["key"]):
            values = [r[c] for r in table["rows"]]
            arr = np.array(values) if form[-1] != "B" else np.stack(values)
            cols.append(fits.Column(name=name, format=form, array=arr))
        hdu = fits.BinTableHDU.from_columns(cols)
        hdu.header["EXTTYPE"] = "ARCHIVE_DATA"
        hdu.header["AR_CATN"] = k
        hdu.header["AR_NAME"] = table["name"]
        hdus.append(hdu)
    if not version0:
        for hdu in hdus:
            hdu.header["HIERARCH AFW_TABLE_VERSION"] = 3
    return hdus


def _function_object(fid: int, f: SpatialFunction) -> ArchiveObject:
    if isinstance(f, Chebyshev1Function2D):
        x0, y0, x1, y1 = f.xy_range
        row = {"coefficients": np.array(f.coefficients), "min": Point(x0, y0), "max": Point(x1, y1)}
        return ArchiveObject(fid, "Chebyshev1Function2D", "lsst.afw.math", [row])
    assert isinstance(f, PolynomialFunction2D)
    return ArchiveObject(
        fid, "PolynomialFunction2D", "lsst.afw.math", [{"coefficients": np.array(f.coefficients)}]
    )


def kernel_psf_objects(
    basis: np.ndarray,
    center: tuple[int, int],
    *,
    functions: Sequence[SpatialFunction] | None = None,
    amplitudes: Sequence[float] | None = None,
    average_position: tuple[float, float] = (0.0, 0.0),
    psf_class: str = "PcaPsf",
    first_id: int = 1,
) -> list[ArchiveObject]:
    """The archive graph of a PcaPsf/KernelPsf: PSF -> LinearCombinationKernel -> spatial
    functions and FixedKernel basis images, with ids from ``first_id`` in afw's order."""
    n, h, w = basis.shape
    psf_id, kernel_id = first_id, first_id + 1
    fn_ids = list(range(kernel_id + 1, kernel_id + 1 + (n if functions is not None else 0)))
    comp_ids = list(range(kernel_id + 1 + len(fn_ids), kernel_id + 1 + len(fn_ids) + n))
    objs = [
        ArchiveObject(
            psf_id,
            psf_class,
            "lsst.meas.algorithms",
            [{"kernel": kernel_id, "averagePosition": Point(*map(float, average_position))}],
        )
    ]
    row: dict[str, Any] = {"dimensions": Point(int(w), int(h)), "center": Point(*center)}
    if functions is not None:
        row["spatialfunctions"] = np.array(fn_ids)
    row["components"] = np.array(comp_ids)
    if functions is None:
        row["amplitudes"] = np.array(amplitudes, dtype=float)
    objs.append(ArchiveObject(kernel_id, "LinearCombinationKernel", "lsst.afw.math", [row]))
    for fid, f in zip(fn_ids, functions or (), strict=True):
        objs.append(_function_object(fid, f))
    for cid, image in zip(comp_ids, basis, strict=True):
        objs.append(
            ArchiveObject(
                cid,
                "FixedKernel",
                "lsst.afw.math",
                [
                    {
                        "dimensions": Point(int(w), int(h)),
                        "center": Point(*center),
                        "image": np.asarray(image, dtype=float).ravel(),
                    }
                ],
            )
        )
    return objs


def archive_file(objects: Sequence[ArchiveObject], *, version0: bool = False) -> fits.HDUList:
    """A file holding only an archive (its index is HDU 1)."""
    return fits.HDUList([fits.PrimaryHDU(), *archive_hdus(objects, version0=version0)])


def write_afw_calexp(
    path: Path,
    exposure: Exposure,
    objects: Sequence[ArchiveObject],
    psf_id: int,
    components: dict[str, int] | None = None,
) -> None:
    """``exposure``'s pixels, mask planes, WCS and (constant) calibration in the modern afw
    calexp layout, with ``objects`` as its archive and ``psf_id`` as its PSF; ``components``
    gives further archive ids by component (``VALID_POLYGON``, ``AP_CORR_MAP`` ...)."""
    x0, y0 = exposure.xy0
    wcs_header = exposure.wcs.to_header(relax=True) if exposure.wcs is not None else fits.Header()
    # the header WCS of afw files is relative to the array: shift CRPIX by xy0
    for axis, origin in ((1, x0), (2, y0)):
        if f"CRPIX{axis}" in wcs_header:
            wcs_header[f"CRPIX{axis}"] = float(wcs_header[f"CRPIX{axis}"]) - origin
    primary = fits.PrimaryHDU()
    primary.header["AR_HDU"] = 5  # 1-based: the index is astropy HDU 4
    primary.header["PSF_ID"] = psf_id
    primary.header["HIERARCH ARCHIVE_ID_PSF"] = psf_id
    for key, obj_id in (components or {}).items():
        primary.header[f"HIERARCH ARCHIVE_ID_{key}"] = obj_id
    if exposure.photo_calib is not None:
        primary.header["FLUXMAG0"] = AB_REFERENCE_FLUX_NJY / exposure.photo_calib.calibration_mean
    if exposure.filter:
        primary.header["FILTER"] = exposure.filter
    if exposure.id is not None:
        primary.header["EXPID"] = int(exposure.id)
    hdus: list[Any] = [primary]
    for name, data in (
        ("IMAGE", exposure.image),
        ("MASK", exposure.mask),
        ("VARIANCE", exposure.variance),
    ):
        hdu = fits.ImageHDU(np.asarray(data), header=wcs_header.copy(), name=name)
        hdu.header["LTV1"] = -x0
        hdu.header["LTV2"] = -y0
        if name == "MASK":
            for plane, bit in exposure.mask_planes.bits.items():
                hdu.header[f"HIERARCH MP_{plane}"] = bit
        hdus.append(hdu)
    hdus.extend(archive_hdus(objects))
    fits.HDUList(hdus).writeto(path, overwrite=True)


def polygon_object(obj_id: int, vertices: Any) -> ArchiveObject:
    """An afw ``Polygon``: one catalog of ``vertices_x``/``vertices_y`` rows."""
    rows = [{"vertices_x": float(x), "vertices_y": float(y)} for x, y in np.asarray(vertices)]
    return ArchiveObject(obj_id, "Polygon", "lsst.afw.geom.polygon", [rows])


def ap_corr_objects(obj_id: int, fields: dict[str, tuple[Any, np.ndarray]]) -> list[ArchiveObject]:
    """An afw ``ApCorrMap`` (id ``obj_id``) of ``ChebyshevBoundedField`` objects (ids following):
    ``fields[name] = (bbox as (min_x, min_y, max_x, max_y) inclusive, coefficients[j, i])``."""
    rows, objs = [], []
    for k, (name, (box, coeffs)) in enumerate(fields.items(), start=1):
        c = np.atleast_2d(np.asarray(coeffs, dtype=float))
        x0, y0, x1, y1 = box
        objs.append(
            ArchiveObject(
                obj_id + k, "ChebyshevBoundedField", "lsst.afw.math",
                [{"order_x": c.shape[1] - 1, "bbox_min_x": int(x0), "bbox_min_y": int(y0),
                  "bbox_max_x": int(x1), "bbox_max_y": int(y1), "coefficients": c.ravel()}],
            )
        )  # fmt: skip
        rows.append({"name": name, "field": obj_id + k})
    return [ArchiveObject(obj_id, "ApCorrMap", "lsst.afw.image", [rows]), *objs]
