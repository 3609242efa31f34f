"""``rb simulate``: build a simulated input repository with known truth."""

from __future__ import annotations

import typer


def simulate(
    repo: str = typer.Argument(..., help="Repository root (local path or URL); created if absent."),
    seed: int = typer.Option(1, "--seed", help="Random seed; the same seed gives the same repo."),
    config: str = typer.Option("small", "--config", help="Preset: small, demo or full."),
    visits: int = typer.Option(0, "--visits", help="Number of visits (0: the preset's)."),
    tract: int = typer.Option(0, "--tract", help="Tract id used for jointcal_* data IDs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing datasets."),
    skymap: bool = typer.Option(
        True,
        "--skymap/--no-skymap",
        help="Also write a one-tract deepCoadd_skyMap covering the data.",
    ),
) -> None:
    """Simulate HSC-like calexps, backgrounds, skyCorr, jointcal/fgcm calibrations and a truth
    catalogue into REPO (deterministic for a seed)."""
    from repo_butler.butler import Butler
    from warping.simulate import SimulationConfig, default_visits, make_skymap, write_simulation

    cfg = SimulationConfig.preset(config, seed=seed)
    if visits:
        v0 = cfg.visits[0]
        spacing = 6.0 if config == "small" else 40.0
        cfg = cfg.with_changes(
            visits=default_visits(
                v0.ra_deg, v0.dec_deg, visits, filter=v0.filter, dither_arcsec=spacing, seed=seed
            )
        )
    from repo_butler.errors import DatasetExistsError

    butler = Butler.create(repo, exist_ok=True)
    try:
        summary = write_simulation(
            butler,
            cfg,
            tract=tract,
            progress=lambda m: typer.echo(m, err=True),
            skymap=make_skymap(cfg) if skymap else None,
            overwrite=overwrite,
        )
    except DatasetExistsError as err:
        raise DatasetExistsError(f"{err} (rb simulate: pass --overwrite to replace)") from None
    typer.echo(
        f"simulated {summary.n_ccds} CCD exposures ({summary.n_visits} visits, "
        f"{summary.n_sources} truth sources) into {butler.root} in {summary.seconds:.1f} s"
        + ("" if summary.skymap_written else " (no skymap written)")
    )


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to ``app``."""
    app.command("simulate")(simulate)
