"""Hostile ``where`` expressions: huge integers, deep nesting, long chains (issue 17 point 6).

Every case must end in a :class:`QuerySyntaxError` with a column and a caret under it (never
``OverflowError``/``RecursionError``/a database error), or in the right answer, checked against a
real SQLite registry and against Python truth.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from repo_configs import META_FILTER_VISIT_CCD as CONFIG

from repo_butler import Butler
from repo_butler.errors import QuerySyntaxError
from repo_butler.query import MAX_DEPTH, MAX_SQL_DEPTH, MAX_TERMS

CCDS = range(6)


@pytest.fixture(scope="module")
def butler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Butler]:
    root = tmp_path_factory.mktemp("where") / "repo"
    with Butler.create(str(root), config=CONFIG) as b:
        for ccd in CCDS:
            b.put({"ccd": ccd}, "meta", filter="g", visit=1, ccd=ccd)
        yield b


def _ccds(butler: Butler, where: str) -> set[int]:
    return {int(r.data_id["ccd"]) for r in butler.query_datasets("meta", where=where)}


def _column_error(butler: Butler, where: str, message: str) -> int:
    with pytest.raises(QuerySyntaxError) as info:
        butler.query_datasets("meta", where=where)
    text = str(info.value)
    assert message in text, text
    first, quoted, caret = text.splitlines()
    col = int(first.rsplit("at column ", 1)[1])
    # the caret stands under the quoted character of that column (long input: a window of it)
    assert quoted.startswith("  ") and caret.startswith("  ")
    offset = caret.index("^")
    assert quoted[offset] == where[col - 1]
    window = quoted[2:].removeprefix("...").removesuffix("...")
    assert window in where
    if not quoted.startswith("  ..."):
        assert offset - 2 == col - 1
    assert len(text) < 600  # one short message, whatever the input length
    return col


@pytest.mark.parametrize(
    ("where", "column"),
    [
        ("visit = 99999999999999999999999", 9),
        ("visit = 9223372036854775808", 9),
        ("visit = -9223372036854775809", 9),
        ("ccd IN (0..9223372036854775808)", 12),
        ("ccd IN (-99999999999999999999..3)", 9),
        ("ccd IN (0..3:99999999999999999999)", 14),
        ("ccd = 1 OR visit = " + "9" * 100_000, 20),
    ],
)
def test_huge_integers_are_refused_with_their_column(
    butler: Butler, where: str, column: int
) -> None:
    assert _column_error(butler, where, "out of range") == column


def test_huge_bound_values_are_refused(butler: Butler) -> None:
    with pytest.raises(QuerySyntaxError, match=r"out of range.*column 9"):
        butler.query_datasets("meta", where="visit = :v", bind={"v": 2**63})
    with pytest.raises(QuerySyntaxError, match=r"out of range.*column 8"):
        butler.query_datasets("meta", where="ccd IN :cs", bind={"cs": [1, 10**30]})


def test_the_64_bit_extremes_are_values(butler: Butler) -> None:
    assert _ccds(butler, "visit = 9223372036854775807 OR ccd = 2") == {2}
    assert _ccds(butler, "visit < 9223372036854775807 AND ccd IN (0..9223372036854775807:4)") == {
        0,
        4,
    }


def test_non_ascii_digits_are_not_integers(butler: Butler) -> None:
    _column_error(butler, "ccd = \u0663", "unexpected character")  # ARABIC-INDIC DIGIT THREE
    with pytest.raises(QuerySyntaxError, match="ASCII digits"):
        butler.query_datasets("meta", where="ccd = :c", bind={"c": " 3"})


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("(" * 900 + "ccd = 1" + ")" * 900, "too deeply nested"),
        ("NOT " * 20_000 + "ccd = 1", "too deeply nested"),
        ("(NOT " * 5_000 + "ccd = 1" + ")" * 5_000, "too deeply nested"),
        (" OR ".join(["ccd = 1"] * (MAX_TERMS + 1)), f"more than {MAX_TERMS} terms"),
        ("(ccd = 1 AND " * MAX_SQL_DEPTH + "ccd = 2" + ")" * MAX_SQL_DEPTH, "too complex"),
        ("(ccd = 1 OR NOT (" * 20 + "ccd = 2" + "))" * 20, "too complex"),
    ],
)
def test_deep_expressions_get_a_column_error(butler: Butler, where: str, message: str) -> None:
    _column_error(butler, where, message)


def test_expressions_at_the_limits_give_right_answers(butler: Butler) -> None:
    # NOT applied MAX_DEPTH times: even count is the identity
    n = MAX_DEPTH if MAX_DEPTH % 2 == 0 else MAX_DEPTH - 1
    assert _ccds(butler, "NOT " * n + "ccd = 3") == {3}
    assert _ccds(butler, "NOT " * (n - 1) + "ccd = 3") == set(CCDS) - {3}
    # nesting just inside the compiled-depth limit
    deep = MAX_SQL_DEPTH - 1
    assert _ccds(butler, "(ccd != 5 AND " * deep + "ccd != 0" + ")" * deep) == {1, 2, 3, 4}
    # long flat chains compile to a shallow tree (SQLite alone stops at 1000 terms)
    chain = " OR ".join(f"ccd = {i}" for i in range(100, 100 + MAX_TERMS - 1)) + " OR ccd = 4"
    assert _ccds(butler, chain) == {4}
    conj = " AND ".join(f"ccd != {i}" for i in range(10, 10 + MAX_TERMS - 1)) + " AND ccd < 2"
    assert _ccds(butler, conj) == {0, 1}
    for levels in (7, 8):
        alternating = "NOT (ccd = 1 OR " * levels + "ccd = 3" + ")" * levels

        def truth(ccd: int, levels: int = levels) -> bool:
            value = ccd == 3
            for _ in range(levels):
                value = not (ccd == 1 or value)
            return value

        assert _ccds(butler, alternating) == {c for c in CCDS if truth(c)}


def test_cli_prints_one_line_error_not_a_traceback(butler: Butler, tmp_path: Path) -> None:
    for where in ("visit = 99999999999999999999999", "NOT " * 20_000 + "ccd = 1"):
        proc = subprocess.run(
            [
                str(Path(sys.executable).with_name("rb")),
                "query-datasets",
                butler.root,
                "meta",
                "--where",
                where,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr and "Error" not in proc.stderr.split(":")[0]
        assert "at column" in proc.stderr and len(proc.stderr) < 1000, proc.stderr
