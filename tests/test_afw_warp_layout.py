"""The afw-layout warp's HDUs, header keys and archive catalogs against real afw files, field by
field (issue #26): ``lsst-obs_base/calexp.fits`` (a modern afw exposure with SkyWcs, PhotoCalib,
ChebyshevBoundedField, Polygon, FilterLabel, GaussianPsf, ApCorrMap and an empty CoaddInputs)
and ``lsst-drp_tasks/visitSummary_1176.fits`` (an ExposureCatalog). Skipped without
``../shared/data``. CoaddPsf and DoubleGaussianPsf appear in no sample; their schemas follow
meas_algorithms' source and are checked by the round-trip tests only. A real PSFEx model (CFHT
calexp) is written back and compared with its original catalogs."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from afw_warp_support import synthetic_warp
from astropy.io import fits

from warping.formats.afw_exposure_write import exposure_to_afw_hdulist
from warping.psf.analytic import GaussianPsf

#: Archive classes both files hold; the CCD catalog's PSF is made a GaussianPsf below.
SHARED_CLASSES = (
    "SkyWcs", "PhotoCalib", "ChebyshevBoundedField", "Polygon", "FilterLabel", "GaussianPsf",
    "ApCorrMap", "CoaddInputs",
)  # fmt: skip


@pytest.fixture(scope="module")
def written() -> fits.HDUList:
    warp = synthetic_warp()
    warp.psf = GaussianPsf(2.0, 17)  # the real file's PSF class (a PSF-matched warp's kind)
    buf = io.BytesIO()
    exposure_to_afw_hdulist(warp).writeto(buf)
    buf.seek(0)
    return fits.open(buf)


@pytest.fixture(scope="module")
def real(shared_data: Path) -> fits.HDUList:
    return fits.open(shared_data / "lsst-obs_base" / "calexp.fits")


def _tform(form: str) -> str:
    """A TFORM without the maximum length of variable arrays (``1QB(11110)`` -> ``1QB``)."""
    return re.sub(r"\(\d*\)$", "", form.strip())


def _columns(hdu: Any) -> list[tuple[str, str, str, str, str]]:
    """Each column's name, TFORM, TDOC, TCCLS and TUNIT, as afw writes them."""
    h = hdu.header
    out = []
    for k in range(1, int(h["TFIELDS"]) + 1):
        out.append(
            (
                str(h[f"TTYPE{k}"]),
                _tform(str(h[f"TFORM{k}"])),
                str(h.get(f"TDOC{k}", "")),
                str(h.get(f"TCCLS{k}", "")),
                str(h.get(f"TUNIT{k}", "")),
            )
        )
    flags = [str(h[f"TFLAG{k}"]) for k in range(1, 64) if f"TFLAG{k}" in h]
    return out + [("flag", n, "", "", "") for n in flags]


def _by_class(hdul: fits.HDUList) -> dict[str, list[tuple[Any, str]]]:
    """Data HDUs holding each archive class (from the index ``name``), with the index module."""
    index_hdu = int(hdul[0].header["AR_HDU"]) - 1
    index = hdul[index_hdu].data
    out: dict[str, list[tuple[Any, str]]] = {}
    for row in index:
        name, module = str(row["name"]).strip(), str(row["module"]).strip()
        hdu = hdul[index_hdu + int(row["cat.archive"])]
        entries = out.setdefault(name, [])
        if all(h is not hdu for h, _ in entries):
            entries.append((hdu, module))
    return out


def test_hdu_list_and_plane_headers(written: fits.HDUList, real: fits.HDUList) -> None:
    assert [h.name for h in written[:5]] == [h.name for h in real[:5]]
    for key in ("EXPINFO_V", "AR_HDU"):
        assert written[0].header[key] == real[0].header[key], key
    for key in real[0].header:  # every component pointer pairs the old and the new key
        if key.startswith("ARCHIVE_ID_") and key[11:] in ("SKYWCS", "PHOTOCALIB", "PSF"):
            assert f"{key[11:]}_ID" in written[0].header
            assert written[0].header[key] == written[0].header[f"{key[11:]}_ID"]
    assert written[int(written[0].header["AR_HDU"]) - 1].header["EXTTYPE"] == "ARCHIVE_INDEX"
    for i in (1, 2, 3):
        w, r = written[i].header, real[i].header
        for key in ("XTENSION", "BITPIX", "NAXIS", "EXTTYPE", "EXTNAME", "INHERIT", "LTV1", "LTV2",
                    "CTYPE1A", "CTYPE2A", "CRPIX1A", "CRPIX2A", "CRVAL1A", "CRVAL2A"):  # fmt: skip
            assert key in w, (i, key)
            if key not in ("LTV1", "LTV2", "CRVAL1A", "CRVAL2A"):  # xy0: ours is not (0, 0)
                assert w[key] == r[key], (i, key)
        assert w["CRVAL1A"] == -w["LTV1"] == 1000 and w["CRVAL2A"] == -w["LTV2"] == 2000
    real_planes = {k for k in real[2].header if k.startswith("MP_")}
    ours = {k for k in written[2].header if k.startswith("MP_")}
    assert ours and ours <= real_planes | {"MP_NO_DATA"}
    for key in ours:
        assert isinstance(written[2].header[key], int)


