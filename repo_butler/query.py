"""The ``where`` expression language: tokenizer, parser, syntax tree and SQL compiler.

Grammar (keywords case-insensitive)::

    expr      := or_expr
    or_expr   := and_expr ("OR" and_expr)*
    and_expr  := not_expr ("AND" not_expr)*
    not_expr  := "NOT" not_expr | "(" expr ")" | predicate
    predicate := operand OP operand | operand ["NOT"] "IN" ( "(" item ("," item)* ")" | BIND )
    item      := literal | BIND | INT ".." INT [":" INT]       (inclusive range, optional stride)
    operand   := IDENT | literal | BIND
    literal   := INT | "-" INT | STRING ('...' or "...", quote doubled to escape)
    OP        := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    BIND      := ":" IDENT  (a bare IDENT that is not a dimension but is a key of ``bind`` also
                              refers to a bound value)

Expressions are parsed into a small tree of frozen dataclasses and compiled to parameterised SQL:
identifiers map to whitelisted column names, every value becomes a ``?`` parameter, so user text
never reaches SQL. Errors raise :class:`~repo_butler.errors.QuerySyntaxError` pointing at the
1-based column.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from repo_butler.dimensions import INT_MAX, INT_MIN, DataIdValue, DimensionUniverse
from repo_butler.errors import DataIdError, QuerySyntaxError, Remedy

__all__ = [
    "Compare",
    "Expr",
    "Ident",
    "InList",
    "Literal",
    "Logical",
    "Not",
    "Range",
    "compile_where",
    "parse_where",
    "referenced_dimensions",
]

logger = logging.getLogger(__name__)

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<range>\.\.)
  | (?P<int>[0-9]+)
  | (?P<bind>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<colon>:)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<op><=|>=|==|!=|<>|=|<|>)
  | (?P<punct>[(),\-])
    """,
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT", "IN"}
#: Deepest nesting of parentheses and NOT accepted (the parser and compiler recurse per level).
MAX_DEPTH = 64
#: Deepest nesting of the compiled SQL (SQLite's parser stack overflows near 30 levels).
MAX_SQL_DEPTH = 24
#: Most operands of one AND/OR chain (compiled as a balanced tree: SQL depth grows as log2).
MAX_TERMS = 10_000
#: Integer literals longer than this cannot be in the registry's 64-bit range (checked before
#: conversion, so a 100,000-digit literal costs nothing).
_MAX_INT_CHARS = 19
_CHUNK = 32  # terms of an AND/OR chain compiled flat (x 24 levels < SQLite's tree depth 1000)
_SHOWN = 80  # characters of a long expression quoted in an error
_SQL_OPS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token: kind, text and 1-based column."""

    kind: str
    text: str
    col: int


@dataclass(frozen=True, slots=True)
class Ident:
    """A dimension name (or a bare bind name)."""

    name: str
    col: int


@dataclass(frozen=True, slots=True)
class Literal:
    """An int or str literal, or a bound parameter (``bind`` set, ``value`` None)."""

    value: int | str | None
    col: int
    bind: str | None = None


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive integer range ``start..stop[:stride]`` inside ``IN (...)``."""

    start: int
    stop: int
    stride: int
    col: int


@dataclass(frozen=True, slots=True)
class Compare:
    """``left OP right``."""

    left: Ident | Literal
    op: str
    right: Ident | Literal
    col: int


@dataclass(frozen=True, slots=True)
class InList:
    """``ident [NOT] IN (items)`` or ``ident [NOT] IN :bind``."""

    ident: Ident
    items: tuple[Literal | Range, ...]
    negated: bool
    col: int


@dataclass(frozen=True, slots=True)
class Logical:
    """``AND`` / ``OR`` of two or more operands."""

    op: str
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """``NOT operand``."""

    operand: Expr


Expr = Compare | InList | Logical | Not


