"""Small sqlglot builders used across the compiler (identifiers are always sqlglot nodes)."""

from __future__ import annotations

from sqlglot import exp

__all__ = ["ident", "col", "table_ref", "left_join", "inner_join", "cross_join", "and_all", "existence",
           "anchors_cte", "ANCHOR", "ANCHOR_INDEX", "ENTITY", "TARGET", "SPLIT", "KEY", "VALUE", "COUNT"]

# Output and internal column names (quoted so their case survives every dialect).
ANCHOR = "ANCHOR_TIMESTAMP"
ANCHOR_INDEX = "i"  # the anchor's position: small integer join and group key (see anchors_cte)
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


def filtered(expr: exp.Expression, cond: exp.Expression | None) -> exp.Expression:
    """``expr`` with ``FILTER (WHERE cond)`` on each aggregate call inside it (``expr`` itself
    when ``cond`` is None)."""
    if cond is None:
        return expr

    def wrap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.AggFunc):
            return exp.Filter(this=node.copy(), expression=exp.Where(this=cond.copy()))
        return node

    return expr.transform(wrap, copy=True)


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


UNION_MAX = 256  # up to this many anchors the CTE is a UNION ALL of constant rows (see anchors_cte)


def anchors_cte(times, timestamp_literal) -> exp.Expression:
    """The ``anchors`` CTE body: (i, ANCHOR_TIMESTAMP) with i = 0, 1, ... in the given order.

    DuckDB keeps exact statistics for a UNION ALL of constant SELECTs (not for VALUES), so the
    aggregation CTEs grouped by (key, i) can use its perfect-hash aggregate, several times faster
    on millions of (entity, anchor) groups. Long lists fall back to VALUES, which every engine reads.
    """
    times = list(times)
    if len(times) > UNION_MAX:
        rows = [exp.Tuple(expressions=[exp.Literal.number(i), timestamp_literal(t)]) for i, t in enumerate(times)]
        alias = exp.TableAlias(this=exp.to_identifier("v"), columns=[ident(ANCHOR_INDEX), ident(ANCHOR)])
        return exp.select(exp.Star()).from_(exp.Values(expressions=rows, alias=alias))
    selects = [exp.select(exp.alias_(exp.cast(exp.Literal.number(i), "INTEGER"), ANCHOR_INDEX, quoted=True),
                          exp.alias_(timestamp_literal(t), ANCHOR, quoted=True)) for i, t in enumerate(times)]
    body: exp.Expression = selects[0]
    for s in selects[1:]:
        body = exp.union(body, s, distinct=False)
    return body
