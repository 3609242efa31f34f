"""make-warp with corrupt calexps (issue 17, points 3, 4 and 7): each damaged file is an error
for its CCD, listed with the file and the reason in the human summary, its visit's warp is marked
incomplete, and the exit status says "some made" (3) or "nothing made" (1); never a silent
deselection, never a traceback, never minutes of astropy warnings."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from corrupt_inputs import CORRUPTIONS, garbage_image_header
from repo_copy import copy_repo
from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler_cli.main import app
from warping.simulate.repo import write_simulation
from warping.task.demo import demo_simulation, demo_skymap

VISIT = 903988
WIDE = {"COLUMNS": "400"}  # one summary line per CCD, whatever the path length

#: Words the CCD's reason must hold, per damage.
EXPECTED = {
    "garbage primary header": "HDU 0's header is not FITS header text",
    "empty file": "empty file",
    "non-FITS bytes": "HDU 0's header is not FITS header text",
    "NaN CRVAL": "CRVAL1 = 'NaN' is not a finite number",
    "NaN PC": "PC1_1 = 'NaN' is not a finite number",
    "truncated": "checksum mismatch",
    "garbage IMAGE header": "HDU 1's header is not FITS header text",
    "flipped pixel byte": "checksum mismatch",
}


@pytest.fixture(scope="module")
def sim_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Visit 903988's four CCDs (16, 17, 23, 24) around patch 5,4."""
    root = tmp_path_factory.mktemp("corrupt") / "repo"
    skymap = demo_skymap(
        patch_inner=300, patch_border=20, pixel_scale_arcsec=0.168, radius_deg=0.07
    )
    sim = demo_simulation(skymap, ccd_size=(192, 384), gap_pixels=8, zero_point=34.0,
                          cosmic_ray_rate=0.0, star_density=20.0, galaxy_density=2.0,
                          bright_star_density=0.0, saturation=1e8)  # fmt: skip
    sim = sim.with_changes(visits=sim.visits[1:2], ccds=(16, 17, 23, 24))
    with Butler.create(str(root)) as butler:
        write_simulation(butler, sim, tract=0, skymap=skymap)
    return root


def _damaged(sim_repo: Path, tmp_path: Path, damage: str, ccd: int = 17) -> tuple[Path, Path]:
    root = tmp_path / "repo"
    copy_repo(sim_repo, root)
    ref = Butler(str(root)).get_ref("calexp", {"visit": VISIT, "ccd": ccd})
    path = Path(ref.uri.removeprefix("file://"))
    path.write_bytes(CORRUPTIONS[damage](path.read_bytes()))
    return root, path


def _run(root: Path, *args: str) -> tuple[int, str, dict]:
    argv = ["make-warp", str(root), "--rerun", "out", *args, "--json"]
    result = CliRunner().invoke(app, argv, env=WIDE)
    out = result.stdout
    return result.exit_code, result.output, json.loads(out[out.index("{") :])


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_a_corrupt_calexp_is_a_skipped_ccd_with_its_reason(
    sim_repo: Path, tmp_path: Path, damage: str
) -> None:
    root, path = _damaged(sim_repo, tmp_path, damage)
    t0 = time.perf_counter()
    code, output, doc = _run(root, "--id", "tract=0", "patch=5,4", "filter=HSC-I")
    seconds = time.perf_counter() - t0
    assert code == 3, output  # some made, some not
    assert "Traceback" not in output and "does not overlap" not in output
    assert "WARNING: The following header keyword" not in output
    (visit,) = doc["patches"][0]["visits"]
    assert visit["status"] == "written" and visit["incomplete"]
    assert visit["ccds_used"] == [16, 23, 24] and visit["ccds_unusable"] == [17]
    why = visit["ccds_skipped"]["17"]
    assert path.name in why and EXPECTED[damage] in why, why
    # the human summary lists the CCD, its file and the reason, not only --json
    line = next(s for s in output.splitlines() if s.startswith(f"  visit {VISIT} ccd 17: "))
    assert path.name in line and EXPECTED[damage] in line
    assert "Output incomplete" in output
    assert seconds < 30
    out = Butler(str(root), rerun="out")
    warp = out.get("deepCoadd_directWarp", tract=0, patch="5,4", filter="HSC-I", visit=VISIT)
    assert warp.metadata["CCDS_UNUSABLE"] == "17"
    assert sorted(c.ccd for c in warp.coadd_inputs.ccds) == [16, 23, 24]


def test_tract_wide_run_lists_an_unreadable_calexp_in_every_warp_of_its_visit(
    sim_repo: Path, tmp_path: Path
) -> None:
    root, path = _damaged(sim_repo, tmp_path, "NaN CRVAL")
    code, output, doc = _run(root, "--id", "tract=0", "filter=HSC-I")
    assert code == 3, output
    visits = [v for p in doc["patches"] for v in p["visits"]]
    assert len(visits) >= 2  # the visit covers several patches: 17 may be on any of them
    for v in visits:
        assert v["ccds_unusable"] == [17] and path.name in v["ccds_skipped"]["17"]


