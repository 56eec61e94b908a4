"""Aggregates of a child table over windows before each anchor, for all (entity, anchor) pairs.

The pairs live in a temp table (``pql_row``, ``e`` entity key, ``a`` anchor, ``av`` visibility bound
= the anchor or, for a NULL static anchor, the far future, and ``a7``, ``a30``, ``a90``, ``a365`` =
the anchor minus that many days). For a timed child, counts, sums and averages per window come from
**cumulative** aggregates: the child rows are grouped per (key, time), running totals are taken in
time order, and each pair reads the running totals at its anchor and at each window start with an
ASOF join, so ``value(a - w < t <= a) = cum(a) - cum(a - w)`` exactly (windows are left-open,
right-closed like §7.1). Memory and time stay linear in rows + pairs: no entity x anchor x event
product. Running MIN/MAX give the all-history extremes, first-seen counts the all-history distinct
counts, the number of distinct event times the visits. Windowed MIN/MAX and distinct counts (7, 30,
90 days) need the rows themselves: a range join restricted to the last 90 days, run in batches of
pairs so memory stays bounded. A value is counted in a window at its first occurrence there, i.e.
the row whose previous occurrence (``pd``, a LAG computed once per table) is before the window
start, so no COUNT(DISTINCT) is needed. An untimed child is static: one aggregate per key.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import duckdb
from sqlglot import exp

from pql.graph import Edge, Graph

from .blocks import Block, alias
from .columns import MAX_DISTINCT, Exclusions, roles
from .sql import temp_table, tpl

__all__ = ["child_blocks", "WINDOWS", "RANGE_WINDOWS", "RANGE_BATCH"]

WINDOWS = (7, 30, 90, 365)  # days; "all" history is added to each
RANGE_WINDOWS = (7, 30, 90)  # windows of the row-level MIN/MAX/distinct block
RANGE_BATCH = 250_000  # pairs per statement of the range-join block
MAX_WINDOWED = 4  # distinct-count columns with windowed counts (foreign keys, then categoricals)
NAN = float("nan")


def _prefix(graph: Graph, edge: Edge) -> str:
    parallel = len(graph.edges_between(edge.src_table, edge.dst_table)) > 1
    return f"{edge.src_table}[{edge.fkey}]" if parallel else edge.src_table


def _source(c: "_Child", columns: list[str]) -> str:
    """The child's rows of the pairs' entities (key and, if timed, time not NULL) with ``columns``:
    ``k`` key, ``t`` time, ``x{i}`` numeric as DOUBLE (bools 0/1), ``d{j}`` distinct-count values,
    ``pd{j}`` the previous time the entity had the same ``d{j}`` (NULL at its first occurrence)."""
    exprs = {"k": "r.__fk", "t": "r.__t"}
    exprs.update({f"x{i}": f"CAST(CAST(r.__x{i} AS INTEGER) AS DOUBLE)" if x in c.bools else
                  f"CAST(r.__x{i} AS DOUBLE)" for i, x in enumerate(c.xs)})
    exprs.update({f"d{j}": f"r.__d{j}" for j in range(len(c.ds))})
    exprs.update({f"pd{j}": f"LAG(r.__t) OVER (PARTITION BY r.__fk, r.__d{j} ORDER BY r.__t)"
                  for j in range(c.lagged)})
    where = "r.__fk IS NOT NULL" + (" AND r.__t IS NOT NULL" if c.timed else "")
    select = ", ".join(f"{exprs[name]} AS {name}" for name in columns)
    return f"SELECT {select} FROM __child AS r WHERE {where} AND r.__fk IN (SELECT e FROM __pairs)"


def _values(c: "_Child") -> list[str]:
    return ["k"] + (["t"] if c.timed else []) + [f"x{i}" for i in range(len(c.xs))] + \
        [f"d{j}" for j in range(len(c.ds))]


def _subs(edge: Edge, graph: Graph, xs: list[str], ds: list[str], pairs: str) -> dict:
    table = graph.table(edge.src_table)
    subs: dict = {"child": edge.src_table, "fk": edge.fkey, "pairs": pairs}
    if table.time_column:
        subs["t"] = table.time_column
    subs.update({f"x{i}": x for i, x in enumerate(xs)})
    subs.update({f"d{j}": d for j, d in enumerate(ds)})
    return subs


def _bounded(text: str, subs: dict, batch: int = 0, **kw) -> Block:
    return Block(kw.pop("names"), kw.pop("defaults"),
                 lambda lo, hi: tpl(text, **subs, lo=exp.Literal.number(lo), hi=exp.Literal.number(hi)), batch=batch)


@dataclass
class _Child:
    """One child table's feature inputs (placeholders in ``subs``)."""

    prefix: str
    xs: list[str]
    ds: list[str]
    bools: set[str]
    timed: bool
    lagged: int  # ds[:lagged] get windowed distinct counts (from pd columns in temp table ``__ev``)
    subs: dict


