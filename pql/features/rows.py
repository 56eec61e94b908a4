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
"""

from __future__ import annotations

from typing import Any

import duckdb
from sqlglot import exp

from pql.graph import Dtype, Graph, TableSchema

from .blocks import Block, alias
from .columns import Exclusions, roles
from .sql import fetch, tpl

__all__ = ["row_block", "TOP_VALUES", "CODE_BITS"]

TOP_VALUES = 5
CODE_BITS = 24  # categorical codes are exact in float32
NAN = float("nan")


def _as_list(table: TableSchema, c: str, ref: str) -> str:
    """SQL (template text) of multicategorical column ``c`` (written ``ref``) as a list; strings are
    split on '|'."""
    return f"STRING_SPLIT({ref}, '|')" if table.columns[c].dtype is Dtype.STRING else ref


def _top_values(con: duckdb.DuckDBPyConnection, table: TableSchema, c: str, key: str) -> list[Any]:
    lst = _as_list(table, c, f"__{key}")
    text = (f"SELECT v FROM (SELECT UNNEST({lst}) AS v FROM __tbl) WHERE v IS NOT NULL "
            f"GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT {TOP_VALUES}")
    return fetch(con, tpl(text, tbl=table.name, **{key: c})).column("v").to_pylist()


def _literal(value: Any) -> exp.Expression:
    if isinstance(value, str):
        return exp.Literal.string(value)
    return exp.Literal.number(value)


def row_block(con: duckdb.DuckDBPyConnection, graph: Graph, table: TableSchema, prefix: str, source: str,
              subs: dict[str, Any], excluded: Exclusions, *, skip: tuple[str, ...] = (),
              batch: int = 0) -> Block:
    """Features of ``table``'s row ``r`` joined by the template FROM clause ``source`` (which binds
    ``q`` with ``pql_row``, ``a`` and ``av``, and ``r``); ``subs`` fills its placeholders."""
    r = roles(graph, table, excluded, skip=skip)
    keys: dict[str, str] = {}  # template placeholder -> column name

    def key(c: str) -> str:
        k = f"c{len(keys)}" if c not in keys.values() else next(k for k, v in keys.items() if v == c)
        keys[k] = c
        return k

    names: list[str] = []
    defaults: list[float] = []
    exprs: list[str] = []
    ctes: list[str] = []
    joins: list[str] = []
    extra: dict[str, Any] = {}

    def add(name: str, sql: str, default: float = NAN) -> None:
        exprs.append(f"{sql} AS {alias(len(names))}")
        names.append(name)
        defaults.append(default)

    for c in r.numeric:
        k = key(c)
        cast = f"CAST(r.__{k} AS INTEGER)" if c in r.booleans else f"r.__{k}"
        add(f"{prefix}.{c}", f"CAST({cast} AS DOUBLE)")
    for c in r.timestamps:
        add(f"{prefix}.{c}.age_days", f"(EPOCH(q.a) - EPOCH(r.__{key(c)})) / 86400.0")
    if table.time_column:
        add(f"{prefix}.age_days", f"(EPOCH(q.a) - EPOCH(r.__{key(table.time_column)})) / 86400.0")
    if table.end_time_column:
        k = key(table.end_time_column)
        add(f"{prefix}.days_since_end",
            f"CASE WHEN r.__{k} > q.av THEN NULL ELSE (EPOCH(q.a) - EPOCH(r.__{k})) / 86400.0 END")
        add(f"{prefix}.ended", f"CASE WHEN r.__{k} <= q.av THEN 1 ELSE 0 END", 0.0)
    for c in r.categorical:
        add(f"{prefix}.{c}.code",
            f"CAST(MD5_NUMBER(CAST(r.__{key(c)} AS VARCHAR)) % {1 << CODE_BITS} AS DOUBLE)")
    for i, c in enumerate(r.categorical + r.ids):
        k = key(c)
        vis = f"AND __{k} IS NOT NULL"
        if table.time_column:
            tk = key(table.time_column)
            ctes.append(f"vc{i} AS (SELECT __{k} AS v, __{tk} AS t, COUNT(*) AS n FROM __tbl WHERE __{tk} IS NOT NULL "
                        f"{vis} GROUP BY 1, 2)")
            ctes.append(f"cv{i} AS (SELECT v, t, SUM(n) OVER (PARTITION BY v ORDER BY t) AS n FROM vc{i})")
            ctes.append(f"ct{i} AS (SELECT t, SUM(n) OVER (ORDER BY t) AS n FROM (SELECT t, SUM(n) AS n FROM vc{i} "
                        "GROUP BY t))")
            joins.append(f"ASOF LEFT JOIN cv{i} ON cv{i}.v = r.__{k} AND cv{i}.t <= q.av "
                         f"ASOF LEFT JOIN ct{i} ON ct{i}.t <= q.av")
            add(f"{prefix}.{c}.freq", f"CAST(cv{i}.n AS DOUBLE) / ct{i}.n")
        else:
            ctes.append(f"fq{i} AS (SELECT __{k} AS v, COUNT(*) / SUM(COUNT(*)) OVER () AS f FROM __tbl "
                        f"WHERE TRUE {vis} GROUP BY 1)")
            joins.append(f"LEFT JOIN fq{i} ON fq{i}.v = r.__{k}")
            add(f"{prefix}.{c}.freq", f"fq{i}.f")
    for c in r.multi:
        k = key(c)
        add(f"{prefix}.{c}.n_values", f"LEN({_as_list(table, c, f'r.__{k}')})")
        if not table.time_column:
            for j, value in enumerate(_top_values(con, table, c, k)):
                lit = f"v_{k}_{j}"
                extra[lit] = _literal(value)
                add(f"{prefix}.{c}.has[{value}]",
                    f"CAST(COALESCE(LIST_CONTAINS({_as_list(table, c, f'r.__{k}')}, __{lit}), FALSE) AS INTEGER)", 0.0)
    placeholders = {k: c for k, c in keys.items()}
    with_ = f"WITH {', '.join(ctes)} " if ctes else ""
    select = ", ".join(exprs) if exprs else "NULL AS f_none"
    text = (f"{with_}SELECT q.pql_row AS pql_row, {select} FROM {source} {' '.join(joins)} "
            "WHERE q.pql_row >= __lo AND q.pql_row < __hi")
    all_subs = {**subs, **placeholders, **extra, "tbl": table.name}
    return Block(names, defaults, lambda lo, hi: tpl(text, **all_subs, lo=exp.Literal.number(lo),
                                                      hi=exp.Literal.number(hi)), batch=batch)
