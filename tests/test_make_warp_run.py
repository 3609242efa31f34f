"""MakeWarpTask.run on in-memory exposures: assembly, fluxes, CoaddPsf, empty visits, seams."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from astropy.wcs import WCS

from repo_butler import DataId
from warping.exposure import Exposure
from warping.geom import Box2I
from warping.photocalib import PhotoCalib
from warping.psf import GaussianPsf
from warping.task.config import MakeWarpConfig, apply_overrides
from warping.task.inputs import CcdInput, InMemoryHandle
from warping.task.make_warp import MakeWarpTask, SkyInfo, ccd_exposure_id

RA0, DEC0 = 150.0, 2.0


def tan(
    crval: tuple[float, float], scale: float, crpix: tuple[float, float], rot: float = 0.0
) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = crval
    w.wcs.crpix = crpix
    t = np.radians(rot)
    w.wcs.cd = scale / 3600.0 * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])
    return w


SKY = SkyInfo(0, "0,0", tan((RA0, DEC0), 0.2, (151.0, 151.0)), Box2I(0, 0, 300, 300))
STARS = [  # (ra offset arcsec, dec offset arcsec, flux nJy)
    (-10.0, -12.0, 5.0e4),
    (8.0, 9.5, 8.0e4),
    (-14.0, 15.0, 3.0e4),
]


def make_ccd(
    ccd: int, crpix: tuple[float, float], rot: float, *, offset: float = 0.0, sigma: float = 2.0
) -> Exposure:
    wcs = tan((RA0, DEC0), 0.168, crpix, rot)
    exp = Exposure.empty(Box2I(0, 0, 220, 260), wcs=wcs, fill_no_data=False)
    exp.image[:] = offset
    exp.variance[:] = 4.0
    psf = GaussianPsf(sigma, 25)
    cos_dec = np.cos(np.radians(DEC0))
    for dra, ddec, flux in STARS:
        x, y = wcs.world_to_pixel_values(RA0 + dra / 3600.0 / cos_dec, DEC0 + ddec / 3600.0)
        img, box = psf.compute_image(float(x), float(y))
        inter = box.intersection(exp.bbox)
        if not inter.is_empty():
            exp.image[inter.slices(exp.bbox)] += flux * img[inter.slices(box)]
    exp.psf = psf
    exp.photo_calib = PhotoCalib(1.0)
    exp.filter = "HSC-I"
    exp.id = ccd_exposure_id(7, ccd)
    return exp


def ccd_inputs(
    calexps: list[Exposure], data_ids: list[dict[str, int]] | None = None
) -> list[CcdInput]:
    """The task's inputs for in-memory CCDs (made by :func:`make_ccd`, CCD number in the id)."""
    ids = data_ids or [{"ccd": int(e.id) % 200} for e in calexps]
    return [CcdInput(DataId(d), InMemoryHandle(e)) for e, d in zip(calexps, ids, strict=True)]


def star_pixel(dra: float, ddec: float) -> tuple[float, float]:
    cos_dec = np.cos(np.radians(DEC0))
    x, y = SKY.wcs.world_to_pixel_values(RA0 + dra / 3600.0 / cos_dec, DEC0 + ddec / 3600.0)
    return float(x), float(y)


