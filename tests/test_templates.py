"""Path templates: exact Gen2 paths, hypothesis round trips, unsafe values, bad templates."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repo_butler.config import RepoConfig, default_config
from repo_butler.dimensions import DataId, DimensionUniverse
from repo_butler.errors import ConfigError, DataIdError
from repo_butler.templates import PathTemplate

CONFIG = RepoConfig.from_mapping(default_config())
UNIVERSE = CONFIG.universe
TYPES = CONFIG.dataset_types

_filters = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_+-]{0,11}\Z").filter(lambda s: ".." not in s)
_names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_+-]{0,9}\Z")
_ints = st.integers(min_value=0, max_value=10**12)
STRATEGIES = {
    "instrument": _names,
    "skymap": _names,
    "tract": _ints,
    "patch": st.tuples(st.integers(0, 10**4), st.integers(0, 10**4)).map(
        lambda t: f"{t[0]},{t[1]}"
    ),
    "pointing": _ints,
    "filter": _filters,
    "visit": _ints,
    "ccd": _ints,
}


def test_warp_templates_give_exact_gen2_paths() -> None:
    data_id = UNIVERSE.normalize(filter="HSC-I", tract=0, patch=(5, 4), visit=903988)
    direct = TYPES["deepCoadd_directWarp"].path_template
    psf = TYPES["deepCoadd_psfMatchedWarp"].path_template
    assert direct.format(data_id) == "deepCoadd/HSC-I/0/5,4/warp-HSC-I-0-5,4-903988.fits"
    assert psf.format(data_id) == "deepCoadd/HSC-I/0/5,4/psfMatchedWarp-HSC-I-0-5,4-903988.fits"


@pytest.mark.parametrize(
    ("name", "data_id", "path"),
    [
        ("calexp", {"pointing": 1178, "filter": "HSC-I", "visit": 903988, "ccd": 16},
         "01178/HSC-I/corr/CORR-0903988-016.fits"),
        ("calexpBackground", {"pointing": 1178, "filter": "HSC-I", "visit": 903988, "ccd": 16},
         "01178/HSC-I/corr/BKGD-0903988-016.fits"),
        ("skyCorr", {"pointing": 1178, "filter": "HSC-I", "visit": 903988, "ccd": 16},
         "01178/HSC-I/corr/skyCorr-0903988-016.fits"),
        ("jointcal_wcs", {"filter": "HSC-I", "tract": 0, "visit": 903988, "ccd": 16},
         "jointcal-results/HSC-I/0000/jointcal_wcs-0903988-016.fits"),
        ("fgcm_photoCalib", {"filter": "HSC-I", "visit": 903988, "ccd": 16},
         "fgcm-results/HSC-I/fgcm_photoCalib-903988-016.fits"),
        ("deepCoadd_skyMap", {}, "deepCoadd/skyMap.yaml"),
    ],
)  # fmt: skip
def test_default_templates_format_and_parse(name: str, data_id: dict, path: str) -> None:
    template = TYPES[name].path_template
    did = UNIVERSE.normalize(data_id)
    assert template.format(did) == path
    assert template.parse(path) == did


@pytest.mark.parametrize("name", sorted(TYPES))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_round_trip_every_default_template(name: str, data: st.DataObject) -> None:
    dataset_type = TYPES[name]
    raw = {dim: data.draw(STRATEGIES[dim], label=dim) for dim in dataset_type.dimensions}
    did = UNIVERSE.normalize(raw, order=dataset_type.dimensions)
    path = dataset_type.path_template.format(did)
    assert dataset_type.path_template.parse(path) == did
    assert ".." not in path.split("/")
    assert not path.startswith("/")


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=string.digits + "-/,.abcHSCI", max_size=40))
def test_parse_then_format_is_identity(text: str) -> None:
    """Whatever a template accepts, it accepts only in canonical form."""
    for dataset_type in TYPES.values():
        parsed = dataset_type.path_template.parse(text)
        if parsed is not None:
            assert dataset_type.path_template.format(parsed) == text


def test_non_canonical_integers_do_not_parse() -> None:
    template = TYPES["fgcm_photoCalib"].path_template
    assert template.parse("fgcm-results/g/fgcm_photoCalib-00012-005.fits") == {
        "filter": "g", "visit": 12, "ccd": 5,
    }  # fmt: skip
    # 05d of 12345 is "12345"; a leading zero on a wider number is never produced.
    assert template.parse("fgcm-results/g/fgcm_photoCalib-012345-005.fits") is None
    assert template.parse("fgcm-results/g/fgcm_photoCalib-1234-005.fits") is None  # too short
    assert template.parse("fgcm-results/g/fgcm_photoCalib-9039880-005.fits") == {
        "filter": "g", "visit": 9039880, "ccd": 5,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("filter", "HSC/I"),
        ("filter", ".."),
        ("filter", "a..b"),
        ("filter", "HSC\x00I"),
        ("filter", "HSC\nI"),
        ("filter", "{visit}"),
        ("filter", ""),
        ("filter", "."),
        ("filter", "x\\y"),
        ("skymap", "../../etc"),
        ("patch", "5,4/.."),
        ("patch", "5"),
    ],
)
def test_unsafe_values_rejected_before_io(key: str, value: str) -> None:
    with pytest.raises(DataIdError, match=re.escape(key)):
        UNIVERSE.normalize({key: value})


def test_negative_and_bool_ints_rejected() -> None:
    with pytest.raises(DataIdError, match="minimum"):
        UNIVERSE.normalize(visit=-1)
    with pytest.raises(DataIdError, match="bool"):
        UNIVERSE.normalize(ccd=True)
    assert UNIVERSE.normalize(visit="903988")["visit"] == 903988


def test_patch_forms_normalise() -> None:
    assert UNIVERSE.normalize(patch=(5, 4))["patch"] == "5,4"
    assert UNIVERSE.normalize(patch=[5, 4])["patch"] == "5,4"
    assert UNIVERSE.normalize(patch="5, 4")["patch"] == "5,4"
    with pytest.raises(DataIdError):
        UNIVERSE.normalize(patch="05,4")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("/abs/{visit}.fits", "relative"),
        ("a/../{visit}.fits", r"'\.\.'"),
        ("a//{visit}.fits", "empty"),
        ("{visit}{ccd}.fits", "directly follows"),
        ("{nosuch}.fits", "not a known dimension"),
        ("{visit:5d}.fits", "int fields support"),
        ("{filter:05d}.fits", "str fields support"),
        ("{visit!r}.fits", "conversion"),
        ("{visit.real}.fits", "not a known dimension"),
        ("{visit", "not a valid format string"),
    ],
)
def test_bad_templates_rejected(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PathTemplate(template, UNIVERSE, where="t")


def test_int_dimension_without_minimum_cannot_be_templated() -> None:
    universe = DimensionUniverse.from_config({"x": {"type": "int"}})
    with pytest.raises(ConfigError, match="minimum"):
        PathTemplate("{x}.json", universe)


def test_repeated_field_must_agree_when_parsing() -> None:
    template = TYPES["deepCoadd_directWarp"].path_template
    assert template.parse("deepCoadd/HSC-I/0/5,4/warp-HSC-R-0-5,4-903988.fits") is None
    assert template.parse("deepCoadd/HSC-I/0/5,4/warp-HSC-I-1-5,4-903988.fits") is None


def test_parse_suffix_for_external_files() -> None:
    template = TYPES["calexp"].path_template
    got = template.parse_suffix("/data/hsc/rerun/x/01178/HSC-I/corr/CORR-0903988-016.fits")
    assert got == DataId(pointing=1178, filter="HSC-I", visit=903988, ccd=16)
    assert template.parse_suffix("CORR-0903988-016.fits") is None
