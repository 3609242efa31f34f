"""Benchmark: how faithful are direct and PSF-matched warps? Stars, fluxes and noise vs truth.

Two cases, each run through ``run_make_warp`` with ``makePsfMatched=True`` plus any overrides:

* ``demo``: the simulated demo repository (``rb demo``'s visits and CCDs, tract 0 patch 5,4),
  truth from its ``truth_catalog`` (star positions and fluxes). Built once into ``--repo``
  (default: a directory under the system temp dir, reused on the next run).
* ``dense``: the demo's visits, CCDs and PSFs simulated again with a star field made for the
  statistics (``_fidelity_cases.DENSE_STARS``: ~900 isolated unsaturated stars of S/N 300-5000
  on the patch), into its own cached repository; the sample behind the verdicts.
* ``cfht``: the real CFHT calexps of ``../shared/data/lsst-jointcal-cfht_minimal`` (real PSFEx
  PSFs, AST SkyWcs and PhotoCalib from the visitSummary) whose zeroed pixels are filled with a grid
  of stars drawn with their own PSF plus Gaussian noise of the variance plane (25 counts²).
  Skipped with a note when the data is absent.

Per warp (direct and PSF-matched), over isolated truth stars of S/N ≥ ``--min-snr``:

* size ``sigma_star / sigma_psf - 1`` and ``Δe = e_star - e_psf`` with adaptive second moments
  (``bench/_adaptive_moments.py``, HSM's definition) of the star and of the PSF the warp declares
  (``warp.psf.compute_image`` at the star's measured centroid);
* PSF-flux (linear fit of the declared PSF) and aperture-flux (radius ``--aperture`` FWHM,
  corrected by the declared PSF's fraction inside it) bias vs the truth flux;
* the stacked stars' annulus flux profile minus the declared PSF's, in 1-px annuli out to the
  declared stamp's edge, as a fraction of the total flux (largest |difference| reported), and the
  stars' flux in the 10 px beyond that edge;
* noise: in star-free pixels (mask clear, away from every truth source), measured variance over
  the variance plane per pixel, and of 2x2 / 4x4 / 8x8 block sums over the summed plane (a
  block ratio above the per-pixel one measures the noise correlation the plane ignores).

Goals (issue #18): direct size within 0.1 %, matched size within 0.3 %, |Δe| < 0.003, flux bias
< 0.1 %, plane within 5 % per pixel; annulus profile within 0.1 % of the total flux. Each goal
figure has a standard error (bootstrap over stars, per annulus too; the noise ratio's from its
128-px blocks) and a verdict: pass / FAIL when the goal is cleared / missed by 2σ, else "not
resolved" (``bench/_fidelity_stats.py``).

    python bench/psf_fidelity.py [--case demo|dense|cfht|all] [--config key=value ...]
        [--configfile FILE] [--repo DIR] [--ccd-size 2048x4176] [--min-snr 200]

``--config`` takes MakeWarp overrides as on ``rb make-warp`` (e.g. ``modelPsf.defaultFwhm=6``
``"warpAndPsfMatch.psfMatch.kernel['AL'].alardSigGauss=[1.5,3,6]"``); the bench always sets
``makePsfMatched=True`` and, for the demo, the truth calibrations
(``doApplyExternalPhotoCalib=True doApplyExternalSkyWcs=True``: jointcal is the simulation's truth),
so that the figures measure warping and matching rather than the calibration errors it simulates.
Results: ``bench/results/psf_fidelity.json`` (``--name`` changes the file stem).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _adaptive_moments import MomentsError, adaptive_moments
from _fidelity_cases import CaseData, cfht_case, demo_case
from _fidelity_stats import (
    K_SIGMA,
    Estimate,
    block_mean,
    bootstrap,
    bootstrap_profile,
    verdict,
    verdict_all,
)
from _results import Results

GOALS = {
    "direct size": 1e-3,
    "psfMatched size": 3e-3,
    "|Δe|": 3e-3,
    "flux bias": 1e-3,
    "plane per pixel": 0.05,
    "annulus": 1e-3,
}
BLOCKS = (2, 4, 8)
BG_BLOCK = 128  # px, blocks of the local background removed before measuring noise


@dataclass
class WarpFigures:
    """What one warp type of one case measured (lists per star-visit)."""

    size: list[float] = field(default_factory=list)
    de1: list[float] = field(default_factory=list)
    de2: list[float] = field(default_factory=list)
    psf_flux: list[float] = field(default_factory=list)
    ap_flux: list[float] = field(default_factory=list)
    star: list[int] = field(default_factory=list)  # truth index of each star-visit above
    annulus: list[np.ndarray] = field(default_factory=list)  # star - psf, fraction of truth
    annulus_star: list[int] = field(default_factory=list)
    beyond: list[float] = field(default_factory=list)
    outer: list[np.ndarray] = field(default_factory=list)  # the 1-px annuli beyond the stamp
    rejected: dict[str, int] = field(default_factory=dict)
    noise_pixel: list[float] = field(default_factory=list)  # per warp
    noise_pixel_err: list[float] = field(default_factory=list)  # its standard error
    noise_block: dict[int, list[float]] = field(default_factory=dict)
    noise_npix: int = 0
    stamp_half: int = 0

    def reject(self, why: str) -> None:
        self.rejected[why] = self.rejected.get(why, 0) + 1


def _psf_stamp(psf: Any, x: float, y: float) -> tuple[np.ndarray, int, int]:
    """Declared PSF image at ``(x, y)`` and its parent origin."""
    img, bb = psf.compute_image(float(x), float(y))
    return np.asarray(img, dtype=np.float64), bb.x0, bb.y0


def _fwhm_of(psf: Any, x: float, y: float) -> float:
    img, bx, by = _psf_stamp(psf, x, y)
    m = adaptive_moments(img, x - bx, y - by, 2.0)
    return 2.3548 * m.sigma


def measure_stars(
    warp: Any, stars: CaseData, figs: WarpFigures, *, min_snr: float, aperture: float
) -> None:
    """Per-star size, ellipticity, PSF/aperture flux and annulus profile of one warp.

    A star is measured when no neighbour adds more than 2e-4 of its flux inside the aperture
    (``aperture`` x the PSF FWHM); it enters the annulus profile when that also holds out to
    the declared stamp's edge + 10 px.
    """
    x0, y0 = warp.xy0
    h, w = warp.image.shape
    img_all, var_all, mask_all = warp.image, warp.variance, warp.mask
    x, y = warp.wcs.world_to_pixel_values(stars.ra, stars.dec)
    x, y = np.asarray(x, float), np.asarray(y, float)
    for i in np.flatnonzero(stars.is_star):
        xi, yi, f = x[i], y[i], stars.flux[i]
        if not (x0 <= xi < x0 + w and y0 <= yi < y0 + h):
            continue  # not on this patch
        try:
            pimg, px0, py0 = _psf_stamp(warp.psf, xi, yi)
            psf_sigma = adaptive_moments(pimg, xi - px0, yi - py0, 2.0).sigma
        except Exception:  # no PSF there (off the inputs): not a star to measure
            figs.reject("no PSF")
            continue
        half_stamp = pimg.shape[0] // 2
        figs.stamp_half = max(figs.stamp_half, half_stamp)
        half = half_stamp + 10
        ix, iy = round(xi), round(yi)
        if not (x0 + half <= ix < x0 + w - half and y0 + half <= iy < y0 + h - half):
            figs.reject("edge")
            continue
        rap = min(aperture * 2.3548 * psf_sigma, half_stamp)
        if not stars.isolated(i, x, y, radius=rap, psf_sigma=psf_sigma):
            figs.reject("neighbour")
            continue
        sl = np.s_[iy - y0 - half : iy - y0 + half + 1, ix - x0 - half : ix - x0 + half + 1]
        win, var, msk = img_all[sl].astype(np.float64), var_all[sl], mask_all[sl]
        if not (np.isfinite(win).all() and np.isfinite(var).all()) or np.any(msk & stars.bad_bits):
            figs.reject("masked")
            continue
        # S/N of the PSF flux with the declared PSF at the truth position
        pw = _place(pimg, px0 - (ix - half), py0 - (iy - half), win.shape)
        snr = f / np.sqrt((pw**2 * var).sum()) * (pw**2).sum()
        if snr < min_snr:
            figs.reject("S/N")
            continue
        try:
            ms = adaptive_moments(win, xi - ix + half, yi - iy + half, 2.0)
            cx, cy = ms.x + ix - half, ms.y + iy - half
            pimg, px0, py0 = _psf_stamp(warp.psf, cx, cy)
            mp = adaptive_moments(pimg, cx - px0, cy - py0, 2.0)
        except MomentsError:
            figs.reject("moments")
            continue
        figs.star.append(int(i))
        figs.size.append(ms.sigma / mp.sigma - 1.0)
        figs.de1.append(ms.e1 - mp.e1)
        figs.de2.append(ms.e2 - mp.e2)
        pw = _place(pimg, px0 - (ix - half), py0 - (iy - half), win.shape)
        figs.psf_flux.append((pw * win).sum() / (pw * pw).sum() / f - 1.0)
        yy, xx = np.mgrid[0 : win.shape[0], 0 : win.shape[1]]
        r = np.hypot(xx + ix - half - cx, yy + iy - half - cy)
        inside = r < rap
        figs.ap_flux.append(win[inside].sum() / pw[inside].sum() / f - 1.0)
        if stars.isolated(i, x, y, radius=half, psf_sigma=psf_sigma):
            edges = np.arange(half + 1)  # to the stamp's edge, then the 10 px beyond it
            star_prof = np.histogram(r, bins=edges, weights=win)[0] / f
            psf_prof = np.histogram(r, bins=edges, weights=pw)[0]
            figs.annulus.append(star_prof[:half_stamp] - psf_prof[:half_stamp])
            figs.outer.append(star_prof[half_stamp:] - psf_prof[half_stamp:])
            figs.annulus_star.append(int(i))
            figs.beyond.append(win[(r >= half_stamp) & (r < half_stamp + 10)].sum() / f)


def _place(stamp: np.ndarray, ox: int, oy: int, shape: tuple[int, ...]) -> np.ndarray:
    """``stamp`` placed with its [0, 0] at window pixel ``(ox, oy)`` in a zero window."""
    out = np.zeros(shape)
    ys, xs = max(0, oy), max(0, ox)
    ye, xe = min(shape[0], oy + stamp.shape[0]), min(shape[1], ox + stamp.shape[1])
    if ye > ys and xe > xs:
        out[ys:ye, xs:xe] = stamp[ys - oy : ye - oy, xs - ox : xe - ox]
    return out


def _robust_var(z: np.ndarray) -> float:
    """Variance from the median absolute deviation (exact for Gaussian noise)."""
    med = np.median(z)
    return float((1.4826 * np.median(np.abs(z - med))) ** 2)


def _local_background_removed(img: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """``img`` minus the median of its clean pixels in each :data:`BG_BLOCK`-px block.

    The simulated background-subtraction residual (0.5 counts rms on 256-px bins) is smooth, so
    PSF matching leaves it as it is while it divides white noise by ~50: measured on matched
    warps without this step it reads as 5-10 % of extra "noise". The median of >= 4000 pixels
    moves the variance by < 0.5 % even for the most correlated matched noise.
    """
    out = np.full_like(img, np.nan)
    for y in range(0, img.shape[0], BG_BLOCK):
        for x in range(0, img.shape[1], BG_BLOCK):
            b = np.s_[y : y + BG_BLOCK, x : x + BG_BLOCK]
            c = clean[b]
            if c.sum() >= BG_BLOCK * BG_BLOCK // 4:
                out[b] = img[b] - np.median(img[b][c])
    return out


def measure_noise(warp: Any, stars: CaseData, figs: WarpFigures) -> None:
    """Measured noise variance / variance plane in star-free pixels, per pixel and per block."""
    clean = np.isfinite(warp.image) & np.isfinite(warp.variance) & (warp.variance > 0)
    clean &= (warp.mask == 0) & ~stars.source_mask(warp)
    rows, cols = np.flatnonzero(clean.any(axis=1)), np.flatnonzero(clean.any(axis=0))
    if rows.size == 0:
        return
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # the CCDs' part of the patch
    clean = clean[box]
    img = _local_background_removed(warp.image[box].astype(np.float64), clean)
    var = warp.variance[box].astype(np.float64)
    clean &= np.isfinite(img)
    if clean.sum() < 1000:
        return
    figs.noise_npix += int(clean.sum())
    z_all = np.where(clean, img / np.sqrt(np.where(clean, var, 1.0)), np.nan)
    figs.noise_pixel.append(_robust_var(z_all[clean]))
    # standard error: the spread of independent per-block estimates (the noise correlation
    # length, a few px, is far below the block size)
    per_block, weight = [], []
    for y in range(0, img.shape[0], BG_BLOCK):
        for x in range(0, img.shape[1], BG_BLOCK):
            zb = z_all[y : y + BG_BLOCK, x : x + BG_BLOCK]
            zb = zb[np.isfinite(zb)]
            if zb.size >= BG_BLOCK * BG_BLOCK // 4:
                per_block.append(_robust_var(zb))
                weight.append(zb.size)
    figs.noise_pixel_err.append(block_mean(np.asarray(per_block), np.asarray(weight))[1])
    for b in BLOCKS:
        hb, wb = img.shape[0] // b, img.shape[1] // b

        def blocks(a: np.ndarray, b: int = b, hb: int = hb, wb: int = wb) -> np.ndarray:
            return a[: hb * b, : wb * b].reshape(hb, b, wb, b).swapaxes(1, 2).reshape(hb, wb, -1)

        ok = blocks(clean).all(axis=2)
        if ok.sum() < 200:
            continue
        s = np.where(clean, img, 0.0)
        v = np.where(clean, var, 0.0)
        z = blocks(s).sum(axis=2)[ok] / np.sqrt(blocks(v).sum(axis=2)[ok])
        figs.noise_block.setdefault(b, []).append(_robust_var(z))


def run_case(case: CaseData, args: argparse.Namespace) -> dict[str, WarpFigures]:
    """Measure every warp of a case."""
    out: dict[str, WarpFigures] = {}
    for warp_type, warps in case.warps.items():
        figs = out.setdefault(warp_type, WarpFigures())
        for warp in warps:
            measure_stars(warp, case, figs, min_snr=args.min_snr, aperture=args.aperture)
            measure_noise(warp, case, figs)
    return out


def _pm(e: Estimate, fmt: str = "{:+.5f}") -> str:
    if e.n == 0:
        return "n/a"
    return f"{fmt.format(e.mean)} ± {e.sigma:.5f}"


def report(name: str, figures: dict[str, dict[str, WarpFigures]], res: Results) -> list[list[str]]:
    """Print and record the table rows of every case and warp type (each goal figure with its
    bootstrap standard error and a verdict, :mod:`_fidelity_stats`)."""
    rows: list[list[str]] = []
    profiles: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def add(case: str, wt: str, metric: str, value: float, sigma: float, shown: str,
            goal: float | None, key: str, judged: str | None = None) -> None:  # fmt: skip
        if goal is None:
            met = ""
        else:
            met = judged or verdict(value, sigma, goal)
        rows.append([case, wt, metric, shown, "" if goal is None else f"< {goal:g}", met])
        res.figure(f"{case} {wt} {key}", value)
        if np.isfinite(sigma):
            res.figure(f"{case} {wt} {key} σ", sigma, note="bootstrap standard error")
        if goal is not None:
            res.target(f"{case} {wt} {key}", "<=", goal)
            res.note(f"{case} {wt} {key}: {met}")

    for case, per_type in figures.items():
        for wt, f in per_type.items():
            stars = np.asarray(f.star)
            n_stars = np.unique(stars).size
            size = bootstrap(f.size, stars)
            size_goal = GOALS["direct size"] if wt == "direct" else GOALS["psfMatched size"]
            add(case, wt, f"size σ*/σpsf−1 (N={size.n}, {n_stars} stars)", abs(size.mean),
                size.sigma, _pm(size), size_goal, "|size residual|")  # fmt: skip
            de1, de2 = bootstrap(f.de1, stars), bootstrap(f.de2, stars)
            worse = de1 if abs(de1.mean) >= abs(de2.mean) else de2
            judged = verdict_all(np.array([de1.mean, de2.mean]), np.array([de1.sigma, de2.sigma]),
                                 GOALS["|Δe|"])  # fmt: skip
            add(case, wt, "Δe1, Δe2 (mean)", abs(worse.mean), worse.sigma,
                f"{_pm(de1)}, {_pm(de2)}", GOALS["|Δe|"], "|mean Δe|", judged)  # fmt: skip
            for label, vals, key in (("PSF-flux / truth − 1", f.psf_flux, "|PSF-flux bias|"),
                                     ("aperture flux / truth − 1", f.ap_flux,
                                      "|aperture-flux bias|")):  # fmt: skip
                e = bootstrap(vals, stars)
                add(case, wt, label, abs(e.mean), e.sigma, _pm(e), GOALS["flux bias"], key)
            if f.annulus:
                n_ann = min(len(a) for a in f.annulus)  # the smallest declared stamp
                ann = np.stack([a[:n_ann] for a in f.annulus])
                prof, prof_err, n_sv, n_st = bootstrap_profile(ann, f.annulus_star)
                worst = int(np.argmax(np.abs(prof)))
                # the annulus nearest to failing: largest |mean| + K sigma
                edge = int(np.argmax(np.abs(prof) + K_SIGMA * prof_err))
                judged = verdict_all(prof, prof_err, GOALS["annulus"])
                add(case, wt, f"annulus star−PSF, r<{f.stamp_half} px, worst r={worst} "
                    f"({n_sv} star-visits, {n_st} stars)", float(np.abs(prof).max()),
                    float(prof_err[worst]), f"{prof[worst]:+.5f} ± {prof_err[worst]:.5f}"
                    f" (r={edge}: {prof[edge]:+.5f} ± {prof_err[edge]:.5f})", GOALS["annulus"],
                    "|annulus profile difference|", judged)  # fmt: skip
                beyond = bootstrap(f.beyond, f.annulus_star)
                add(case, wt, f"star flux in r={f.stamp_half}–{f.stamp_half + 10} px",
                    beyond.mean, beyond.sigma, _pm(beyond, fmt="{:.5f}"), None,
                    "flux beyond stamp")  # fmt: skip
                outer = np.stack([a[:10] for a in f.outer])
                o_prof, o_err, _, _ = bootstrap_profile(outer, f.annulus_star)
                profiles[f"{case} {wt}"] = (np.concatenate([prof, o_prof]),
                                            np.concatenate([prof_err, o_err]))  # fmt: skip
            if f.noise_pixel:
                dev = np.abs(np.asarray(f.noise_pixel) - 1.0)
                i = int(np.argmax(dev))
                lo, hi = min(f.noise_pixel), max(f.noise_pixel)
                judged = verdict_all(
                    np.asarray(f.noise_pixel) - 1.0,
                    np.asarray(f.noise_pixel_err),
                    GOALS["plane per pixel"],
                )
                add(case, wt, f"noise/plane per pixel ({len(f.noise_pixel)} warps)",
                    float(dev[i]), f.noise_pixel_err[i],
                    f"{lo:.3f}–{hi:.3f} (± {max(f.noise_pixel_err):.3f})",
                    GOALS["plane per pixel"], "|per-pixel noise/plane − 1|", judged)  # fmt: skip
                for b, vals in sorted(f.noise_block.items()):
                    shown = f"{min(vals):.3f}–{max(vals):.3f}"
                    add(case, wt, f"noise/plane {b}x{b} block sums", max(vals), float("nan"),
                        shown, None, f"block {b} noise/plane")  # fmt: skip
            if f.rejected:
                why = ", ".join(f"{k} {v}" for k, v in sorted(f.rejected.items()))
                res.note(f"{case} {wt}: stars not measured: {why}.")
    if profiles:
        n_r = max(len(p) for p, _ in profiles.values())
        cols = list(profiles.values())
        table = [[f"{r}–{r + 1}"] + [f"{p[r]:+.5f} ± {e[r]:.5f}" if r < len(p) else ""
                                     for p, e in cols] for r in range(n_r)]  # fmt: skip
        res.table(["r (px)", *profiles], table,
                  title="Stacked stars minus declared PSF per 1-px annulus, fraction of the total "
                  "flux (to the declared stamp's edge + 10 px), ± bootstrap standard "
                  "error")  # fmt: skip
    return rows


def print_table(rows: list[list[str]], columns: list[str]) -> None:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(wd) for c, wd in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(wd) for c, wd in zip(r, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("demo", "dense", "cfht", "all"), default="all",
                        help="all = demo + cfht; dense = the demo's visits with many isolated "
                        "bright stars (the statistics behind the verdicts)")  # fmt: skip
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                        help="MakeWarp config overrides, as on rb make-warp")  # fmt: skip
    parser.add_argument("--configfile", help="a MakeWarp config file (config.<field> = value)")
    parser.add_argument("--repo", type=Path, help="demo repository (built there if missing)")
    parser.add_argument("--ccd-size", default="2048x4176", help="demo CCD size WxH")
    parser.add_argument("--min-snr", type=float, default=200.0)
    parser.add_argument("--aperture", type=float, default=2.0, help="aperture radius, PSF FWHM")
    parser.add_argument("--jobs", type=int, default=1, help="make-warp worker processes")
    parser.add_argument("--name", default="psf_fidelity", help="results file stem")
    parser.add_argument("--reuse", action="store_true",
                        help="keep demo warps already made with the same overrides")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    files = []
    if args.configfile:
        files.append((args.configfile, Path(args.configfile).read_text(encoding="utf-8")))
    overrides = ["makePsfMatched=True", *args.config]
    # the rerun / work directory: one per config and per checkout of the code being measured
    import warping

    key = [*overrides, *(t for _, t in files), str(Path(warping.__file__).resolve().parent)]
    tag = hashlib.sha1("\n".join(key).encode()).hexdigest()[:10]
    width, height = (int(v) for v in args.ccd_size.lower().split("x"))
    cache = Path(tempfile.gettempdir()) / "repo-butler-psf-fidelity"
    res = Results(args.name, "PSF and noise fidelity of direct and PSF-matched warps vs truth")
    figures: dict[str, dict[str, WarpFigures]] = {}
    cases = ("demo", "cfht") if args.case == "all" else (args.case,)
    for case_name in cases:
        t0 = time.perf_counter()
        if case_name in ("demo", "dense"):
            dense = case_name == "dense"
            where = args.repo or cache / f"{case_name}-{width}x{height}"
            case = demo_case(where, (width, height), overrides, files, tag, jobs=args.jobs,
                             reuse=args.reuse, dense=dense)  # fmt: skip
        else:
            case = cfht_case(overrides, files, tag)
        if case is None:
            res.note("cfht: skipped, ../shared/data/lsst-jointcal-cfht_minimal is absent.")
            print("cfht: skipped (../shared/data/lsst-jointcal-cfht_minimal is absent)")
            continue
        for line in case.notes:
            res.note(f"{case_name}: {line}")
            print(f"{case_name}: {line}")
        figures[case_name] = run_case(case, args)
        print(f"{case_name}: warps made and measured in {time.perf_counter() - t0:.0f} s")
    columns = ["case", "warp", "metric", "value", "goal", "verdict"]
    rows = report(args.name, figures, res)
    print_table(rows, columns)
    res.table(columns, rows, title="Fidelity vs truth (mean ± bootstrap standard error over "
              "stars; verdict: pass / FAIL when the goal is cleared / missed by 2σ, else not "
              "resolved)")  # fmt: skip
    res.note(
        "Config overrides: " + " ".join(overrides) + (f" + {args.configfile}" if files else "")
    )
    res.note(
        "Size: adaptive-moment sigma of each star over that of the declared PSF at its centroid; "
        "flux: declared-PSF fit and aperture (corrected by the declared PSF) over the truth flux; "
        "noise: robust (MAD) variance of image/sqrt(variance) in star-free pixels, per warp."
    )
    res.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
