"""Short canonical text of AST fragments for diagnostics (names, literals, operands, conditions).

Follows the canonical form of PQL-SPEC §4.4 so messages quote what ``pql fmt`` would print.
"""

from __future__ import annotations

import re

from pql.ast import (
    Aggregation, ArrayLit, BoolLit, BoolOp, BoolOperator, CmpOp, Column, Comparison, DateTimeLit, FloatLit,
    IntLit, Node, Not, NullLit, StrLit, Wildcard, Window,
)

__all__ = ["text", "name_text", "literal_text", "window_text"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = frozenset(
    """PREDICT FOR EACH WHERE ASSUMING AND OR NOT IS IN LIKE CONTAINS STARTS ENDS WITH NULL RANK CLASSIFY TOP
    FORECAST TIMEFRAMES SUM AVG MIN MAX COUNT COUNT_DISTINCT FIRST LAST LIST_DISTINCT SECONDS MINUTES HOURS DAYS
    WEEKS MONTHS TRUE FALSE INF INFINITY""".split()
)
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def name_text(name: str, *, table: bool = False) -> str:
    if _IDENT.match(name) and not (table and name.upper() in _RESERVED):
        return name
    return f"`{name}`"


def _str(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def _datetime(node: DateTimeLit) -> str:
    v = node.value
    day = f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
    return day if (v.hour, v.minute, v.second) == (0, 0, 0) else f"{day} {v.hour:02d}:{v.minute:02d}:{v.second:02d}"


_LITERALS = {
    IntLit: lambda n: str(n.value),
    FloatLit: lambda n: repr(n.value),
    StrLit: lambda n: _str(n.value),
    BoolLit: lambda n: "TRUE" if n.value else "FALSE",
    NullLit: lambda n: "NULL",
    DateTimeLit: _datetime,
    ArrayLit: lambda n: "(" + ", ".join(literal_text(v) for v in n.values) + ")",
}


def literal_text(node: Node) -> str:
    return _LITERALS[type(node)](node)


def window_text(window: Window) -> str:
    start = "-INF" if window.start is None else str(window.start)
    return f"{start}, {window.end}, {window.unit.word}"


def _column(node: Column) -> str:
    return f"{name_text(node.table, table=True)}.{name_text(node.name)}"


def _aggregation(node: Aggregation) -> str:
    inner = text(node.column)
    if node.filter is not None:
        inner += " WHERE " + text(node.filter)
    if node.window is not None:
        inner += ", " + window_text(node.window)
    return f"{node.func.value}({inner})"


def _comparison(node: Comparison) -> str:
    if isinstance(node.right, NullLit) and node.op in (CmpOp.EQ, CmpOp.NE):
        return f"{text(node.left)} {'IS NULL' if node.op is CmpOp.EQ else 'IS NOT NULL'}"
    return f"{text(node.left)} {node.op.value} {literal_text(node.right)}"


_PREC = {BoolOperator.OR: 1, BoolOperator.AND: 2}


def _prec(node: Node) -> int:
    if isinstance(node, BoolOp):
        return _PREC[node.op]
    return 3 if isinstance(node, Not) else 4


def _boolop(node: BoolOp) -> str:
    mine = _PREC[node.op]
    left = text(node.left)
    right = text(node.right)
    if _prec(node.left) < mine:
        left = f"({left})"
    if _prec(node.right) <= mine:
        right = f"({right})"
    return f"{left} {node.op.value} {right}"


def _not(node: Not) -> str:
    inner = text(node.operand)
    return f"NOT ({inner})" if isinstance(node.operand, BoolOp) else f"NOT {inner}"


_TEXT = {
    Column: _column,
    Wildcard: lambda n: f"{name_text(n.table, table=True)}.*",
    Aggregation: _aggregation,
    Comparison: _comparison,
    BoolOp: _boolop,
    Not: _not,
    Window: window_text,
}


def text(node: Node) -> str:
    """Canonical one-line text of a column, aggregation, condition or literal."""
    fn = _TEXT.get(type(node))
    return fn(node) if fn is not None else literal_text(node)
