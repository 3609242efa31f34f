"""The repositories and truth behind ``bench/psf_fidelity.py``: the simulated demo repository and
the real CFHT calexps filled with a star grid. Each case runs MakeWarp and returns its warps in
memory with the truth to measure them against."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED_DATA = HERE.parent.parent / "shared" / "data"
CFHT_VISITS = (849375, 850587)
CFHT_CCD = 12
CFHT_FILTER = "r.MP9601"
CFHT_NOISE_VAR = 25.0  # counts², the variance plane the test fixture writes
#: the ``dense`` case's star field (SimulationConfig changes): ~8 stars/arcmin² of mag 16.5-20
#: (S/N 300-5000, peaks below saturation in the demo's 0.62-0.78" seeing), no saturated stars
#: (the one bright star the simulator insists on is mag 20), 2 galaxies/arcmin². About half the
#: stars have no neighbour within the matched stamp + 10 px, ~1500 star-visits on patch 5,4.
DENSE_STARS: dict[str, Any] = {
    "seed": 18,
    "star_density": 8.0,
    "star_mag_range": (16.5, 20.0),
    "bright_star_density": 0.0,
    "bright_star_mag_range": (20.0, 20.0),
    "galaxy_density": 2.0,
}
#: mask planes a measured star may carry (everything else disqualifies it)
ALLOWED_PLANES = ("DETECTED", "DETECTED_NEGATIVE")


class _WarningCounter(logging.Handler):
    """Counts WARNING records (matching warnings: deconvolution, oscillating kernels)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class CaseData:
    """Truth sources (sky positions, fluxes in nJy) and the warps of one case, by warp type."""

    ra: np.ndarray
    dec: np.ndarray
    flux: np.ndarray
    is_star: np.ndarray
    r_half_px: np.ndarray
    warps: dict[str, list[Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    bad_bits: int = 0
    faint_flux: float = 0.0  # sources fainter than this get the smallest exclusion disk

    def isolated(
        self, i: int, x: np.ndarray, y: np.ndarray, *, radius: float, psf_sigma: float
    ) -> bool:
        """Neighbours add less than 2e-4 of star ``i``'s flux within ``radius`` px of it (a
        neighbour's light beyond its distance minus ``radius`` taken to fall as a Gaussian of
        the PSF's sigma grown by twice its half-light radius)."""
        d = np.hypot(x - x[i], y - y[i])
        near = d < radius + 80.0
        near[i] = False
        if not near.any():
            return True
        s2 = psf_sigma**2 + (2.0 * self.r_half_px[near]) ** 2
        reach = np.exp(-0.5 * np.maximum(d[near] - radius, 0.0) ** 2 / s2)
        return bool((self.flux[near] * reach).sum() < 2e-4 * self.flux[i])

    def source_mask(self, warp: Any) -> np.ndarray:
        """True within a flux-dependent radius of every truth source (for star-free noise)."""
        h, w = warp.image.shape
        x0, y0 = warp.xy0
        x, y = warp.wcs.world_to_pixel_values(self.ra, self.dec)
        x, y = np.asarray(x, float) - x0, np.asarray(y, float) - y0
        boost = np.log2(np.maximum(self.flux / max(self.faint_flux, 1e-30), 1.0))
        radius = 12.0 + 3.0 * self.r_half_px + 4.0 * boost
        out = np.zeros((h, w), dtype=bool)
        on = (x > -radius) & (x < w + radius) & (y > -radius) & (y < h + radius)
        for xi, yi, ri in zip(x[on], y[on], radius[on], strict=True):
            xa, xb = max(0, int(xi - ri)), min(w, int(xi + ri) + 2)
            ya, yb = max(0, int(yi - ri)), min(h, int(yi + ri) + 2)
            if xb <= xa or yb <= ya:
                continue
            yy, xx = np.mgrid[ya:yb, xa:xb]
            out[ya:yb, xa:xb] |= (xx - xi) ** 2 + (yy - yi) ** 2 <= ri * ri
        return out


def _run(
    root: Path,
    rerun: str,
    patch_id: dict[str, Any],
    overrides: Sequence[str],
    files: Sequence[tuple[str, str]],
    *,
    jobs: int = 1,
    reuse: bool = False,
) -> tuple[dict[str, list[Any]], list[str]]:
    """Run MakeWarp on one patch; return the warps by type and notes on the run."""
    from repo_butler import Butler
    from warping.task.config import MakeWarpConfig, apply_overrides
    from warping.task.runner import run_make_warp

    config = apply_overrides(MakeWarpConfig(), list(overrides), files=list(files))
    counter = _WarningCounter()
    log = logging.getLogger("warping")
    log.addHandler(counter)
    log.propagate = False  # counted and summarised in the notes rather than printed one by one
    t0 = time.perf_counter()
    try:
        with Butler(str(root), rerun=rerun) as out:
            summary = run_make_warp(out, patch_id, None, config=config, jobs=jobs, reuse=reuse)
            warps: dict[str, list[Any]] = {}
            done = "warps of an earlier run reused" if reuse else "warps made"
            notes = [f"make-warp {time.perf_counter() - t0:.1f} s, {done} (rerun {rerun})"]
            for v in summary.visits:
                if v.ccds_skipped:
                    notes.append(f"visit {v.visit}: CCDs skipped {v.ccds_skipped}")
                if v.outputs_missing:
                    notes.append(f"visit {v.visit}: warps not made {v.outputs_missing}")
                for wt in config.warp_types:
                    ids = {**patch_id, "visit": v.visit}
                    if out.exists(config.dataset_type(wt), ids):
                        warps.setdefault(wt, []).append(out.get(config.dataset_type(wt), ids))
    finally:
        log.removeHandler(counter)
        log.propagate = True
    planes = {str(w.metadata.get("PSFMATCH_VARIANCE")) for w in warps.get("psfMatched", [])}
    factors = [w.metadata["PSFMATCH_NOISE"]["variance_factor"]
               for w in warps.get("psfMatched", []) if "PSFMATCH_NOISE" in w.metadata]  # fmt: skip
    if factors:
        notes.append(
            f"psfMatched variance plane: {', '.join(sorted(planes))}; honest / LSST plane "
            f"{min(factors):.3f}-{max(factors):.3f} (PSFMATCH_NOISE variance_factor)"
        )
    if counter.messages:
        kinds: dict[str, int] = {}
        for m in counter.messages:
            key = " ".join(m.split()[:5])
            kinds[key] = kinds.get(key, 0) + 1
        notes.append(
            "warnings during make-warp: " + "; ".join(f"{n}x '{k} ...'" for k, n in kinds.items())
        )
    return warps, notes


def _bad_bits(warps: dict[str, list[Any]]) -> int:
    bits = 0
    for ws in warps.values():
        for w in ws:
            planes = w.mask_planes
            bits |= sum(1 << planes.bit(n) for n in planes if n not in ALLOWED_PLANES)
    return bits


def demo_case(
    repo: Path,
    ccd_size: tuple[int, int],
    overrides: Sequence[str],
    files: Sequence[tuple[str, str]],
    tag: str,
    *,
    jobs: int = 1,
    reuse: bool = False,
    dense: bool = False,
) -> CaseData:
    """The demo repository (simulated once into ``repo``) warped with ``overrides``.

    ``dense``: the demo's visits, CCDs and PSFs with a star field made for fidelity statistics
    instead (:data:`DENSE_STARS`: many isolated bright unsaturated stars, few galaxies).
    """
    from repo_butler import Butler
    from warping.simulate.repo import write_simulation
    from warping.task.demo import DEMO_PATCH, demo_simulation, demo_skymap

    name = "dense" if dense else "demo"
    repo.mkdir(parents=True, exist_ok=True)
    with Butler.create(str(repo), exist_ok=True) as butler:
        if not butler.exists("truth_catalog", {}):
            t0 = time.perf_counter()
            skymap = demo_skymap()
            sim = demo_simulation(skymap, ccd_size=ccd_size, **(DENSE_STARS if dense else {}))
            write_simulation(butler, sim, tract=0, skymap=skymap)
            print(f"{name}: simulated into {repo} in {time.perf_counter() - t0:.0f} s")
        truth = butler.get("truth_catalog", {})
    # jointcal's WCS and PhotoCalib are the simulation's truth
    truth_calib = ["doApplyExternalPhotoCalib=True", "doApplyExternalSkyWcs=True"]
    warps, notes = _run(repo, f"fidelity-{tag}", dict(DEMO_PATCH), [*truth_calib, *overrides],
                        files, jobs=jobs, reuse=reuse)  # fmt: skip
    scale = 0.168
    return CaseData(
        ra=np.asarray(truth["ra"], float),
        dec=np.asarray(truth["dec"], float),
        flux=np.asarray(truth["flux_nJy"], float),
        is_star=np.asarray(truth["is_star"], bool),
        r_half_px=np.asarray(truth["r_half_arcsec"], float) / scale,
        warps=warps,
        notes=[f"repository {repo}", *notes],
        bad_bits=_bad_bits(warps),
        faint_flux=float(10 ** (-0.4 * (24.0 - 31.4)) * 1.0),  # mag 24 in nJy
    )


def _cli(*argv: str) -> str:
    from typer.testing import CliRunner

    from repo_butler_cli.main import app

    result = CliRunner().invoke(app, list(argv))
    if result.exit_code != 0:
        raise RuntimeError(f"rb {' '.join(argv)} failed: {result.output}")
    return result.output


def cfht_case(
    overrides: Sequence[str], files: Sequence[tuple[str, str]], tag: str
) -> CaseData | None:
    """The CFHT calexp pair of jointcal's cfht_minimal, filled with a star grid; None if absent."""
    data = SHARED_DATA / "lsst-jointcal-cfht_minimal"
    if not (data / f"visitSummary-{CFHT_VISITS[0]}.fits").is_file():
        return None
    from repo_butler import Butler
    from warping.formats.afw_visit_summary import read_visit_summary_file
    from warping.formats.exposure_fits import read_exposure
    from warping.simulate.restamp import restamp_calexp

    work = Path(tempfile.gettempdir()) / f"repo-butler-psf-fidelity/cfht-{tag}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = {v: read_visit_summary_file(str(data / f"visitSummary-{v}.fits")).row(CFHT_CCD)
            for v in CFHT_VISITS}  # fmt: skip
    wcs0 = rows[CFHT_VISITS[0]].wcs
    gx, gy = np.meshgrid(np.linspace(150, 1900, 8), np.linspace(200, 4400, 16))
    ra, dec = wcs0.pixel_to_world_values(gx.ravel() + 0.37, gy.ravel() - 0.21)
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    keep = np.ones(ra.size, bool)
    for v in CFHT_VISITS:  # well inside both CCDs (2048 x 4612)
        x, y = rows[v].wcs.world_to_pixel_values(ra, dec)
        keep &= (x > 60) & (x < 1987) & (y > 60) & (y < 4551)
    ra, dec = ra[keep], dec[keep]
    flux = np.geomspace(3e5, 3e6, ra.size)
    rng = np.random.default_rng(18)
    paths = []
    for v in CFHT_VISITS:
        src = data / f"calexp-{v}-{CFHT_CCD}.fits.fz"
        calexp = read_exposure(src)
        x, y = rows[v].wcs.world_to_pixel_values(ra, dec)
        calib = rows[v].photo_calib.evaluate(np.asarray(x, float), np.asarray(y, float))
        dst = work / f"calexp-{v}-{CFHT_CCD}.fits"
        restamp_calexp(
            src, dst, np.column_stack([x, y]), flux / calib, calexp.psf,
            variance=CFHT_NOISE_VAR, rng=rng,
        )  # fmt: skip
        paths.append(str(dst))
    repo = work / "repo"
    _cli("create", str(repo))
    _cli("ingest", str(repo), "calexp", *paths)
    _cli("ingest", str(repo), "visitSummary", *(str(data / f"visitSummary-{v}.fits")
                                                for v in CFHT_VISITS))  # fmt: skip
    _cli("make-skymap", str(repo), "--patch-inner-dimensions", "2500", "2500")
    with Butler(str(repo)) as butler:
        skymap = butler.get("deepCoadd_skyMap")
    ra_c, dec_c = wcs0.pixel_to_world_values(1023.5, 2305.5)
    patch = skymap[0].find_patch(float(ra_c), float(dec_c))
    patch_id = {"tract": 0, "patch": patch.name, "filter": CFHT_FILTER}
    calib = ["useVisitSummaryWcs=True", "useVisitSummaryPhotoCalib=True"]
    warps, notes = _run(repo, f"fidelity-{tag}", patch_id, [*calib, *overrides], files)
    return CaseData(
        ra=ra, dec=dec, flux=flux, is_star=np.ones(ra.size, bool), r_half_px=np.zeros(ra.size),
        warps=warps, notes=[f"patch {patch.name}, {ra.size} grid stars", *notes],
        bad_bits=_bad_bits(warps), faint_flux=float(flux.min()) / 16.0,
    )  # fmt: skip
