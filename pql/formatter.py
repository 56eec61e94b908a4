"""The canonical text of a query (PQL-SPEC §4.4).

``format_query(q)`` writes one line; with ``multiline=True`` the entity clause (``FOR``), its
``WHERE`` and ``ASSUMING`` start new lines. Keywords and aggregations are upper-case, units
lower-case and always printed, sugar is printed desugared (except NULL comparisons, which read
``IS NULL`` / ``IS NOT NULL``). Laws: ``parse(format_query(q)) == q`` for every AST that
``parse`` returns, and formatting is idempotent.

Chains of one boolean operator (``a AND b AND c``) are printed iteratively, so the depth of
Python recursion follows the nesting of parentheses, NOT and inline filters only.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata

from pql import ast as A
from pql.lexer import is_reserved

__all__ = ["format_query", "format_node", "format_literal", "format_name", "format_condition"]

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Precedence: higher binds tighter.
_PREC_OR, _PREC_AND, _PREC_NOT, _PREC_ATOM = 1, 2, 3, 4
_BOOL_PREC = {A.BoolOperator.OR: _PREC_OR, A.BoolOperator.AND: _PREC_AND}

_SIMPLE_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_NEEDS_ESCAPE_RE = re.compile(r"[\\'\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPED_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")  # controls, lone surrogates, line/paragraph separators


def _escape_char(ch: str) -> str:
    simple = _SIMPLE_ESCAPES.get(ch)
    if simple is not None:
        return simple
    if unicodedata.category(ch) in _ESCAPED_CATEGORIES:
        return f"\\u{ord(ch):04x}"
    return ch


def format_string(value: str) -> str:
    """Single-quoted, escaping ``\\ ' \\n \\r \\t \\b \\f`` and other control characters as \\uXXXX."""
    if _NEEDS_ESCAPE_RE.search(value) is None:
        return f"'{value}'"
    return "'" + "".join(_escape_char(ch) for ch in value) + "'"


def _format_datetime(value: _dt.datetime) -> str:
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if (value.hour, value.minute, value.second) != (0, 0, 0):
        text += f" {value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    return text


_LITERAL_FORMATTERS = {
    A.IntLit: lambda n: str(n.value),
    A.FloatLit: lambda n: repr(n.value),
    A.StrLit: lambda n: format_string(n.value),
    A.BoolLit: lambda n: "TRUE" if n.value else "FALSE",
    A.NullLit: lambda n: "NULL",
    A.DateTimeLit: lambda n: _format_datetime(n.value),
    A.ArrayLit: lambda n: "(" + ", ".join(format_literal(v) for v in n.values) + ")",
}


def format_literal(node: A.Node) -> str:
    return _LITERAL_FORMATTERS[type(node)](node)


def format_name(name: str, *, table: bool = False) -> str:
    """Bare if ``name`` is an IDENT (and, as a table, not reserved), else backticked."""
    if _IDENT_RE.match(name) and not (table and is_reserved(name)):
        return name
    return f"`{name}`"


def _column(node: A.Column) -> str:
    return f"{format_name(node.table, table=True)}.{format_name(node.name)}"


def _wildcard(node: A.Wildcard) -> str:
    return f"{format_name(node.table, table=True)}.*"


def _window(node: A.Window) -> str:
    start = "-INF" if node.start is None else str(node.start)
    return f"{start}, {node.end}, {node.unit.word}"


def _aggregation(node: A.Aggregation) -> str:
    parts = [_OPERAND_FORMATTERS[type(node.column)](node.column)]
    if node.filter is not None:
        parts.append(" WHERE " + format_condition(node.filter))
    if node.window is not None:
        parts.append(", " + _window(node.window))
    return f"{node.func.value}({''.join(parts)})"


_OPERAND_FORMATTERS = {A.Column: _column, A.Wildcard: _wildcard, A.Aggregation: _aggregation}