def test_archive_index_matches(written: fits.HDUList, real: fits.HDUList) -> None:
    w, r = written[4], real[4]
    assert _columns(w) == _columns(r)
    for key in ("EXTTYPE", "EXTNAME", "AR_CATN", "AFW_TABLE_VERSION"):
        assert w.header[key] == r.header[key], key
    assert w.header["AR_NCAT"] == len(written) - 4


@pytest.mark.parametrize("cls", SHARED_CLASSES)
def test_archive_catalogs_match(written: fits.HDUList, real: fits.HDUList, cls: str) -> None:
    ours, theirs = _by_class(written)[cls], _by_class(real)[cls]
    assert {m for _, m in ours} == {m for _, m in theirs}  # the module afw imports
    ref_hdu = theirs[0][0]
    for hdu, _ in ours:
        for key in ("EXTTYPE", "AFW_TABLE_VERSION"):
            assert hdu.header[key] == ref_hdu.header[key]
        assert hdu.header["AR_CATN"] == written.index_of(hdu) - 4
        got, want = _columns(hdu), _columns(ref_hdu)
        if cls == "CoaddInputs":  # the real catalog is afw's minimal ExposureCatalog schema
            assert got[: len(want)] == want
        elif cls == "ChebyshevBoundedField":  # the count of the coefficients array varies
            strip = [(n, re.sub(r"^\d+D$", "nD", f), *rest) for n, f, *rest in got]
            assert strip == [(n, re.sub(r"^\d+D$", "nD", f), *rest) for n, f, *rest in want]
        else:
            assert got == want


def test_exposure_catalogs_match_the_visit_summary(
    written: fits.HDUList, shared_data: Path
) -> None:
    """The CoaddInputs and CoaddPsf catalogs start with the ExposureCatalog columns a real
    visitSummary has (component archive ids, id, inclusive bbox)."""
    with fits.open(shared_data / "lsst-drp_tasks" / "visitSummary_1176.fits") as vs:
        base = _columns(vs[1])[:13]
    assert [c[0] for c in base[:8]] == ["wcs", "psf", "photoCalib", "apCorrMap", "validPolygon",
                                        "visitInfo", "transmissionCurve", "detector"]  # fmt: skip
    catalogs = _by_class(written)["CoaddInputs"]
    assert len(catalogs) == 2  # visits, CCDs
    for hdu, _ in catalogs:
        assert _columns(hdu)[:13] == base
    ccd_names = [c[0] for c in _columns(catalogs[1][0])]
    assert ccd_names[13:18] == ["ccd", "visit", "goodpix", "weight", "filter"]  # CoaddInputRecorder


def test_psfex_psf_is_written_as_afw_does(shared_data: Path) -> None:
    """A real PSFEx model (CFHT calexp, archive id 78) written back: afw's two catalogs with
    the same columns and values (but the evaluation workspace ``basis``/``coeff``), read back
    equal."""
    from warping.formats.afw_archive_write import ArchiveWriter
    from warping.formats.afw_objects_write import put_psf
    from warping.formats.afw_psf import read_archived_psf
    from warping.formats.exposure_fits import read_exposure
    from warping.formats.lsst_afw import LsstArchive

    path = shared_data / "lsst-jointcal-cfht_minimal" / "calexp-849375-12.fits.fz"
    psf = read_exposure(path).psf
    aw = ArchiveWriter()
    obj_id = put_psf(aw, psf)
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), *aw.hdus()]).writeto(buf)
    buf.seek(0)
    with fits.open(buf) as ours, fits.open(path) as real:
        by_class = _by_class(real)["PsfexPsf"]
        assert [m for _, m in by_class] == ["lsst.meas.extensions.psfex"] * 2
        assert len(by_class) == 2  # the header catalog and the group catalog
        for k, (ref, _) in enumerate(by_class):
            got = ours[2 + k]
            assert _columns(got) == _columns(ref)
            for name in ref.columns.names:
                if name not in ("basis", "coeff"):
                    assert np.array_equal(got.data[name][0], ref.data[name][0]), name
        back = read_archived_psf(LsstArchive(ours, "psfex.fits"), obj_id)
    assert back == psf
