"""Benchmark of the astropy-free ``rb warp-image`` path (lite_fits / lite_wcs) against astropy.

A benchmark, not a test. On the ``bench/warp_bench.py`` geometry (2048x4096 float32 TAN-SIP CCD,
4200x4200 TAN target, 421x421 interpolation grid = 177k points) it prints, best of ``--repeat``:

* import time of the lite modules vs ``astropy.wcs`` + ``astropy.io.fits`` (fresh processes);
* reading the input image, writing the output image;
* the TAN-SIP ``world_to_pixel`` of the grid (lite Newton vs ``all_world2pix(tolerance=1e-12)``)
  and the trig-free pixel-pair transform, with the largest difference to astropy.

CPU seconds are shown next to wall seconds (the machine is shared). Usage:
``python bench/lite_bench.py [--repeat 5] [--workdir bench/out/lite]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best wall and CPU seconds over ``repeat`` calls (after one warm-up) and the last result."""
    out = fn()
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus), out


def import_time(stmt: str, repeat: int) -> float:
    """Best wall seconds of ``python -c stmt`` minus an empty interpreter start."""

    def run(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        return time.perf_counter() - t0

    empty = min(run("pass") for _ in range(repeat))
    return min(run(stmt) for _ in range(repeat)) - empty


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "lite")
    args = ap.parse_args()
    from astropy.io import fits

    from warping.warp.lite_fits import read_image, write_image
    from warping.warp.lite_wcs import LiteWcs, pair_transform
    from warping.warp.testing import make_sip_wcs, make_tan_wcs

    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    src = make_sip_wcs(150.0, 2.0, (4096, 2048), 0.168, corner_distortion_px=5.0)
    dest = make_tan_wcs(150.0, 2.0, (2099.5, 2099.5), 0.2, 30.0)
    image = np.random.default_rng(0).normal(size=(4096, 2048)).astype(np.float32)
    fits.PrimaryHDU(image, header=src.to_header(relax=True)).writeto(
        work / "input.fits", overwrite=True
    )
    out = np.zeros((4200, 4200), np.float32)
    lite_src, lite_dest = LiteWcs.from_astropy(src), LiteWcs.from_astropy(dest)
    assert lite_src is not None and lite_dest is not None
    yy, xx = np.mgrid[-1:4200:10, -1:4200:10].astype(float)
    ra, dec = dest.all_pix2world(xx.ravel(), yy.ravel(), 0)

    rows: list[tuple[str, str, str, str]] = []
    t_lite = import_time("import numpy, warping.warp.lite_io", args.repeat)
    t_astropy = import_time("import numpy, astropy.wcs, astropy.io.fits", args.repeat)
    rows.append(("imports (s, wall)", f"{t_lite:.3f}", f"{t_astropy:.3f}", ""))

    def fits_read() -> np.ndarray:  # as fits_io.read_image_and_wcs: no memmap, native order
        return np.asarray(fits.getdata(work / "input.fits", memmap=False)).astype("=f4")

    w1, c1, got = best(lambda: read_image(work / "input.fits"), args.repeat)
    w2, c2, ref = best(fits_read, args.repeat)
    same = "identical" if np.array_equal(got[0], ref) else "DIFFER"
    rows.append(
        (
            "read 2048x4096 f32 (ms)",
            f"{w1 * 1e3:.0f} ({c1 * 1e3:.0f})",
            f"{w2 * 1e3:.0f} ({c2 * 1e3:.0f})",
            same,
        )
    )

    def fits_write() -> None:
        fits.PrimaryHDU(out, header=dest.to_header()).writeto(work / "a.fits", overwrite=True)

    w1, c1, _ = best(lambda: write_image(work / "l.fits", out, lite_dest.to_cards()), args.repeat)
    w2, c2, _ = best(fits_write, args.repeat)
    rows.append(
        (
            "write 4200x4200 f32 (ms)",
            f"{w1 * 1e3:.0f} ({c1 * 1e3:.0f})",
            f"{w2 * 1e3:.0f} ({c2 * 1e3:.0f})",
            "",
        )
    )

    def astropy_inverse() -> Any:
        return src.all_world2pix(ra, dec, 0, tolerance=1e-12, maxiter=100, quiet=True)

    w1, c1, (lx, ly) = best(lambda: lite_src.world_to_pixel_values(ra, dec), args.repeat)
    w2, c2, (ax, ay) = best(astropy_inverse, max(1, args.repeat // 2))
    diff = float(np.max(np.hypot(lx - ax, ly - ay)))
    rows.append(
        (
            f"TAN-SIP world_to_pixel, {ra.size} pts (ms)",
            f"{w1 * 1e3:.1f} ({c1 * 1e3:.1f})",
            f"{w2 * 1e3:.1f} ({c2 * 1e3:.1f})",
            f"max diff {diff:.1e} px",
        )
    )
    transform = pair_transform(lite_src, lite_dest)
    w1, c1, (px, py) = best(lambda: transform(xx.ravel(), yy.ravel()), args.repeat)
    diff = float(np.max(np.hypot(px - ax, py - ay)))
    rows.append(
        (
            "pixel-pair transform, same grid (ms)",
            f"{w1 * 1e3:.1f} ({c1 * 1e3:.1f})",
            "-",
            f"max diff {diff:.1e} px",
        )
    )

    head = ("operation", "lite wall (cpu)", "astropy wall (cpu)", "check")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
