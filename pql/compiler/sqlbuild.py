"""Small sqlglot builders used across the compiler (identifiers are always sqlglot nodes)."""

from __future__ import annotations

from sqlglot import exp

__all__ = ["ident", "col", "table_ref", "left_join", "inner_join", "cross_join", "and_all", "existence",
           "ANCHOR", "ENTITY", "TARGET", "SPLIT", "KEY", "VALUE", "COUNT"]

# Output and internal column names (quoted so their case survives every dialect).
ANCHOR = "ANCHOR_TIMESTAMP"
ENTITY = "ENTITY"
TARGET = "TARGET"
SPLIT = "SPLIT"
KEY = "K"
VALUE = "v"
COUNT = "n"


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def col(name: str, table: str | None = None) -> exp.Column:
    """``table."name"``: the table part is an engine-written alias, the column is quoted."""
    return exp.Column(this=ident(name), table=exp.to_identifier(table) if table else None)


def table_ref(name: str, alias: str | None = None) -> exp.Table:
    """A graph table or CTE by its quoted name, with an engine alias."""
    return exp.Table(this=ident(name), alias=exp.TableAlias(this=exp.to_identifier(alias)) if alias else None)


def _join(source: exp.Expression, on: exp.Expression | None, side: str | None, kind: str | None = None) -> exp.Join:
    args: dict = {"this": source}
    if on is not None:
        args["on"] = on
    if side:
        args["side"] = side
    if kind:
        args["kind"] = kind
    return exp.Join(**args)


def left_join(source: exp.Expression, on: exp.Expression) -> exp.Join:
    return _join(source, on, "LEFT")


def inner_join(source: exp.Expression, on: exp.Expression) -> exp.Join:
    return _join(source, on, None, "INNER")


def cross_join(source: exp.Expression) -> exp.Join:
    return _join(source, None, None, "CROSS")


def and_all(parts: list[exp.Expression]) -> exp.Expression | None:
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = exp.And(this=out, expression=p)
    return out


def existence(time_col: exp.Expression | None, end_col: exp.Expression | None,
              anchor: exp.Expression) -> exp.Expression | None:
    """§7.5: time <= anchor, and end-time NULL or later than the anchor."""
    parts: list[exp.Expression] = []
    if time_col is not None:
        parts.append(exp.LTE(this=time_col, expression=anchor.copy()))
    if end_col is not None:
        parts.append(exp.Paren(this=exp.Or(
            this=exp.Is(this=end_col, expression=exp.Null()),
            expression=exp.GT(this=end_col.copy(), expression=anchor.copy()))))
    return and_all(parts)
