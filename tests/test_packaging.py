"""meson.build stays in step with the source tree (the wheel itself is checked by
``make test-wheel``): every package directory's ``__pycache__`` is excluded from the wheel, no C
source is installed, and the installed metadata carries meson.build's version."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESON = (ROOT / "meson.build").read_text()


def _install_subdir(name: str) -> str:
    match = re.search(rf"install_subdir\(\s*'{name}',(.*?)\n\)", MESON, re.S)
    assert match, f"no install_subdir('{name}', ...) in meson.build"
    return match.group(1)


def _listed(block: str, key: str) -> set[str]:
    match = re.search(rf"{key}:\s*\[(.*?)\]", block, re.S)
    return set(re.findall(r"'([^']+)'", match.group(1))) if match else set()


def test_every_package_directory_has_its_pycache_excluded() -> None:
    """meson cannot glob: a new subpackage needs its ``__pycache__`` listed, or a wheel built
    from a working tree would carry stale byte code."""
    for package in ("repo_butler", "warping", "cli"):
        excluded = _listed(_install_subdir(package), "exclude_directories")
        for init in (ROOT / package).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / package).as_posix()
            want = "__pycache__" if rel == "." else f"{rel}/__pycache__"
            assert want in excluded, f"meson.build: add '{want}' to {package}'s exclusions"


def test_no_compiled_source_is_installed_as_package_data() -> None:
    excluded = _listed(_install_subdir("warping"), "exclude_files")
    sources = {
        p.relative_to(ROOT / "warping").as_posix()
        for p in (ROOT / "warping").rglob("*")
        if p.suffix in (".c", ".cc", ".h") and "__pycache__" not in p.parts
    }
    assert sources and sources <= excluded, sorted(sources - excluded)


def test_installed_version_is_meson_builds() -> None:
    declared = re.search(r"version:\s*'([^']+)'", MESON)
    assert declared is not None
    assert version("repo-butler") == declared.group(1)