_NULL_OPS = {A.CmpOp.EQ: "IS", A.CmpOp.NE: "IS NOT"}


def _comparison(node: A.Comparison) -> str:
    left = _OPERAND_FORMATTERS[type(node.left)](node.left)
    op = node.op.value
    if isinstance(node.right, A.NullLit) and node.op in _NULL_OPS:
        op = _NULL_OPS[node.op]
    return f"{left} {op} {format_literal(node.right)}"


def _prec(node: A.Node) -> int:
    if isinstance(node, A.BoolOp):
        return _BOOL_PREC[node.op]
    if isinstance(node, A.Not):
        return _PREC_NOT
    return _PREC_ATOM


def _wrap(text: str, paren: bool) -> str:
    return f"({text})" if paren else text


def _bool_op(node: A.BoolOp) -> str:
    # Walk the left spine of the same operator iteratively: a AND b AND c.
    op = node.op
    prec = _BOOL_PREC[op]
    rights = []
    cur: A.Node = node
    while isinstance(cur, A.BoolOp) and cur.op is op:
        rights.append(cur.right)
        cur = cur.left
    parts = [_wrap(format_condition(cur), _prec(cur) < prec)]
    for right in reversed(rights):
        # The right operand of the same operator keeps its parentheses: a AND (b AND c).
        parts.append(_wrap(format_condition(right), _prec(right) <= prec))
    return f" {op.value} ".join(parts)


def _not(node: A.Not) -> str:
    operand = node.operand
    return "NOT " + _wrap(format_condition(operand), isinstance(operand, A.BoolOp))


_CONDITION_FORMATTERS = {A.Comparison: _comparison, A.BoolOp: _bool_op, A.Not: _not}


def format_condition(node: A.Node) -> str:
    return _CONDITION_FORMATTERS[type(node)](node)


def _target(node: A.Node) -> str:
    fmt = _OPERAND_FORMATTERS.get(type(node))
    return fmt(node) if fmt is not None else format_condition(node)


_PROBLEM_FORMATTERS = {
    A.Rank: lambda p: f"RANK TOP {p.k}",
    A.Classify: lambda p: "CLASSIFY",
    A.Forecast: lambda p: f"FORECAST {p.n} TIMEFRAMES",
}


def _entity(entity: A.EntitySpec, sep: str) -> str:
    key = _column(entity.key)
    if entity.ids is None:
        text = f"FOR EACH {key}"
    elif len(entity.ids) == 1:
        text = f"FOR {key} = {format_literal(entity.ids[0])}"
    else:
        text = f"FOR {key} IN ({', '.join(format_literal(v) for v in entity.ids)})"
    if entity.filter is not None:
        text += f"{sep}WHERE {format_condition(entity.filter)}"
    return text


def format_query(q: A.Query, *, multiline: bool = False) -> str:
    """The canonical text of ``q`` (one line unless ``multiline``)."""
    sep = "\n" if multiline else " "
    parts = [f"PREDICT {_target(q.target)}"]
    if q.problem is not None:
        parts.append(" " + _PROBLEM_FORMATTERS[type(q.problem)](q.problem))
    parts.append(sep + _entity(q.entity, sep))
    if q.assuming is not None:
        parts.append(f"{sep}ASSUMING {format_condition(q.assuming.condition)}")
    return "".join(parts)


_NODE_FORMATTERS = {
    **{cls: format_literal for cls in _LITERAL_FORMATTERS},
    **_OPERAND_FORMATTERS,
    **_CONDITION_FORMATTERS,
    A.Window: _window,
    A.Query: format_query,
    A.Assuming: lambda n: f"ASSUMING {format_condition(n.condition)}",
    A.EntitySpec: lambda n: _entity(n, " "),
    **_PROBLEM_FORMATTERS,
}


def format_node(node: A.Node) -> str:
    """The canonical text of any node (used in error messages: ``'{target}' is static``)."""
    return _NODE_FORMATTERS[type(node)](node)
