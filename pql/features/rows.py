"""Features of one row of a table as seen at an anchor: the entity's own row, a parent (dimension)
row reached through a foreign key, or a link-prediction destination.

The row joins only when it is visible at the anchor (time <= anchor; untimed tables are static).
Numeric columns pass as is, bools as 0/1, timestamps as their age in days at the anchor, the time
column as the row's age, the end-time column as days since the end (NULL while the end is later
than the anchor, §7.5) plus an "ended" flag. Categorical columns become a target-free integer code
(a 24-bit MD5 hash of the value: stable across runs and data versions, never shifted by new
values) and a frequency encoding (share of the table's rows visible at the anchor with that
value, so a later row never changes it); non-key IDs get the frequency encoding; multicategorical
columns their number of values and, for static tables, indicators of the five most common values.

Every statement is a sqlglot expression tree: graph names enter as quoted identifiers, engine
aliases (``q``, ``r``, ``v``, ``n``, ``f0`` ...) as unquoted ones.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import duckdb
from sqlglot import exp

from pql.compiler.sqlbuild import and_all, left_join
from pql.graph import Dtype, Graph, TableSchema

from .blocks import ROW, Block, alias
from .columns import Exclusions, roles
from .sql import days_between, fetch, ident, qcol

__all__ = ["row_block", "RowSource", "TOP_VALUES", "CODE_BITS"]

TOP_VALUES = 5
CODE_BITS = 24  # categorical codes are exact in float32
NAN = float("nan")

# The FROM clause of a row block: the keyed rows (alias ``q``: ``pql_row``, ``a``, ``av``) and the
# joins binding the table's row as ``r``. row_block copies it for each statement.
RowSource = tuple[exp.Expression, Sequence[exp.Join]]


# -- small builders of engine names (unquoted, as the statements always wrote them)
def _c(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table)


def _as(e: exp.Expression, name: str) -> exp.Alias:
    return exp.alias_(e, name, copy=False)


def _is_null(e: exp.Expression) -> exp.Expression:
    return exp.Is(this=e, expression=exp.Null())


def _not_null(e: exp.Expression) -> exp.Expression:
    return exp.Not(this=_is_null(e))


def _count() -> exp.Count:
    return exp.Count(this=exp.Star())


def _cte(name: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name))


def _ordered(e: exp.Expression, desc: bool = False) -> exp.Ordered:
    return exp.Ordered(this=e, desc=True, nulls_first=False) if desc else exp.Ordered(this=e, nulls_first=False)


def _as_list(table: TableSchema, c: str, ref: exp.Expression) -> exp.Expression:
    """Multicategorical column ``c`` (read as ``ref``) as a list; strings are split on '|'."""
    if table.columns[c].dtype is Dtype.STRING:
        return exp.Split(this=ref, expression=exp.Literal.string("|"))
    return ref


def _top_values(con: duckdb.DuckDBPyConnection, table: TableSchema, c: str) -> list[Any]:
    """The TOP_VALUES most common values of multicategorical ``c`` (ties by value)."""
    values = exp.select(_as(exp.Explode(this=_as_list(table, c, exp.Column(this=ident(c)))), "v"), copy=False) \
        .from_(exp.Table(this=ident(table.name)), copy=False)
    q = exp.select(_c("v"), copy=False).from_(values.subquery(copy=False), copy=False) \
        .where(_not_null(_c("v")), copy=False).group_by(_c("v"), copy=False) \
        .order_by(_ordered(_count(), desc=True), _ordered(_c("v")), copy=False).limit(TOP_VALUES, copy=False)
    return fetch(con, q).column("v").to_pylist()


def _literal(value: Any) -> exp.Expression:
    if isinstance(value, str):
        return exp.Literal.string(value)
    return exp.Literal.number(value)


def _frequency_ctes(table: TableSchema, c: str, i: int) -> list[tuple[str, exp.Expression]]:
    """For a timed table: ``vc{i}`` rows per (value, time), ``cv{i}`` their running count per value,
    ``ct{i}`` the running count of all values (read at the anchor by ASOF joins)."""
    value, time = exp.Column(this=ident(c)), exp.Column(this=ident(table.time_column))
    vc = exp.select(_as(value, "v"), _as(time, "t"), _as(_count(), "n"), copy=False) \
        .from_(exp.Table(this=ident(table.name)), copy=False) \
        .where(and_all([_not_null(time.copy()), _not_null(value.copy())]), copy=False) \
        .group_by(exp.Literal.number(1), exp.Literal.number(2), copy=False)

    def running(partition: list[exp.Expression]) -> exp.Window:
        return exp.Window(this=exp.Sum(this=_c("n")), partition_by=partition or None,
                          order=exp.Order(expressions=[_ordered(_c("t"))]))

    cv = exp.select(_c("v"), _c("t"), _as(running([_c("v")]), "n"), copy=False).from_(_cte(f"vc{i}"), copy=False)
    per_time = exp.select(_c("t"), _as(exp.Sum(this=_c("n")), "n"), copy=False).from_(_cte(f"vc{i}"), copy=False) \
        .group_by(_c("t"), copy=False)
    ct = exp.select(_c("t"), _as(running([]), "n"), copy=False).from_(per_time.subquery(copy=False), copy=False)
    return [(f"vc{i}", vc), (f"cv{i}", cv), (f"ct{i}", ct)]


def _static_frequency(table: TableSchema, c: str) -> exp.Expression:
    """For an untimed table: the share of the table's rows with each value of ``c``."""
    value = exp.Column(this=ident(c))
    share = exp.Div(this=_count(), expression=exp.Window(this=exp.Sum(this=_count())),
                    typed=False, safe=False)
    return exp.select(_as(value, "v"), _as(share, "f"), copy=False) \
        .from_(exp.Table(this=ident(table.name)), copy=False) \
        .where(exp.And(this=exp.true(), expression=_not_null(value.copy())), copy=False) \
        .group_by(exp.Literal.number(1), copy=False)