def test_direct_warp_conserves_flux_and_records_inputs() -> None:
    a = make_ccd(16, (110.0, 130.0), 0.0)
    b = make_ccd(17, (30.0, 130.0), 10.0, offset=1.0)
    res = MakeWarpTask().run(ccd_inputs([a, b], [{"visit": 7, "ccd": 16}, {"ccd": 17}]), SKY, 7)
    warp = res.exposures["direct"]
    assert warp is not None
    assert warp.bbox == SKY.bbox and warp.wcs is SKY.wcs
    assert warp.metadata["BUNIT"] == "nJy" and warp.photo_calib.calibration_mean == 1.0
    finite = np.isfinite(warp.image)
    # LSST counts good pixels per CCD, so overlaps count once per CCD that covers them
    assert res.goodpix["direct"] == sum(o.goodpix["direct"] for o in res.ccds) >= finite.sum() > 0
    nodata = warp.mask_planes.bitmask("NO_DATA")
    assert np.all((warp.mask[~finite] & nodata) != 0) and np.all(np.isinf(warp.variance[~finite]))
    for dra, ddec, flux in STARS:
        x, y = star_pixel(dra, ddec)
        xi, yi = round(x), round(y)
        cut = warp.image[yi - 12 : yi + 13, xi - 12 : xi + 13]
        if not np.isfinite(cut).all():
            continue
        # background of the CCD that won this area (0 or 1 nJy per source pixel -> area scaled)
        bg = np.median(np.concatenate([cut[0], cut[-1], cut[:, 0], cut[:, -1]]))
        assert (cut - bg).sum() == pytest.approx(flux, rel=2e-3)
    ccd_rows = warp.coadd_inputs.ccds
    assert [r.ccd for r in ccd_rows] == [16, 17]
    assert [r.id for r in ccd_rows] == [7 * 200 + 16, 7 * 200 + 17]
    assert sum(r.goodpix for r in ccd_rows) == res.goodpix["direct"]
    assert warp.coadd_inputs.visits[0].id == 7
    assert warp.coadd_inputs.visits[0].goodpix == res.goodpix["direct"]


def test_last_ccd_wins_in_overlaps() -> None:
    a = make_ccd(16, (110.0, 130.0), 0.0, offset=0.0)
    b = make_ccd(17, (110.0, 130.0), 0.0, offset=100.0)  # same footprint, offset pixels
    warp = MakeWarpTask().run(ccd_inputs([a, b]), SKY, 7).exposures["direct"]
    assert warp is not None
    area = (0.2 / 0.168) ** 2
    x, y = star_pixel(0.0, 0.0)
    assert warp.image[round(y), round(x)] == pytest.approx(100.0 * area, rel=1e-4)


def test_coadd_psf_matches_star_profile() -> None:
    a = make_ccd(16, (110.0, 130.0), 25.0, sigma=2.5)
    warp = MakeWarpTask().run(ccd_inputs([a]), SKY, 7).exposures["direct"]
    assert warp is not None and warp.psf is not None
    dra, ddec, _ = STARS[1]
    x, y = star_pixel(dra, ddec)
    kernel = warp.psf.compute_kernel_image(x, y)
    xi, yi = round(x), round(y)
    h = kernel.shape[0] // 2
    star = warp.image[yi - h : yi + h + 1, xi - h : xi + h + 1].astype(float)

    def moments(img: np.ndarray, cx: float, cy: float) -> tuple[float, float]:
        yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
        s = img.sum()
        return float((img * (xx - cx) ** 2).sum() / s), float((img * (yy - cy) ** 2).sum() / s)

    kxx, kyy = moments(kernel, h, h)
    sxx, syy = moments(star, h + x - xi, h + y - yi)
    assert sxx == pytest.approx(kxx, rel=0.02)
    assert syy == pytest.approx(kyy, rel=0.02)


def test_empty_visit_gives_no_warp_unless_asked() -> None:
    far = make_ccd(16, (5000.0, 5000.0), 0.0)
    res = MakeWarpTask().run(ccd_inputs([far]), SKY, 7)
    assert res.exposures["direct"] is None
    assert res.ccds[0].skipped == "no good pixels on patch"
    cfg = apply_overrides(MakeWarpConfig(), ["doWriteEmptyWarps=True"])
    empty = MakeWarpTask(cfg).run(ccd_inputs([far]), SKY, 7).exposures["direct"]
    assert empty is not None and np.isnan(empty.image).all() and empty.coadd_inputs is None


def test_psf_match_failure_skips_only_the_matched_warp() -> None:
    def failing(warped: Exposure, model: object, config: MakeWarpConfig) -> Exposure:
        raise ValueError("Insufficient area to match")

    cfg = apply_overrides(MakeWarpConfig(), ["makePsfMatched=True"])
    task = MakeWarpTask(cfg, psf_matcher=failing)
    res = task.run(ccd_inputs([make_ccd(16, (110, 130), 0.0)]), SKY, 7)
    assert res.exposures["direct"] is not None
    assert res.exposures["psfMatched"] is None
    assert "Insufficient area" in res.ccds[0].reasons["psfMatched"]
    assert res.ccds[0].unusable  # the psfMatched output lacks it: incomplete


