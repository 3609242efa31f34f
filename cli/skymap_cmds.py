"""``rb make-skymap`` and ``rb show-skymap``."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import FormatOpt, JsonAliasOpt, OutputFormat, RepoArg, StorageOpt, output_format

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
    from cli.support import open_butler
    from warping.skymap import SkyMapConfig
    from warping.skymap.repo import describe_tract, make_repo_skymap

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

    from cli.support import open_butler
    from warping.skymap.repo import describe_tract

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
    for r in rows:
        typer.echo(
            f"tract {r['tract']}: centre ({r['ra']:.5f}, {r['dec']:.5f}) "
            f"{r['num_patches'][0]}x{r['num_patches'][1]} patches, bbox {r['bbox']}"
        )
        for p in r.get("patches", []):
            corners = " ".join(f"({ra:.5f},{dec:.5f})" for ra, dec in p["corners_radec"])
            typer.echo(
                f"  patch {p['patch']:>7} #{p['sequential']:<4} outer {p['outer_bbox']} {corners}"
            )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("make-skymap")(make_skymap)
    app.command("show-skymap")(show_skymap)
