"""Requests are bounded (issue 17, point 7): a huge ``--selectId`` range or a huge model PSF is a
one-line error before any work, not gigabytes of memory or every CCD failing to allocate."""

from __future__ import annotations

import json
import resource
import time

import pytest
from typer.testing import CliRunner

from repo_butler.errors import ConfigError, DataIdError
from repo_butler_cli.main import app
from repo_butler_cli.task_args import MAX_DATA_IDS, expand_data_id
from warping.task.config import MAX_STAMP, MakeWarpConfig, apply_overrides
from warping.task.config_schema import config_json_schema


def test_huge_range_is_refused_before_expansion() -> None:
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(DataIdError, match=r"--selectId ccd=0\.\.20000000 gives 20,000,001 values"):
        expand_data_id(["ccd=0..20000000"], option="--selectId")
    with pytest.raises(DataIdError, match="combines into 201,000 data IDs"):
        expand_data_id(["visit=1..1000", "ccd=0..200"])
    assert time.perf_counter() - t0 < 0.5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 50_000  # kB
    assert len(expand_data_id([f"ccd=1..{MAX_DATA_IDS}"])) == MAX_DATA_IDS
    assert expand_data_id(["ccd=16..24:4"]) == [{"ccd": 16}, {"ccd": 20}, {"ccd": 24}]


def test_cli_reports_huge_range_in_one_line(tmp_path: object) -> None:
    argv = ["make-warp", "unused", "--id", "tract=0", "--selectId", "ccd=0..20000000"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code != 0 and isinstance(result.exception, DataIdError)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["makePsfMatched=True", "modelPsf.size=20001"], "modelPsf.size = 20001 is above"),
        (["makePsfMatched=True", "modelPsf.size=1000000001"], "modelPsf.size = 1000000001"),
        (["makePsfMatched=True", "modelPsf.defaultFwhm=1e9"], "model PSF, above 255"),
        (["warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize=4001"], "kernelSize = 4001 is above"),
    ],
)
def test_sizes_are_bounded(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_overrides(MakeWarpConfig(), overrides).validate()


def test_bounds_are_in_the_schema() -> None:
    schema = config_json_schema()
    size = schema["properties"]["modelPsf"]["properties"]["size"]
    assert {"type": "integer", "maximum": MAX_STAMP} in size["anyOf"]
    assert json.dumps(schema).count('"maximum"') >= 7
    ok = apply_overrides(MakeWarpConfig(), ["makePsfMatched=True", f"modelPsf.size={MAX_STAMP}"])
    ok.validate()
