"""Data IDs of LSST calexps read from the files themselves: the per-instrument rule table.

``rb ingest REPO calexp FILE...`` asks the ``exposure`` formatter for each file's data ID
(:class:`repo_butler.formatters.base.ReadsDataId`); the formatter reads the file's primary header
and, when the file has an afw archive, two small archived objects, the ``FilterLabel`` (band and
physical filter) and the ``Detector`` (its id). Pixels are never read or decompressed.

The first rule of :data:`RULES` that recognises the file derives ``visit``, ``ccd``, ``filter``
(and ``band``, used only to check a ``-d band=...``) from its cards. Where several cards hold
the same key, every one present must agree (the file contradicting itself is a
:class:`~warping.errors.FormatError`); for ``filter`` the first present wins (physical filter
before band). ``pointing`` is read from a ``POINTING`` card when the file has one (none of the
real samples do); otherwise it is a documented rule default, used only when neither the path,
``-d`` nor an already registered dataset gives it:

=================  ==============================  ===========================================
rule               recognised by                   pointing default
=================  ==============================  ===========================================
HSC                INSTRUME HSC, EXP-ID/FRAMEID    Gen2 obs_subaru: ``int(MJD) - 55927`` (days
                   ``HSC?########``, or a physical  since 2012-01-01); without ``MJD``,
                   filter ``HSC-*``                 ``pointing = visit``
CFHT MegaPrime     INSTRUME/INSTRUMENT MegaPrime   ``pointing = visit``
LSST afw           any other file                  ``pointing = visit``
=================  ==============================  ===========================================

Cards per rule (see :data:`RULES`): HSC visit from ``EXP-ID`` (``HSCE`` + 8 digits, or
``HSC`` + letter + 6 digits + ``00`` with the letter counting millions) and ``EXPID // 200``, ccd
from ``DET-ID``, the archived Detector id and ``EXPID % 200``; CFHT visit from ``IDNUM``,
``EXPNUM`` and ``EXPID // 36``, ccd from the Detector id, ``DETNAME`` (``ccd12``) and
``EXPID % 36``; others visit from ``IDNUM``/``OBSID``, ccd from the Detector id. Filter: the
FilterLabel's physical filter, the ``FILTER`` card (not ``_unknown_``), then (HSC) ``FILTER01``
upper-cased, then the FilterLabel's band. ``EXPID`` is the detector-exposure id afw wrote
(``visit * 200 + ccd`` for HSC, ``visit * 36 + ccd`` for CFHT; the simulator writes the HSC
form).

Rules answer only for dataset types with both ``visit`` and ``ccd`` dimensions (single-CCD
exposures such as calexps); warps and coadds take their data IDs from paths or ``-d``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from repo_butler.formatters.base import FileDataId
from warping.errors import FormatError
from warping.formats._common import reading

__all__ = [
    "RULES",
    "CalexpHeader",
    "InstrumentRule",
    "data_id_from_exposure_file",
    "open_calexp_header",
]

logger = logging.getLogger(__name__)

#: MJD of 2012-01-01, day 0 of HSC's Gen2 ``pointing`` (obs_subaru's truncated MJD).
HSC_POINTING_DAY0 = 55927


class CalexpHeader:
    """What an ingest rule reads of a calexp: the primary cards, the archived FilterLabel and,
    only when asked, the archived Detector's id (the one costly read).

    Parameters
    ----------
    cards : Mapping
        Primary header cards (an astropy ``Header``: values are parsed when looked up).
    band, physical : str or None
        The archived FilterLabel's band and physical filter (``None``: absent).
    detector : callable, optional
        Reads the archived Detector's id (``None`` if the file has none).
    """

    def __init__(
        self,
        cards: Mapping[str, Any],
        band: str | None = None,
        physical: str | None = None,
        detector: Callable[[], int | None] | None = None,
    ) -> None:
        self.cards = cards
        self.band = band
        self.physical = physical
        self._detector = detector

    @functools.cached_property
    def detector_id(self) -> int | None:
        """The archived Detector's id (read on first use)."""
        return self._detector() if self._detector is not None else None


Found = tuple[Any, str]
"""A value read and its origin as shown in reports (``(849375, "IDNUM")``)."""


