"""make-warp as (patch, visit) units in-process: tract expansion, reads, failures, reuse."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from corrupt_inputs import reregister
from repo_copy import copy_repo
from scale_support import write_small_repo
from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler_cli.task_args import parse_task_args
from warping.skymap.geometry import SkyPolygon, polygons_overlap
from warping.task.config import MakeWarpConfig
from warping.task.execution import execute_unit
from warping.task.planning import plan_units

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scale") / "repo"
    write_small_repo(str(root)).close()
    return root


def _copy(root: Path, tmp_path: Path) -> Path:
    return copy_repo(root, tmp_path / "repo")


def _brute_force(butler: Butler) -> dict[str, set[int]]:
    """Patch name -> visits, testing every patch of tract 0 against every calexp on the sky."""
    tract = butler.get("deepCoadd_skyMap", {})[0]
    polys = []
    for ref in butler.query_datasets("calexp"):
        calexp = butler.get(ref)
        polys.append((int(ref.data_id["visit"]), SkyPolygon.from_wcs_bbox(calexp.wcs, calexp.bbox)))
    out: dict[str, set[int]] = {}
    for patch in tract.patches():
        ppoly = tract.patch_polygon(patch)
        visits = {v for v, poly in polys if polygons_overlap(ppoly, poly)}
        if visits:
            out[patch.name] = visits
    return out


def test_whole_tract_expands_to_every_patch_with_inputs(small_repo: Path) -> None:
    butler = Butler(str(small_repo), rerun="plan")
    expected = _brute_force(butler)
    assert len(expected) >= 4  # the fixture's CCDs straddle several patches
    plan = plan_units(butler, [{"tract": 0}])  # no patch, no filter
    got: dict[str, set[int]] = {}
    for unit in plan.units:
        got.setdefault(unit.patch, set()).add(unit.visit)
        assert unit.filter == "HSC-I"
        assert [c.ccd for c in unit.ccds] == sorted(c.ccd for c in unit.ccds)
    assert got == expected
    assert [p["patch"] for p in plan.patches] == sorted(
        expected, key=lambda n: tuple(int(v) for v in reversed(n.split(",")))
    )
    # the LSST syntax for several patches
    ids = parse_task_args(["--id", "tract=0", "patch=5,4^5,5", "filter=HSC-I"]).ids
    two = plan_units(butler, ids)
    assert [p["patch"] for p in two.patches] == ["5,4", "5,5"]
    assert {(u.patch, u.visit) for u in two.units} == {
        (p, v) for p in ("5,4", "5,5") for v in expected.get(p, set())
    }


def test_each_input_file_is_read_once_per_unit(small_repo: Path, tmp_path: Path) -> None:
    root = _copy(small_repo, tmp_path)
    butler = Butler(str(root), rerun="reads")
    config = MakeWarpConfig()
    plan = plan_units(butler, [{"tract": 0, "patch": p} for p in ("5,4", "5,5", "4,4")])
    io = butler.worker_io()
    opened: Counter[str] = Counter()
    active = {"on": False}

    def hook(event: str, args: tuple[Any, ...]) -> None:  # CPython audit events: independent
        if (
            active["on"] and event == "open" and isinstance(args[0], str)
            and args[0].endswith(".fits") and (args[1] is None or "r" in str(args[1]))
        ):  # fmt: skip
            opened[args[0]] += 1

    sys.addaudithook(hook)
    expected: Counter[str] = Counter()
    try:
        for unit in plan.units:
            active["on"] = True
            result = execute_unit(unit, io, config)
            active["on"] = False
            assert result.status == "written", result.error
            for c in unit.ccds:
                expected[str(root / c.calexp.path)] += 1
            assert set(result.reads.values()) == {1}
    finally:
        active["on"] = False
    calexp_opens = {p: n for p, n in opened.items() if "/corr/CORR-" in p}
    assert calexp_opens == dict(expected)
    assert max(expected.values()) >= 2  # some calexp feeds several units: once in each


def test_failed_unit_is_isolated_and_reuse_redoes_only_missing(
    small_repo: Path, tmp_path: Path
) -> None:
    from repo_butler_cli.main import app

    root = _copy(small_repo, tmp_path)
    butler = Butler(str(root))
    ref = butler.get_ref("jointcal_photoCalib", {"visit": 903988, "ccd": 17, "tract": 0})
    bad = Path(ref.uri.removeprefix("file://"))
    good_bytes = bad.read_bytes()
    bad.write_bytes(b"SIMPLE  = not a FITS file" + b" " * 3000)
    pc_id = {"visit": 903988, "ccd": 17, "tract": 0}
    reregister(str(root), "jointcal_photoCalib", pc_id)  # registered so: not a checksum mismatch
    argv = [
        "make-warp", str(root), "--rerun", "f", "--id", "tract=0", "patch=5,4^5,5",
        "filter=HSC-I", "--config", "doApplyExternalPhotoCalib=True", "--json",
    ]  # fmt: skip
    plan = plan_units(
        Butler(str(root), rerun="f"), parse_task_args(argv[4:8]).ids,
        config=MakeWarpConfig(doApplyExternalPhotoCalib=True),
    )  # fmt: skip
    doomed = {(u.patch, u.visit) for u in plan.units
              if u.visit == 903988 and any(c.ccd == 17 for c in u.ccds)}  # fmt: skip
    assert 1 <= len(doomed) < len(plan.units)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 3, result.output  # some warps made, some units failed
    assert "FAILED tract=0 patch=" in result.output and "visit=903988" in result.output
    assert "Traceback" in result.output or "line" in result.output
    out = Butler(str(root), rerun="f")
    made = {}
    for u in plan.units:
        exists = out.exists("deepCoadd_directWarp", u.data_id, output_run_only=True)
        assert exists == ((u.patch, u.visit) not in doomed)
        if exists:
            made[(u.patch, u.visit)] = (
                Path(out.uri("deepCoadd_directWarp", u.data_id).removeprefix("file://"))
                .stat()
                .st_mtime_ns
            )
    # fix the input; --reuse redoes only the failed units
    bad.write_bytes(good_bytes)
    reregister(str(root), "jointcal_photoCalib", pc_id)
    again = CliRunner().invoke(app, [*argv, "--reuse"])
    assert again.exit_code == 0, again.output
    out = Butler(str(root), rerun="f")
    for u in plan.units:
        uri = out.uri("deepCoadd_directWarp", u.data_id)
        mtime = Path(uri.removeprefix("file://")).stat().st_mtime_ns
        if (u.patch, u.visit) in made:
            assert mtime == made[(u.patch, u.visit)]
    from repo_butler.maintenance import verify

    assert verify(out).problems == []
