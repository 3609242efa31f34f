"""MakeWarp configuration: LSST names and defaults, safe parsing of overrides and config files."""

from __future__ import annotations

import json
import operator
from pathlib import Path

import jsonschema
import pytest

from repo_butler.errors import ConfigError
from warping.task.config import (
    MakeWarpConfig,
    apply_overrides,
    config_to_dict,
    parse_config_file,
)
from warping.task.config_schema import dumps_schema

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "makewarp-config.schema.json"

SEED_FILE = """
config.warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize=27
config.warpAndPsfMatch.psfMatch.kernel['AL'].alardSigGauss=[1.5, 3.0, 6.0]"""


def test_defaults_match_lsst_except_the_automatic_psf_matching_fields() -> None:
    c = MakeWarpConfig()
    assert (c.makeDirect, c.makePsfMatched, c.bgSubtracted, c.doApplySkyCorr) == (
        True,
        False,
        True,
        False,
    )
    assert c.externalPhotoCalibName == "jointcal"
    assert c.coaddName == "deep"
    w = c.warpAndPsfMatch.warp
    assert (w.warpingKernelName, w.maskWarpingKernelName, w.interpLength) == (
        "lanczos3",
        "bilinear",
        10,
    )
    assert w.growFullMask == ("EDGE",)
    al = c.warpAndPsfMatch.psfMatch.kernel["AL"]
    # LSST's base kernelSize 21, alardSigGauss [0.7, 1.5, 3.0] and defaultFwhm 3.0 px are not
    # what production runs (issue #18): None = derived per patch / per CCD (docs/psf-matching.md)
    assert (al.kernelSize, al.sizeCellX, al.sizeCellY, al.spatialKernelOrder) == (None, 128, 128, 2)
    assert al.alardSigGauss is None
    assert al.alardDegGauss == (4, 2, 2)
    pm = c.warpAndPsfMatch.psfMatch
    # LSST's autoPadPsfTo 1.4 costs a third more fit time than 1.2 for no measured fidelity gain
    assert (pm.doAutoPadPsf, pm.autoPadPsfTo, pm.padPsfBy) == (True, None, 0)
    assert pm.pad_ratio == 1.2
    assert (pm.kernelWingTolerance, pm.deconvolutionTolerance) == (0.003, 0.01)
    assert (pm.maxNoiseGain, pm.maxKernelAbsSum) == (1.0, 1.5)
    m = c.modelPsf
    assert (m.defaultFwhm, m.addWing, m.wingFwhmFactor, m.wingAmplitude) == (None, True, 2.5, 0.1)
    assert m.autoFwhmFactor == 1.15
    assert (m.sizeFactor, m.minSize, m.maxSize) == (3.0, 5, None)
    assert c.dataset_type("direct") == "deepCoadd_directWarp"


def test_committed_schema_is_current_and_validates_defaults() -> None:
    assert SCHEMA.read_text() == dumps_schema(), "regenerate schemas/makewarp-config.schema.json"
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(config_to_dict(MakeWarpConfig()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**config_to_dict(MakeWarpConfig()), "makeDirect": "yes"}, schema)


def test_seed_command_line_and_file() -> None:
    c = apply_overrides(
        MakeWarpConfig(),
        [
            "doApplyExternalPhotoCalib=False",
            "doApplyExternalSkyWcs=False",
            "makePsfMatched=True",
            "modelPsf.defaultFwhm=11",
        ],
        files=[("matchingConfig.py", SEED_FILE)],
    )
    al = c.warpAndPsfMatch.psfMatch.al
    assert al.kernelSize == 27
    assert al.alardSigGauss == (1.5, 3.0, 6.0)
    assert c.makePsfMatched is True
    assert c.modelPsf.defaultFwhm == 11.0
    assert c.warp_types == ["direct", "psfMatched"]


PM = "warpAndPsfMatch.psfMatch"


@pytest.mark.parametrize(
    ("override", "attr", "expected"),
    [
        (f"{PM}.kernel['AL'].sizeCellX=64", f"{PM}.al.sizeCellX", 64),
        (f"config.{PM}.kernel['AL'].sizeCellY=64", f"{PM}.al.sizeCellY", 64),
        (f"{PM}.autoPadPsfTo=1.6", f"{PM}.autoPadPsfTo", 1.6),
        (f"{PM}.padPsfBy=6", f"{PM}.padPsfBy", 6),
        (f"{PM}.doAutoPadPsf=false", f"{PM}.doAutoPadPsf", False),
        ("externalPhotoCalibName=fgcm", "externalPhotoCalibName", "fgcm"),
        (
            "warpAndPsfMatch.warp.growFullMask=['EDGE', 'SAT']",
            "warpAndPsfMatch.warp.growFullMask",
            ("EDGE", "SAT"),
        ),
        ("modelPsf.maxSize=25", "modelPsf.maxSize", 25),
    ],
)
def test_troubleshooting_knobs(override: str, attr: str, expected: object) -> None:
    c = apply_overrides(MakeWarpConfig(), [override])
    assert operator.attrgetter(attr)(c) == expected


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("modelPsf.defaultFwh=3", "Did you mean 'defaultFwhm'"),
        ("makeDirekt=True", "Did you mean 'makeDirect'"),
        ("makeDirect=3", "must be True or False"),
        ("warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize=2.5", "must be int or None"),
        ("warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize=20", "must be odd"),
        ("warpAndPsfMatch.psfMatch.padPsfBy=3", "must be even"),
        ("warpAndPsfMatch.psfMatch.kernel['ALX'].kernelSize=21", "has no entry 'ALX'"),
        ("warpAndPsfMatch.warp.warpingKernelName=lanczos9", "must be one of"),
        ("makeDirect=False", "At least one of makeDirect"),
        ("noequals", "key=value"),
    ],
)
def test_bad_overrides_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        apply_overrides(MakeWarpConfig(), [override])


@pytest.mark.parametrize(
    "text",
    [
        "import os",
        "config.makeDirect = __import__('os').system('true')",
        "for i in range(3): pass",
        "x = 1",
        "config.modelPsf.defaultFwhm = 3 + open('f').read()",
    ],
)
def test_config_files_are_never_executed(text: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    text = text.replace("'true'", repr(f"touch {sentinel}"))
    with pytest.raises(ConfigError) as info:
        parse_config_file(text, source="bad.py")
    assert "bad.py:1" in str(info.value)
    assert not sentinel.exists()


def test_config_file_error_quotes_line_and_number() -> None:
    text = "# ok\nconfig.makePsfMatched = True\nconfig.modelPsf.defaultFwhmm = 11\n"
    with pytest.raises(ConfigError, match=r"m\.py:3.*Did you mean 'defaultFwhm'"):
        apply_overrides(MakeWarpConfig(), files=[("m.py", text)])


def test_later_assignment_wins_and_config_is_immutable() -> None:
    base = MakeWarpConfig()
    c = apply_overrides(base, ["modelPsf.defaultFwhm=5", "modelPsf.defaultFwhm=7"])
    assert c.modelPsf.defaultFwhm == 7.0
    assert base.modelPsf.defaultFwhm is None