def test_nothing_made_when_the_only_ccd_is_corrupt(sim_repo: Path, tmp_path: Path) -> None:
    root, _ = _damaged(sim_repo, tmp_path, "truncated")
    args = ("--id", "tract=0", "patch=5,4", "filter=HSC-I", "--selectId", f"visit={VISIT}",
            "ccd=17")  # fmt: skip
    code, output, doc = _run(root, *args)
    assert code == 1, output
    (visit,) = doc["patches"][0]["visits"]
    assert visit["status"] == "empty" and "checksum mismatch" in visit["ccds_skipped"]["17"]
    clean = tmp_path / "clean"
    copy_repo(sim_repo, clean)
    code, output, _ = _run(clean, "--id", "tract=0", "patch=5,4", "filter=HSC-I")
    assert code == 0, output


def test_provenance_lists_only_inputs_whose_bytes_were_verified(
    sim_repo: Path, tmp_path: Path
) -> None:
    from repo_butler.checksums import checksum_bytes

    root, _ = _damaged(sim_repo, tmp_path, "flipped pixel byte")
    code, output, _ = _run(root, "--id", "tract=0", "patch=5,4", "filter=HSC-I")
    assert code == 3, output
    out = Butler(str(root), rerun="out")
    warp_id = {"tract": 0, "patch": "5,4", "filter": "HSC-I", "visit": VISIT}
    prov = out.get_provenance("deepCoadd_directWarp", warp_id)
    assert prov is not None
    calexps = [i for i in prov.inputs if i.dataset_type == "calexp"]
    assert sorted(int(i.data_id["ccd"]) for i in calexps) == [16, 23, 24]
    for i in calexps:  # the checksum recorded is that of the file read
        ref = out.get_ref("calexp", i.data_id)
        assert i.checksum == checksum_bytes(Path(ref.uri.removeprefix("file://")).read_bytes())


def _garbage_header_seconds(tmp_path: Path, shape: tuple[int, int]) -> float:
    import numpy as np

    from warping.errors import FormatError
    from warping.exposure import Exposure
    from warping.formats.exposure_fits import (
        exposure_from_bytes,
        exposure_to_bytes,
        read_wcs_and_bbox,
    )
    from warping.geom import Box2I
    from warping.warp.testing import make_tan_wcs

    exp = Exposure.empty(
        Box2I(0, 0, shape[0], shape[1]), wcs=make_tan_wcs(150.0, 2.0, (0, 0), 0.17)
    )
    exp.image[:] = np.float32(1.5)
    data = garbage_image_header(exposure_to_bytes(exp))
    path = tmp_path / "bad.fits"
    path.write_bytes(data)
    t0 = time.perf_counter()
    with pytest.raises(FormatError, match="HDU 1's header is not FITS header text"):
        read_wcs_and_bbox(path)
    with pytest.raises(FormatError, match="HDU 1's header is not FITS header text"):
        exposure_from_bytes(data, str(path))
    return time.perf_counter() - t0


def test_garbage_image_header_fails_fast(tmp_path: Path) -> None:
    assert _garbage_header_seconds(tmp_path, (512, 1024)) < 1.0


@pytest.mark.stress
def test_garbage_image_header_of_a_full_hsc_ccd_fails_fast(tmp_path: Path) -> None:
    assert _garbage_header_seconds(tmp_path, (2048, 4176)) < 5.0


def test_a_warp_type_asked_for_but_not_made_makes_the_visit_incomplete(
    sim_repo: Path, tmp_path: Path
) -> None:
    from warping.task.config import MakeWarpConfig
    from warping.task.execution import execute_unit
    from warping.task.make_warp import MakeWarpTask
    from warping.task.planning import plan_units
    from warping.task.runner import _visit_summary

    def no_memory(warped: object, model_psf: object, config: object) -> object:
        raise MemoryError("cannot allocate 7.5 GiB")

    config = MakeWarpConfig(makePsfMatched=True)
    copy_repo(sim_repo, tmp_path / "repo")
    butler = Butler(str(tmp_path / "repo"), rerun="t")
    (unit,) = plan_units(butler, [{"tract": 0, "patch": "5,4", "filter": "HSC-I"}],
                         config=config).units  # fmt: skip
    task = MakeWarpTask(config, psf_matcher=no_memory)
    result = execute_unit(unit, butler.worker_io(), config, task=task)
    assert result.status == "written" and list(result.outputs) == ["direct"]
    assert "cannot allocate 7.5 GiB" in result.outputs_missing["psfMatched"]
    assert _visit_summary(result).incomplete


def test_tract_wide_unreadable_calexp_of_a_visit_without_warps_is_listed(
    sim_repo: Path, tmp_path: Path
) -> None:
    root, path = _damaged(sim_repo, tmp_path, "garbage primary header")
    args = ("--id", "tract=0", "filter=HSC-I", "--selectId", f"visit={VISIT}", "ccd=17")
    code, output, doc = _run(root, *args)
    assert code == 1, output  # nothing made
    (why,) = doc["unplaced"].values()
    assert path.name in why and "HDU 0's header is not FITS header text" in why
    assert "1 calexp(s) could not be read and are in no warp:" in output
    assert "ccd=17" in output and path.name in output