@dataclass(frozen=True)
class Source:
    """One place a key's value can be read from: ``read(header)`` or ``None`` when absent.

    A ``costly`` source (the archived Detector) is read only when no other source of the same
    key has the value.
    """

    describe: str
    read: Callable[[CalexpHeader], Found | None] = field(repr=False, compare=False)
    costly: bool = False


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text if text and text != "_unknown_" else None


def card(name: str, parse: Callable[[Any], Any] = _int, describe: str = "") -> Source:
    """The value of card ``name`` as ``parse`` reads it (``None`` from ``parse``: absent)."""

    def read(h: CalexpHeader) -> Found | None:
        value = parse(h.cards[name]) if name in h.cards else None
        return None if value is None else (value, name)

    return Source(describe or f"{name} card", read)


def packed(factor: int, part: Literal["visit", "ccd"]) -> Source:
    """``visit`` or ``ccd`` unpacked from ``EXPID = visit * factor + ccd``."""

    def read(h: CalexpHeader) -> Found | None:
        expid = _int(h.cards.get("EXPID"))
        if expid is None or expid < 0:
            return None
        if part == "visit":
            return expid // factor, f"EXPID {expid}//{factor}"
        return expid % factor, f"EXPID {expid}%{factor}"

    op = "//" if part == "visit" else "%"
    return Source(f"EXPID card ({part} = EXPID {op} {factor})", read)


def _detector(h: CalexpHeader) -> Found | None:
    return None if h.detector_id is None else (h.detector_id, "Detector id")


def _physical(h: CalexpHeader) -> Found | None:
    return None if h.physical is None else (h.physical, "FilterLabel physical")


def _band(h: CalexpHeader) -> Found | None:
    return None if h.band is None else (h.band, "FilterLabel band")


DETECTOR = Source("the Detector in the afw archive", _detector, costly=True)
PHYSICAL = Source("the FilterLabel's physical filter", _physical)
BAND = Source("the FilterLabel's band", _band)
FILTER_CARD = card("FILTER", _text)


def _hsc_visit(value: Any) -> int | None:
    """Visit from an HSC ``EXP-ID``: ``HSCE`` + 8 digits is the visit itself; the older
    ``HSC`` + letter + 6 digits + ``00`` adds a million per letter after ``A``."""
    text = value.strip() if isinstance(value, str) else ""
    match = re.fullmatch(r"HSCE(\d{8})", text)
    if match:
        return int(match.group(1))
    match = re.fullmatch(r"HSC([A-Z])(\d{6})00", text)
    if match:
        return int(match.group(2)) + 1_000_000 * (ord(match.group(1)) - ord("A"))
    return None


def _upper(value: Any) -> str | None:
    """HSC's ``FILTER01`` barcode name upper-cased (``HSC-i`` -> ``HSC-I``), as Gen2 did."""
    text = _text(value)
    return text.upper() if text else None


def _cfht_ccd(value: Any) -> int | None:
    match = re.fullmatch(r"ccd(\d+)", value.strip()) if isinstance(value, str) else None
    return int(match.group(1)) if match else None


def _hsc_pointing(h: CalexpHeader) -> Found | None:
    mjd = h.cards.get("MJD")
    if isinstance(mjd, bool) or not isinstance(mjd, int | float):
        return None
    return int(mjd) - HSC_POINTING_DAY0, f"rule: pointing = int(MJD) - {HSC_POINTING_DAY0}"


