"""Integer data ID values at the boundary: 64-bit range, ASCII digits only (issue 17 point 2).

A value the registry cannot store must be refused with :class:`DataIdError` before anything is
written: no stray file in storage, no raw ``OverflowError`` from the database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from repo_configs import META_FILTER_VISIT_CCD as CONFIG

from repo_butler import Butler
from repo_butler.dimensions import DataId
from repo_butler.errors import DataIdError


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("visit", [2**63, 2**64 + 5, 10**30, "9223372036854775808", "9" * 5000])
def test_out_of_range_values_are_refused_before_any_write(tmp_path: Path, visit: object) -> None:
    root = tmp_path / "repo"
    with Butler.create(str(root), config=CONFIG) as butler:
        butler.put({"ok": 1}, "meta", filter="g", visit=1, ccd=1)
        before = _files(root)
        with pytest.raises(DataIdError, match="out of range"):
            butler.put({"x": 1}, "meta", filter="g", visit=visit, ccd=1)
        assert _files(root) - before <= {"registry.sqlite3-wal", "registry.sqlite3-shm"}
        assert [r.data_id["visit"] for r in butler.registry.all_records()] == [1]
        with pytest.raises(DataIdError, match="out of range"):
            butler.get("meta", filter="g", visit=visit, ccd=1)


def test_largest_value_round_trips(tmp_path: Path) -> None:
    with Butler.create(str(tmp_path / "repo"), config=CONFIG) as butler:
        butler.put({"big": True}, "meta", filter="g", visit=2**63 - 1, ccd=0)
        assert butler.get("meta", filter="g", visit=2**63 - 1, ccd=0) == {"big": True}
        assert butler.query_datasets("meta", where=f"visit = {2**63 - 1}")[0].data_id["visit"] == (
            2**63 - 1
        )


@pytest.mark.parametrize(
    "text",
    [" 3", "3 ", "\t3", "\u0663", "\u0663\u0660", "\uff13", "3_0", "0x3", "3.0", "", "+", "\u00b3"],
)
def test_only_ascii_digits_spell_an_integer(tmp_path: Path, text: str) -> None:
    with Butler.create(str(tmp_path / "repo"), config=CONFIG) as butler:
        with pytest.raises(DataIdError, match="ASCII digits"):
            butler.put({"x": 1}, "meta", filter="g", visit=text, ccd=1)
        with pytest.raises(DataIdError):
            butler.dimensions.normalize(visit=text)
        assert list(butler.registry.all_records()) == []


def test_ascii_strings_are_still_accepted() -> None:
    from repo_butler.config import RepoConfig, default_config

    universe = RepoConfig.from_mapping(default_config()).universe
    assert universe.normalize(visit="0903988", ccd="+16")["visit"] == 903988
    assert universe.normalize(visit="9223372036854775807")["visit"] == 2**63 - 1


def test_direct_data_ids_are_bounded_too() -> None:
    assert DataId(visit=2**63 - 1)["visit"] == 2**63 - 1
    with pytest.raises(DataIdError, match="out of range"):
        DataId(visit=-(2**63) - 1)
