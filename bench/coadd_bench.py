"""The coadd against its peers: ``rb assemble-coadd`` vs ``reproject_and_coadd`` and SWarp.

A benchmark, not a test. It writes ``--warps`` synthetic direct warps of one patch (default 8
warps of the demo skymap's 4200 x 4200 patch 5,4: 100 nJy sky, the same stars in every warp,
Gaussian noise of a different variance per warp, NO_DATA bands of different widths, a few BAD
columns and cosmic rays) into a repository, and the same warps as plain FITS image + weight
files (weight = 1/variance, 0 where a pixel is NO_DATA, BAD, SAT or EDGE). On these it times,
as whole child processes (wall, CPU, peak RSS polled from ``/proc``), best of ``--repeat``:

* ``rb assemble-coadd REPO --id tract=0 patch=5,4 filter=HSC-I --statistic MEAN
  --weighting pixel`` (read the warps through the butler, combine tile by tile, write the
  ``deepCoadd`` with its CoaddPsf, inputs and provenance), and ``--statistic MEDIAN``;
* SWarp ``COMBINE_TYPE WEIGHTED`` and ``MEDIAN`` with ``RESAMPLE N`` (the inputs are on the
  output grid, so it only combines), ``WEIGHT_TYPE MAP_WEIGHT``, one thread;
* ``reproject.mosaicking.reproject_and_coadd`` with ``combine_function="mean"``,
  ``input_weights`` = the weight files and nearest-neighbour ``reproject_interp`` on the same
  grid (so it only combines).

Pixel agreement: the largest relative difference ``|ours - theirs| / |theirs|`` over the
pixels every tool defines. Memory: ours at ``--warps`` and at half as many warps, to show the
peak RSS does not grow with the number of warps (tiles of ``--tile`` pixels).

Targets (issue #24): pixels equal within float32 rounding (relative difference <= 1e-6);
faster than SWarp's combine; peak RSS at N warps <= 1.25 x the peak at N/2 warps.

Usage: ``python bench/coadd_bench.py [--warps 8] [--repeat 2]``; ``--quick`` runs 4 and 2 warps
of a 340 x 340 patch in a few seconds (a check that the script works; its figures mean nothing
and it writes no results file).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _results import Results  # noqa: E402
from make_warp_bench import timed  # noqa: E402

PATCH_ID = {"tract": 0, "patch": "5,4", "filter": "HSC-I"}
BAD = ("NO_DATA", "BAD", "SAT", "EDGE")
TARGET_REL = 1e-6
TARGET_RSS_GROWTH = 1.25


def skymap(quick: bool) -> Any:
    from warping.task.demo import demo_skymap

    if quick:
        return demo_skymap(
            patch_inner=300, patch_border=20, pixel_scale_arcsec=0.2, radius_deg=0.07
        )
    return demo_skymap()


def write_warps(repo: Path, files: Path, n: int, quick: bool, seed: int = 24) -> list[int]:
    """``n`` synthetic warps into a new repository at ``repo`` and as FITS files in ``files``."""
    from astropy.io import fits

    from repo_butler import Butler
    from warping.coadd_inputs import CcdRecord, CoaddInputs, VisitRecord
    from warping.coadd_psf import CoaddPsf
    from warping.exposure import Exposure
    from warping.geom import Box2I
    from warping.masks import MaskPlanes
    from warping.photocalib import PhotoCalib
    from warping.psf.analytic import GaussianPsf
    from warping.skywcs import shift_wcs

    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    sky = skymap(quick)
    butler = Butler.create(repo)
    butler.put(sky, "deepCoadd_skyMap", {})
    tract = sky[0]
    box = tract.patch(PATCH_ID["patch"]).outer_bbox
    planes = MaskPlanes.default()
    rng = np.random.default_rng(seed)
    h, w = box.shape
    stars = np.zeros((h, w), dtype=np.float32)
    yy, xx = rng.uniform(0, h, 400), rng.uniform(0, w, 400)
    for y, x, f in zip(yy.astype(int), xx.astype(int), rng.uniform(1e3, 1e5, 400), strict=True):
        stars[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] += f / 25.0
    header = shift_wcs(tract.wcs, -box.x0, -box.y0).to_header()
    visits = [904000 + 2 * k for k in range(n)]
    for k, visit in enumerate(visits):
        sigma2 = float(rng.uniform(50.0, 150.0))
        variance = np.full((h, w), sigma2, dtype=np.float32)
        image = (100.0 + stars + rng.normal(0.0, np.sqrt(sigma2), (h, w))).astype(np.float32)
        variance += stars / 100.0  # source noise: the variance varies over the warp
        mask = np.zeros((h, w), dtype=np.int32)
        cut = (k * 37) % max(1, w // 5)
        mask[:, :cut] = planes.bitmask("NO_DATA")
        image[:, :cut] = np.nan
        variance[:, :cut] = np.inf
        mask[:, w // 2 + k] |= planes.bitmask("BAD")
        crs = rng.integers(0, h * w, size=max(1, h * w // 20000))
        image.ravel()[crs] += 5000.0  # cosmic rays the warps do not flag
        ccd = CcdRecord(
            id=visit * 200, ccd=0, visit=visit, goodpix=int((mask == 0).sum()), weight=1.0,
            filter=PATCH_ID["filter"], bbox=Box2I(0, 0, w, h),
            wcs=shift_wcs(tract.wcs, -box.x0, -box.y0), psf=GaussianPsf(1.5 + 0.05 * k),
            photo_calib=PhotoCalib(1.0), data_id={"visit": visit, "ccd": 0},
        )  # fmt: skip
        exp = Exposure(
            image, mask, variance, mask_planes=planes, xy0=(box.x0, box.y0), wcs=tract.wcs,
            psf=CoaddPsf([ccd], tract.wcs), photo_calib=PhotoCalib(1.0), filter="HSC-I",
            id=visit, metadata={"BUNIT": "nJy"},
        )  # fmt: skip
        exp.coadd_inputs = CoaddInputs([VisitRecord(visit, ccd.goodpix, filter="HSC-I")], [ccd])
        butler.put(exp, "deepCoadd_directWarp", {**PATCH_ID, "visit": visit})
        good = (mask & planes.bitmask(*BAD)) == 0
        fits.PrimaryHDU(np.where(good, image, 0).astype(np.float32), header=header).writeto(
            files / f"w{visit}.fits"
        )
        weight = np.where(good, 1.0 / np.where(good, variance, 1.0), 0).astype(np.float32)
        fits.PrimaryHDU(weight, header=header).writeto(files / f"w{visit}.weight.fits")
    head = header.copy()
    head["NAXIS"], head["NAXIS1"], head["NAXIS2"] = 2, w, h
    (files / "coadd.head").write_text(head.tostring(sep="\n", endcard=True) + "\n")
    butler.close()
    return visits


def rb_cmd(repo: Path, rerun: str, statistic: str, tile: int) -> list[str]:
    rb = shutil.which("rb", path=str(Path(sys.executable).parent)) or "rb"
    return [
        rb, "assemble-coadd", str(repo), "--rerun", rerun, "--overwrite",
        "--id", "tract=0", f"patch={PATCH_ID['patch']}", "filter=HSC-I",
        "--statistic", statistic, "--weighting", "pixel", "--tile", str(tile),
    ]  # fmt: skip


def swarp_cmd(binary: str, files: Path, visits: list[int], combine: str) -> list[str]:
    out = files / f"swarp_{combine.lower()}.fits"
    return [
        binary, *[str(files / f"w{v}.fits") for v in visits],
        "-IMAGEOUT_NAME", str(out), "-WEIGHTOUT_NAME", str(out.with_suffix(".weight.fits")),
        "-WEIGHT_TYPE", "MAP_WEIGHT", "-WEIGHT_SUFFIX", ".weight.fits",
        "-COMBINE", "Y", "-COMBINE_TYPE", combine, "-RESAMPLE", "N",
        "-SUBTRACT_BACK", "N", "-FSCALASTRO_TYPE", "NONE", "-NTHREADS", "1",
        "-VERBOSE_TYPE", "QUIET", "-WRITE_XML", "N", "-COPY_KEYWORDS", "",
    ]  # fmt: skip


def reproject_child(files: Path, visits: list[int]) -> None:
    """Run in a child process: ``reproject_and_coadd`` of the FITS files, written as FITS."""
    from astropy.io import fits
    from astropy.wcs import WCS
    from reproject import reproject_interp
    from reproject.mosaicking import reproject_and_coadd

    head = fits.Header.fromtextfile(str(files / "coadd.head"))
    shape = (int(head["NAXIS2"]), int(head["NAXIS1"]))
    data, footprint = reproject_and_coadd(
        [str(files / f"w{v}.fits") for v in visits],
        WCS(head),
        shape_out=shape,
        input_weights=[str(files / f"w{v}.weight.fits") for v in visits],
        reproject_function=reproject_interp,
        order="nearest-neighbor",
        combine_function="mean",
        match_background=False,
    )
    fits.PrimaryHDU(data.astype(np.float32)).writeto(files / "reproject_mean.fits", overwrite=True)
    fits.PrimaryHDU(footprint.astype(np.float32)).writeto(
        files / "reproject_footprint.fits", overwrite=True
    )


def rel_diff(ours: np.ndarray, theirs: np.ndarray, defined: np.ndarray) -> float:
    a = ours[defined].astype(np.float64)
    b = theirs[defined].astype(np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30))) if a.size else float("nan")


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warps", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--workdir", type=Path, default=HERE / "out" / "coadd")
    parser.add_argument("--quick", action="store_true", help="4 small warps: check the script")
    parser.add_argument("--reproject-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reproject_child:
        reproject_child(Path(args.reproject_child[0]), [int(v) for v in args.reproject_child[1:]])
        return
    from astropy.io import fits

    from repo_butler import Butler

    n = 4 if args.quick else args.warps
    work = args.workdir.resolve()
    runs: dict[str, list[dict[str, float]]] = {}
    binary = shutil.which("SWarp") or shutil.which("swarp")
    env = dict(os.environ)
    outputs: dict[str, np.ndarray] = {}
    shape: tuple[int, int] = (0, 0)
    # the smaller stack first (RSS at N/2 warps), then the full one
    for count in (max(1, n // 2), n):
        repo, files = work / f"repo{count}", work / f"files{count}"
        print(f"# writing {count} warps", flush=True)
        visits = write_warps(repo, files, count, args.quick)
        for rep in range(args.repeat + 1):  # the first round warms the page cache; discarded
            tag = f"{count}"

            def record(label: str, result: dict[str, float], rep: int = rep) -> None:
                if rep > 0 or args.repeat == 0:
                    runs.setdefault(label, []).append(result)

            record(f"ours MEAN {tag}", timed(rb_cmd(repo, "bench", "MEAN", args.tile), env=env))
            if count != n:
                continue
            record(f"ours MEDIAN {tag}", timed(rb_cmd(repo, "med", "MEDIAN", args.tile), env=env))
            if binary:
                record("SWarp WEIGHTED", timed(swarp_cmd(binary, files, visits, "WEIGHTED")))
                record("SWarp MEDIAN", timed(swarp_cmd(binary, files, visits, "MEDIAN")))
            if rep == args.repeat:  # once: minutes of CPU, nothing a warm cache would change
                child = [
                    sys.executable,
                    __file__,
                    "--reproject-child",
                    str(files),
                    *map(str, visits),
                ]
                runs.setdefault("reproject mean", []).append(timed(child, env=env))
        if count == n:
            mean = Butler(repo, rerun="bench").get("deepCoadd", PATCH_ID)
            median = Butler(repo, rerun="med").get("deepCoadd", PATCH_ID)
            outputs["ours MEAN"], outputs["ours MEDIAN"] = mean.image, median.image
            shape = mean.image.shape
            for name, path in (
                ("SWarp WEIGHTED", files / "swarp_weighted.fits"),
                ("SWarp WEIGHTED weight", files / "swarp_weighted.weight.fits"),
                ("SWarp MEDIAN", files / "swarp_median.fits"),
                ("reproject mean", files / "reproject_mean.fits"),
                ("reproject footprint", files / "reproject_footprint.fits"),
            ):
                if path.exists():
                    outputs[name] = fits.getdata(path).astype(np.float32)
    best = {k: min(v, key=lambda r: r["wall"]) for k, v in runs.items()}
    defined = np.isfinite(outputs["ours MEAN"])
    for name in ("SWarp WEIGHTED weight", "reproject footprint"):
        if name in outputs:
            defined &= outputs[name] > 0
    agree = {}
    for ours, theirs in (
        ("ours MEAN", "SWarp WEIGHTED"),
        ("ours MEAN", "reproject mean"),
        ("ours MEDIAN", "SWarp MEDIAN"),
    ):
        if theirs in outputs:
            agree[f"{ours} vs {theirs}"] = rel_diff(outputs[ours], outputs[theirs], defined)

    res = Results("coadd_bench", f"Coadd of {n} warps of {shape[1]}x{shape[0]} px vs peers")
    rows = []
    for label, r in best.items():
        rows.append([label, f"{r['wall']:.2f}", f"{r['cpu']:.2f}", f"{r['rss_mb']:.0f}"])
        res.figure(f"{label} wall", r["wall"], unit="s")
        res.figure(f"{label} peak RSS", r["rss_mb"], unit="MB")
    res.table(["run (warps)", "wall s", "CPU s", "peak RSS MB"], rows, title="time and memory")
    res.table(
        ["comparison", "max relative difference"],
        [[k, f"{v:.2e}"] for k, v in agree.items()],
        title=f"pixel agreement over {int(defined.sum())} pixels defined by every tool",
    )
    for name, value in agree.items():
        res.figure(f"max rel diff {name}", value)
        res.target(f"max rel diff {name}", "<=", TARGET_REL)
    ours_mean = best[f"ours MEAN {n}"]
    if "SWarp WEIGHTED" in best:
        res.figure(
            "speed-up over SWarp WEIGHTED",
            best["SWarp WEIGHTED"]["wall"] / ours_mean["wall"],
            unit="x",
        )
        res.target("speed-up over SWarp WEIGHTED", ">=", 1.0)
    if "SWarp MEDIAN" in best:
        speed = best["SWarp MEDIAN"]["wall"] / best[f"ours MEDIAN {n}"]["wall"]
        res.figure("speed-up over SWarp MEDIAN", speed, unit="x")
    growth = ours_mean["rss_mb"] / best[f"ours MEAN {max(1, n // 2)}"]["rss_mb"]
    res.figure(f"peak RSS growth {max(1, n // 2)} -> {n} warps", growth, unit="x")
    res.target(f"peak RSS growth {max(1, n // 2)} -> {n} warps", "<=", TARGET_RSS_GROWTH)
    res.note(
        "Whole processes, best of the repeats after a warm-up round (reproject_and_coadd, whose "
        "combine takes minutes of CPU, runs once, in the last round). Ours reads the warps through "
        "the butler (FITS sections of each tile), writes the deepCoadd with its CoaddPsf, inputs "
        "table and provenance; SWarp and reproject read plain image + weight files on the same "
        "grid and write one image. Ours uses --weighting pixel (1/variance, as the peers' weight "
        f"maps) and tiles of {args.tile} px, one process, no Dask."
    )
    print_table(["run (warps)", "wall s", "CPU s", "peak RSS MB"], rows)
    print()
    print_table(
        ["comparison", "max relative difference"], [[k, f"{v:.2e}"] for k, v in agree.items()]
    )
    print(f"# {int(defined.sum())} pixels defined by every tool; {len(visits)} warps")
    if args.quick:
        print("# --quick: figures of a tiny stack, no results file written")
        return
    res.write()


if __name__ == "__main__":
    main()