@dataclass(frozen=True)
class InstrumentRule:
    """How one instrument's calexps carry their data ID.

    Parameters
    ----------
    name : str
        Shown in reports.
    recognise : tuple of (str, str)
        ``(card, regex)`` pairs; the rule applies when any card's value matches in full. The
        pseudo-card ``physical_filter`` is the FilterLabel's physical filter or ``FILTER``.
    visit, ccd : tuple of Source
        Where the visit and the CCD are read; every source present must agree.
    filter : tuple of Source
        Where the filter is read; the first present wins.
    pointing_default : tuple of Source
        Rule defaults for ``pointing`` tried before ``pointing = visit``.
    """

    name: str
    recognise: tuple[tuple[str, str], ...]
    visit: tuple[Source, ...]
    ccd: tuple[Source, ...]
    filter: tuple[Source, ...] = (PHYSICAL, FILTER_CARD, BAND)
    pointing_default: tuple[Source, ...] = ()

    def matches(self, h: CalexpHeader) -> bool:
        """Whether this rule recognises the file."""
        for name, pattern in self.recognise:
            if name == "physical_filter":
                value = h.physical or _text(h.cards.get("FILTER"))
            else:
                value = h.cards.get(name)
            if isinstance(value, str) and re.fullmatch(pattern, value.strip()):
                return True
        return False

    def derive(self, h: CalexpHeader, source: str, known: Mapping[str, Any]) -> FileDataId:
        """The data ID ``h`` holds (values), the pointing default and what was not found.

        Raises
        ------
        FormatError
            If two cards of the file disagree on the visit or the CCD.
        """
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        missing: dict[str, str] = {}
        for key, sources, agree in (
            ("visit", self.visit, True),
            ("ccd", self.ccd, True),
            ("filter", self.filter, False),
        ):
            found = [f for f in (s.read(h) for s in sources if not s.costly) if f is not None]
            if not found:
                found = [f for f in (s.read(h) for s in sources if s.costly) if f is not None]
            if not found:
                missing[key] = "looked for " + ", ".join(s.describe for s in sources)
                continue
            if agree:
                for value, origin in found[1:]:
                    if value != found[0][0]:
                        raise FormatError(
                            f"{source}: its header contradicts itself: {key}={found[0][0]!r} "
                            f"({found[0][1]}) but {key}={value!r} ({origin}); give -d {key}=VALUE "
                            "only after checking which is right, or fix the file"
                        )
            values[key] = found[0][0]
            origins[key] = " = ".join(o for _, o in found) if agree else found[0][1]
        band = _band(h)
        if band is not None:
            values["band"], origins["band"] = band
        defaults: dict[str, Any] = {}
        pointing = card("POINTING").read(h)
        if pointing is not None:
            values["pointing"], origins["pointing"] = pointing
        else:
            rule = next((f for f in (s.read(h) for s in self.pointing_default) if f), None)
            visit = values.get("visit", known.get("visit"))
            if rule is None and visit is not None:
                rule = (visit, "rule: pointing = visit")
            if rule is not None:
                defaults["pointing"], origins["pointing"] = rule
            else:
                missing["pointing"] = "no POINTING card; the rule pointing = visit needs a visit"
        return FileDataId(values, defaults, origins, missing, self.name)


#: The rule table, tried in order (the last one recognises every file).
RULES: tuple[InstrumentRule, ...] = (
    InstrumentRule(
        name="HSC",
        recognise=(
            ("INSTRUME", r"HSC|Hyper Suprime-Cam"),
            ("EXP-ID", r"HSC[A-Z]\d{8}"),
            ("FRAMEID", r"HSC[A-Z]\d{8}"),
            ("physical_filter", r"HSC-.+"),
        ),
        visit=(card("EXP-ID", _hsc_visit, "EXP-ID card (HSC scheme)"), packed(200, "visit")),
        ccd=(card("DET-ID"), DETECTOR, packed(200, "ccd")),
        filter=(PHYSICAL, FILTER_CARD, card("FILTER01", _upper), BAND),
        pointing_default=(Source("MJD card (HSC Gen2 rule)", _hsc_pointing),),
    ),
    InstrumentRule(
        name="CFHT MegaPrime",
        recognise=(("INSTRUME", r"MegaPrime"), ("INSTRUMENT", r"MegaPrime")),
        visit=(card("IDNUM"), card("EXPNUM"), packed(36, "visit")),
        ccd=(DETECTOR, card("DETNAME", _cfht_ccd, "DETNAME card (ccdNN)"), packed(36, "ccd")),
    ),
    InstrumentRule(
        name="LSST afw",
        recognise=(),
        visit=(card("IDNUM"), card("OBSID")),
        ccd=(DETECTOR,),
    ),
)


def _archive_id(cards: Mapping[str, Any], component: str) -> int | None:
    for key in (f"ARCHIVE_ID_{component}", f"{component}_ID"):
        value = _int(cards.get(key))
        if value is not None and value > 0:
            return value
    return None


