"""``rb make-skymap`` and ``rb show-skymap``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .options import FormatOpt, JsonAliasOpt, OutputFormat, RepoArg, StorageOpt, output_format

__all__ = ["register"]


def make_skymap(
    repo: RepoArg,
    discrete: Annotated[
        bool, typer.Option("--discrete/--rings", help="One tract covering the calexps, or rings.")
    ] = True,
    border: Annotated[
        float, typer.Option(metavar="DEGREES", help="Discrete: extra tract radius, degrees.")
    ] = 0.0,
    num_rings: Annotated[int, typer.Option(metavar="N", help="Rings: number of rings.")] = 120,
    pixel_scale: Annotated[
        float, typer.Option(metavar="ARCSEC", help="Pixel scale, arcsec.")
    ] = 0.168,
    patch_inner_dimensions: Annotated[
        tuple[int, int], typer.Option(metavar="NX NY", help="Inner patch size in pixels.")
    ] = (4000, 4000),
    patch_border: Annotated[
        int, typer.Option(metavar="PIXELS", help="Patch border in pixels.")
    ] = 100,
    tract_overlap: Annotated[
        float, typer.Option(metavar="DEGREES", help="Tract overlap, degrees.")
    ] = 1.0 / 60,
    projection: Annotated[str, typer.Option(metavar="TAN|STG", help="Projection.")] = "TAN",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing skymap.")
    ] = False,
    storage_option: StorageOpt = None,
) -> None:
    """Make the repository's deepCoadd_skyMap (defaults: HSC's TAN, 0.168"/px, 4000+100 px)."""
    from warping.skymap import SkyMapConfig
    from warping.skymap.repo import describe_tract, make_repo_skymap

    from .support import open_butler

    config = SkyMapConfig(
        (patch_inner_dimensions[0], patch_inner_dimensions[1]),
        patch_border,
        tract_overlap,
        pixel_scale,
        projection.upper(),
    )
    butler = open_butler(repo, storage_option=storage_option)
    kind = "discrete" if discrete else "rings"
    sm = make_repo_skymap(
        butler, config, kind=kind, border_deg=border, num_rings=num_rings, overwrite=overwrite
    )
    t0 = describe_tract(sm[0], patches=False)
    typer.echo(
        f"wrote a {kind} skymap with {len(sm)} tract(s); tract 0: centre ({t0['ra']:.5f}, "
        f"{t0['dec']:.5f}), {t0['num_patches'][0]}x{t0['num_patches'][1]} patches, "
        f"bbox {t0['bbox']} (rb show-skymap lists them)"
    )


def show_skymap(
    repo: RepoArg,
    tract: Annotated[
        int | None, typer.Option(metavar="TRACT", help="Show this tract's patches.")
    ] = None,
    patch: Annotated[
        str | None, typer.Option(metavar="X,Y", help="With --header: the patch, e.g. 5,4.")
    ] = None,
    header: Annotated[
        bool,
        typer.Option(
            "--header",
            help="Print the patch's pixel grid as a FITS header (a SWarp coadd.head or a "
            "reproject target): needs --tract and --patch.",
        ),
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
    json_alias: JsonAliasOpt = False,
    storage_option: StorageOpt = None,
) -> None:
    """List tracts, or one tract's patches with their outer-bbox sky corners."""
    import json

    from warping.skymap.repo import describe_tract

    from .support import open_butler

    if header and (tract is None or patch is None):
        from repo_butler.errors import ConfigError

        raise ConfigError("--header needs --tract and --patch (e.g. --tract 0 --patch 5,4)")
    butler = open_butler(repo, storage_option=storage_option, writeable=False)
    sm = butler.get("deepCoadd_skyMap")
    if header:
        from warping.skymap.repo import patch_header

        assert tract is not None and patch is not None
        typer.echo(patch_header(sm[tract], patch).tostring(sep="\n", endcard=True))
        return
    ids = [tract] if tract is not None else list(range(min(len(sm), 1000)))
    rows = [describe_tract(sm[i], patches=tract is not None) for i in ids]
    if output_format(fmt, json_alias) is OutputFormat.json:
        typer.echo(json.dumps(rows, indent=1))
        return
    typer.echo(_skymap_text(rows, patches=tract is not None))


def _box(b: list[int]) -> str:
    return f"{b[0]},{b[1]} {b[2]}x{b[3]}"


def _skymap_text(rows: list[dict[str, Any]], *, patches: bool) -> str:
    """Tracts, or one tract's patches, as a table with units in the headers (80 columns)."""
    from .support import text_table

    if not patches:
        header = [
            "tract",
            "RA (deg)",
            "Dec (deg)",
            "radius (deg)",
            "patches",
            "bbox x0,y0 WxH (px)",
        ]
        return text_table(
            header,
            [[str(r["tract"]), f"{r['ra']:.5f}", f"{r['dec']:.5f}", f"{r['radius_deg']:.4f}",
              "{}x{}".format(*r["num_patches"]), _box(r["bbox"])] for r in rows],
        )  # fmt: skip
    lines = []
    for r in rows:
        lines.append(
            f"tract {r['tract']}: centre RA {r['ra']:.5f} Dec {r['dec']:.5f} deg, "
            + "{}x{} patches, bbox {} px".format(*r["num_patches"], _box(r["bbox"]))
        )
        body = []
        for p in r["patches"]:
            ras = [c[0] for c in p["corners_radec"]]
            decs = [c[1] for c in p["corners_radec"]]
            ra_range = f"{min(ras):.5f}..{max(ras):.5f}"
            dec_range = f"{min(decs):.5f}..{max(decs):.5f}"
            body.append(
                [p["patch"], str(p["sequential"]), _box(p["outer_bbox"]), ra_range, dec_range]
            )
        header = ["patch", "#", "outer bbox (px)", "RA range (deg)", "Dec range (deg)"]
        lines.append(text_table(header, body))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("make-skymap")(make_skymap)
    app.command("show-skymap")(show_skymap)
