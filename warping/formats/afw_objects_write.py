"""Writers of afw persistables into an :class:`~warping.formats.afw_archive_write.ArchiveWriter`.

Each ``put_<class>(writer, obj)`` returns the archive id (0 for ``None``). Schemas (field names,
types, docs) follow the real afw files in ``../shared/data`` (obs_base ``calexp.fits``,
drp_tasks ``visitSummary_1176.fits``) and ``../shared/reference/lsst-real-products.md`` §2/§4:

============================  ==================  ==================================================
class (index ``name``)        module              columns
============================  ==================  ==================================================
``SkyWcs``                    ``lsst.afw.geom``   ``wcs`` (QB): ``"1 SkyWcs 0 "`` + AST dump
``PhotoCalib``                (empty)             flag ``isConstant``, ``calibrationMean``,
                                                  ``calibrationErr``, ``field`` (id), ``version`` 1
``ChebyshevBoundedField``     ``lsst.afw.math``   ``order_x``, ``bbox_*`` (inclusive),
                                                  ``coefficients`` (row-major ``[y, x]``)
``Polygon``                   (empty)             one row per vertex: ``vertices_x/_y``
``ApCorrMap``                 ``lsst.afw.image``  one row per name: ``name`` (64A), ``field`` (id)
``FilterLabel``               ``lsst.afw.image``  flags ``band_exists``/``physical_exists``,
                                                  ``band``, ``physical`` (32A)
``GaussianPsf``               lsst.afw.detection  ``dimensions_x/_y``, ``sigma``
``DoubleGaussianPsf``         lsst.meas.algorith  ``dimensions_x/_y``, ``sigma1``, ``sigma2``, ``b``
``PsfexPsf``                  (meas_ext. psfex)   header (``ndim`` ... ``_pixstep``), then the
                                                  2-D group: ``degree``, ``_size``, ``_comp``
                                                  (float32), ``_context_first/_second``
``RepoButlerPsf``             ``warping.psf``     ``bytes`` (QB): our PSF dict as JSON
============================  ==================  ==================================================

A constant PhotoCalib is written as afw does: ``isConstant`` set and a 1x1 Chebyshev field equal
to the mean on an empty bbox. PSFs afw has no persistable for (our ``VariableGaussianPsf``,
kernel and image PSFs, PSFEx models afw cannot hold exactly) are stored as a ``RepoButlerPsf``:
exact for our reader, but afw itself cannot evaluate them (it names the unknown class when asked
for the PSF).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.wcs import WCS

from warping.apcorr import ApCorrMap
from warping.errors import FormatError
from warping.formats.afw_archive_write import ArchiveWriter, Catalog, Field
from warping.photocalib import ChebyshevBoundedField, PhotoCalib
from warping.polygon import ValidPolygon
from warping.psf.analytic import DoubleGaussianPsf, GaussianPsf
from warping.psf.image import PsfexPsf

__all__ = [
    "FALLBACK_PSF_CLASS",
    "FALLBACK_PSF_MODULE",
    "ast_skywcs",
    "put_ap_corr_map",
    "put_chebyshev",
    "put_filter_label",
    "put_photo_calib",
    "put_polygon",
    "put_psf",
    "put_skywcs",
]

#: Archive class name of a PSF afw has no persistable for (our JSON dict in a ``bytes`` column).
FALLBACK_PSF_CLASS = "RepoButlerPsf"
FALLBACK_PSF_MODULE = "warping.psf"

_BBOX = (
    Field("bbox_min_x", "J", "bounding box (minimum)", "pixel"),
    Field("bbox_min_y", "J", "bounding box (minimum)", "pixel"),
    Field("bbox_max_x", "J", "bounding box (maximum)", "pixel"),
    Field("bbox_max_y", "J", "bounding box (maximum)", "pixel"),
)


def ast_skywcs(wcs: Any, source: str = "<warp>") -> Any:
    """``wcs`` as an :class:`~warping.ast_wcs.AstSkyWcs`: itself, or an astropy (parent-pixel)
    WCS read by AST from its FITS header as afw reads headers."""
    from warping.ast_wcs import AstSkyWcs

    if isinstance(wcs, AstSkyWcs):
        return wcs
    if isinstance(wcs, WCS):
        return AstSkyWcs.from_fits_header(wcs.to_header(relax=True), (0, 0), source=source)
    raise FormatError(
        f"{source}: a {type(wcs).__name__} WCS cannot be written as an afw SkyWcs (astropy WCS "
        "and AstSkyWcs can)"
    )


def put_skywcs(aw: ArchiveWriter, wcs: Any) -> int:
    """A ``SkyWcs`` (one row, ``wcs`` bytes); an astropy WCS is converted with AST first."""

    text = ast_skywcs(wcs).to_text().encode("ascii")

    def write(_: ArchiveWriter) -> list[Catalog]:
        fields = [Field("wcs", "QB", "wcs string representation")]
        return [Catalog(fields, [(np.frombuffer(text, dtype=np.uint8),)])]

    return aw.put(wcs, "SkyWcs", "lsst.afw.geom", write, key=text)


def put_chebyshev(aw: ArchiveWriter, fld: ChebyshevBoundedField | None, *, key: Any = None,
                  constant: float | None = None) -> int:  # fmt: skip
    """A ``ChebyshevBoundedField``: ``fld``, or (``constant``) afw's 1x1 field of a constant
    PhotoCalib on an empty bbox. ``key`` identifies the object for de-duplication."""

    def write(_: ArchiveWriter) -> list[Catalog]:
        if fld is None:
            box, coeffs = (0, 0, -1, -1), np.array([[constant]], dtype=float)
        else:
            b = fld.bbox
            box, coeffs = (b.x0, b.y0, b.x1, b.y1), np.asarray(fld.coefficients, dtype=float)
        fields = [
            Field("order_x", "J", "maximum Chebyshev function order in x"),
            *_BBOX,
            Field("coefficients", f"{coeffs.size}D",
                  "Chebyshev function coefficients, ordered by y then x"),
        ]  # fmt: skip
        return [Catalog(fields, [(coeffs.shape[1] - 1, *box, coeffs.ravel())])]

    return aw.put(fld if fld is not None else key, "ChebyshevBoundedField", "lsst.afw.math", write)


def put_photo_calib(aw: ArchiveWriter, pc: PhotoCalib | None) -> int:
    """A ``PhotoCalib`` (version 1, nJy per count) and its bounded field."""
    if pc is None:
        return 0

    def write(w: ArchiveWriter) -> list[Catalog]:
        field_id = put_chebyshev(w, pc.field, key=(pc, "field"), constant=pc.calibration_mean)
        fields = [
            Field("isConstant", "X", "Is this spatially-constant?"),
            Field("calibrationMean", "D", "mean calibration on this PhotoCalib's domain", "count"),
            Field("calibrationErr", "D", "1-sigma error on calibrationMean", "count"),
            Field("field", "J", "archive ID of the BoundedField object"),
            Field("version", "J", "version of this PhotoCalib"),
        ]
        row = (pc.is_constant, pc.calibration_mean, pc.calibration_err, field_id, 1)
        return [Catalog(fields, [row])]

    fld = pc.field
    key = (pc.calibration_mean, pc.calibration_err) + (
        () if fld is None else (_box_key(fld.bbox), fld.coefficients.tobytes())
    )
    return aw.put(pc, "PhotoCalib", "", write, key=key)


def _box_key(b: Any) -> tuple[int, int, int, int]:
    return (b.x0, b.y0, b.x1, b.y1)


def put_polygon(aw: ArchiveWriter, polygon: ValidPolygon | None) -> int:
    """A ``Polygon``: one row per vertex (parent pixels), as given."""
    if polygon is None:
        return 0

    def write(_: ArchiveWriter) -> list[Catalog]:
        fields = [
            Field("vertices_x", "D", "list of vertex points"),
            Field("vertices_y", "D", "list of vertex points"),
        ]
        return [Catalog(fields, [(float(x), float(y)) for x, y in polygon.vertices])]

    return aw.put(polygon, "Polygon", "", write, key=polygon.vertices.tobytes())


def put_ap_corr_map(aw: ArchiveWriter, ap_corr: ApCorrMap | None) -> int:
    """An ``ApCorrMap``: one row per name with the id of its ``ChebyshevBoundedField``."""
    if ap_corr is None:
        return 0

    def write(w: ArchiveWriter) -> list[Catalog]:
        rows = [(name, put_chebyshev(w, ap_corr[name])) for name in ap_corr]
        fields = [
            Field("name", "64A", "name of the aperture correction"),
            Field("field", "J", "archive ID of the BoundedField object"),
        ]
        return [Catalog(fields, rows)]

    return aw.put(ap_corr, "ApCorrMap", "lsst.afw.image", write)


def put_filter_label(aw: ArchiveWriter, physical: str | None) -> int:
    """A ``FilterLabel`` with only its physical filter (our exposures have one filter label)."""
    if not physical:
        return 0
    if len(physical) > 32:
        raise FormatError(f"filter label {physical!r} is longer than afw's 32 characters")

    def write(_: ArchiveWriter) -> list[Catalog]:
        fields = [
            Field("band_exists", "X", "Existence flag for band"),
            Field("band", "32A", "Name of the band."),
            Field("physical_exists", "X", "Existence flag for physical"),
            Field("physical", "32A", "Name of the physical filter."),
        ]
        return [Catalog(fields, [(False, "", True, physical)])]

    return aw.put(("filter", physical), "FilterLabel", "lsst.afw.image", write)


def _dimensions() -> list[Field]:
    return [
        Field("dimensions_x", "J", "width/height of realization of Psf", "pixel"),
        Field("dimensions_y", "J", "width/height of realization of Psf", "pixel"),
    ]


def put_psf(aw: ArchiveWriter, psf: Any) -> int:
    """A PSF: afw's ``GaussianPsf`` / ``DoubleGaussianPsf``, else a ``RepoButlerPsf`` (our JSON
    dict). A ``CoaddPsf`` is :func:`warping.formats.afw_exposure_write.put_coadd_psf`'s."""
    if psf is None:
        return 0
    if type(psf) is GaussianPsf:
        g = psf

        def gaussian(_: ArchiveWriter) -> list[Catalog]:
            fields = [*_dimensions(), Field("sigma", "D", "radius of Gaussian", "pixel")]
            return [Catalog(fields, [(g.size, g.size, g.sigma)])]

        return aw.put(psf, "GaussianPsf", "lsst.afw.detection", gaussian, key=(g.size, g.sigma))
    if type(psf) is DoubleGaussianPsf:
        d = psf

        def double(_: ArchiveWriter) -> list[Catalog]:
            fields = [
                Field("dimensions_x", "J", "width/height of kernel", "pixel"),
                Field("dimensions_y", "J", "width/height of kernel", "pixel"),
                Field("sigma1", "D", "radius of inner Gaussian", "pixel"),
                Field("sigma2", "D", "radius of outer Gaussian", "pixel"),
                Field("b", "D", "central amplitude of outer Gaussian (inner amplitude == 1)"),
            ]
            return [Catalog(fields, [(d.size, d.size, d.sigma1, d.sigma2, d.b)])]

        key = (d.size, d.sigma1, d.sigma2, d.b)
        return aw.put(psf, "DoubleGaussianPsf", "lsst.meas.algorithms", double, key=key)
    if type(psf) is PsfexPsf and _afw_psfex_exact(psf):
        return _put_psfex(aw, psf)
    from warping.coadd_inputs import encode_json
    from warping.psf import psf_to_dict

    data = encode_json(psf_to_dict(psf)).encode("utf-8")

    def fallback(_: ArchiveWriter) -> list[Catalog]:
        fields = [Field("bytes", "QB", "repo-butler PSF dict (JSON)")]
        return [Catalog(fields, [(np.frombuffer(data, dtype=np.uint8),)])]

    return aw.put(psf, FALLBACK_PSF_CLASS, FALLBACK_PSF_MODULE, fallback, key=data)


