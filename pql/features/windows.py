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

Every statement is a sqlglot expression tree (no SQL text is formatted here): graph table and
column names enter as quoted identifiers, engine aliases (``k``, ``t``, ``x0``, ``d0`` ...) as
quoted column names, and the string is rendered for DuckDB only when the block runs.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable

import duckdb
from sqlglot import exp

from pql.compiler.sqlbuild import and_all, inner_join, left_join, table_ref
from pql.graph import Edge, Graph

from .blocks import ROW, Block, alias
from .columns import MAX_DISTINCT, Exclusions, roles
from .sql import days_between, qcol, temp_table

__all__ = ["child_blocks", "WINDOWS", "RANGE_WINDOWS", "RANGE_BATCH"]

WINDOWS = (7, 30, 90, 365)  # days; "all" history is added to each
RANGE_WINDOWS = (7, 30, 90)  # windows of the row-level MIN/MAX/distinct block
RANGE_BATCH = 250_000  # pairs per statement of the range-join block
MAX_WINDOWED = 4  # distinct-count columns with windowed counts (foreign keys, then categoricals)
NAN = float("nan")

Agg = Callable[..., exp.Expression]  # an aggregate node class: exp.Sum, exp.Min, ...


def _prefix(graph: Graph, edge: Edge) -> str:
    parallel = len(graph.edges_between(edge.src_table, edge.dst_table)) > 1
    return f"{edge.src_table}[{edge.fkey}]" if parallel else edge.src_table


# -- small expression builders (engine aliases only; user names arrive as quoted identifiers). The
# trees are built fresh for every statement, so no builder copies them (copy=False throughout).
def _as(e: exp.Expression, name: str) -> exp.Alias:
    return exp.alias_(e, name, quoted=True, copy=False)


def _num(value: int | float) -> exp.Literal:
    return exp.Literal.number(value)


def _cte(name: str) -> exp.Table:
    """A CTE or engine table alias in FROM / JOIN (engine-written, unquoted like the table parts of qcol)."""
    return exp.Table(this=exp.to_identifier(name))


def _query(cols: list[exp.Expression], source: exp.Expression, *, joins: tuple[exp.Join, ...] = (),
           where: exp.Expression | None = None, group: tuple[exp.Expression, ...] = (),
           ctes: tuple[tuple[str, exp.Expression], ...] = ()) -> exp.Select:
    """``WITH ctes SELECT cols FROM source joins WHERE where GROUP BY group``."""
    q = exp.select(*cols, copy=False).from_(source, copy=False)
    for j in joins:
        q = q.join(j, copy=False)
    if where is not None:
        q = q.where(where, copy=False)
    if group:
        q = q.group_by(*group, copy=False)
    for name, body in ctes:
        q = q.with_(exp.TableAlias(this=exp.to_identifier(name)), as_=body, copy=False)
    return q


def _count() -> exp.Count:
    return exp.Count(this=exp.Star())


def _is_null(e: exp.Expression) -> exp.Expression:
    return exp.Is(this=e, expression=exp.Null())


def _not_null(e: exp.Expression) -> exp.Expression:
    return exp.Not(this=_is_null(e))