def _per_time(c: _Child) -> str:
    """The child's rows grouped per (key, time): counts, sums, non-NULL counts, MIN/MAX per numeric
    column and the number ``f{j}`` of values of each distinct-count column first seen then."""
    nx, nd = len(c.xs), len(c.ds)
    cols = ["e.k", "e.t", "COUNT(*) AS n"]
    for i in range(nx):
        cols += [f"SUM(e.x{i}) AS s{i}", f"COUNT(e.x{i}) AS c{i}", f"MIN(e.x{i}) AS mn{i}", f"MAX(e.x{i}) AS mx{i}"]
    ctes = [f"fs{j} AS (SELECT k, t, COUNT(*) AS f FROM (SELECT k, d{j}, MIN(t) AS t FROM "
            f"({_source(c, ['k', 't', f'd{j}'])}) WHERE d{j} IS NOT NULL GROUP BY k, d{j}) GROUP BY k, t)"
            for j in range(nd)]
    fields = ", ".join(f"COALESCE(fs{j}.f, 0) AS f{j}" for j in range(nd))
    joins = " ".join(f"LEFT JOIN fs{j} ON fs{j}.k = g.k AND fs{j}.t = g.t" for j in range(nd))
    body = f"SELECT {', '.join(cols)} FROM ({_source(c, _values(c))}) AS e GROUP BY e.k, e.t"
    if not nd:
        return body
    return f"WITH {', '.join(ctes)} SELECT g.*, {fields} FROM ({body}) AS g {joins}"


def _history_block(c: _Child) -> Block:
    """Every window from one range join of the pairs to the per-time rows of their history. The
    windows are nested, so the join is grouped once per (pair, innermost window ``b`` containing
    the row) with plain aggregates, and each window then combines the few groups with ``b <= w``."""
    nx = len(c.xs)
    bucket = " ".join(f"WHEN h.t > q.a{w} THEN {i}" for i, w in enumerate(WINDOWS))
    inner = [f"CASE {bucket} ELSE {len(WINDOWS)} END AS b", "SUM(h.n) AS n", "COUNT(*) AS nt",
             "MAX(h.t) AS tl", "MIN(h.t) AS tf"]
    for i in range(nx):
        inner += [f"SUM(h.s{i}) AS s{i}", f"SUM(h.c{i}) AS c{i}", f"MIN(h.mn{i}) AS mn{i}", f"MAX(h.mx{i}) AS mx{i}"]
    inner += [f"SUM(h.f{j}) AS f{j}" for j in range(len(c.ds))]
    names: list[str] = []
    defaults: list[float] = []
    exprs: list[str] = []

    def add(name: str, sql: str, default: float) -> None:
        exprs.append(f"{sql} AS {alias(len(names))}")
        names.append(name)
        defaults.append(default)

    def agg(fn: str, column: str, i: int | None) -> str:
        return f"{fn}(CASE WHEN g.b <= {i} THEN g.{column} END)" if i is not None else f"{fn}(g.{column})"

    p = c.prefix
    for i, w in [*enumerate(WINDOWS), (None, None)]:
        tag = f"{w}d" if w else "all"
        add(f"{p}.count_{tag}", f"COALESCE({agg('SUM', 'n', i)}, 0)", 0.0)
        add(f"{p}.times_{tag}", f"COALESCE({agg('SUM', 'nt', i)}, 0)", 0.0)  # distinct event times (visits)
        for j, x in enumerate(c.xs):
            add(f"{p}.{x}.sum_{tag}", f"COALESCE({agg('SUM', f's{j}', i)}, 0)", 0.0)
            add(f"{p}.{x}.avg_{tag}", f"{agg('SUM', f's{j}', i)} / NULLIF({agg('SUM', f'c{j}', i)}, 0)", NAN)
            if w != WINDOWS[0]:
                add(f"{p}.{x}.min_{tag}", agg("MIN", f"mn{j}", i), NAN)
                add(f"{p}.{x}.max_{tag}", agg("MAX", f"mx{j}", i), NAN)
    for j, d in enumerate(c.ds):
        add(f"{p}.{d}.distinct_all", "SUM(g.f{j})".format(j=j), 0.0)
    add(f"{p}.days_since_last", "(EPOCH(ANY_VALUE(g.a)) - EPOCH(MAX(g.tl))) / 86400.0", NAN)
    add(f"{p}.days_since_first", "(EPOCH(ANY_VALUE(g.a)) - EPOCH(MIN(g.tf))) / 86400.0", NAN)
    text = (f"WITH g AS (SELECT q.pql_row, ANY_VALUE(q.a) AS a, {', '.join(inner)} FROM __pairs AS q "
            "JOIN __pt AS h ON h.k = q.e AND h.t <= q.av "
            "WHERE q.pql_row >= __lo AND q.pql_row < __hi GROUP BY q.pql_row, b) "
            f"SELECT g.pql_row AS pql_row, {', '.join(exprs)} FROM g GROUP BY g.pql_row")
    return _bounded(text, c.subs, RANGE_BATCH, names=names, defaults=defaults)


