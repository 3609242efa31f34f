"""``rb warp-image``: warp a plain FITS image onto a target grid (thin adapter over warping)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def warp_image_cmd(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT.fits", help="FITS file: 2-D image + WCS.", exists=True)
    ],
    target_header: Annotated[
        Path,
        typer.Argument(
            metavar="TARGET.head", help="Text file of FITS cards: NAXIS1/2 + WCS.", exists=True
        ),
    ],
    output_path: Annotated[Path, typer.Argument(metavar="OUTPUT.fits", help="Output FITS file.")],
    kernel: Annotated[
        str, typer.Option(metavar="KERNEL", help="nearest, bilinear, lanczos2..5.")
    ] = "lanczos3",
    interp_length: Annotated[
        int, typer.Option(metavar="PIXELS", help="WCS grid spacing; 0 = exact.")
    ] = 10,
    threads: Annotated[
        int | None, typer.Option(metavar="N", help="Threads (default: all cores).")
    ] = None,
    surface_brightness: Annotated[
        bool, typer.Option(help="Conserve surface brightness instead of flux.")
    ] = False,
) -> None:
    """Warp a plain FITS image onto a target grid (NaN where there is no data)."""
    import os

    # no BLAS is used here: skip OpenBLAS's thread pool start-up (~0.1 CPU-s) at numpy import
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from warping.warp import WarpingControl
    from warping.warp.fits_io import warp_fits_file

    try:
        control = WarpingControl(
            kernel=kernel,
            mask_kernel="",
            interp_length=interp_length,
            threads=threads,
            conserve_flux=not surface_brightness,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    summary = warp_fits_file(input_path, target_header, output_path, control=control)
    ny, nx = summary["shape"]
    typer.echo(f"{output_path}: {nx}x{ny}, {summary['covered']} pixels with data")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("warp-image")(warp_image_cmd)