def _eq(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return exp.EQ(this=a, expression=b)


def _rows(lo: int, hi: int) -> exp.Expression:
    """``q.pql_row >= lo AND q.pql_row < hi``: the pairs of one batch."""
    return and_all([exp.GTE(this=qcol(ROW, "q"), expression=_num(lo)),
                    exp.LT(this=qcol(ROW, "q"), expression=_num(hi))])


def _join(source: exp.Expression, *on: exp.Expression) -> exp.Join:
    """``JOIN source ON on[0] AND on[1] ...``."""
    return inner_join(source, and_all(list(on)))


@dataclass
class _Child:
    """One child table's feature inputs: the graph names (``table``, ``fk``, ``time``, the columns
    ``xs`` and ``ds``) and the engine's temp tables (``pairs``; ``pt``, ``ev`` once created)."""

    prefix: str
    table: str
    fk: str
    time: str | None
    pairs: str
    xs: list[str]
    ds: list[str]
    bools: set[str]
    lagged: int  # ds[:lagged] get windowed distinct counts (from pd columns in temp table ``ev``)
    pt: str = ""
    ev: str = ""

    @property
    def timed(self) -> bool:
        return self.time is not None


def _source_columns(c: _Child) -> dict[str, Callable[[], exp.Expression]]:
    """Builders of each column of :func:`_source` by its engine alias."""
    def r(name: str) -> exp.Column:
        return qcol(name, "r")

    def number(x: str) -> Callable[[], exp.Expression]:  # bools 0/1, everything as DOUBLE
        return lambda: exp.cast(exp.cast(r(x), "INTEGER", copy=False) if x in c.bools else r(x), "DOUBLE", copy=False)

    def lag(d: str) -> Callable[[], exp.Expression]:  # the previous time the entity had the same value
        return lambda: exp.Window(this=exp.Lag(this=r(c.time)), partition_by=[r(c.fk), r(d)],
                                  order=exp.Order(expressions=[exp.Ordered(this=r(c.time), nulls_first=False)]))

    out: dict[str, Callable[[], exp.Expression]] = {"k": lambda: r(c.fk)}
    if c.time is not None:
        out["t"] = lambda: r(c.time)
    out.update({f"x{i}": number(x) for i, x in enumerate(c.xs)})
    out.update({f"d{j}": (lambda d=d: r(d)) for j, d in enumerate(c.ds)})
    out.update({f"pd{j}": lag(c.ds[j]) for j in range(c.lagged)})
    return out


def _source(c: _Child, columns: list[str]) -> exp.Select:
    """The child's rows of the pairs' entities (key and, if timed, time not NULL) with ``columns``:
    ``k`` key, ``t`` time, ``x{i}`` numeric as DOUBLE (bools 0/1), ``d{j}`` distinct-count values,
    ``pd{j}`` the previous time the entity had the same ``d{j}`` (NULL at its first occurrence)."""
    build = _source_columns(c)
    entities = _query([qcol("e")], table_ref(c.pairs)).subquery(copy=False)
    where = and_all([_not_null(qcol(c.fk, "r")),
                     _not_null(qcol(c.time, "r")) if c.time is not None else None,
                     exp.In(this=qcol(c.fk, "r"), query=entities)])
    return _query([_as(build[name](), name) for name in columns], table_ref(c.table, "r"), where=where)


def _values(c: _Child) -> list[str]:
    return ["k"] + (["t"] if c.timed else []) + [f"x{i}" for i in range(len(c.xs))] + \
        [f"d{j}" for j in range(len(c.ds))]


def _first_seen(c: _Child, j: int) -> exp.Select:
    """(k, t, f): the number of values of ``d{j}`` an entity saw for the first time at time t."""
    d = f"d{j}"
    first = _query([qcol("k"), qcol(d), _as(exp.Min(this=qcol("t")), "t")],
                   _source(c, ["k", "t", d]).subquery(copy=False), where=_not_null(qcol(d)), group=(qcol("k"), qcol(d)))
    return _query([qcol("k"), qcol("t"), _as(_count(), "f")], first.subquery(copy=False), group=(qcol("k"), qcol("t")))


PER_TIME_AGGS: tuple[tuple[str, Agg], ...] = (  # per numeric column x{i} of a (key, time) group
    ("s", exp.Sum), ("c", exp.Count), ("mn", exp.Min), ("mx", exp.Max))
HISTORY_AGGS: tuple[tuple[str, Agg], ...] = (  # the same columns combined over the groups of one window
    ("s", exp.Sum), ("c", exp.Sum), ("mn", exp.Min), ("mx", exp.Max))


def _per_time(c: _Child) -> exp.Select:
    """The child's rows grouped per (key, time): counts, sums, non-NULL counts, MIN/MAX per numeric
    column and the number ``f{j}`` of values of each distinct-count column first seen then."""
    def e(name: str) -> exp.Column:
        return qcol(name, "e")

    cols: list[exp.Expression] = [e("k"), e("t"), _as(_count(), "n")]
    cols += [_as(fn(this=e(f"x{i}")), f"{tag}{i}") for i in range(len(c.xs)) for tag, fn in PER_TIME_AGGS]
    body = _query(cols, _source(c, _values(c)).subquery("e", copy=False), group=(e("k"), e("t")))
    if not c.ds:
        return body
    nd = range(len(c.ds))
    firsts = [_as(exp.Coalesce(this=qcol("f", f"fs{j}"), expressions=[_num(0)]), f"f{j}") for j in nd]
    joins = tuple(left_join(_cte(f"fs{j}"), and_all([_eq(qcol("k", f"fs{j}"), qcol("k", "g")),
                                                     _eq(qcol("t", f"fs{j}"), qcol("t", "g"))])) for j in nd)
    return _query([exp.Column(this=exp.Star(), table=exp.to_identifier("g")), *firsts],
                  body.subquery("g", copy=False), joins=joins, ctes=tuple((f"fs{j}", _first_seen(c, j)) for j in nd))


def _history_inner(c: _Child, lo: int, hi: int) -> exp.Select:
    """The pairs' history rows of one batch grouped per (pair, innermost window ``b`` holding the row)."""
    def h(name: str) -> exp.Column:
        return qcol(name, "h")

    bucket = exp.Case(ifs=[exp.If(this=exp.GT(this=h("t"), expression=qcol(f"a{w}", "q")), true=_num(i))
                           for i, w in enumerate(WINDOWS)], default=_num(len(WINDOWS)))
    cols: list[exp.Expression] = [qcol(ROW, "q"), _as(exp.AnyValue(this=qcol("a", "q")), "a"), _as(bucket, "b"),
                                  _as(exp.Sum(this=h("n")), "n"), _as(_count(), "nt"),
                                  _as(exp.Max(this=h("t")), "tl"), _as(exp.Min(this=h("t")), "tf")]
    cols += [_as(fn(this=h(f"{tag}{i}")), f"{tag}{i}") for i in range(len(c.xs)) for tag, fn in HISTORY_AGGS]
    cols += [_as(exp.Sum(this=h(f"f{j}")), f"f{j}") for j in range(len(c.ds))]
    on = _join(table_ref(c.pt, "h"), _eq(h("k"), qcol("e", "q")), exp.LTE(this=h("t"), expression=qcol("av", "q")))
    return _query(cols, table_ref(c.pairs, "q"), joins=(on,), where=_rows(lo, hi), group=(qcol(ROW, "q"), qcol("b")))


def _history_block(c: _Child) -> Block:
    """Every window from one range join of the pairs to the per-time rows of their history. The
    windows are nested, so the join is grouped once per (pair, innermost window ``b`` containing
    the row) with plain aggregates, and each window then combines the few groups with ``b <= w``."""
    names: list[str] = []
    defaults: list[float] = []
    features: list[Callable[[], exp.Expression]] = []  # built afresh for each statement

    def add(name: str, build: Callable[[], exp.Expression], default: float) -> None:
        names.append(name)
        defaults.append(default)
        features.append(build)

    def agg(fn: Agg, column: str, i: int | None) -> Callable[[], exp.Expression]:
        if i is None:
            return lambda: fn(this=qcol(column, "g"))
        return lambda: fn(this=exp.Case(ifs=[exp.If(this=exp.LTE(this=qcol("b", "g"), expression=_num(i)),
                                                    true=qcol(column, "g"))]))

    def zero(a: Callable[[], exp.Expression]) -> Callable[[], exp.Expression]:
        return lambda: exp.Coalesce(this=a(), expressions=[_num(0)])

    def ratio(a: Callable[[], exp.Expression], b: Callable[[], exp.Expression]) -> Callable[[], exp.Expression]:
        return lambda: exp.Div(this=a(), expression=exp.Nullif(this=b(), expression=_num(0)), typed=False, safe=False)

    def since(fn: Agg, column: str) -> Callable[[], exp.Expression]:  # days from an event time to the anchor
        return lambda: days_between(exp.AnyValue(this=qcol("a", "g")), fn(this=qcol(column, "g")))

    p = c.prefix
    for i, w in [*enumerate(WINDOWS), (None, None)]:
        tag = f"{w}d" if w else "all"
        add(f"{p}.count_{tag}", zero(agg(exp.Sum, "n", i)), 0.0)
        add(f"{p}.times_{tag}", zero(agg(exp.Sum, "nt", i)), 0.0)  # distinct event times (visits)
        for j, x in enumerate(c.xs):
            add(f"{p}.{x}.sum_{tag}", zero(agg(exp.Sum, f"s{j}", i)), 0.0)
            add(f"{p}.{x}.avg_{tag}", ratio(agg(exp.Sum, f"s{j}", i), agg(exp.Sum, f"c{j}", i)), NAN)
            if w != WINDOWS[0]:
                add(f"{p}.{x}.min_{tag}", agg(exp.Min, f"mn{j}", i), NAN)
                add(f"{p}.{x}.max_{tag}", agg(exp.Max, f"mx{j}", i), NAN)
    for j, d in enumerate(c.ds):
        add(f"{p}.{d}.distinct_all", agg(exp.Sum, f"f{j}", None), 0.0)
    add(f"{p}.days_since_last", since(exp.Max, "tl"), NAN)
    add(f"{p}.days_since_first", since(exp.Min, "tf"), NAN)

    def statement(lo: int, hi: int) -> exp.Expression:
        cols = [_as(qcol(ROW, "g"), ROW), *(_as(build(), alias(k)) for k, build in enumerate(features))]
        return _query(cols, _cte("g"), group=(qcol(ROW, "g"),), ctes=(("g", _history_inner(c, lo, hi)),))

    return Block(names, defaults, statement, batch=RANGE_BATCH)


def _distinct_block(c: _Child) -> Block:
    """Distinct values per window: a value counts at its first occurrence inside the window."""
    windows = [(w, j) for w in RANGE_WINDOWS for j in range(c.lagged)]
    names = [f"{c.prefix}.{c.ds[j]}.distinct_{w}d" for w, j in windows]

    def ev(name: str) -> exp.Column:
        return qcol(name, "ev")

    def first_in(w: int, j: int) -> exp.Expression:  # the row is in the window and its value's first there
        start = qcol(f"a{w}", "q")
        first = exp.Paren(this=exp.Or(this=_is_null(ev(f"pd{j}")),
                                      expression=exp.LTE(this=ev(f"pd{j}"), expression=start.copy())))
        return exp.Filter(this=_count(), expression=exp.Where(this=and_all([
            exp.GT(this=ev("t"), expression=start), _not_null(ev(f"d{j}")), first])))

    def statement(lo: int, hi: int) -> exp.Expression:
        cols = [_as(qcol(ROW, "q"), ROW), *(_as(first_in(w, j), alias(k)) for k, (w, j) in enumerate(windows))]
        on = _join(table_ref(c.ev, "ev"), _eq(ev("k"), qcol("e", "q")),
                   exp.GT(this=ev("t"), expression=qcol(f"a{RANGE_WINDOWS[-1]}", "q")),
                   exp.LTE(this=ev("t"), expression=qcol("av", "q")))
        return _query(cols, table_ref(c.pairs, "q"), joins=(on,), where=_rows(lo, hi), group=(qcol(ROW, "q"),))

    return Block(names, [0.0] * len(names), statement, batch=RANGE_BATCH)


STATIC_AGGS: tuple[tuple[str, Agg, float], ...] = (  # per numeric column of an untimed child: (name, node, default)
    ("sum", exp.Sum, 0.0), ("avg", exp.Avg, NAN), ("min", exp.Min, NAN), ("max", exp.Max, NAN))


def _static_block(c: _Child) -> Block:
    names, defaults = [f"{c.prefix}.count_all"], [0.0]
    aggs: list[tuple[str, Callable[[], exp.Expression]]] = [("n", _count)]  # (column of g, its aggregate)
    for i, x in enumerate(c.xs):
        for fn, node, default in STATIC_AGGS:
            aggs.append((f"{fn}{i}", lambda node=node, i=i: node(this=qcol(f"x{i}"))))
            names.append(f"{c.prefix}.{x}.{fn}_all")
            defaults.append(default)
    for j, d in enumerate(c.ds):
        aggs.append((f"dc{j}", lambda j=j: exp.Count(this=exp.Distinct(expressions=[qcol(f"d{j}")]))))
        names.append(f"{c.prefix}.{d}.distinct_all")
        defaults.append(0.0)

    def statement(lo: int, hi: int) -> exp.Expression:
        g = _query([qcol("k"), *(_as(build(), name) for name, build in aggs)],
                   _source(c, _values(c)).subquery(copy=False), group=(qcol("k"),))
        cols = [_as(qcol(ROW, "q"), ROW), *(_as(qcol(name, "g"), alias(k)) for k, (name, _) in enumerate(aggs))]
        return _query(cols, table_ref(c.pairs, "q"), joins=(_join(_cte("g"), _eq(qcol("k", "g"), qcol("e", "q"))),),
                      where=_rows(lo, hi), ctes=(("g", g),))

    return Block(names, defaults, statement)


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
        child = _Child(_prefix(graph, edge), table.name, edge.fkey, table.time_column, pairs, r.numeric, ds,
                       r.booleans, len(windowed) if timed else 0)
        if not timed:
            blocks.append(_static_block(child))
            continue
        child.pt = stack.enter_context(temp_table(con, _per_time(child), "pt"))
        blocks.append(_history_block(child))
        if child.lagged:
            lag_cols = ["k", "t"] + [f"d{j}" for j in range(child.lagged)] + [f"pd{j}" for j in range(child.lagged)]
            child.ev = stack.enter_context(temp_table(con, _source(child, lag_cols), "ev"))
            blocks.append(_distinct_block(child))
    return blocks
