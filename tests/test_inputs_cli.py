"""``rb make-warp`` with the inputRecorder / idGenerator fields (issue #22, item 7)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_support import one_error_line, run_rb, write_small_cli_repo

from repo_butler import Butler


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_cli_repo(tmp_path_factory.mktemp("inputs") / "repo")


def test_show_config_lists_the_new_fields() -> None:
    out = run_rb("make-warp", "unused", "--show-config", "--config",
                 "inputRecorder.saveEmptyCcds=True", "idGenerator.sizes=[256]")  # fmt: skip
    assert out.returncode == 0, out.stderr
    for line in (
        "config.inputRecorder.saveEmptyCcds = True",
        "config.inputRecorder.saveErrorCcds = False",
        "config.inputRecorder.saveVisitGoodPix = True",
        "config.inputRecorder.saveCcdWeights = True",
        "config.idGenerator.dimensions = ['visit', 'ccd']",
        "config.idGenerator.sizes = [256]",
    ):
        assert line in out.stdout, out.stdout


def test_a_malformed_layout_is_one_line() -> None:
    out = run_rb("make-warp", "unused", "--show-config", "--config", "idGenerator.sizes=[0]")
    assert re.search(r"idGenerator\.sizes must be integers >= 1", one_error_line(out))


def test_a_ccd_the_packing_cannot_hold_fails_before_anything_runs(repo: Path) -> None:
    out = run_rb("make-warp", str(repo), "--rerun", "ids", "--id", "tract=0", "patch=3,4",
                 "filter=HSC-I", "--config", "idGenerator.sizes=[1]")  # fmt: skip
    line = one_error_line(out)
    assert re.search(r"data ID ccd=1 .*visit=\d+: ccd=1 does not fit idGenerator\.sizes\[0\]", line)
    with Butler(str(repo), writeable=False) as butler:
        assert "ids" not in butler.registry.runs()
