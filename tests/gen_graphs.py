"""Hypothesis strategies: small random graphs with data, and random valid queries over them.

A generated :class:`Case` holds a :class:`pql.graph.Graph` whose tables carry in-memory pyarrow
data, the same data as row dicts (for ``tests.reference``), a query AST and a few anchors.

The shape is fixed enough to be valid by construction and random enough to hit the corners of
PQL-SPEC §7: an entity table ``ent`` (sometimes timed, sometimes with an end-time column, int or
string keys) with a static parent ``par``; a fact table ``fact`` with an FK to ``ent`` and
sometimes one to an ``item`` dimension (which may have start/end times); sometimes a second fact
table ``fact2`` and a grandchild ``sub`` under ``fact`` (for nested aggregations). Timestamps are
drawn mostly from ``anchor + k * unit`` so events sit exactly on window edges, around month-end
anchors; values include NULLs, orphan foreign keys and ties.

Queries are built against the graph generically (children, parents and column types are read
from the graph), so the entity can be ``ent``, ``item`` or ``par``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa
from hypothesis import strategies as st

from pql import ast as A
from pql.graph import ColumnSchema, Dtype, Edge, Graph, Stype, TableSchema
from tests.reference import shift

__all__ = ["Case", "cases", "COARSE_UNITS", "graphs_with_data", "queries_for", "BASE_ANCHORS", "case_text"]

D = dt.datetime
U = A.TimeUnit

# Month ends and a mid-month time, so months windows clamp (2024-01-31 + 1 month = 2024-02-29).
BASE_ANCHORS = [D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31), D(2024, 4, 30), D(2024, 3, 15, 12, 0, 0),
                D(2023, 12, 31)]
UNITS = [U.DAYS, U.DAYS, U.HOURS, U.WEEKS, U.MONTHS, U.MONTHS, U.MINUTES, U.SECONDS]
STRINGS = ["a", "b", "ab", "ba", "B", "", "é", "a b"]
INTS = [0, 1, 2, 3, 5, -1]
FLOATS = [0.0, 0.5, 1.5, 2.0, -0.5, 3.25]

I, F, B, S, T, LS = Dtype.INT, Dtype.FLOAT, Dtype.BOOL, Dtype.STRING, Dtype.TIMESTAMP, Dtype.LIST_STRING
NUM, CAT, MCAT, ID, TS = Stype.NUMERICAL, Stype.CATEGORICAL, Stype.MULTICATEGORICAL, Stype.ID, Stype.TIMESTAMP
ARROW = {I: pa.int64(), F: pa.float64(), B: pa.bool_(), S: pa.string(), T: pa.timestamp("us"),
         LS: pa.list_(pa.string())}


@dataclass
class Case:
    graph: Graph
    rows: dict[str, list[dict[str, Any]]]
    query: A.Query
    anchors: list[dt.datetime]
    units: list[A.TimeUnit] = field(default_factory=list)


def case_text(case: Case) -> str:
    """A readable dump for failure messages: the query, the anchors and every row."""
    try:
        import pql

        q = pql.format(case.query)
    except Exception:  # the formatter may not exist yet; the AST repr still says everything
        q = repr(case.query)
    lines = [f"query: {q}", f"anchors: {[str(a) for a in case.anchors]}"]
    for t in case.graph:
        keys = f"pk={t.primary_key} time={t.time_column} end={t.end_time_column}"
        lines.append(f"table {t.name} ({keys})")
        lines.extend(f"  {r}" for r in case.rows[t.name])
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Graphs with data


def _time_pool(anchors: list[D], units: list[A.TimeUnit]) -> list[D]:
    pool = {shift(a, k, u) for a in anchors for u in units for k in range(-3, 5)}
    pool |= {a + dt.timedelta(seconds=1) for a in anchors}
    return sorted(pool)


@st.composite
def _value(draw, dtype: Dtype, pool: list[D], null_p: float = 0.15) -> Any:
    if draw(st.integers(0, 99)) >= 100 - 100 * null_p:  # NULL at the far end, not the shrink target
        return None
    if dtype is I:
        return draw(st.sampled_from(INTS))
    if dtype is F:
        return draw(st.sampled_from(FLOATS))
    if dtype is B:
        return draw(st.booleans())
    if dtype is S:
        return draw(st.sampled_from(STRINGS))
    if dtype is T:
        return draw(st.sampled_from(pool))
    if dtype is LS:
        return draw(st.lists(st.sampled_from(STRINGS[:5]), min_size=1, max_size=3))
    raise AssertionError(dtype)


@dataclass
class _Spec:
    """How to fill one table: its schema, a row count, and where its foreign keys point."""

    name: str
    cols: list[tuple[str, Dtype, Stype]]
    pk: str | None
    time: str | None = None
    end: str | None = None
    fks: dict[str, str] = field(default_factory=dict)  # column -> parent table


@st.composite
def _moment(draw, pool: list[D], anchors: list[D], null_p: float) -> D | None:
    """A time or end time: often exactly an anchor (existence edges), else from the pool."""
    if draw(st.integers(1, 4)) == 4:
        return draw(st.sampled_from(anchors))
    return draw(_value(T, pool, null_p=null_p))


@st.composite
def _fill(draw, spec: _Spec, n: int, pool: list[D], anchors: list[D], keys: dict[str, list[Any]],
          str_keys: bool) -> list[dict]:
    ids = draw(st.permutations(list(range(1, n + 1))))
    rows: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {}
        for name, dtype, _ in spec.cols:
            if name == spec.pk:
                row[name] = f"k{ids[i]}" if (str_keys and dtype is S) else ids[i]
            elif name in spec.fks:
                parent_keys = keys[spec.fks[name]]
                orphan = "k99" if isinstance(parent_keys[0], str) else 99
                row[name] = draw(st.sampled_from(parent_keys * 3 + [None, orphan]))
            elif name == spec.time:
                row[name] = draw(_moment(pool, anchors, null_p=0.08))
            elif name == spec.end:
                row[name] = draw(_moment(pool, anchors, null_p=0.6))
            else:
                row[name] = draw(_value(dtype, pool))
        if rows and spec.fks and spec.time and draw(st.integers(1, 4)) == 4:
            # a tie: same parent and same time as an earlier row, so FIRST/LAST need the PK / row order
            twin = draw(st.sampled_from(rows))
            row.update({c: twin[c] for c in [spec.time, *spec.fks]})
        rows.append(row)
    return rows


def _to_arrow(spec: _Spec, rows: list[dict]) -> pa.Table:
    schema = pa.schema([(name, ARROW[dtype]) for name, dtype, _ in spec.cols])
    return pa.Table.from_pylist(rows, schema=schema)


@st.composite
def graphs_with_data(draw, units: list[A.TimeUnit], anchors: list[D]):
    """(graph, rows) with 2-6 tables; see the module docstring for the shape."""
    pool = _time_pool(anchors, units)
    str_keys = draw(st.booleans())
    kdt = S if str_keys else I
    ent_timed, ent_end = draw(st.booleans()), draw(st.booleans())
    has_item, item_timed, item_end = draw(st.booleans()), draw(st.integers(1, 4)) != 4, draw(st.integers(1, 3)) != 3
    fact_pk, has_fact2 = draw(st.integers(1, 4)) != 4, draw(st.booleans())
    has_sub = draw(st.integers(1, 3)) != 3

    specs = [_Spec("par", [("par_id", I, ID), ("pname", S, CAT), ("pop", I, NUM)], "par_id")]
    ent_cols = [("ent_id", kdt, ID), ("age", I, NUM), ("score", F, NUM), ("seg", S, CAT), ("vip", B, CAT),
                ("born", T, TS), ("par_id", I, ID)]
    if draw(st.booleans()):
        ent_cols.append(("tags", LS, MCAT))
    ent = _Spec("ent", ent_cols, "ent_id", fks={"par_id": "par"})
    if ent_timed:
        ent.cols.append(("created", T, TS))
        ent.time = "created"
        if ent_end:
            ent.cols.append(("ended", T, TS))
            ent.end = "ended"
    specs.append(ent)
    if has_item:
        item = _Spec("item", [("item_id", I, ID), ("cat", S, CAT), ("cost", F, NUM)], "item_id")
        if item_timed:
            item.cols.append(("start", T, TS))
            item.time = "start"
            if item_end:
                item.cols.append(("stop", T, TS))
                item.end = "stop"
        specs.append(item)
    fact_cols = [("ent_id", kdt, ID), ("amount", F, NUM), ("qty", I, NUM), ("status", S, CAT), ("flag", B, CAT)]
    if fact_pk:
        fact_cols.insert(0, ("fact_id", I, ID))
    if has_item:
        fact_cols.append(("item_id", I, ID))
    if draw(st.booleans()):
        fact_cols.append(("labels", LS, MCAT))
    fact_cols.append(("ts", T, TS))
    fact = _Spec("fact", fact_cols, "fact_id" if fact_pk else None, time="ts",
                 fks={"ent_id": "ent", **({"item_id": "item"} if has_item else {})})
    specs.append(fact)
    if has_fact2:
        specs.append(_Spec("fact2", [("f2_id", I, ID), ("ent_id", kdt, ID), ("kind", S, CAT), ("opened", B, CAT),
                                     ("at", T, TS)], "f2_id", time="at", fks={"ent_id": "ent"}))
    if has_sub and fact_pk:
        specs.append(_Spec("sub", [("sub_id", I, ID), ("fact_id", I, ID), ("val", I, NUM), ("st", T, TS)],
                           "sub_id", time="st", fks={"fact_id": "fact"}))

    sizes = {"par": (2, 4), "ent": (3, 6), "item": (2, 5), "fact": (5, 30), "fact2": (3, 12), "sub": (3, 15)}
    rows: dict[str, list[dict]] = {}
    keys: dict[str, list[Any]] = {}
    tables: dict[str, TableSchema] = {}
    edges: list[Edge] = []
    for spec in specs:
        n = draw(st.integers(*sizes[spec.name]))
        rows[spec.name] = draw(_fill(spec, n, pool, anchors, keys, str_keys))
        if spec.pk:
            keys[spec.name] = [r[spec.pk] for r in rows[spec.name]]
        tables[spec.name] = TableSchema(
            name=spec.name, columns={c: ColumnSchema(c, d, s) for c, d, s in spec.cols}, primary_key=spec.pk,
            time_column=spec.time, end_time_column=spec.end, data=_to_arrow(spec, rows[spec.name]))
        edges.extend(Edge(spec.name, fk, parent) for fk, parent in spec.fks.items())
    return Graph(tables, edges), rows, pool


# ---------------------------------------------------------------------------------------------
# Queries. Placement rules (§7.2) are carried in a small context.


@dataclass(frozen=True)
class _Ctx:
    ref: str                      # reference table of the condition
    entity: str
    place: str                    # "target" | "filter" | "assuming"
    static_ok: bool               # may use static columns
    agg_ok: bool                  # may use aggregations
    top: bool = True              # at the top level (not inside an inline filter)
    lp: bool = False              # inside a link-prediction target (no entity columns, E412)


class QueryGen:
    def __init__(self, draw: Callable, graph: Graph, rows: dict[str, list[dict]], units: list[A.TimeUnit],
                 pool: list[D]) -> None:
        self.draw, self.graph, self.rows, self.units, self.pool = draw, graph, rows, units, pool

    def one_in(self, n: int) -> bool:
        """True with probability 1/n; the rare branch sits at the high end, away from the values
        hypothesis reaches for when it simplifies."""
        return self.draw(st.integers(1, n)) == n

    # -- graph look-ups --------------------------------------------------------------------------
    def children(self, ref: str) -> list[str]:
        if self.graph.table(ref).primary_key is None:
            return []
        return [t.name for t in self.graph if t.is_timed and len(self.graph.edges_between(t.name, ref)) == 1]

    def parents(self, ref: str) -> list[str]:
        return [t.name for t in self.graph if len(self.graph.edges_between(ref, t.name)) == 1]

    def columns(self, table: str) -> list[ColumnSchema]:
        return list(self.graph.table(table).columns.values())

    # -- literals --------------------------------------------------------------------------------
    def scalar(self, dtype: Dtype, column: A.Column | None = None) -> A.Node:
        """A constant of the family of ``dtype``; for a column, often one of its actual values."""
        d = self.draw
        if column is not None and not dtype.is_list and not self.one_in(3):
            seen = sorted({r[column.name] for r in self.rows[column.table]} - {None}, key=repr)
            if seen:
                v = d(st.sampled_from(seen))
                return A.IntLit(v) if dtype is I else A.FloatLit(v) if dtype is F else \
                    A.StrLit(v) if dtype is S else A.BoolLit(v) if dtype is B else A.DateTimeLit(v)
        if dtype in (I, F):
            v = d(st.sampled_from(INTS + FLOATS))
            return A.IntLit(v) if isinstance(v, int) else A.FloatLit(v)
        if dtype is S:
            return A.StrLit(d(st.sampled_from(STRINGS)))
        if dtype is B:
            return A.BoolLit(d(st.booleans()))
        if dtype is T:
            return A.DateTimeLit(d(st.sampled_from(self.pool)))
        raise AssertionError(dtype)

    def array(self, dtype: Dtype, column: A.Column | None = None) -> A.ArrayLit:
        values: list[A.Node] = []
        for _ in range(self.draw(st.integers(2, 3))):
            v = self.scalar(dtype, column)
            if v not in values:
                values.append(v)
        if len(values) < 2:
            values.append(A.StrLit("zz") if dtype is S else A.IntLit(77) if dtype in (I, F)
                          else A.DateTimeLit(D(2000, 1, 1)))
        return A.ArrayLit(tuple(values))

    # -- comparisons by operand dtype (§7.6) -------------------------------------------------------
    def comparison(self, operand: A.Node, dtype: Dtype) -> A.Comparison:
        d = self.draw
        if self.one_in(8):
            return A.Comparison(operand, d(st.sampled_from([A.CmpOp.EQ, A.CmpOp.NE])), A.NullLit())
        if dtype.is_list:
            op = d(st.sampled_from([A.CmpOp.CONTAINS, A.CmpOp.NOT_CONTAINS]))
            return A.Comparison(operand, op, self.scalar(dtype.element))
        ops = [A.CmpOp.EQ, A.CmpOp.NE]
        if dtype is not B:
            ops += [A.CmpOp.LT, A.CmpOp.LE, A.CmpOp.GT, A.CmpOp.GE, A.CmpOp.IN, A.CmpOp.NOT_IN]
        if dtype is S:
            ops += [A.CmpOp.CONTAINS, A.CmpOp.NOT_CONTAINS, A.CmpOp.STARTS_WITH, A.CmpOp.ENDS_WITH]
        op = d(st.sampled_from(ops))
        column = operand if isinstance(operand, A.Column) else None
        right = self.array(dtype, column) if op.is_membership else self.scalar(dtype, column)
        return A.Comparison(operand, op, right)

    # -- windows (§7.2) -------------------------------------------------------------------------------
    def window(self, ctx: _Ctx) -> A.Window:
        d = self.draw
        unit = d(st.sampled_from(self.units))
        if ctx.place == "filter":  # entity filter, any depth: end <= 0, start may be -INF
            end = d(st.integers(-1, 0))
            start = None if self.one_in(4) else d(st.integers(end - 3, end - 1))
        elif ctx.top:  # target or ASSUMING top level: 0 <= start < end
            start = d(st.integers(0, 2))
            end = d(st.integers(start + 1, start + 3))
        else:  # inline filter of a target or ASSUMING aggregation: any signs
            start = d(st.integers(-3, 2))
            end = d(st.integers(start + 1, 3))
        return A.Window(start, end, unit)

    # -- aggregations (§7.3) ----------------------------------------------------------------------------
    def agg_choices(self, table: str) -> list[tuple[A.AggFunc, A.Node, Dtype]]:
        """Every valid (function, column, result dtype) over ``table``."""
        g = self.graph
        pk = g.table(table).primary_key
        out: list[tuple[A.AggFunc, A.Node, Dtype]] = [(A.AggFunc.COUNT, A.Wildcard(table), I)] * 3
        for c in self.columns(table):
            colnode = A.Column(table, c.name)
            is_fk = g.is_foreign_key(table, c.name)
            keyish = c.name == pk or is_fk or c.stype is ID
            out.append((A.AggFunc.COUNT, colnode, I))
            if not keyish and not c.dtype.is_list:
                out.append((A.AggFunc.COUNT_DISTINCT, colnode, I))
            if c.dtype.is_numeric and not keyish:
                out += [(A.AggFunc.SUM, colnode, c.dtype), (A.AggFunc.AVG, colnode, F)]
            if not c.dtype.is_list:
                out += [(A.AggFunc.MIN, colnode, c.dtype), (A.AggFunc.MAX, colnode, c.dtype)]
            if not is_fk:  # twice: their ordering rules (time, PK, row order) deserve the attention
                out += [(A.AggFunc.FIRST, colnode, c.dtype), (A.AggFunc.LAST, colnode, c.dtype)] * 2
            if c.name != pk and c.dtype in (I, S, LS):
                out.append((A.AggFunc.LIST_DISTINCT, colnode, LS if c.dtype is LS else
                            (Dtype.LIST_INT if c.dtype is I else LS)))
        return out

    def aggregation(self, ctx: _Ctx, depth: int, choices=None) -> tuple[A.Aggregation, Dtype]:
        d = self.draw
        table = d(st.sampled_from(self.children(ctx.ref)))
        func, column, dtype = d(st.sampled_from(choices(table) if choices else self.agg_choices(table)))
        inner = _Ctx(table, ctx.entity, ctx.place, True, True, top=False, lp=ctx.lp)
        flt = self.condition(inner, depth + 1) if depth < 2 and self.one_in(3) else None
        return A.Aggregation(func, column, flt, self.window(ctx)), dtype

    # -- conditions ---------------------------------------------------------------------------------
    def static_column(self, ctx: _Ctx) -> tuple[A.Column, Dtype]:
        tables = [ctx.ref] + self.parents(ctx.ref)
        if ctx.lp:
            tables = [t for t in tables if t != ctx.entity]
        table = self.draw(st.sampled_from(tables))
        c = self.draw(st.sampled_from(self.columns(table)))
        return A.Column(table, c.name), c.dtype

    def predicate(self, ctx: _Ctx, depth: int) -> A.Comparison:
        use_agg = ctx.agg_ok and self.children(ctx.ref) and (not ctx.static_ok or self.draw(st.booleans()))
        if use_agg:
            operand, dtype = self.aggregation(ctx, depth)
        else:
            operand, dtype = self.static_column(ctx)
        return self.comparison(operand, dtype)

    def condition(self, ctx: _Ctx, depth: int = 0) -> A.Node:
        d = self.draw
        shape = d(st.integers(0, 9)) if depth < 2 else 0
        if shape <= 5:
            return self.predicate(ctx, depth)
        if shape <= 8:
            op = A.BoolOperator.AND if shape <= 6 else A.BoolOperator.OR
            return A.BoolOp(op, self.condition(ctx, depth + 1), self.condition(ctx, depth + 1))
        return A.Not(self.condition(ctx, depth + 1))

    # -- targets and whole queries --------------------------------------------------------------------
    def temporal_target(self, entity: str) -> tuple[A.Node, A.Node | None, bool]:
        """(target, problem, is_link_prediction)."""
        d = self.draw
        ctx = _Ctx(entity, entity, "target", static_ok=False, agg_ok=True)
        if self.one_in(3):
            return self.condition(ctx), None, False
        table = d(st.sampled_from(self.children(entity)))
        choices = [c for c in self.agg_choices(table) if self._value_target_ok(c, entity)]
        lists = [c for c in choices if c[0] is A.AggFunc.LIST_DISTINCT]
        links = [c for c in lists if self.graph.is_foreign_key(table, c[1].name)]
        if links and self.one_in(3):  # link prediction whenever the child has an FK to another table
            choices = links
        elif lists and self.one_in(4):  # other set-valued targets
            choices = lists
        func, column, dtype = d(st.sampled_from(choices))
        set_valued = dtype.is_list
        fk = self.graph.foreign_key(table, column.name) if isinstance(column, A.Column) else None
        lp = set_valued and fk is not None and not self.one_in(4)
        inner = _Ctx(table, entity, "target", True, True, top=False, lp=lp)
        flt = self.condition(inner, 1) if self.one_in(3) else None
        target = A.Aggregation(func, column, flt, self.window(ctx))
        if set_valued:
            problem = A.Rank(d(st.integers(1, 5))) if lp or d(st.booleans()) else A.Classify()
        elif func in (A.AggFunc.SUM, A.AggFunc.COUNT, A.AggFunc.COUNT_DISTINCT) and self.one_in(6):
            problem = A.Forecast(d(st.integers(1, 3)))
        else:
            problem = None
        return target, problem, lp

    def _value_target_ok(self, choice, entity: str) -> bool:
        func, column, dtype = choice
        if dtype is T:  # timestamp targets are E413
            return False
        if func is A.AggFunc.LIST_DISTINCT and isinstance(column, A.Column):
            fk = self.graph.foreign_key(column.table, column.name)
            if fk is not None and fk.dst_table == entity:  # E411
                return False
        if isinstance(column, A.Column) and func is not A.AggFunc.COUNT:
            if self.graph.column(column.table, column.name).stype is TS:
                return False
        return True

    def static_target(self, entity: str) -> tuple[A.Node, A.Node | None]:
        d = self.draw
        ctx = _Ctx(entity, entity, "target", static_ok=True, agg_ok=False)
        if d(st.booleans()):
            return self.condition(ctx), None
        options = []
        for table in [entity] + self.parents(entity):
            for c in self.columns(table):
                if c.stype in (NUM, CAT, MCAT) and not self.graph.is_key(table, c.name):
                    options.append((table, c))
        table, c = d(st.sampled_from(options))
        problem = (A.Rank(d(st.integers(1, 4))) if d(st.booleans()) else A.Classify()) if c.dtype.is_list else None
        return A.Column(table, c.name), problem

    def query(self) -> A.Query:
        d = self.draw
        entities = [t for t in ("ent", "item", "par") if t in self.graph and self.children(t)]
        entity = d(st.sampled_from(entities + ["ent"] * 3))
        pk = self.graph.table(entity).primary_key
        temporal = not self.one_in(6)
        assuming = None
        if temporal:
            target, problem, lp = self.temporal_target(entity)
            if self.one_in(4):
                actx = _Ctx(entity, entity, "assuming", static_ok=False, agg_ok=True)
                assuming = A.Assuming(self.condition(actx, 1))
        else:
            target, problem = self.static_target(entity)
        where = None
        if self.one_in(3):
            fctx = _Ctx(entity, entity, "filter", static_ok=True, agg_ok=temporal)
            where = self.condition(fctx, 1)
        ids = None
        if self.one_in(10):  # X1: listed ids do not restrict training (§10.3)
            keys = sorted({r[pk] for r in self.rows[entity]}, key=repr)
            picked = d(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True))
            ids = tuple(A.StrLit(k) if isinstance(k, str) else A.IntLit(k) for k in picked)
        return A.Query(target, problem, A.EntitySpec(A.Column(entity, pk), where, ids), assuming)


@st.composite
def queries_for(draw, graph: Graph, rows: dict[str, list[dict]], units: list[A.TimeUnit], pool: list[D]) -> A.Query:
    return QueryGen(draw, graph, rows, units, pool).query()


COARSE_UNITS = [u for u in UNITS if u not in (U.SECONDS, U.MINUTES)]


@st.composite
def cases(draw, units: list[A.TimeUnit] = UNITS) -> Case:
    """A graph with data, a valid-by-construction query and 2-4 anchors (month ends, mid-month,
    and exact event timestamps). ``units`` limits the window units (anchor tests use
    ``COARSE_UNITS``, since a seconds step over months of data gives millions of anchors)."""
    units = draw(st.lists(st.sampled_from(units), min_size=1, max_size=2, unique=True))
    anchors = draw(st.lists(st.sampled_from(BASE_ANCHORS), min_size=1, max_size=2, unique=True))
    graph, rows, pool = draw(graphs_with_data(units, anchors))
    query = draw(queries_for(graph, rows, units, pool))
    events = [r["ts"] for r in rows["fact"] if r["ts"] is not None]
    extra = draw(st.lists(st.sampled_from(events), max_size=2)) if events else []
    return Case(graph, rows, query, sorted(set(anchors + extra)), units)