def _asof_left_join(source: exp.Expression, on: exp.Expression) -> exp.Join:
    return exp.Join(this=source, method="ASOF", side="LEFT", on=on)


def row_block(con: duckdb.DuckDBPyConnection, graph: Graph, table: TableSchema, prefix: str,
              source: RowSource, subs: None, excluded: Exclusions, *, skip: tuple[str, ...] = (),
              batch: int = 0) -> Block:
    """Features of ``table``'s row ``r`` joined by ``source``: the keyed rows ``q`` (with
    ``pql_row``, ``a`` and ``av``) and the joins binding ``r``. ``subs`` is always None (it filled
    the placeholders of the former template text; kept so the callers' argument positions hold)."""
    r = roles(graph, table, excluded, skip=skip)

    def col(c: str) -> exp.Column:
        return qcol(c, "r")

    def since(c: str) -> exp.Expression:  # days from the row's ``c`` to the anchor
        return days_between(_c("a", "q"), col(c))

    names: list[str] = []
    defaults: list[float] = []
    features: list[Callable[[], exp.Expression]] = []  # built afresh for each statement
    ctes: list[tuple[str, exp.Expression]] = []
    joins: list[Callable[[], exp.Join]] = []

    def add(name: str, build: Callable[[], exp.Expression], default: float = NAN) -> None:
        names.append(name)
        defaults.append(default)
        features.append(build)

    def number(c: str) -> Callable[[], exp.Expression]:
        if c in r.booleans:
            return lambda: exp.cast(exp.cast(col(c), "INTEGER", copy=False), "DOUBLE", copy=False)
        return lambda: exp.cast(col(c), "DOUBLE", copy=False)

    def ended_days(c: str) -> Callable[[], exp.Expression]:
        return lambda: exp.Case(ifs=[exp.If(this=exp.GT(this=col(c), expression=_c("av", "q")), true=exp.Null())],
                                default=since(c))

    def ended(c: str) -> Callable[[], exp.Expression]:
        return lambda: exp.Case(ifs=[exp.If(this=exp.LTE(this=col(c), expression=_c("av", "q")),
                                            true=exp.Literal.number(1))], default=exp.Literal.number(0))

    def code(c: str) -> Callable[[], exp.Expression]:
        return lambda: exp.cast(exp.Mod(this=exp.Anonymous(this="MD5_NUMBER", expressions=[
            exp.cast(col(c), "VARCHAR", copy=False)]), expression=exp.Literal.number(1 << CODE_BITS)),
            "DOUBLE", copy=False)

    for c in r.numeric:
        add(f"{prefix}.{c}", number(c))
    for c in r.timestamps:
        add(f"{prefix}.{c}.age_days", lambda c=c: since(c))
    if table.time_column:
        add(f"{prefix}.age_days", lambda: since(table.time_column))
    if table.end_time_column:
        add(f"{prefix}.days_since_end", ended_days(table.end_time_column))
        add(f"{prefix}.ended", ended(table.end_time_column), 0.0)
    for c in r.categorical:
        add(f"{prefix}.{c}.code", code(c))
    for i, c in enumerate(r.categorical + r.ids):
        if table.time_column:
            ctes += _frequency_ctes(table, c, i)
            joins.append(lambda c=c, i=i: _asof_left_join(_cte(f"cv{i}"), and_all([
                exp.EQ(this=_c("v", f"cv{i}"), expression=col(c)),
                exp.LTE(this=_c("t", f"cv{i}"), expression=_c("av", "q"))])))
            joins.append(lambda i=i: _asof_left_join(_cte(f"ct{i}"),
                                                     exp.LTE(this=_c("t", f"ct{i}"), expression=_c("av", "q"))))
            add(f"{prefix}.{c}.freq", lambda i=i: exp.Div(
                this=exp.cast(_c("n", f"cv{i}"), "DOUBLE", copy=False), expression=_c("n", f"ct{i}"),
                typed=False, safe=False))
        else:
            ctes.append((f"fq{i}", _static_frequency(table, c)))
            joins.append(lambda c=c, i=i: left_join(_cte(f"fq{i}"), exp.EQ(this=_c("v", f"fq{i}"),
                                                                           expression=col(c))))
            add(f"{prefix}.{c}.freq", lambda i=i: _c("f", f"fq{i}"))
    for c in r.multi:
        add(f"{prefix}.{c}.n_values", lambda c=c: exp.Length(this=_as_list(table, c, col(c))))
        if not table.time_column:
            for value in _top_values(con, table, c):
                add(f"{prefix}.{c}.has[{value}]", lambda c=c, value=value: exp.cast(exp.Coalesce(
                    this=exp.ArrayContains(this=_as_list(table, c, col(c)), expression=_literal(value)),
                    expressions=[exp.false()]), "INTEGER", copy=False), 0.0)

    first, source_joins = source

    def statement(lo: int, hi: int) -> exp.Expression:
        cols = [_as(_c(ROW, "q"), ROW)]
        cols += [_as(build(), alias(k)) for k, build in enumerate(features)] or [_as(exp.Null(), "f_none")]
        q = exp.select(*cols, copy=False).from_(first.copy(), copy=False)
        for j in [*(j.copy() for j in source_joins), *(build() for build in joins)]:
            q = q.join(j, copy=False)
        q = q.where(and_all([exp.GTE(this=_c(ROW, "q"), expression=exp.Literal.number(lo)),
                             exp.LT(this=_c(ROW, "q"), expression=exp.Literal.number(hi))]), copy=False)
        for name, body in ctes:
            q = q.with_(exp.TableAlias(this=exp.to_identifier(name)), as_=body.copy(), copy=False)
        return q

    return Block(names, defaults, statement, batch=batch)
