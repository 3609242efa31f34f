"""Schema lookup (installed package data vs checkout) and the schemas themselves."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from repo_butler import schemas
from repo_butler.config import default_config, validate_config
from repo_butler.errors import ConfigError
from repo_butler.provenance import Provenance

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["butler-config.schema.json", "provenance.schema.json", "run-config.schema.json"]


def test_checkout_schemas_exist() -> None:
    assert schemas.checkout_schema_dir() == ROOT / "schemas"
    for name in NAMES:
        assert (ROOT / "schemas" / name).is_file()


def test_installed_package_data_is_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "fake_rb_schemas"
    pkg.mkdir()  # no __init__.py: like repo_butler/_schemas inside the wheel
    for name in NAMES:
        shutil.copy(ROOT / "schemas" / name, pkg / name)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(schemas, "_PACKAGE_DATA", "fake_rb_schemas")
    found = schemas.schema_dir()
    assert str(pkg) in str(found)
    for name in NAMES:
        assert (found / name).is_file()
    monkeypatch.setattr(schemas, "_PACKAGE_DATA", "no_such_package_xyz")
    assert schemas.schema_dir() == ROOT / "schemas"
    sys.modules.pop("fake_rb_schemas", None)


def test_default_config_is_valid() -> None:
    validate_config(default_config())


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"version": 0}, r"version: 0 is not one of \[1, 2, 3\]"),
        ({"storage": {"root": ""}}, r"storage\.root"),
        ({"registry": {"type": "oracle"}}, r"registry\.type"),
        ({"dimensions": {"bad-name": {"type": "int"}}}, r"dimensions"),
        ({"dataset_types": {"x": {"dimensions": ["visit"], "template": "a"}}},
         r"dataset_types\.x: 'formatter' is a required property"),
        ({"unexpected": 1}, r"Additional properties"),
    ],
)  # fmt: skip
def test_schema_errors_name_key_paths(patch: dict, message: str) -> None:
    config = default_config()
    config.update({k: v for k, v in patch.items() if k not in config or k == "version"})
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_provenance_document_matches_schema() -> None:
    prov = Provenance.build("task", {"a": [1, 2], "nested": {"token": "t"}})
    doc = prov.to_dict()
    schemas.validate(doc, "provenance.schema.json", source="p", error=ConfigError)
    doc["inputs"] = [{"dataset_type": "x"}]
    with pytest.raises(ConfigError, match=r"inputs\[0\]: 'data_id' is a required property"):
        schemas.validate(doc, "provenance.schema.json", source="p", error=ConfigError)
