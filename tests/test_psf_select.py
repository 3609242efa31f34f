"""PSF-quality selection (``select.*``, issue #22): the cuts over known statistics, the pixel
scale behind ``maxPsfFwhm``, a real HSC visitSummary, and config errors.

Truth: thresholds placed around statistics of known value (a CCD exactly at a threshold is
kept, as Gen3's ``value <= max``), astropy's pixel scale of a TAN WCS, and for the real file the
statistics recomputed from its columns with ``astropy.table`` and the pixel scale from the
corners the pipeline recorded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area

from repo_butler import DataId
from repo_butler.errors import ConfigError
from warping.geom import Box2I
from warping.task.config import MakeWarpConfig, apply_overrides, config_to_dict
from warping.task.config_select import CUT_FIELDS, PsfWcsSelectImagesConfig
from warping.task.inputs import CcdInput, InMemoryHandle
from warping.task.psf_select import (
    CUT_STATISTICS,
    PsfStats,
    ccd_psf_stats,
    pixel_scale_arcsec,
    psf_statistic,
    select_ccd,
)
from warping.task.run_config import differences, normalised

HSC = ("lsst-drp_tasks", "visitSummary_1176.fits")
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.35482...

#: One value per column, so each cut's statistic is known: FWHM = 2 x 0.2 x 2.3548 = 0.942".
BASE = {
    "psfSigma": 2.0,
    "pixelScale": 0.2,
    "psfStarDeltaE1Median": 0.003,
    "psfStarDeltaE2Median": 0.004,  # hypot = 0.005
    "psfStarDeltaSizeScatter": 0.02,
    "psfStarScaledDeltaSizeScatter": 0.01,
    "psfTraceRadiusDelta": 0.5,
    "psfApFluxDelta": 0.1,
    "psfApCorrSigmaScaledDelta": 0.2,
}
STAT = {
    "maxPsfFwhm": 2.0 * 0.2 * FWHM_PER_SIGMA,
    "maxEllipResidual": 0.005,
    "maxSizeScatter": 0.02,
    "maxScaledSizeScatter": 0.01,
    "maxPsfTraceRadiusDelta": 0.5,
    "maxPsfApFluxDelta": 0.1,
    "maxPsfApCorrSigmaScaledDelta": 0.2,
}


def config(**cuts: object) -> PsfWcsSelectImagesConfig:
    return PsfWcsSelectImagesConfig(**cuts)  # type: ignore[arg-type]


def test_every_cut_is_off_by_default_and_the_fields_are_gen3s() -> None:
    default = MakeWarpConfig().select
    assert not default.active and default.thresholds == {} and default.excludeDetectors == ()
    assert set(CUT_FIELDS) == set(CUT_STATISTICS) == set(STAT)
    decision = select_ccd(PsfStats(3, {}), default)
    assert decision.selected and not decision.not_evaluated


@pytest.mark.parametrize("cut", CUT_FIELDS)
def test_each_cut_rejects_exactly_the_ccds_above_its_threshold(cut: str) -> None:
    stat = psf_statistic(cut, BASE)  # the value compared (exactly), checked against the truth
    assert stat is not None and stat == pytest.approx(STAT[cut], rel=1e-12)
    for factor, kept in ((0.999, False), (1.0, True), (1.001, True)):
        d = select_ccd(PsfStats(7, BASE, "vs"), config(**{cut: stat * factor}))
        assert d.selected is kept, (cut, factor)
        assert not d.not_evaluated
        if not kept:
            assert list(d.rejected) == [cut] and f"select.{cut}=" in d.reason and "(vs)" in d.reason
    # the CCDs of a visit with statistics scaled around the threshold: exactly those above go
    threshold = stat
    ccds = dict(enumerate((0.5, 0.99, 1.0, 1.01, 2.0, 10.0)))
    rejected = set()
    for ccd, scale in ccds.items():
        values = dict(BASE)
        for name in CUT_STATISTICS[cut][:1] if cut != "maxEllipResidual" else CUT_STATISTICS[cut]:
            values[name] = BASE[name] * scale
        if not select_ccd(PsfStats(ccd, values), config(**{cut: threshold})).selected:
            rejected.add(ccd)
    assert rejected == {c for c, s in ccds.items() if s > 1.0}


def test_all_failing_cuts_are_reported_and_nan_rejects() -> None:
    cuts = {c: STAT[c] / 2 for c in CUT_FIELDS}
    d = select_ccd(PsfStats(1, BASE), config(**cuts))
    assert list(d.rejected) == list(CUT_FIELDS)  # Gen3's order; every one, not only the first
    values = {**BASE, "psfTraceRadiusDelta": float("nan")}
    d = select_ccd(PsfStats(1, values, "row"), config(maxPsfTraceRadiusDelta=100.0))
    assert not d.selected and "psfTraceRadiusDelta is not finite (row)" in d.reason


def test_a_cut_without_its_statistic_is_not_evaluated_and_keeps_the_ccd() -> None:
    values = {k: v for k, v in BASE.items() if k not in ("psfTraceRadiusDelta", "pixelScale")}
    cfg = config(maxPsfTraceRadiusDelta=0.1, maxPsfFwhm=0.1, maxSizeScatter=1.0)
    d = select_ccd(PsfStats(4, values, "visitSummary X (visit 9)"), cfg)
    assert d.selected
    assert d.not_evaluated == {
        "maxPsfFwhm": "visitSummary X (visit 9) has no pixelScale",
        "maxPsfTraceRadiusDelta": "visitSummary X (visit 9) has no psfTraceRadiusDelta",
    }
    # no statistics at all: every cut that is on is not evaluated, excludeDetectors still works
    cfg = config(maxEllipResidual=0.001, excludeDetectors=(4, 9))
    d = select_ccd(PsfStats(4, missing="no visitSummary for visit 9"), cfg)
    assert d.rejected == {"excludeDetectors": "detector 4 is in select.excludeDetectors"}
    assert d.not_evaluated == {"maxEllipResidual": "no visitSummary for visit 9"}
    assert select_ccd(PsfStats(5, {}), cfg).selected


def test_per_band_cuts_take_the_rows_band_or_the_fallback() -> None:
    values = {"nPsfStar": 10.0, "starEMedian": 0.3, "starUnNormalizedEMedian": 2.0}
    cfg = PsfWcsSelectImagesConfig(
        minNPsfStarPerBand=MappingProxyType({"r": 11, "i": 10, "z": 0, "fallback": 20}),
        maxStarEPerBand=MappingProxyType({"r": 0.29, "fallback": 0.3}),
    )
    got = {band: select_ccd(PsfStats(1, values, "vs", band=band), cfg) for band in "rizgy"}
    assert got["r"].rejected == {
        "minNPsfStarPerBand": "nPsfStar 10 < select.minNPsfStarPerBand['r']=11 (vs)",
        "maxStarEPerBand": "starEMedian 0.3 > select.maxStarEPerBand['r']=0.29 (vs)",
    }
    assert got["i"].selected and got["z"].selected  # 10 stars suffice in i; z: the cut is off
    for band in "gy":  # not listed: the fallback (20 stars; 0.3 is at the threshold: kept)
        assert list(got[band].rejected) == ["minNPsfStarPerBand"]
        assert "select.minNPsfStarPerBand['fallback']=20" in got[band].reason
    no_band = select_ccd(PsfStats(1, values, "vs"), cfg)  # a row without a band column
    assert "['fallback']" in no_band.reason
    nan_e = select_ccd(PsfStats(1, {**values, "starEMedian": math.nan}, "vs", band="i"), cfg)
    assert list(nan_e.rejected) == ["maxStarEPerBand"] and "is not finite" in nan_e.reason
    cfg = PsfWcsSelectImagesConfig(maxStarUnNormalizedEPerBand=MappingProxyType({"fallback": 2.8}))
    assert select_ccd(PsfStats(1, {}, "vs"), cfg).not_evaluated == {
        "maxStarUnNormalizedEPerBand": "vs has no starUnNormalizedEMedian"
    }


def test_the_adapter_reads_the_row_and_says_what_is_missing() -> None:
    from warping.visit_summary import VisitSummaryCatalog, VisitSummaryRow

    w = tan_wcs(0.2, rotation_deg=30.0)
    row = VisitSummaryRow(5, Box2I(0, 0, 100, 200), w, summary={"psfSigma": 2.0, "band": "i"})
    cat = VisitSummaryCatalog(12, {5: row}, source="vs.fits")

    def inp(ccd: int, handle: object) -> CcdInput:
        did = DataId({"visit": 12, "ccd": ccd})
        return CcdInput(did, InMemoryHandle(None), visit_summary=handle)  # type: ignore[arg-type]

    stats = ccd_psf_stats(inp(5, InMemoryHandle(cat)))
    assert stats.source == "vs.fits (visit 12)" and "band" not in stats.values
    assert stats.band == "i"
    assert stats.values["pixelScale"] == pytest.approx(0.2, rel=1e-9)
    no_row = ccd_psf_stats(inp(6, InMemoryHandle(cat)))
    assert no_row.missing == "vs.fits (visit 12) has no row for detector 6" and not no_row.values
    assert ccd_psf_stats(inp(5, None)) == PsfStats(5, missing="no visitSummary for visit 12")


def tan_wcs(scale_arcsec: float, rotation_deg: float = 0.0, skew: float = 0.0) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 60.0]
    w.wcs.crpix = [50.5 + 1.0, 100.0 + 1.0]  # FITS 1-based: the centre of Box2I(0, 0, 100, 200)
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    w.wcs.cd = scale_arcsec / 3600.0 * np.array([[-c, s + skew], [s, c]])
    return w


@pytest.mark.parametrize(("rotation", "skew"), [(0.0, 0.0), (37.0, 0.0), (-80.0, 0.15)])
def test_pixel_scale_is_sqrt_of_the_pixel_area(rotation: float, skew: float) -> None:
    w = tan_wcs(0.168, rotation, skew)
    truth = math.sqrt(proj_plane_pixel_area(w)) * 3600.0  # at CRPIX, exact for TAN
    bbox = Box2I(0, 0, 102, 201)  # centre (50.5, 100): CRPIX
    assert pixel_scale_arcsec(w, bbox) == pytest.approx(truth, rel=1e-6)


def test_bad_values_are_refused_with_the_field_name() -> None:
    for text, value, expected in (
        ("maxPsfFwhm=0", {"maxPsfFwhm": 0.0}, "maxPsfFwhm must be a positive number, got 0.0; set"),
        ("maxEllipResidual=-0.1", {"maxEllipResidual": -0.1}, "maxEllipResidual must be a posi"),
        ("maxSizeScatter=1e999", {"maxSizeScatter": math.inf}, "maxSizeScatter must be a posi"),
        ("excludeDetectors=[3, -1]", {"excludeDetectors": (3, -1)}, "excludeDetectors lists neg"),
    ):
        match = "^select\\." + expected.replace(".", r"\.")
        with pytest.raises(ConfigError, match=match):
            apply_overrides(MakeWarpConfig(), [f"select.{text}"])  # validates
        bad = MakeWarpConfig(select=PsfWcsSelectImagesConfig(**value))
        with pytest.raises(ConfigError, match=match):
            bad.validate()  # the Python API too
    for text, expected in (
        ("select.minNPsfStarPerBand={'r': 5}", "has no 'fallback' entry; add one"),
        ("select.maxStarEPerBand={'fallback': -1.0}", "must map bands to numbers >= 0"),
        ("select.maxStarEPerBand=0.4", "must be a dict of float by name"),
        ("select.minNPsfStarPerBand['r']=2.5", r"\['r'\] must be an integer"),
    ):
        with pytest.raises(ConfigError, match=expected):
            apply_overrides(MakeWarpConfig(), [text])
    per_band = apply_overrides(
        MakeWarpConfig(),
        ["select.minNPsfStarPerBand={'fallback': 6}", "select.minNPsfStarPerBand['z']=30"],
    )
    assert dict(per_band.select.minNPsfStarPerBand) == {"fallback": 6, "z": 30}
    # a rerun's recorded config (JSON) compares entry by entry
    recorded = normalised(json.loads(json.dumps(config_to_dict(per_band))))
    assert differences(recorded, normalised(per_band)) == []
    fewer = apply_overrides(MakeWarpConfig(), ["select.minNPsfStarPerBand={'fallback': 6}"])
    diffs = [str(d) for d in differences(recorded, normalised(fewer))]
    assert diffs == ["select.minNPsfStarPerBand['z']: recorded 30, now (no entry)"]
    with pytest.raises(ConfigError, match=r"select\.maxPsfFwhm must be float or None"):
        apply_overrides(MakeWarpConfig(), ["select.maxPsfFwhm='big'"])
    with pytest.raises(ConfigError, match="Did you mean 'maxPsfFwhm'"):
        apply_overrides(MakeWarpConfig(), ["select.maxPsfFwm=1.0"])
    with pytest.raises(ConfigError, match=r"select\.excludeDetectors\[0\] must be an integer"):
        apply_overrides(MakeWarpConfig(), ["select.excludeDetectors=['a']"])
    ok = apply_overrides(MakeWarpConfig(), ["select.maxPsfFwhm=1.5", "select.maxSizeScatter=None"])
    ok.validate()
    assert ok.select.thresholds == {"maxPsfFwhm": 1.5} and ok.select.needs_statistics


# --- a real HSC visitSummary ------------------------------------------------------------------


def _corner_pixel_scale(t: Table) -> np.ndarray:
    """Mean pixel scale (arcsec) of each row from the sky corners the pipeline recorded: the
    solid angle of the quadrilateral (two spherical triangles) over the bbox's pixel count."""
    ra, dec = np.radians(np.asarray(t["raCorners"])), np.radians(np.asarray(t["decCorners"]))
    v = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)

    def tri(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        num = np.abs(np.einsum("ij,ij->i", a, np.cross(b, c)))
        den = 1 + np.einsum("ij,ij->i", a, b) + np.einsum("ij,ij->i", b, c)
        den += np.einsum("ij,ij->i", a, c)
        return 2 * np.arctan2(num, den)

    area = tri(v[:, 0], v[:, 1], v[:, 2]) + tri(v[:, 0], v[:, 2], v[:, 3])
    nx = np.asarray(t["bbox_max_x"], float) - np.asarray(t["bbox_min_x"], float) + 1
    npix = nx * (np.asarray(t["bbox_max_y"], float) - np.asarray(t["bbox_min_y"], float) + 1)
    return np.degrees(np.sqrt(area / npix)) * 3600.0


def _threshold_in_a_gap(values: np.ndarray, margin: float) -> float:
    """A threshold between two neighbouring values, at least ``margin`` (relative) from both,
    so an error below ``margin`` cannot move a CCD across it."""
    s = np.sort(values)
    n = len(s)
    for i in sorted(range(n - 1), key=lambda i: -(s[i + 1] - s[i]) / s[i]):
        mid = 0.5 * (s[i] + s[i + 1])
        if (s[i + 1] - s[i]) / mid > 2 * margin:
            return float(mid)
    pytest.fail("no gap wide enough in the real file's values")


def test_real_hsc_visit_summary_cuts(shared_data: Path) -> None:
    from warping.formats.afw_visit_summary import read_visit_summary_file

    path = shared_data.joinpath(*HSC)
    if not path.is_file():
        pytest.skip(f"{path} not found")
    t = Table.read(path, hdu=1)
    catalog = read_visit_summary_file(str(path))
    ids = [int(i) for i in t["id"]]
    assert sorted(ids) == sorted(catalog.rows)
    e = np.hypot(np.asarray(t["psfStarDeltaE1Median"], float), t["psfStarDeltaE2Median"])
    scaled = np.asarray(t["psfStarScaledDeltaSizeScatter"], float)
    scatter = np.asarray(t["psfStarDeltaSizeScatter"], float)
    corner_scale = _corner_pixel_scale(t)
    fwhm = np.asarray(t["psfSigma"], float) * corner_scale * FWHM_PER_SIGMA
    thresholds = {
        "maxEllipResidual": float(np.median(e)),
        "maxScaledSizeScatter": float(np.percentile(scaled, 80)),
        "maxSizeScatter": float(np.percentile(scatter, 30)),
        # the corners give a mean scale over the CCD; the cut uses the centre's (< 0.25 % apart)
        "maxPsfFwhm": _threshold_in_a_gap(fwhm, 0.0025),
        "maxPsfTraceRadiusDelta": 0.7,  # Gen3's default; this 2022 file has no such column
    }
    expected = {
        "maxEllipResidual": {
            i for i, v in zip(ids, e, strict=True) if v > thresholds["maxEllipResidual"]
        },
        "maxScaledSizeScatter": {
            i for i, v in zip(ids, scaled, strict=True) if v > thresholds["maxScaledSizeScatter"]
        },
        "maxSizeScatter": {
            i for i, v in zip(ids, scatter, strict=True) if v > thresholds["maxSizeScatter"]
        },
        "maxPsfFwhm": {i for i, v in zip(ids, fwhm, strict=True) if v > thresholds["maxPsfFwhm"]},
    }
    for cut, want in expected.items():
        assert 0 < len(want) < len(ids), cut  # the threshold splits the visit
        cfg = config(**{cut: thresholds[cut]})
        got = set()
        for i in ids:
            d = select_ccd(ccd_stats(catalog, i), cfg)
            assert not d.not_evaluated, (cut, i)
            if not d.selected:
                got.add(i)
        assert got == want, cut
    # per band: the file's band is z; the fallback (any other band) is off
    n_star = np.asarray(t["nPsfStar"], int)
    assert set(np.char.strip(np.asarray(t["band"], str))) == {"z"}
    minimum = int(np.median(n_star))
    cfg = PsfWcsSelectImagesConfig(
        minNPsfStarPerBand=MappingProxyType({"z": minimum, "fallback": 0}),
        maxStarEPerBand=MappingProxyType({"fallback": 0.4}),  # no starEMedian in this file
    )
    decisions = {i: select_ccd(ccd_stats(catalog, i), cfg) for i in ids}
    want = {i for i, n in zip(ids, n_star, strict=True) if n < minimum}
    assert 0 < len(want) < len(ids)
    assert {i for i, d in decisions.items() if not d.selected} == want
    assert all(list(d.not_evaluated) == ["maxStarEPerBand"] for d in decisions.values())
    # pixel scales at the centres agree with the corners' means (HSC distortion is small)
    centre = [ccd_stats(catalog, i).values["pixelScale"] for i in ids]
    assert np.allclose(centre, corner_scale, rtol=0.0025)
    assert 0.16 < float(np.median(centre)) < 0.18
    # all cuts at once: the union; psfTraceRadiusDelta is not evaluated for any CCD
    cfg = config(**thresholds)
    rejected, unevaluated = set(), set()
    for i in ids:
        d = select_ccd(ccd_stats(catalog, i), cfg)
        rejected |= {i} if not d.selected else set()
        if "maxPsfTraceRadiusDelta" in d.not_evaluated:
            unevaluated.add(i)
            assert "has no psfTraceRadiusDelta" in d.not_evaluated["maxPsfTraceRadiusDelta"]
    assert rejected == set().union(*expected.values()) and unevaluated == set(ids)


def ccd_stats(catalog: object, detector: int) -> PsfStats:
    did = DataId({"visit": 1176, "ccd": detector})
    return ccd_psf_stats(CcdInput(did, InMemoryHandle(None), visit_summary=InMemoryHandle(catalog)))


def test_real_cfht_rows_with_unmeasured_star_statistics_are_rejected(shared_data: Path) -> None:
    """jointcal's CFHT visitSummary has NaN PSF-star statistics (nPsfStar = 0): a cut on them
    rejects the CCD (Gen3's ``not (value <= max)``); psfSigma is finite, so the FWHM cut passes."""
    from warping.formats.afw_visit_summary import read_visit_summary_file

    path = shared_data / "lsst-jointcal-cfht_minimal" / "visitSummary-849375.fits"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    t = Table.read(path, hdu=1, mask_invalid=False)
    assert int(t["nPsfStar"][0]) == 0 and not np.isfinite(float(t["psfStarDeltaE1Median"][0]))
    cat = read_visit_summary_file(str(path))
    did = DataId({"visit": 849375, "ccd": 12})
    stats = ccd_psf_stats(CcdInput(did, InMemoryHandle(None), visit_summary=InMemoryHandle(cat)))
    d = select_ccd(stats, config(maxEllipResidual=1.0, maxPsfFwhm=10.0))
    assert list(d.rejected) == ["maxEllipResidual"] and not d.not_evaluated
    assert "median ellipticity residual is not finite" in d.reason
    assert stats.values["psfSigma"] == pytest.approx(float(t["psfSigma"][0]))
    assert 0.18 < stats.values["pixelScale"] < 0.19  # MegaCam: 0.187"/px
