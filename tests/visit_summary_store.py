"""A test-only file format for :class:`~warping.visit_summary.VisitSummaryCatalog` values.

LSST's visitSummary files are afw ExposureCatalogs read by the ``visit_summary`` formatter
(:mod:`warping.formats.afw_visit_summary`). Repository tests of the task wiring (planning, one
read per unit, provenance, skip reasons) need catalogs built from a simulation's own calibrations,
which no afw writer produces, so they store them with this formatter instead: one FITS table row
per detector with its bbox, its WCS as FITS header text, its PhotoCalib as JSON and its scalar
summary statistics (``psfSigma``, ``psfStarDeltaE1Median``, ...) as JSON (no PSF: like every real
visitSummary seen so far). It is registered under its own name, ``test_visit_summary``,
never under ``visit_summary``, and a test repository selects it in its ``butler.yaml``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from repo_butler.formatters import register_formatter
from repo_butler.formatters.base import CodecFormatter
from warping.geom import Box2I
from warping.photocalib import PhotoCalib
from warping.skywcs import wcs_from_header, wcs_to_header
from warping.visit_summary import VisitSummaryCatalog, VisitSummaryRow

NAME = "test_visit_summary"
WCS_CHARS = 16000


def _listed(value: Any) -> Any:
    """numpy arrays as lists (JSON writes float64 values exactly: shortest round-trip repr)."""
    return np.asarray(value).tolist()


def _header_text(wcs: WCS) -> str:
    text = wcs_to_header(wcs).tostring(sep="\n")
    if len(text) > WCS_CHARS:
        raise ValueError(f"WCS header of {len(text)} characters; the format holds {WCS_CHARS}")
    return text


def encode(catalog: VisitSummaryCatalog) -> bytes:
    rows = list(catalog)
    if any(r.psf is not None for r in rows):
        raise TypeError("the test visitSummary format stores no PSF")
    cols = [
        fits.Column("id", "K", array=[r.detector for r in rows]),
        fits.Column("bbox", "4K", array=np.array([r.bbox.to_list() for r in rows]).reshape(-1, 4)),
        fits.Column(
            "wcs",
            f"{WCS_CHARS}A",
            array=["" if r.wcs is None else _header_text(r.wcs) for r in rows],
        ),
        fits.Column(
            "photoCalib",
            "8000A",
            array=[
                ""
                if r.photo_calib is None
                else json.dumps(r.photo_calib.to_dict(), default=_listed)
                for r in rows
            ],
        ),
        fits.Column(
            "summary", "4000A", array=[json.dumps(dict(r.summary), default=_listed) for r in rows]
        ),
    ]
    table = fits.BinTableHDU.from_columns(cols)
    table.header["VISIT"] = catalog.visit
    out = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(out)
    return out.getvalue()


def decode(data: bytes, source: str) -> VisitSummaryCatalog:
    with fits.open(io.BytesIO(data)) as hdul:
        table = hdul[1]
        rows: dict[int, VisitSummaryRow] = {}
        for rec in table.data:
            wcs: WCS | None = None
            if rec["wcs"]:
                wcs = wcs_from_header(fits.Header.fromstring(rec["wcs"], sep="\n"))
            pc = PhotoCalib.from_dict(json.loads(rec["photoCalib"])) if rec["photoCalib"] else None
            det = int(rec["id"])
            summary = json.loads(rec["summary"]) if "summary" in table.columns.names else {}
            rows[det] = VisitSummaryRow(
                det, Box2I(*map(int, rec["bbox"])), wcs, pc, summary=summary
            )
        return VisitSummaryCatalog(int(table.header["VISIT"]), rows, source)


class TestVisitSummaryFormatter(CodecFormatter):
    """Butler formatter ``test_visit_summary`` (tests only)."""

    __test__ = False  # not a pytest class
    name: ClassVar[str] = NAME
    extension: ClassVar[str] = ".fits"
    stores = VisitSummaryCatalog
    encode = staticmethod(encode)
    decode = staticmethod(decode)


def register() -> None:
    """Register the formatter in this process (idempotent)."""
    register_formatter(NAME, TestVisitSummaryFormatter)


def repo_config() -> dict[str, Any]:
    """``Butler.create`` overrides making the ``visitSummary`` dataset type use this format."""
    return {"dataset_types": {"visitSummary": {"formatter": NAME}}}


def write_small_repo(
    root: Path, visit_summary_of: Callable[[Any, int], VisitSummaryCatalog]
) -> Path:
    """A simulated repository at ``root``: 3 visits x 5 CCDs of 192x384 px around tract 0
    patch 5,4, with a visitSummary per visit made by ``visit_summary_of(butler, visit)``."""
    from repo_butler import Butler
    from warping.simulate.repo import write_simulation
    from warping.task.demo import DEMO_VISITS, demo_simulation, demo_skymap

    register()
    skymap = demo_skymap(patch_inner=300, patch_border=20, pixel_scale_arcsec=0.168,
                         radius_deg=0.07)  # fmt: skip
    sim = demo_simulation(
        skymap, ccd_size=(192, 384), gap_pixels=8, zero_point=33.0, cosmic_ray_rate=0.0,
        star_density=30.0, galaxy_density=2.0, bright_star_density=0.0,
    )  # fmt: skip
    with Butler.create(str(root), config=repo_config()) as butler:
        write_simulation(butler, sim, tract=0, skymap=skymap)
        for visit in DEMO_VISITS:
            butler.put(visit_summary_of(butler, visit), "visitSummary", filter="HSC-I", visit=visit)
    return root


def jointcal_catalog(
    butler: Any,
    visit: int,
    *,
    skip: tuple[int, ...] = (),
    summary: Callable[[int], Mapping[str, Any]] | None = None,
) -> VisitSummaryCatalog:
    """The visit's catalog from the repository's jointcal products: per CCD (but ``skip``) its
    calexp bbox, jointcal WCS and PhotoCalib, no PSF, and ``summary(ccd)`` statistics if given."""
    rows = {}
    for ref in butler.query_datasets("calexp", data_id={"visit": visit}):
        did = ref.data_id.to_dict()
        ccd = int(did["ccd"])
        if ccd in skip:
            continue
        jid = {"filter": did["filter"], "tract": 0, "visit": visit, "ccd": ccd}
        rows[ccd] = VisitSummaryRow(
            ccd,
            butler.get(ref).bbox,
            butler.get("jointcal_wcs", jid),
            butler.get("jointcal_photoCalib", jid),
            summary=dict(summary(ccd)) if summary is not None else {},
        )
    return VisitSummaryCatalog(visit, rows, source=f"simulated visitSummary {visit}")


def run_patch(root: Path, overrides: list[str], rerun: str, patch: Mapping[str, Any]) -> Any:
    """make-warp of one patch of the repository at ``root`` into ``rerun`` (a BatchSummary)."""
    from repo_butler import Butler
    from warping.task.config import MakeWarpConfig, apply_overrides
    from warping.task.runner import run_make_warps

    config = apply_overrides(MakeWarpConfig(), overrides)
    with Butler(str(root), rerun=rerun) as butler:
        return run_make_warps(butler, [dict(patch)], config=config)