def test_psf_matched_warp_uses_matcher_output() -> None:
    def identity(warped: Exposure, model: object, config: MakeWarpConfig) -> Exposure:
        return dataclasses.replace(warped, psf=model)  # type: ignore[arg-type]

    cfg = apply_overrides(MakeWarpConfig(), ["makePsfMatched=True", "modelPsf.defaultFwhm=7"])
    task = MakeWarpTask(cfg, psf_matcher=identity)
    res = task.run(ccd_inputs([make_ccd(16, (110, 130), 0.0)]), SKY, 7)
    direct, matched = res.exposures["direct"], res.exposures["psfMatched"]
    assert direct is not None and matched is not None
    np.testing.assert_array_equal(direct.image, matched.image)
    model = MakeWarpTask(cfg).model_psf()
    assert matched.psf.to_dict() == model.to_dict()
    # the core sigma of the double Gaussian is FWHM 7 px
    assert model.to_dict()["sigma1"] == pytest.approx(7.0 / 2.3548, rel=1e-3)


@dataclasses.dataclass(frozen=True)
class _RecordingHandle:
    """An in-memory calexp handle that records when, and on which thread, it is read."""

    exp: Exposure
    index: int
    events: list[tuple[str, int, str]]

    @property
    def ref(self) -> None:
        return None

    def get(self) -> Exposure:
        import threading

        self.events.append(("read", self.index, threading.current_thread().name))
        return self.exp.copy()


def test_each_ccd_is_read_in_its_turn_after_the_cancellation_check() -> None:
    """CCDs are read one at a time, in order, on the calling thread, each after the check for
    cancellation that precedes it; an input with a missing product is skipped unread."""
    events: list[tuple[str, int, str]] = []
    ccds = [make_ccd(16 + i, (110.0 - 30 * i, 130.0), 5.0 * i) for i in range(4)]
    inputs = [
        CcdInput(DataId({"ccd": 16 + i}), _RecordingHandle(e, i, events))
        for i, e in enumerate(ccds)
    ]
    inputs.insert(2, CcdInput(DataId({"ccd": 30}), InMemoryHandle(ccds[0]), missing="no calexp"))
    started = iter(range(len(inputs)))

    def cancelled() -> bool:
        events.append(("start", next(started), ""))
        return False

    res = MakeWarpTask().run(inputs, SKY, 7, cancelled=cancelled)
    order = [(kind, i) for kind, i, _ in events]
    positions = [0, 1, 3, 4]  # of the four calexps among the inputs
    expected = [("start", 0), ("read", 0), ("start", 1), ("read", 1), ("start", 2),
                ("start", 3), ("read", 2), ("start", 4), ("read", 3)]  # fmt: skip
    assert order == expected, order
    assert {name for kind, _, name in events if kind == "read"} == {"MainThread"}
    assert [o.skipped for o in res.ccds].count("no calexp") == 1
    assert len(positions) == sum(o.used for o in res.ccds)


def test_a_warped_ccd_is_freed_before_the_next_ccd_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """One thread: when CCD k is read, no warped exposure of an earlier CCD is alive (peak memory
    is one calexp, one warped CCD and the visit's warp)."""
    import gc
    import weakref

    monkeypatch.setenv("REPO_BUTLER_THREADS", "1")
    alive: list[weakref.ref[Exposure]] = []
    original = MakeWarpTask.warp_ccd

    def recording(self: MakeWarpTask, *args: object, **kwargs: object) -> object:
        out = original(self, *args, **kwargs)  # type: ignore[arg-type]
        alive.extend(weakref.ref(e) for e in out.values() if e is not None)
        return out

    class Checking(_RecordingHandle):
        def get(self) -> Exposure:
            gc.collect()
            assert [r for r in alive if r() is not None] == [], f"before reading CCD {self.index}"
            return super().get()

    monkeypatch.setattr(MakeWarpTask, "warp_ccd", recording)
    ccds = [make_ccd(16 + i, (110.0 - 30 * i, 130.0), 5.0 * i) for i in range(3)]
    events: list[tuple[str, int, str]] = []
    inputs = [CcdInput(DataId({"ccd": 16 + i}), Checking(e, i, events)) for i, e in enumerate(ccds)]
    res = MakeWarpTask().run(inputs, SKY, 7)
    assert len(alive) == 3 and all(o.used for o in res.ccds)
