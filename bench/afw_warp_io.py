"""afw-layout warp I/O: write and read time and file size of one direct warp, ours vs afw's (#26).

A benchmark, not a test. It simulates a small repository (the demo's visits with CCDs of 256 x 512
pixels), makes the direct warps of one patch (340 x 340 pixels) and
takes one: its CoaddInputs (4 CCDs) and CoaddPsf are what make-warp writes. To weigh the
pixels as well, the same warp is also timed with its three planes tiled ``--tile`` times in each
direction (12: 4080 x 4080, about the demo's 4200 x 4200 patch; the tables are unchanged).

For each size and layout (``native``: our exposure format; ``afw``: ``warpFormat='afw'``) it
times building the file's bytes from the Exposure (what the ``exposure`` formatter does on put)
and decoding them back (what ``Butler.get`` does), best of ``--repeat``, and reports the size.

Usage: ``python bench/afw_warp_io.py [--repeat 3] [--tile 12]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _results import Results, best_of  # noqa: E402

MB = 1e6


def sim_warp(root: Path) -> Any:
    """One direct warp made by make-warp on a small simulated repository."""
    from repo_butler import Butler
    from warping.simulate.repo import write_simulation
    from warping.task.config import MakeWarpConfig
    from warping.task.demo import DEMO_PATCH, demo_simulation, demo_skymap
    from warping.task.runner import run_make_warp

    skymap = demo_skymap(patch_inner=300, patch_border=20, pixel_scale_arcsec=0.168,
                         radius_deg=0.07)  # fmt: skip
    sim = demo_simulation(skymap, ccd_size=(256, 512))
    with Butler.create(str(root)) as butler:
        write_simulation(butler, sim, tract=0, skymap=skymap)
    butler = Butler(str(root), rerun="bench")
    run_make_warp(butler, dict(DEMO_PATCH), config=MakeWarpConfig())
    ref = butler.query_datasets("deepCoadd_directWarp", runs=["bench"])[0]
    return butler.get("deepCoadd_directWarp", dict(ref.data_id))


def tiled(warp: Any, n: int) -> Any:
    """``warp`` with its planes tiled ``n`` x ``n`` (same origin, WCS and tables)."""
    big = warp.copy()
    big.image = np.tile(warp.image, (n, n))
    big.mask = np.tile(warp.mask, (n, n))
    big.variance = np.tile(warp.variance, (n, n))
    return big


def measure(warp: Any, repeat: int) -> list[dict[str, Any]]:
    from warping.formats.afw_exposure_write import AfwLayoutExposure
    from warping.formats.exposure_fits import exposure_from_bytes, exposure_to_bytes

    rows = []
    for layout, payload in (("native", warp), ("afw", AfwLayoutExposure(warp))):
        data = exposure_to_bytes(payload)
        write_s, _ = best_of(lambda p=payload: exposure_to_bytes(p), repeat)
        read_s, _ = best_of(lambda d=data: exposure_from_bytes(d, "bench.fits"), repeat)
        back = exposure_from_bytes(data, "bench.fits")
        assert np.array_equal(back.image, warp.image, equal_nan=True)
        planes = warp.image.nbytes + warp.mask.nbytes + warp.variance.nbytes
        rows.append({"layout": layout, "size_mb": len(data) / MB, "tables_mb":
                     (len(data) - planes) / MB, "write_s": write_s, "read_s": read_s})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tile", type=int, default=12)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        print("simulating a small repository and making its warps ...", flush=True)
        warp = sim_warp(Path(tmp) / "repo")
    res = Results("afw_warp_io", "afw-layout warps: write/read time and size vs our format")
    table = []
    for label, exp in (("patch", warp), ("tiled", tiled(warp, args.tile))):
        size = f"{exp.width}x{exp.height}"
        for row in measure(exp, args.repeat):
            key = f"{label} {row['layout']}"
            table.append([size, row["layout"], f"{row['size_mb']:.2f}",
                          f"{row['tables_mb'] * 1000:.0f}", f"{row['write_s']:.3f}",
                          f"{row['read_s']:.3f}"])  # fmt: skip
            res.figure(f"{key} size", row["size_mb"], unit="MB")
            res.figure(f"{key} tables", row["tables_mb"] * 1000, unit="kB")
            res.figure(f"{key} write", row["write_s"], unit="s")
            res.figure(f"{key} read", row["read_s"], unit="s")
    cols = ["warp", "layout", "size MB", "headers+tables kB", "write s", "read s"]
    width = [max(len(str(c)) for c in col) for col in zip(cols, *table, strict=True)]
    for line in [cols, *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, width, strict=True)))
    res.table(cols, table, title="One direct warp (4 input CCDs) in each layout")
    res.note(
        "write s: the file's bytes from the Exposure (what the exposure formatter does on put); "
        "read s: those bytes back to an Exposure (Butler.get); no disk I/O. headers+tables: the "
        "file size minus the three planes' bytes (headers, PSF, WCS, inputs tables / archive)."
    )
    res.note(
        "The tiled rows repeat the patch's planes; their tables are the patch's. The afw "
        "layout converts each WCS to an AST SkyWcs on write and parses the AST text on read."
    )
    res.note("Wall-clock times vary with machine load (2 cores shared with other jobs here).")
    res.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
