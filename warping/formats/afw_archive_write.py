"""An afw ``OutputArchive`` built with astropy: persistables -> ``ARCHIVE_INDEX`` + data HDUs.

The layout is the one :class:`warping.formats.lsst_afw.LsstArchive` reads
(``../shared/reference/lsst-real-products.md`` §0):

* :meth:`ArchiveWriter.put` gives an object its archive id (from 1) *before* its catalogs are
  made, so the children it puts while writing get later ids; the same Python object put twice
  keeps its first id (afw de-duplicates by pointer);
* each catalog of an object goes into the data table of the first earlier catalog with the same
  schema (column names and TFORMs), else a new one; index rows are added when a catalog is saved,
  so a parent's rows follow its children's (as in real calexps: PhotoCalib 246 after its field
  247);
* data HDUs carry ``EXTTYPE='ARCHIVE_DATA'``, ``AR_CATN`` (1-based), ``AR_NAME``/``EXTNAME`` (the
  first class stored there) and ``AFW_TABLE_VERSION = 3``; columns carry afw's ``TDOC``/``TCCLS``
  cards; flags are packed into a ``flags`` bit column with ``FLAGCOL``/``TFLAGn``.

The object writers for the classes a warp needs (SkyWcs, PhotoCalib, ChebyshevBoundedField,
Polygon, ApCorrMap, FilterLabel, Gaussian PSFs) are in :mod:`warping.formats.afw_objects_write`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits

__all__ = ["AFW_TABLE_VERSION", "ArchiveWriter", "Catalog", "Field"]

#: ``AFW_TABLE_VERSION`` of modern afw tables (points as ``_x``/``_y`` columns).
AFW_TABLE_VERSION = 3


@dataclass(frozen=True)
class Field:
    """One afw table field: name, FITS TFORM, doc and unit.

    TFORMs: ``J``/``K``/``D`` scalars, ``32A`` fixed strings, ``QA`` variable strings, ``QB``/``QD``
    variable arrays, ``nD``/``nJ`` fixed arrays (a leading count marks an afw ``Array`` field,
    even ``1D``), ``X`` a flag bit packed into the ``flags`` column."""

    name: str
    tform: str
    doc: str = ""
    unit: str = ""

    @property
    def is_flag(self) -> bool:
        return self.tform == "X"

    @property
    def variable(self) -> bool:
        return self.tform.startswith("Q")


@dataclass
class Catalog:
    """One catalog of a persistable: its schema and rows (each a tuple in schema order)."""

    fields: Sequence[Field]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple((f.name, f.tform) for f in self.fields)


@dataclass
class _Table:
    catalog: Catalog
    name: str
    rows: list[tuple[Any, ...]] = field(default_factory=list)


class ArchiveWriter:
    """Collects persistables and writes them as an afw archive (index HDU + data HDUs)."""

    def __init__(self) -> None:
        self._ids: dict[Any, tuple[int, Any]] = {}  # id(obj) or key -> (archive id, obj kept alive)
        self._next = 1
        self._tables: list[_Table] = []
        self._index: list[tuple[int, int, int, int, int, str, str]] = []

    def put(
        self,
        obj: Any,
        name: str,
        module: str,
        write: Callable[[ArchiveWriter], Sequence[Catalog]],
        *,
        key: Any = None,
    ) -> int:
        """The archive id of ``obj`` (persisted by ``write(self)`` on its first put).

        ``write`` may :meth:`put` children (their ids follow ``obj``'s) and returns the object's
        catalogs in persistable order. ``None`` is archive id 0. Objects are the same when they
        are the same Python object or, when given, have equal hashable ``key`` s (a value such
        as a WCS's text: the CoaddPsf's CCDs then share the inputs table's objects, as in afw).
        """
        if obj is None:
            return 0
        ident = (name, key) if key is not None else id(obj)
        known = self._ids.get(ident)
        if known is not None:
            return known[0]
        obj_id = self._next
        self._next += 1
        self._ids[ident] = (obj_id, obj)
        for persistable, catalog in enumerate(write(self)):
            self._save(obj_id, persistable, catalog, name, module)
        return obj_id

    def _save(
        self, obj_id: int, persistable: int, catalog: Catalog, name: str, module: str
    ) -> None:
        table = next((t for t in self._tables if t.catalog.key() == catalog.key()), None)
        if table is None:
            table = _Table(catalog, name)
            self._tables.append(table)
        cat_archive = self._tables.index(table) + 1
        self._index.append(
            (obj_id, cat_archive, persistable, len(table.rows), len(catalog.rows), name, module)
        )
        table.rows.extend(catalog.rows)

    def hdus(self) -> list[fits.BinTableHDU]:
        """The ``ARCHIVE_INDEX`` HDU followed by the data HDUs."""
        index_fields = (
            Field("id", "J", "Archive ID of the persistable object that owns the records "
                  "pointed at by this entry"),
            Field("cat.archive", "J", "index of the catalog this entry points to, from the "
                  "perspective of the archive"),
            Field("cat.persistable", "J", "index of the catalog this entry points to, from the "
                  "perspective of the Persistable"),
            Field("row0", "J", "first row used by the persistable object in this catalog"),
            Field("nrows", "J", "number of rows used by the persistable object in this catalog"),
            Field("name", "64A", "unique name for the persistable object's class"),
            Field("module", "64A", "Python module that should be imported to register the "
                  "object's factory"),
        )  # fmt: skip
        index = table_hdu(Catalog(index_fields, list(self._index)))
        _cards(index.header, "ARCHIVE_INDEX", 0, "ARCHIVE_INDEX")
        index.header["AR_NCAT"] = (
            len(self._tables) + 1,
            "# of catalogs in this archive, including the in",
        )
        out = [index]
        for k, table in enumerate(self._tables, start=1):
            hdu = table_hdu(Catalog(table.catalog.fields, table.rows))
            _cards(hdu.header, "ARCHIVE_DATA", k, table.name)
            out.append(hdu)
        return out


#: afw's comment, cut (as afw's files have it) to fit the 80-character card.
_CATN_DOC = "# of this catalog relative to the start of this"


def _cards(header: fits.Header, exttype: str, catn: int, name: str) -> None:
    header["EXTTYPE"] = exttype
    if exttype == "ARCHIVE_DATA":
        header["AR_CATN"] = (catn, _CATN_DOC)
        header["AR_NAME"] = (name, "Class name for objects stored here")
        header["EXTNAME"] = name
    else:
        header["EXTNAME"] = exttype
        header["AR_CATN"] = (catn, _CATN_DOC)
    header["HIERARCH AFW_TABLE_VERSION"] = AFW_TABLE_VERSION


def _column_array(f: Field, values: list[Any]) -> Any:
    if f.variable:
        cells = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            if f.tform == "QA":
                cells[i] = str(v)
            else:
                cells[i] = np.ascontiguousarray(v)
        return cells
    code = f.tform.lstrip("0123456789")
    count = int(f.tform[: len(f.tform) - len(code)] or 1)
    if code == "A":
        return np.array([str(v) for v in values], dtype=f"U{max(count, 1)}")
    dtype = {"J": np.int32, "K": np.int64, "D": np.float64, "E": np.float32, "B": np.uint8}[code]
    arr = np.array(values, dtype=dtype)
    return arr.reshape(len(values), count) if count > 1 else arr.reshape(len(values))


def table_hdu(catalog: Catalog) -> fits.BinTableHDU:
    """A binary table of ``catalog`` with afw's column cards (``TDOC``, ``TCCLS``, ``TUNIT``;
    flag fields packed into one ``flags`` column)."""
    flags = [i for i, f in enumerate(catalog.fields) if f.is_flag]
    plain = [i for i, f in enumerate(catalog.fields) if not f.is_flag]
    cols = []
    if flags:
        bits = np.array([[bool(r[i]) for i in flags] for r in catalog.rows], dtype=bool)
        cols.append(fits.Column("flags", f"{len(flags)}X", array=bits.reshape(-1, len(flags))))
    for i in plain:
        f = catalog.fields[i]
        values = [r[i] for r in catalog.rows]
        tform = f"1{f.tform}()" if f.variable else f.tform  # afw spells them 1QB(n), 1J ...
        tform = tform if tform[0].isdigit() else f"1{tform}"
        cols.append(fits.Column(f.name, tform, unit=f.unit or None, array=_column_array(f, values)))
    hdu = fits.BinTableHDU.from_columns(cols, nrows=len(catalog.rows))
    h = hdu.header
    n = 1
    if flags:
        h["FLAGCOL"] = (1, "Column number for the bitflags.")
        for bit, i in enumerate(flags, start=1):
            h[f"TFLAG{bit}"] = catalog.fields[i].name
            h[f"TFDOC{bit}"] = catalog.fields[i].doc
        n = 2
    for k, i in enumerate(plain, start=n):
        f = catalog.fields[i]
        if f.doc:
            h[f"TDOC{k}"] = f.doc
        code = f.tform.lstrip("0123456789")
        array = f.variable or (code != "A" and f.tform[0].isdigit())
        h[f"TCCLS{k}"] = (
            "String" if code == "A" or f.tform == "QA" else "Array" if array else "Scalar",
            "Field template used by lsst.afw.table",
        )
    return hdu
