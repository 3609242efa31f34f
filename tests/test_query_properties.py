"""Property test: random where-expressions, rendered to text, select exactly what Python says."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repo_butler.config import RepoConfig, default_config
from repo_butler.query import compile_where

UNIVERSE = RepoConfig.from_mapping(default_config()).universe
ROWS = [
    {"visit": v, "ccd": c, "filter": f}
    for v, c, f in itertools.product(range(5), range(8), ("g", "r", "HSC-I"))
]
Pred = Callable[[dict[str, Any]], bool]
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _literal(dim: str, value: Any) -> str:
    return f"'{value}'" if dim == "filter" else str(value)


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[str, Pred]:
    dim = draw(st.sampled_from(["visit", "ccd", "filter"]))
    value = (
        draw(st.sampled_from(["g", "r", "HSC-I", "z"]))
        if dim == "filter"
        else draw(st.integers(0, 9))
    )
    op = draw(st.sampled_from(sorted(OPS)))
    if draw(st.booleans()):
        return f"{dim} {op} {_literal(dim, value)}", lambda r: OPS[op](r[dim], value)
    mirrored = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
    return f"{_literal(dim, value)} {mirrored} {dim}", lambda r: OPS[op](r[dim], value)


@st.composite
def in_lists(draw: st.DrawFn) -> tuple[str, Pred]:
    dim = draw(st.sampled_from(["visit", "ccd"]))
    items: list[str] = []
    allowed: set[int] = set()
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, 9))
        if draw(st.booleans()):
            stop = draw(st.integers(start, 10))
            stride = draw(st.integers(1, 3))
            items.append(f"{start}..{stop}" + (f":{stride}" if stride > 1 else ""))
            allowed |= set(range(start, stop + 1, stride))
        else:
            items.append(str(start))
            allowed.add(start)
    negated = draw(st.booleans())
    text = f"{dim} {'NOT ' if negated else ''}IN ({', '.join(items)})"
    return text, lambda r: (r[dim] in allowed) != negated


leaves = st.one_of(comparisons(), in_lists())


def _combine(children: st.SearchStrategy[tuple[str, Pred]]) -> st.SearchStrategy[tuple[str, Pred]]:
    def both(op: str) -> st.SearchStrategy[tuple[str, Pred]]:
        def make(pair: tuple[tuple[str, Pred], tuple[str, Pred]]) -> tuple[str, Pred]:
            (ta, pa), (tb, pb) = pair
            if op == "AND":
                return f"({ta}) AND ({tb})", lambda r: pa(r) and pb(r)
            return f"({ta}) OR ({tb})", lambda r: pa(r) or pb(r)

        return st.tuples(children, children).map(make)

    negation = children.map(lambda c: (f"NOT ({c[0]})", lambda r, p=c[1]: not p(r)))
    return st.one_of(both("AND"), both("OR"), negation)


expressions = st.recursive(leaves, _combine, max_leaves=6)


@pytest.fixture(scope="module")
def table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute('CREATE TABLE t ("d_visit" INTEGER, "d_ccd" INTEGER, "d_filter" TEXT)')
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [tuple(r.values()) for r in ROWS])
    return conn


@settings(max_examples=200, deadline=None)
@given(expr=expressions)
def test_random_expressions_match_python(table: sqlite3.Connection, expr: tuple[str, Pred]) -> None:
    text, pred = expr
    sql, params, _ = compile_where(text, UNIVERSE, lambda d: f'"d_{d}"')
    got = set(table.execute(f"SELECT d_visit, d_ccd, d_filter FROM t WHERE {sql}", params))
    assert got == {tuple(r.values()) for r in ROWS if pred(r)}, text
