"""Repository presets: repo_butler ships no vocabulary; warping contributes its own."""

from __future__ import annotations

import ast
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import yaml

from repo_butler import Butler, DataId, presets
from repo_butler.config import default_config
from repo_butler.errors import ConfigError

NOTES = {
    "dataset_types": {
        "note": {"dimensions": ["name"], "formatter": "json", "template": "notes/{name}.json"}
    }
}


def _fake(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    entries = {
        name: EntryPoint(name, value, presets.ENTRY_POINT_GROUP) for name, value in values.items()
    }
    monkeypatch.setattr(presets, "_entry_points", lambda: entries)


def test_warping_is_the_installed_default_preset() -> None:
    assert "warping" in presets.available_presets()
    assert presets.default_preset() == "warping"
    config = default_config()
    assert config["dataset_types"]["calexp"]["formatter"] == "exposure"
    assert list(config) == ["version", "storage", "registry", "dimensions", "dataset_types"]
    assert config == default_config("warping")


def _code_strings(path: Path) -> list[str]:
    """String constants of a module's code (docstrings, which may show examples, excluded)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_repo_butler_code_has_no_warping_vocabulary() -> None:
    package = Path(presets.__file__).parent
    assert "calexp" in " ".join(
        _code_strings(Path(__file__).parents[1] / "warping" / "repo_preset.py")
    )
    for path in package.rglob("*.py"):
        text = " ".join(_code_strings(path))
        for word in ("calexp", "jointcal", "deepCoadd", "skyCorr", "pointing", "photocalib"):
            assert word not in text, f"{path.name} mentions {word}"


def test_minimal_preset_makes_a_working_general_butler(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    with Butler.create(root, preset="minimal", config=NOTES) as butler:
        assert set(butler.dataset_types) == {"note"}
        assert butler.dimensions.names == ("name",)
        ref = butler.put({"text": "hello"}, "note", name="greeting")
        assert ref.path == "notes/greeting.json"
        assert butler.get("note", name="greeting") == {"text": "hello"}
        assert [r.data_id for r in butler.query_datasets("note")] == [DataId(name="greeting")]
    written = yaml.safe_load((root / "butler.yaml").read_text())
    assert set(written["dimensions"]) == {"name"}
    assert set(written["dataset_types"]) == {"note"}


def test_without_installed_presets_the_default_is_minimal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake(monkeypatch)
    assert presets.default_preset() == presets.MINIMAL
    assert presets.available_presets() == [presets.MINIMAL]
    with Butler.create(tmp_path / "r") as butler:
        assert dict(butler.dataset_types) == {}
        assert butler.dimensions.names == ("name",)


def test_several_installed_presets_must_be_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake(monkeypatch, one="warping.repo_preset:butler_preset", two="builtins:dict")
    with pytest.raises(ConfigError, match=r"several repository presets.*one, two.*--preset"):
        Butler.create(tmp_path / "r")
    with Butler.create(tmp_path / "r", preset="one") as butler:
        assert "calexp" in butler.dataset_types


def test_unknown_or_broken_presets_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"no repository preset named 'nosuch'.*minimal"):
        Butler.create(tmp_path / "a", preset="nosuch")
    _fake(monkeypatch, listy="builtins:list", gone="no_such_module_xyz:preset")
    with pytest.raises(ConfigError, match="returned list, not a configuration mapping"):
        presets.load_preset("listy")
    with pytest.raises(ConfigError, match=r"'gone' .* failed to load"):
        presets.load_preset("gone")
    assert not (tmp_path / "a" / "butler.yaml").exists()
