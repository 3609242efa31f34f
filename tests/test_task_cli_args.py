"""LSST command-line syntax: grouped key=value tokens, ^ lists and .. ranges."""

from __future__ import annotations

import pytest

from repo_butler.errors import ConfigError, DataIdError
from repo_butler_cli.task_args import expand_data_id, parse_task_args

SEED = (
    "--id patch=5,4 tract=0 filter=HSC-I "
    "--selectId visit=903988 ccd=16 --selectId visit=903988 ccd=17 "
    "--selectId visit=903988 ccd=23 --selectId visit=903988 ccd=24 "
    "--config doApplyExternalPhotoCalib=False doApplyExternalSkyWcs=False "
    "makePsfMatched=True modelPsf.defaultFwhm=11"
).split()


def test_seed_example_verbatim() -> None:
    a = parse_task_args([*SEED, "--configfile", "./matchingConfig.py"])
    assert a.ids == [{"patch": "5,4", "tract": 0, "filter": "HSC-I"}]
    assert a.select_ids == [{"visit": 903988, "ccd": c} for c in (16, 17, 23, 24)]
    assert a.config == [
        "doApplyExternalPhotoCalib=False",
        "doApplyExternalSkyWcs=False",
        "makePsfMatched=True",
        "modelPsf.defaultFwhm=11",
    ]
    assert a.config_files == ["./matchingConfig.py"]


def test_value_lists_and_ranges() -> None:
    assert [d["ccd"] for d in expand_data_id(["visit=1", "ccd=16^17"])] == [16, 17]
    assert [d["ccd"] for d in expand_data_id(["ccd=16..24"])] == list(range(16, 25))
    assert [d["ccd"] for d in expand_data_id(["ccd=0..8:4"])] == [0, 4, 8]
    ids = expand_data_id(["visit=1^2", "ccd=3^4"])
    assert [(d["visit"], d["ccd"]) for d in ids] == [(1, 3), (1, 4), (2, 3), (2, 4)]


@pytest.mark.parametrize(
    ("argv", "error", "match"),
    [
        (["--id", "tract"], DataIdError, "key=value"),
        (["--id", "ccd=5..2"], DataIdError, "empty"),
        (["--id", "ccd=1^"], DataIdError, "Empty value"),
        (["--id", "a=1", "a=2"], DataIdError, "given twice"),
        (["--bogus", "x=1"], ConfigError, "Unknown option"),
        (["--config"], ConfigError, "needs at least one value"),
        (["stray=1"], ConfigError, "Unexpected arguments"),
    ],
)
def test_bad_arguments(argv: list[str], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_task_args(argv)