def _distinct_block(c: _Child) -> Block:
    """Distinct values per window: a value counts at its first occurrence inside the window."""
    names: list[str] = []
    exprs: list[str] = []
    for w in RANGE_WINDOWS:
        for j in range(c.lagged):
            exprs.append(f"COUNT(*) FILTER (WHERE ev.t > q.a{w} AND ev.d{j} IS NOT NULL AND "
                         f"(ev.pd{j} IS NULL OR ev.pd{j} <= q.a{w})) AS {alias(len(names))}")
            names.append(f"{c.prefix}.{c.ds[j]}.distinct_{w}d")
    last = RANGE_WINDOWS[-1]
    text = (f"SELECT q.pql_row AS pql_row, {', '.join(exprs)} "
            f"FROM __pairs AS q JOIN __ev AS ev ON ev.k = q.e AND ev.t > q.a{last} AND ev.t <= q.av "
            "WHERE q.pql_row >= __lo AND q.pql_row < __hi GROUP BY q.pql_row")
    return _bounded(text, c.subs, RANGE_BATCH, names=names, defaults=[0.0] * len(names))


def _static_block(c: _Child) -> Block:
    names, defaults, aggs, outs = [f"{c.prefix}.count_all"], [0.0], ["COUNT(*) AS n"], ["g.n AS f0"]
    for i, x in enumerate(c.xs):
        for fn, default in (("sum", 0.0), ("avg", NAN), ("min", NAN), ("max", NAN)):
            aggs.append(f"{fn.upper()}(x{i}) AS {fn}{i}")
            outs.append(f"g.{fn}{i} AS {alias(len(names))}")
            names.append(f"{c.prefix}.{x}.{fn}_all")
            defaults.append(default)
    for j, d in enumerate(c.ds):
        aggs.append(f"COUNT(DISTINCT d{j}) AS dc{j}")
        outs.append(f"g.dc{j} AS {alias(len(names))}")
        names.append(f"{c.prefix}.{d}.distinct_all")
        defaults.append(0.0)
    text = (f"WITH g AS (SELECT k, {', '.join(aggs)} FROM ({_source(c, _values(c))}) GROUP BY k) "
            "SELECT q.pql_row AS pql_row, "
            f"{', '.join(outs)} FROM __pairs AS q JOIN g ON g.k = q.e WHERE q.pql_row >= __lo AND q.pql_row < __hi")
    return _bounded(text, c.subs, names=names, defaults=defaults)


def child_blocks(con: duckdb.DuckDBPyConnection, graph: Graph, entity_table: str, pairs: str,
                 excluded: Exclusions, stack: ExitStack) -> list[Block]:
    """The aggregate blocks of every table pointing at ``entity_table`` (in edge order). Each child's
    rows are read once into a temp table that lives as long as ``stack``."""
    blocks: list[Block] = []
    for edge in graph.children(entity_table):
        if edge.src_table in excluded.tables:
            continue
        table = graph.table(edge.src_table)
        r = roles(graph, table, excluded, skip=(edge.fkey,))
        windowed = [d for d in r.ids if graph.is_foreign_key(table.name, d)] + r.categorical
        windowed = windowed[:MAX_WINDOWED]
        ds = (windowed + [d for d in r.ids if d not in windowed])[:MAX_DISTINCT]
        timed = table.time_column is not None
        child = _Child(_prefix(graph, edge), r.numeric, ds, r.booleans, timed, len(windowed) if timed else 0,
                       _subs(edge, graph, r.numeric, ds, pairs))
        if not timed:
            blocks.append(_static_block(child))
            continue
        pt = stack.enter_context(temp_table(con, tpl(_per_time(child), **child.subs), "pt"))
        child.subs["pt"] = pt
        blocks.append(_history_block(child))
        if child.lagged:
            lag_cols = ["k", "t"] + [f"d{j}" for j in range(child.lagged)] + [f"pd{j}" for j in range(child.lagged)]
            child.subs["ev"] = stack.enter_context(temp_table(con, tpl(_source(child, lag_cols), **child.subs), "ev"))
            blocks.append(_distinct_block(child))
    return blocks