def _afw_psfex_exact(psf: PsfexPsf) -> bool:
    """Whether afw's ``PsfexPsf`` holds ``psf`` exactly: 0-based context (models the LSST stack
    fitted), the default stamp size, and float32 components and step (afw stores them so)."""
    comp32 = psf.comp.astype(np.float32)
    default = PsfexPsf(comp32, psf.sample, psf.polzero, psf.polscal, psf.degree)
    return (
        psf.context_origin == 0.0
        and psf.size == default.size
        and bool(np.array_equal(comp32.astype(np.float64), psf.comp))
        and float(np.float32(psf.sample)) == psf.sample
    )


def _put_psfex(aw: ArchiveWriter, psf: PsfexPsf) -> int:
    """meas_extensions_psfex ``PsfexPsf``: one 2-D group of degree ``psf.degree``.

    ``basis`` holds the polynomial basis at the average position (afw stores the basis last
    evaluated) and ``coeff`` zeros (a fitting workspace; the model is in ``_comp``).
    """
    ncomp, ny, nx = psf.comp.shape
    ax, ay = psf.average_position()
    u = (ax - psf.polzero[0]) / psf.polscal[0]
    v = (ay - psf.polzero[1]) / psf.polscal[1]
    basis = [u**i * v**j for j in range(psf.degree + 1) for i in range(psf.degree + 1 - j)]

    def write(_: ArchiveWriter) -> list[Catalog]:
        head = Catalog(
            [
                Field("ndim", "J", "Number of elements in group"),
                Field("ngroup", "J", "Number of elements in degree"),
                Field("ncoeff", "J", "Number of coefficients"),
                Field("_size_size", "J", "Size of _size array"),
                Field("_comp_size", "J", "Size of _comp array"),
                Field("_context_size", "J", "Size of _context array"),
                Field("averagePosition_x", "D", "average position of stars used to make the PSF",
                      "pixel"),
                Field("averagePosition_y", "D", "average position of stars used to make the PSF",
                      "pixel"),
                Field("_pixstep", "E", "oversampling", "pixel"),
            ],
            [(2, 1, ncomp, 3, psf.comp.size, 2, ax, ay, psf.sample)],
        )  # fmt: skip
        body = Catalog(
            [
                Field("group", "2J", "Groups (of coefficients?)"),
                Field("degree", "1J", "Degree in each group"),
                Field("basis", f"{ncomp}D", "Values of the basis functions"),
                Field("coeff", f"{ncomp}D", "Polynomial coefficients"),
                Field("_size", "3J", "PSF dimensions"),
                Field("_comp", f"{psf.comp.size}E", "Complete pixel data"),
                Field("_context_first", "2D", "Offset to apply to context data"),
                Field("_context_second", "2D", "Scale to apply to context data"),
            ],
            [
                (
                    np.zeros(2, dtype=np.int32), np.array([psf.degree]), np.array(basis),
                    np.zeros(ncomp), np.array([nx, ny, ncomp]), psf.comp.astype(np.float32).ravel(),
                    np.array(psf.polzero), np.array(psf.polscal),
                )
            ],
        )  # fmt: skip
        return [head, body]

    key = (psf.comp.tobytes(), psf.sample, psf.polzero, psf.polscal, psf.degree, (ax, ay))
    return aw.put(psf, "PsfexPsf", "lsst.meas.extensions.psfex", write, key=key)
