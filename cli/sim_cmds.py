"""``rb simulate``: build a simulated input repository with known truth."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import RepoArg, StorageOpt

__all__ = ["register"]


def simulate(
    repo: RepoArg,
    seed: Annotated[
        int,
        typer.Option("--seed", metavar="N", help="Random seed; the same seed gives the same repo."),
    ] = 1,
    preset: Annotated[
        str,
        typer.Option("--preset", metavar="small|demo|full", help="Simulation preset."),
    ] = "small",
    config_alias: Annotated[
        str | None, typer.Option("--config", hidden=True, help="Deprecated: use --preset.")
    ] = None,
    visits: Annotated[
        int, typer.Option("--visits", metavar="N", help="Number of visits (0: the preset's).")
    ] = 0,
    tract: Annotated[
        int, typer.Option("--tract", metavar="TRACT", help="Tract id used for jointcal_* data IDs.")
    ] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing datasets.")
    ] = False,
    skymap: Annotated[
        bool,
        typer.Option(
            "--skymap/--no-skymap",
            help="Also write a one-tract deepCoadd_skyMap covering the data.",
        ),
    ] = True,
    storage_option: StorageOpt = None,
) -> None:
    """Simulate HSC-like calexps, backgrounds, skyCorr, jointcal/fgcm calibrations and a truth
    catalogue into REPO (created if absent; deterministic for a seed)."""
    from warping.simulate import SimulationConfig, default_visits, make_skymap, write_simulation

    from .support import open_butler_created

    name = config_alias if config_alias is not None else preset
    cfg = SimulationConfig.preset(name, seed=seed)
    if visits:
        v0 = cfg.visits[0]
        spacing = 6.0 if name == "small" else 40.0
        cfg = cfg.with_changes(
            visits=default_visits(
                v0.ra_deg, v0.dec_deg, visits, filter=v0.filter, dither_arcsec=spacing, seed=seed
            )
        )
    with open_butler_created(repo, storage_option) as butler:
        summary = write_simulation(
            butler,
            cfg,
            tract=tract,
            progress=lambda m: typer.echo(m, err=True),
            skymap=make_skymap(cfg) if skymap else None,
            overwrite=overwrite,
        )
    typer.echo(
        f"simulated {summary.n_ccds} CCD exposures ({summary.n_visits} visits, "
        f"{summary.n_sources} truth sources) into {butler.root} in {summary.seconds:.1f} s"
        + ("" if summary.skymap_written else " (no skymap written)")
    )


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to ``app``."""
    app.command("simulate")(simulate)
