"""The import graph of repo_butler, warping and cli: no cycles; dependencies point one way
(cli -> warping -> repo_butler); no model of warping imports the task layer; no module over 600
lines; the CLI (folder ``cli/``, installed as ``repo_butler_cli``) is imported by neither name
from below and its modules import each other relatively."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("repo_butler", "warping", "cli")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _package_of(path: Path) -> list[str]:
    return list(path.relative_to(ROOT).parent.parts)


def _imports(path: Path) -> set[str]:
    """Every module named by an import in ``path`` (function-level ones included, relative ones
    resolved against ``path``'s package), except imports under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    typing_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            typing_only |= {id(sub) for sub in ast.walk(node)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # ``from .x import y`` in package ``a.b`` names ``a.b.x``
                package = _package_of(path)
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def _absolute_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0
    }


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: (_imports(path) & set(modules)) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _imports(ROOT / "cli" / "main.py") >= {"cli.butler_cmds", "cli.errors"}
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_dependencies_point_one_way() -> None:
    above = {
        "repo_butler": ("warping", "cli", "repo_butler_cli"),
        "warping": ("cli", "repo_butler_cli"),
        "cli": (),
    }
    for name, path in _modules().items():
        forbidden = above[name.split(".")[0]]
        bad = {m for m in _imports(path) if m.split(".")[0] in forbidden}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_no_warping_module_imports_the_task_layer_from_below() -> None:
    for name, path in _modules().items():
        if not name.startswith("warping.") or name.startswith("warping.task"):
            continue
        bad = {m for m in _imports(path) if m == "warping.task" or m.startswith("warping.task.")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_no_module_over_600_lines() -> None:
    for name, path in _modules().items():
        lines = len(path.read_text().splitlines())
        assert lines <= 600, f"{name} has {lines} lines"


def test_the_cli_imports_itself_relatively() -> None:
    """``cli/`` installs as ``repo_butler_cli``: an absolute ``cli.`` or ``repo_butler_cli.``
    import inside it would name a package that does not exist under the other name."""
    for name, path in _modules().items():
        if name.split(".")[0] != "cli":
            continue
        bad = {m for m in _absolute_imports(path) if m.split(".")[0] in ("cli", "repo_butler_cli")}
        assert not bad, f"{name} imports {sorted(bad)} absolutely"
