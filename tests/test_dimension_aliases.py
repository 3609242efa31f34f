"""Dimension aliases and implied keys (butler.yaml version 2): declared per dimension, applied
wherever a data ID enters (normalize, get/put/query, where-expressions, the CLI), unknown keys
answered with the nearest name; repositories written before aliases keep working unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from repo_copy import copy_repo
from typer.testing import CliRunner

from repo_butler import Butler, DataId
from repo_butler.config import CONFIG_VERSION, RepoConfig, default_config
from repo_butler.dimensions import DimensionUniverse
from repo_butler.errors import ConfigError, DataIdError, QuerySyntaxError
from repo_butler_cli.main import app

FIXTURE = Path(__file__).parent / "fixtures" / "repo-v1"
UNIVERSE = RepoConfig.from_mapping(default_config("warping")).universe
runner = CliRunner()

META = {
    "dataset_types": {
        "calexp_meta": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "json",
            "template": "{pointing:05d}/{filter}/corr/META-{visit:07d}-{ccd:03d}.json",
        }
    }
}


@pytest.fixture
def butler(tmp_path: Path) -> Butler:
    return Butler.create(tmp_path / "repo", config=META, preset="warping")


# -- the universe ----------------------------------------------------------------------------
def test_warping_preset_declares_the_gen3_names() -> None:
    assert dict(UNIVERSE.aliases) == {
        "physical_filter": "filter",
        "exposure": "visit",
        "detector": "ccd",
    }
    assert dict(UNIVERSE.implied) == {"band": "filter"}
    assert UNIVERSE.canonical("detector") == "ccd" and UNIVERSE.canonical("ccd") == "ccd"


def test_aliases_normalise_to_dimensions() -> None:
    gen3 = {"physical_filter": "HSC-I", "band": "i", "exposure": 903988, "detector": "16"}
    assert UNIVERSE.normalize(gen3) == DataId(filter="HSC-I", visit=903988, ccd=16)
    assert list(UNIVERSE.normalize(gen3, order=["ccd", "visit"])) == ["ccd", "visit", "filter"]
    # the same value under both spellings is fine; different values are refused, naming both
    assert UNIVERSE.normalize(ccd=16, detector=16) == DataId(ccd=16)
    with pytest.raises(DataIdError, match=r"ccd=16 and detector=17.*give one value"):
        UNIVERSE.normalize(ccd=16, detector=17)


def test_implied_key_is_accepted_beside_its_dimension_only() -> None:
    assert UNIVERSE.normalize(filter="HSC-I", band="i") == DataId(filter="HSC-I")
    with pytest.raises(DataIdError, match=r"band='i' does not identify a filter.*'filter' or"):
        UNIVERSE.normalize(band="i", visit=1)
    with pytest.raises(DataIdError, match="cannot stand for the dimension 'filter'"):
        UNIVERSE.canonical("band")


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("detectr", "did you mean 'detector' (alias of ccd)?"),
        ("vist", "did you mean 'visit'?"),
        ("physical_filtr", "did you mean 'physical_filter' (alias of filter)?"),
        ("bnd", "did you mean 'band' (implied by filter)?"),
    ],
)
def test_unknown_key_suggests_the_nearest_name(key: str, hint: str) -> None:
    with pytest.raises(DataIdError) as info:
        UNIVERSE.normalize({key: 1})
    text = str(info.value)
    assert text.startswith(f"unknown data ID key {key!r}") and hint in text
    assert "Known dimensions: instrument" in text and "detector->ccd" in text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"a": {"type": "int", "aliases": ["b"]}, "b": {"type": "int"}}, "'b' is already 'b'"),
        (
            {"a": {"type": "int", "aliases": ["x"]}, "b": {"type": "int", "aliases": ["x"]}},
            "dimensions.b.aliases: 'x' is already 'a name of a'",
        ),
        ({"a": {"type": "int", "aliases": ["a b"]}}, "is not a Python identifier"),
        ({"a": {"type": "str", "implies": ["a"]}}, "dimensions.a.implies"),
    ],
)
def test_alias_declarations_are_checked(spec: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DimensionUniverse.from_config(spec)


def test_version_1_config_may_not_declare_aliases() -> None:
    config = default_config("warping")
    assert config["version"] == CONFIG_VERSION == 3
    with pytest.raises(ConfigError, match=r"dimensions\.\w+\.\w+ needs version: 2"):
        RepoConfig.from_mapping({**config, "version": 1})


_KEYS = {
    "filter": ("filter", "physical_filter"),
    "visit": ("visit", "exposure"),
    "ccd": ("ccd", "detector"),
}


@settings(max_examples=150, deadline=None)
@given(
    filt=st.sampled_from(["HSC-I", "HSC-R", "r.MP9601", "i"]),
    visit=st.integers(0, 10**9),
    ccd=st.integers(0, 999),
    spelling=st.tuples(*(st.sampled_from(v) for v in _KEYS.values())),
    as_text=st.booleans(),
    band=st.none() | st.sampled_from(["i", "r", "300"]),
)
def test_alias_spellings_round_trip(
    filt: str,
    visit: int,
    ccd: int,
    spelling: tuple[str, str, str],
    as_text: bool,
    band: str | None,
) -> None:
    canonical = UNIVERSE.normalize(filter=filt, visit=visit, ccd=ccd)
    raw: dict[str, object] = dict(
        zip(spelling, (filt, str(visit) if as_text else visit, ccd), strict=True)
    )
    if band is not None:
        raw["band"] = band
    assert UNIVERSE.normalize(raw) == canonical
    assert UNIVERSE.normalize(raw).key == canonical.key  # same registry identity
    again = UNIVERSE.normalize(canonical)  # a validated DataId travels unchanged
    assert again == canonical and list(again) == list(canonical)


# -- the Butler API --------------------------------------------------------------------------
def test_aliases_in_put_get_query_and_where(butler: Butler) -> None:
    ref = butler.put({"x": 1}, "calexp_meta", pointing=1, physical_filter="HSC-I", exposure=7,
                     detector=16)  # fmt: skip
    assert ref.data_id == DataId(pointing=1, filter="HSC-I", visit=7, ccd=16)
    butler.put({"x": 2}, "calexp_meta", pointing=1, filter="HSC-I", visit=7, ccd=17)
    assert butler.get("calexp_meta", {"exposure": 7, "detector": 16}) == {"x": 1}
    gen3 = {"exposure": 7, "detector": 16, "physical_filter": "HSC-I", "band": "i"}
    assert butler.get("calexp_meta", gen3) == {"x": 1}
    with pytest.raises(DataIdError, match="does not identify a filter"):
        butler.get("calexp_meta", {"exposure": 7, "detector": 16, "band": "i"})
    refs = butler.query_datasets("calexp_meta", "detector > 16 AND exposure = 7")
    assert [r.data_id["ccd"] for r in refs] == [17]
    ids = butler.query_data_ids(["detector"], "exposure IN (7)")
    assert ids == [DataId(ccd=16), DataId(ccd=17)]
    refs = butler.query_datasets("calexp_meta", data_id={"physical_filter": "HSC-I"})
    assert len(refs) == 2
    with pytest.raises(QuerySyntaxError, match=r"unknown dimension 'detectr'; did you mean"):
        butler.query_datasets("calexp_meta", "detectr = 1")
    with pytest.raises(QuerySyntaxError, match="cannot stand for the dimension 'filter'"):
        butler.query_datasets("calexp_meta", "band = 'i'")


def test_aliases_on_the_command_line(butler: Butler) -> None:
    butler.put({"x": 1}, "calexp_meta", pointing=1, filter="HSC-I", visit=7, ccd=16)
    root = butler.root
    result = runner.invoke(
        app, ["query-datasets", root, "calexp_meta", "-d", "detector=16", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    assert '"ccd": 16' in result.stdout
    result = runner.invoke(app, ["query-data-ids", root, "detector", "exposure"])
    assert result.exit_code == 0 and result.stdout.split() == ["visit", "ccd", "7", "16"]
    result = runner.invoke(app, ["query-datasets", root, "calexp_meta", "-d", "detectr=16"])
    assert isinstance(result.exception, DataIdError)
    assert "did you mean 'detector' (alias of ccd)?" in str(result.exception)


# -- repositories written before aliases ------------------------------------------------------
def test_old_repository_reads_unchanged_and_hints_at_migrate(tmp_path: Path) -> None:
    repo = copy_repo(FIXTURE, tmp_path / "repo")
    raw = yaml.safe_load((repo / "butler.yaml").read_text())
    assert raw["version"] == 1 and "aliases" not in raw["dimensions"]["ccd"]
    with Butler(str(repo), writeable=False) as old:
        assert not old.dimensions.aliases
        assert len(old.query_datasets("calexp", data_id={"ccd": 16})) == 2
        with pytest.raises(DataIdError) as info:
            old.query_datasets("calexp", data_id={"detector": 16})
    text = str(info.value)
    assert "'detector' is an alias of ccd in the 'warping' preset" in text
    assert "rb migrate REPO" in text
    assert yaml.safe_load((repo / "butler.yaml").read_text()) == raw  # nothing rewritten