def _error(text: str, col: int, message: str, remedy: Remedy | None = None) -> QuerySyntaxError:
    start = 0
    shown = text
    if len(text) > _SHOWN:  # quote a window around the column, not a 100 kB line
        start = max(0, min(col - 1 - _SHOWN // 2, len(text) - _SHOWN))
        shown = text[start : start + _SHOWN]
        shown = ("..." if start else "") + shown + ("..." if start + _SHOWN < len(text) else "")
        start -= 3 if start else 0
    caret = " " * (col - 1 - start) + "^"
    return QuerySyntaxError(
        f"where expression: {message} at column {col}\n  {shown}\n  {caret}", remedy=remedy
    )


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _error(text, pos + 1, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            word = m.group()
            if kind == "ident" and word.upper() in _KEYWORDS:
                kind, word = "kw", word.upper()
            tokens.append(Token(kind, word, pos + 1))
        pos = m.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, message: str, tok: Token | None = None) -> QuerySyntaxError:
        tok = tok or self.tok
        found = "end of expression" if tok.kind == "end" else repr(tok.text)
        return _error(self.text, tok.col, f"{message}, found {found}")

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        tok = self.tok
        if tok.kind == kind and (text is None or tok.text == text):
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, text: str, what: str) -> Token:
        tok = self.accept(kind, text)
        if tok is None:
            raise self.fail(f"expected {what}")
        return tok

    def parse(self) -> Expr:
        if self.tok.kind == "end":
            raise self.fail("empty expression")
        expr = self.or_expr()
        if self.tok.kind != "end":
            raise self.fail("expected AND, OR or end of expression")
        return expr

    def or_expr(self) -> Expr:
        return self.chain("OR", self.and_expr)

    def and_expr(self) -> Expr:
        return self.chain("AND", self.not_expr)

    def chain(self, op: str, operand: Callable[[], Expr]) -> Expr:
        parts = [operand()]
        while tok := self.accept("kw", op):
            if len(parts) == MAX_TERMS:
                raise _error(
                    self.text,
                    tok.col,
                    f"more than {MAX_TERMS} terms joined by {op}; use IN (...) for long lists",
                )
            parts.append(operand())
        return parts[0] if len(parts) == 1 else Logical(op, tuple(parts))

    def not_expr(self) -> Expr:
        tok = self.tok
        if (tok.kind == "kw" and tok.text == "NOT") or (tok.kind == "punct" and tok.text == "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _error(
                    self.text,
                    tok.col,
                    f"too deeply nested (more than {MAX_DEPTH} levels of parentheses and NOT); "
                    "simplify the expression",
                )
            self.i += 1
            if tok.text == "NOT":
                expr: Expr = Not(self.not_expr())
            else:
                expr = self.or_expr()
                self.expect("punct", ")", "')'")
            self.depth -= 1
            return expr
        return self.predicate()

    def operand(self) -> Ident | Literal:
        tok = self.tok
        if tok.kind == "ident":
            self.i += 1
            return Ident(tok.text, tok.col)
        if tok.kind == "bind":
            self.i += 1
            return Literal(None, tok.col, bind=tok.text[1:])
        return self.literal()

    def integer(self, digits: Token, col: int, sign: int) -> Literal:
        value = sign * int(digits.text) if len(digits.text) <= _MAX_INT_CHARS + 1 else None
        if value is None or not INT_MIN <= value <= INT_MAX:
            shown = digits.text if len(digits.text) <= 40 else f"{digits.text[:20]}..."
            raise _error(
                self.text,
                col,
                f"integer {'-' if sign < 0 else ''}{shown} is out of range "
                f"({INT_MIN}..{INT_MAX}, the registry's 64-bit integers)",
            )
        return Literal(value, col)

    def literal(self) -> Literal:
        tok = self.tok
        if tok.kind == "int":
            self.i += 1
            return self.integer(tok, tok.col, 1)
        if tok.kind == "punct" and tok.text == "-" and self.tokens[self.i + 1].kind == "int":
            self.i += 2
            return self.integer(self.tokens[self.i - 1], tok.col, -1)
        if tok.kind == "string":
            self.i += 1
            quote = tok.text[0]
            return Literal(tok.text[1:-1].replace(quote * 2, quote), tok.col)
        raise self.fail("expected a dimension name, a value or '('")

    def predicate(self) -> Expr:
        left = self.operand()
        start = self.tok
        negated = False
        if self.accept("kw", "NOT"):
            negated = True
            if self.tok.kind != "kw" or self.tok.text != "IN":
                raise self.fail("expected IN after NOT")
        if self.accept("kw", "IN"):
            if not isinstance(left, Ident):
                raise _error(self.text, left.col, "the left side of IN must be a dimension name")
            return InList(left, self.in_items(), negated, start.col)
        op = self.accept("op")
        if op is None:
            raise self.fail("expected a comparison operator or IN")
        right = self.operand()
        return Compare(left, _SQL_OPS[op.text], right, op.col)

    def in_items(self) -> tuple[Literal | Range, ...]:
        tok = self.accept("bind")
        if tok is not None:
            return (Literal(None, tok.col, bind=tok.text[1:]),)
        self.expect("punct", "(", "'(' after IN")
        items: list[Literal | Range] = [self.in_item()]
        while self.accept("punct", ","):
            items.append(self.in_item())
        self.expect("punct", ")", "',' or ')'")
        return tuple(items)

    def in_item(self) -> Literal | Range:
        tok = self.accept("bind")
        if tok is not None:
            return Literal(None, tok.col, bind=tok.text[1:])
        first = self.literal()
        if not self.accept("range"):
            return first
        stop = self.literal()
        stride = 1
        if self.accept("colon"):
            stride_lit = self.literal()
            stride = stride_lit.value if isinstance(stride_lit.value, int) else 0
            if stride < 1:
                raise _error(self.text, stride_lit.col, "range stride must be a positive integer")
        if not (isinstance(first.value, int) and isinstance(stop.value, int)):
            raise _error(self.text, first.col, "ranges need integer bounds")
        return Range(first.value, stop.value, stride, first.col)


@functools.lru_cache(maxsize=256)
def parse_where(text: str) -> Expr:
    """Parse a ``where`` expression into a syntax tree.

    Raises
    ------
    QuerySyntaxError
        With the 1-based column of the offending token.
    """
    return _Parser(text).parse()


def referenced_dimensions(expr: Expr, bind: Mapping[str, Any] | None = None) -> set[str]:
    """Names of the dimensions an expression refers to (bare bind names excluded)."""
    bind = bind or {}
    out: set[str] = set()

    def visit(node: Expr) -> None:
        if isinstance(node, Compare):
            for side in (node.left, node.right):
                if isinstance(side, Ident) and side.name not in bind:
                    out.add(side.name)
        elif isinstance(node, InList):
            out.add(node.ident.name)
        elif isinstance(node, Logical):
            for op in node.operands:
                visit(op)
        else:
            visit(node.operand)

    visit(expr)
    return out


class _Compiler:
    def __init__(
        self,
        text: str,
        universe: DimensionUniverse,
        column: Callable[[str], str],
        allowed: Sequence[str] | None,
        bind: Mapping[str, Any],
        placeholder: str,
    ) -> None:
        self.text = text
        self.universe = universe
        self.column = column
        self.allowed = allowed
        self.bind = bind
        self.ph = placeholder
        self.params: list[DataIdValue] = []

    def dim(self, ident: Ident) -> str:
        universe = self.universe
        name = ident.name if ident.name in universe else universe.aliases.get(ident.name, "")
        if not name:
            if ident.name in universe.implied:  # e.g. band: says which dimension to use
                try:
                    universe.canonical(ident.name)
                except DataIdError as err:
                    raise _error(self.text, ident.col, str(err)) from None
            hint = universe.suggest(ident.name)
            raise _error(
                self.text,
                ident.col,
                f"unknown dimension {ident.name!r}{'; ' + hint if hint else ''} "
                f"(known: {', '.join(universe.names)})",
            )
        if self.allowed is not None and name not in self.allowed:
            raise _error(
                self.text,
                ident.col,
                f"{ident.name!r} is not a dimension here (allowed: {', '.join(self.allowed)})",
            )
        return name

    def bound(self, name: str, col: int) -> Any:
        if name not in self.bind:
            remedy = Remedy(
                "bind", otherwise="write the value in the expression", example=f"{{{name!r}: ...}}"
            )
            raise _error(self.text, col, f"no value bound for :{name}", remedy)
        return self.bind[name]

    def value(self, dim: str, lit: Literal) -> DataIdValue:
        raw = self.bound(lit.bind, lit.col) if lit.bind is not None else lit.value
        try:
            return self.universe[dim].normalize(raw)
        except DataIdError as err:
            raise _error(self.text, lit.col, str(err)) from None

    def as_operand(self, node: Ident | Literal) -> Ident | Literal:
        name = node.name if isinstance(node, Ident) else ""
        if name in self.bind and name not in self.universe and name not in self.universe.aliases:
            return Literal(None, node.col, bind=name)
        return node

    def compile(self, node: Expr) -> str:
        if isinstance(node, Logical):
            return _balanced(node.op, [self.compile(op) for op in node.operands])
        if isinstance(node, Not):
            if isinstance(node.operand, Not):  # NOT NOT x is x: keep the SQL shallow
                return self.compile(node.operand.operand)
            return f"NOT {self.compile(node.operand)}"  # operands are parenthesised
        if isinstance(node, InList):
            return self.compile_in(node)
        return self.compile_compare(node)

    def compile_compare(self, node: Compare) -> str:
        left, right = self.as_operand(node.left), self.as_operand(node.right)
        if isinstance(left, Ident) and isinstance(right, Ident):
            a, b = self.dim(left), self.dim(right)
            if self.universe[a].type != self.universe[b].type:
                raise _error(self.text, node.col, f"cannot compare {a!r} with {b!r}: types differ")
            return f"({self.column(a)} {node.op} {self.column(b)})"
        if isinstance(left, Ident) and isinstance(right, Literal):
            dim = self.dim(left)
            self.params.append(self.value(dim, right))
            return f"({self.column(dim)} {node.op} {self.ph})"
        if isinstance(right, Ident) and isinstance(left, Literal):
            dim = self.dim(right)
            self.params.append(self.value(dim, left))
            return f"({self.ph} {node.op} {self.column(dim)})"
        raise _error(self.text, node.col, "a comparison needs a dimension name on one side")

    def compile_in(self, node: InList) -> str:
        dim = self.dim(node.ident)
        col = self.column(dim)
        values: list[DataIdValue] = []
        ranges: list[str] = []
        range_params: list[DataIdValue] = []
        for item in node.items:
            if isinstance(item, Range):
                if self.universe[dim].type != "int":
                    raise _error(
                        self.text, item.col, f"ranges need an int dimension; {dim!r} is str"
                    )
                range_params.extend((item.start, item.stop))
                clause = f"({col} BETWEEN {self.ph} AND {self.ph}"
                if item.stride > 1:
                    range_params.extend((item.start, item.stride))
                    clause += f" AND ({col} - {self.ph}) % {self.ph} = 0"
                ranges.append(clause + ")")
            elif item.bind is not None and _is_sequence(self.bound(item.bind, item.col)):
                for raw in self.bound(item.bind, item.col):
                    values.append(self.value(dim, Literal(raw, item.col)))
            else:
                values.append(self.value(dim, item))
        clauses = [f"{col} IN ({', '.join([self.ph] * len(values))})"] if values else []
        self.params.extend(values)
        self.params.extend(range_params)
        clauses += ranges
        if not clauses:  # an empty bound sequence: matches nothing
            return "(1 = 1)" if node.negated else "(0 = 1)"
        sql = "(" + " OR ".join(clauses) + ")"
        return f"(NOT {sql})" if node.negated else sql


def _sql_depth(node: Expr) -> tuple[int, int]:
    """Nesting depth of the compiled SQL (parentheses and NOT, which fill the database parser's
    stack) and the column of the deepest predicate."""
    if isinstance(node, Compare):
        return 1, node.col
    if isinstance(node, InList):
        return 3 + node.negated, node.col
    if isinstance(node, Not):
        if isinstance(node.operand, Not):
            return _sql_depth(node.operand.operand)
        depth, col = _sql_depth(node.operand)
        return depth + 1, col
    levels, n = 1, len(node.operands)
    while n > _CHUNK:
        n = -(-n // _CHUNK)
        levels += 1
    depth, col = max((_sql_depth(op) for op in node.operands), key=lambda dc: dc[0])
    return depth + levels, col


def _balanced(op: str, parts: list[str]) -> str:
    """``(a OP b OP c ...)``, long chains as a balanced tree of flat chunks: SQLite parses a flat
    chain of n terms n levels deep (limit 1000) and each parenthesis uses its parser stack."""
    if len(parts) <= _CHUNK:
        return "(" + f" {op} ".join(parts) + ")"
    step = -(-len(parts) // _CHUNK)  # ceil: at most _CHUNK groups per level
    return _balanced(op, [_balanced(op, parts[i : i + step]) for i in range(0, len(parts), step)])


def _is_sequence(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


def compile_where(
    text: str,
    universe: DimensionUniverse,
    column: Callable[[str], str],
    *,
    allowed: Sequence[str] | None = None,
    bind: Mapping[str, Any] | None = None,
    placeholder: str = "?",
) -> tuple[str, list[DataIdValue], set[str]]:
    """Parse and compile ``text`` to a parameterised SQL boolean expression.

    Parameters
    ----------
    text : str
        The user's ``where`` expression.
    universe : DimensionUniverse
        Known dimensions; literals are normalised with their dimension's rules.
    column : callable
        Maps a (validated) dimension name to its quoted SQL column.
    allowed : sequence of str, optional
        Restrict identifiers to these dimensions (e.g. a dataset type's).
    bind : mapping, optional
        Values for ``:name`` parameters (sequences allowed after ``IN``).
    placeholder : str
        Parameter marker of the target database (``?`` for SQLite).

    Returns
    -------
    sql : str
        The SQL fragment.
    params : list
        Parameter values in order.
    dims : set of str
        Dimensions referenced.
    """
    expr = parse_where(text)
    depth, col = _sql_depth(expr)
    if depth > MAX_SQL_DEPTH:
        raise _error(
            text,
            col,
            f"too complex: parentheses, NOT and long AND/OR chains nest {depth} levels deep here "
            f"once compiled (at most {MAX_SQL_DEPTH}); flatten the expression or use IN lists",
        )
    compiler = _Compiler(text, universe, column, allowed, bind or {}, placeholder)
    sql = compiler.compile(expr)
    aliases = universe.aliases
    return sql, compiler.params, {aliases.get(n, n) for n in referenced_dimensions(expr, bind)}