def _string(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    if hasattr(value, "__len__") and not isinstance(value, str):  # a 1QA column: characters
        return "".join(str(c) for c in value).strip()
    return str(value).strip()


def _archive_row(
    hdul: Any, cards: Mapping[str, Any], obj_id: int, kind: str, source: str
) -> Any | None:
    """The first row of archive object ``obj_id`` if it is a ``kind`` (``FilterLabel``), read
    through the archive index (``AR_HDU``, 1-based) without touching the other HDUs."""
    import numpy as np

    first = _int(cards.get("AR_HDU"))
    if first is None or first < 2:
        return None
    index = hdul[first - 1].data
    names = [n.lower() for n in index.columns.names]
    col = {n: names.index(n) for n in names}
    ids = np.asarray(index.field(col["id"]))
    for i in np.flatnonzero(ids == obj_id):
        if _string(index.field(col["name"])[i]) != kind:
            return None
        part = col.get("cat.persistable", col.get("cat_persistable"))
        if part is not None and int(index.field(part)[i]) != 0:
            continue
        where = col.get("cat.archive", col.get("cat_archive"))
        if where is None:
            raise FormatError(f"{source}: the archive index has no cat.archive column")
        cat = int(index.field(where)[i])
        if cat < 1:
            return None
        return hdul[first - 1 + cat].data[int(index.field(col["row0"])[i])]
    return None


@contextlib.contextmanager
def open_calexp_header(fileobj: BinaryIO, source: str) -> Iterator[CalexpHeader]:
    """The primary cards and FilterLabel of a calexp (the Detector on demand), open for the
    block. Pixels are never read: tile-compressed images are skipped as raw tables.

    Raises
    ------
    FormatError
        If the file is not FITS or its archive cannot be read (naming ``source``).
    """
    from astropy.io import fits

    with reading(source, "the header"):
        head = fileobj.read(9)
        fileobj.seek(0)
        if head[:2] != b"\x1f\x8b" and head != b"SIMPLE  =":
            raise FormatError(f"{source}: not a FITS file (it does not start with 'SIMPLE  =')")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdul = fits.open(
                fileobj, lazy_load_hdus=True, memmap=False, disable_image_compression=True
            )
        with hdul:
            cards = hdul[0].header
            band = physical = None
            filter_id = _archive_id(cards, "FILTER")
            row = _archive_row(hdul, cards, filter_id, "FilterLabel", source) if filter_id else None
            if row is not None:
                names = row.array.columns.names
                band = _text(_string(row["band"])) if "band" in names else None
                physical = _text(_string(row["physical"])) if "physical" in names else None

            def detector() -> int | None:
                det_id = _archive_id(cards, "DETECTOR")
                found = _archive_row(hdul, cards, det_id, "Detector", source) if det_id else None
                return _int(int(found["id"])) if found is not None else None

            yield CalexpHeader(cards, band, physical, detector)


def data_id_from_exposure_file(
    fileobj: BinaryIO,
    *,
    source: str,
    dimensions: Sequence[str],
    known: Mapping[str, Any],
    rules: Sequence[InstrumentRule] = RULES,
) -> FileDataId:
    """What a calexp says about its data ID (the ``exposure`` formatter's ``data_id_from_file``).

    Parameters
    ----------
    fileobj : binary file
        The calexp (our exposure format or an afw file, possibly tile-compressed).
    source : str
        Its path or URL, for messages.
    dimensions : sequence of str
        The dataset type's dimensions; without both ``visit`` and ``ccd`` nothing is read.
    known : Mapping
        The data ID known from the path and ``-d`` (for ``pointing = visit``).
    rules : sequence of InstrumentRule
        The rule table (default :data:`RULES`).

    Raises
    ------
    FormatError
        If the file cannot be read or contradicts itself.
    """
    if not {"visit", "ccd"} <= set(dimensions):
        return FileDataId()
    with open_calexp_header(fileobj, source) as header:
        rule = next((r for r in rules if not r.recognise or r.matches(header)), None)
        if rule is None:
            return FileDataId()
        with reading(source, "the header"):
            return rule.derive(header, source, known)
