"""The where-language: parse errors with columns, and compiled SQL checked against Python truth."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from repo_butler.config import RepoConfig, default_config
from repo_butler.dimensions import DimensionUniverse
from repo_butler.errors import QuerySyntaxError
from repo_butler.query import Compare, InList, Logical, Not, Range, compile_where, parse_where

UNIVERSE = RepoConfig.from_mapping(default_config()).universe
ROWS = [
    {"visit": v, "ccd": c, "filter": f, "patch": p}
    for v, c, f, p in itertools.product(
        (903986, 903988, 903990), range(30), ("HSC-I", "HSC-R"), ("5,4", "1,2")
    )
]


@pytest.fixture(scope="module")
def table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        'CREATE TABLE t ("d_visit" INTEGER, "d_ccd" INTEGER, "d_filter" TEXT, "d_patch" TEXT)'
    )
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [(r["visit"], r["ccd"], r["filter"], r["patch"]) for r in ROWS],
    )
    return conn


def _select(conn: sqlite3.Connection, where: str, bind: dict[str, Any] | None = None) -> set[tuple]:
    sql, params, _ = compile_where(where, UNIVERSE, lambda d: f'"d_{d}"', bind=bind)
    return set(conn.execute(f"SELECT d_visit, d_ccd, d_filter, d_patch FROM t WHERE {sql}", params))


def _truth(pred: Callable[[dict[str, Any]], bool]) -> set[tuple]:
    return {(r["visit"], r["ccd"], r["filter"], r["patch"]) for r in ROWS if pred(r)}


CASES: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ("visit = 903988", lambda r: r["visit"] == 903988),
    ("visit == 903988 AND ccd != 3", lambda r: r["visit"] == 903988 and r["ccd"] != 3),
    ("ccd IN (16..24)", lambda r: 16 <= r["ccd"] <= 24),
    ("ccd IN (0..9:3, 20, 25..26)", lambda r: r["ccd"] in (0, 3, 6, 9, 20, 25, 26)),
    ("ccd NOT IN (1..28)", lambda r: r["ccd"] in (0, 29)),
    ("filter = 'HSC-R' OR visit < 903988", lambda r: r["filter"] == "HSC-R" or r["visit"] < 903988),
    ('NOT (filter = "HSC-R") AND ccd >= 28', lambda r: r["filter"] != "HSC-R" and r["ccd"] >= 28),
    ("(visit = 903986 OR visit = 903990) AND (ccd < 2 OR ccd > 27)",
     lambda r: r["visit"] in (903986, 903990) and (r["ccd"] < 2 or r["ccd"] > 27)),
    ("patch = '5,4' and ccd <= 1", lambda r: r["patch"] == "5,4" and r["ccd"] <= 1),
    ("patch IN ('1, 2')", lambda r: r["patch"] == "1,2"),
    ("5 > ccd", lambda r: r["ccd"] < 5),
    ("visit = '903990' AND ccd = 1", lambda r: r["visit"] == 903990 and r["ccd"] == 1),
    ("NOT NOT ccd = 1", lambda r: r["ccd"] == 1),
    ("ccd = -1", lambda r: False),
]  # fmt: skip


@pytest.mark.parametrize(("where", "pred"), CASES, ids=[c[0] for c in CASES])
def test_compiled_sql_matches_python(table: sqlite3.Connection, where: str, pred: Any) -> None:
    if where == "ccd = -1":  # ccd has minimum 0: the literal itself is invalid
        with pytest.raises(QuerySyntaxError, match="minimum"):
            _select(table, where)
        return
    assert _select(table, where) == _truth(pred)


def test_bind_parameters(table: sqlite3.Connection) -> None:
    got = _select(table, "visit = :v AND ccd IN :ccds", {"v": 903990, "ccds": [1, 2]})
    assert got == _truth(lambda r: r["visit"] == 903990 and r["ccd"] in (1, 2))
    got = _select(table, "visit = my_visit AND ccd IN (:a, 7)", {"my_visit": 903986, "a": 6})
    assert got == _truth(lambda r: r["visit"] == 903986 and r["ccd"] in (6, 7))
    assert _select(table, "ccd IN :none", {"none": []}) == set()


def test_user_text_never_reaches_sql() -> None:
    evil = "x'; DROP TABLE t; --"
    quoted = evil.replace("'", "''")
    free = DimensionUniverse.from_config({"label": {"type": "str"}})
    sql, params, dims = compile_where(f"label = '{quoted}'", free, lambda d: f'"d_{d}"')
    assert sql == '("d_label" = ?)' and params == [evil] and dims == {"label"}
    with pytest.raises(QuerySyntaxError, match="pattern"):  # the default filter has a pattern
        compile_where(f"filter = '{quoted}'", UNIVERSE, lambda d: f'"d_{d}"')


def test_syntax_tree_shape() -> None:
    tree = parse_where("visit = 1 AND (ccd IN (1..3:2, 9) OR NOT filter = 'g')")
    assert isinstance(tree, Logical) and tree.op == "AND"
    left, right = tree.operands
    assert isinstance(left, Compare) and left.op == "="
    assert isinstance(right, Logical) and right.op == "OR"
    in_list, negation = right.operands
    assert isinstance(in_list, InList) and in_list.items[0] == Range(1, 3, 2, 24)
    assert isinstance(negation, Not)


@pytest.mark.parametrize(
    ("where", "column", "message"),
    [
        ("visit = ", 9, "expected a dimension name"),
        ("visit = 1 AND", 14, "expected a dimension name"),
        ("visit IN (1, 2", 15, "expected ',' or ')'"),
        ("visit 1", 7, "expected a comparison operator"),
        ("(visit = 1", 11, "expected ')'"),
        ("visit = 1 ccd = 2", 11, "expected AND, OR"),
        ("visit = 1 & ccd = 2", 11, "unexpected character '&'"),
        ("vist = 1", 1, "unknown dimension 'vist'"),
        ("filter IN (1..3)", 12, "ranges need an int dimension"),
        ("ccd IN (1..5:0)", 14, "stride must be a positive"),
        ("ccd = :nope", 7, "no value bound"),
        ("visit = 'abc'", 9, "expected an integer"),
        ("1 = 2", 3, "needs a dimension name"),
        ("", 1, "empty expression"),
        ("filter = 'unterminated", 10, "unexpected character"),
    ],
)
def test_errors_point_at_column(where: str, column: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        compile_where(where, UNIVERSE, lambda d: f'"d_{d}"')
    text = str(info.value)
    assert f"at column {column}" in text, text
    assert message in text
    caret_line = text.splitlines()[-1]
    assert caret_line.index("^") - 2 == column - 1  # caret under the column (2-space indent)


def test_allowed_dimensions_restrict_identifiers() -> None:
    with pytest.raises(QuerySyntaxError, match="not a dimension here"):
        compile_where("tract = 1", UNIVERSE, lambda d: d, allowed=("visit", "ccd"))
