"""A deliberately simple reference evaluator for PQL label semantics (PQL-SPEC §7, §10).

Plain Python, row by row, straight from the spec: no SQL, no pandas, no cleverness. It exists to be
obviously correct, so the SQL compiler can be checked against it on random graphs and queries
(``tests/test_differential.py``) and on the spec's examples (``tests/test_golden.py``).

Data is a mapping ``table name -> list of row dicts`` (source order matters: it breaks FIRST/LAST
ties when a table has no primary key). ``rows_from_graph`` builds it from a graph's in-memory
pyarrow tables or its Parquet/CSV files.

Public functions:

- ``reference_labels(query, graph, rows_by_table, anchors)`` -> sorted ``[(entity, anchor, target)]``
- ``reference_anchors(query, graph, rows_by_table, **options)`` -> sorted anchors (§10.2, §10.5)
- ``reference_split(query, graph, anchors, split=None)`` -> ``{anchor: 'train' | 'val' | 'test'}`` (§10.4)
- ``reference_prediction(query, graph, rows_by_table, anchor_time=None)`` -> ``[(entity, anchor)]`` (§10.6)

Choices where the spec leaves room (each is documented where it is implemented):

- one-hop parent look-ups are plain key joins (a parent row is found whatever its time);
- a static condition target is unlabelled (NULL) when any comparison in it meets a NULL column
  operand (other than ``IS NULL`` / ``IS NOT NULL``, which are the point of comparing with NULL);
- destination validity (§7.5) applies to link-prediction targets, i.e. ``LIST_DISTINCT(fk) RANK TOP k``.
"""

from __future__ import annotations

import calendar
import datetime as dt
from fractions import Fraction
from typing import Any, Callable, Iterable, Sequence

from pql import ast as A
from pql.graph import Graph

__all__ = [
    "add_months", "shift", "rows_from_graph", "reference_labels", "reference_anchors",
    "reference_split", "reference_prediction", "combined_window", "Undefined",
]


# ---------------------------------------------------------------------------------------------
# Time arithmetic


def add_months(t: dt.datetime, n: int) -> dt.datetime:
    """Calendar months with end-of-month clamping: 2024-01-31 + 1 month = 2024-02-29 (§7.1)."""
    months = t.year * 12 + (t.month - 1) + n
    year, month = divmod(months, 12)
    month += 1
    day = min(t.day, calendar.monthrange(year, month)[1])
    return t.replace(year=year, month=month, day=day)


def shift(t: dt.datetime, n: int | Fraction, unit: A.TimeUnit) -> dt.datetime:
    """``t + n * unit``; months are calendar months, every other unit an exact duration."""
    if unit is A.TimeUnit.MONTHS:
        if Fraction(n).denominator == 1:
            return add_months(t, int(n))
        return t + dt.timedelta(seconds=float(Fraction(n) * unit.approx_seconds))
    return t + dt.timedelta(seconds=int(n * unit.exact_seconds))


def in_window(tau: dt.datetime | None, anchor: dt.datetime, window: A.Window | None) -> bool:
    """``a + s*u < tau <= a + e*u``; ``s = -INF`` drops the lower test; a NULL time is in no window."""
    if window is None:  # windowless aggregation (static link prediction): every row
        return True
    if tau is None:
        return False
    if tau > shift(anchor, window.end, window.unit):
        return False
    return window.start is None or tau > shift(anchor, window.start, window.unit)


# ---------------------------------------------------------------------------------------------
# Data access


def rows_from_graph(graph: Graph) -> dict[str, list[dict[str, Any]]]:
    """Rows of every table, from the in-memory ``data`` (pyarrow or anything with ``to_pylist``)
    or the table's Parquet/CSV file."""
    import pyarrow as pa

    out: dict[str, list[dict[str, Any]]] = {}
    for t in graph:
        data = t.data
        if data is None and t.source is not None:
            fmt = t.format or ("csv" if str(t.source).endswith(".csv") else "parquet")
            if fmt == "csv":
                import pyarrow.csv as pacsv

                data = pacsv.read_csv(t.source)
            else:
                import pyarrow.parquet as pq

                data = pq.read_table(t.source)
        if data is not None and not isinstance(data, pa.Table) and hasattr(data, "to_dict"):
            data = pa.Table.from_pandas(data, preserve_index=False)
        out[t.name] = data.to_pylist() if data is not None else []
    return out


class Data:
    """Rows plus the two look-ups the semantics need: a row by primary key, children by foreign key."""

    def __init__(self, graph: Graph, rows_by_table: dict[str, list[dict[str, Any]]]) -> None:
        self.graph = graph
        self.rows = rows_by_table
        self._by_pk: dict[str, dict[Any, dict]] = {}
        self._children: dict[tuple[str, str], dict[Any, list[tuple[int, dict]]]] = {}

    def by_pk(self, table: str, key: Any) -> dict | None:
        if table not in self._by_pk:
            pk = self.graph.table(table).primary_key
            self._by_pk[table] = {r[pk]: r for r in self.rows[table] if r[pk] is not None}
        return self._by_pk[table].get(key) if key is not None else None

    def children(self, table: str, fkey: str, key: Any) -> list[tuple[int, dict]]:
        """Rows of ``table`` whose ``fkey`` equals ``key``, with their source position."""
        if (table, fkey) not in self._children:
            index: dict[Any, list[tuple[int, dict]]] = {}
            for i, r in enumerate(self.rows[table]):
                if r[fkey] is not None:
                    index.setdefault(r[fkey], []).append((i, r))
            self._children[(table, fkey)] = index
        return self._children[(table, fkey)].get(key, []) if key is not None else []

    def exists(self, table: str, row: dict | None, anchor: dt.datetime | None) -> bool:
        """§7.5: time column (if any) <= anchor, end-time column (if any) NULL or later than anchor."""
        if row is None:
            return False
        t = self.graph.table(table)
        if t.time_column is not None and anchor is not None:
            tau = row[t.time_column]
            if tau is None or tau > anchor:
                return False
        if t.end_time_column is not None and anchor is not None:
            end = row[t.end_time_column]
            if end is not None and end <= anchor:
                return False
        return True


def _unique_edge(graph: Graph, src: str, dst: str):
    edges = graph.edges_between(src, dst)
    if len(edges) != 1:
        raise ValueError(f"expected exactly one edge {src} -> {dst}, found {len(edges)}")
    return edges[0]


# ---------------------------------------------------------------------------------------------
# Aggregations (§7.3): each entry maps the non-NULL inputs (and the ordered rows) to a value.


class Undefined(Exception):
    """An undefined value: drops the example (or, inside an inline filter, the aggregated row)."""


class NullTarget(Exception):
    """A static condition target met a NULL operand: the target is NULL (§7.4)."""


def _flatten(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out.extend(x for x in v if x is not None)
        else:
            out.append(v)
    return out


def _need_input(fn: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
    def wrapped(values: list[Any]) -> Any:
        if not values:
            raise Undefined()
        return fn(values)
    return wrapped


# The inputs are already ordered by (time, primary key, source order), so FIRST/LAST are ends.
AGGREGATIONS: dict[A.AggFunc, Callable[[list[Any]], Any]] = {
    A.AggFunc.COUNT: len,
    A.AggFunc.COUNT_DISTINCT: lambda vs: len(set(map(_hashable, vs))),
    A.AggFunc.SUM: lambda vs: sum(vs) if vs else 0,
    A.AggFunc.AVG: _need_input(lambda vs: sum(vs) / len(vs)),
    A.AggFunc.MIN: _need_input(min),
    A.AggFunc.MAX: _need_input(max),
    A.AggFunc.FIRST: _need_input(lambda vs: vs[0]),
    A.AggFunc.LAST: _need_input(lambda vs: vs[-1]),
    A.AggFunc.LIST_DISTINCT: _need_input(lambda vs: sorted(set(_flatten(vs)))),
}


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


# ---------------------------------------------------------------------------------------------
# Operators (§7.6), applied to a non-NULL left value and a non-NULL constant.


def _contains(v: Any, c: Any) -> bool:
    return c in v  # substring for strings, membership for lists


OPERATORS: dict[A.CmpOp, Callable[[Any, Any], bool]] = {
    A.CmpOp.EQ: lambda v, c: v == c,
    A.CmpOp.NE: lambda v, c: v != c,
    A.CmpOp.LT: lambda v, c: v < c,
    A.CmpOp.LE: lambda v, c: v <= c,
    A.CmpOp.GT: lambda v, c: v > c,
    A.CmpOp.GE: lambda v, c: v >= c,
    A.CmpOp.IN: lambda v, c: v in c,
    A.CmpOp.NOT_IN: lambda v, c: v not in c,
    A.CmpOp.CONTAINS: _contains,
    A.CmpOp.NOT_CONTAINS: lambda v, c: not _contains(v, c),
    A.CmpOp.STARTS_WITH: lambda v, c: v.startswith(c),
    A.CmpOp.ENDS_WITH: lambda v, c: v.endswith(c),
}


def literal_value(lit: A.Node) -> Any:
    if isinstance(lit, A.ArrayLit):
        return [literal_value(v) for v in lit.values]
    if isinstance(lit, A.NullLit):
        return None
    return lit.value


# ---------------------------------------------------------------------------------------------
# The evaluator: values of operands and truth of conditions for one row of a reference table.


class Evaluator:
    def __init__(self, graph: Graph, data: Data) -> None:
        self.graph = graph
        self.data = data

    # -- operands ------------------------------------------------------------------------------
    def column(self, col: A.Column, ref: str, row: dict) -> Any:
        """A column of the reference table, or of its parent through the unique FK (a plain join)."""
        if col.table == ref:
            return row[col.name]
        edge = _unique_edge(self.graph, ref, col.table)
        parent = self.data.by_pk(col.table, row[edge.fkey])
        return parent[col.name] if parent is not None else None

    def window_rows(self, agg: A.Aggregation, ref: str, row: dict, anchor: dt.datetime) -> list[dict]:
        """Rows of the aggregated table linked to ``row``, in the window and passing the inline
        filter, ordered by (time, primary key, source order)."""
        child = agg.table
        t = self.graph.table(child)
        edge = _unique_edge(self.graph, child, ref)
        key = row[self.graph.table(ref).primary_key]
        picked: list[tuple[int, dict]] = []
        for pos, r in self.data.children(child, edge.fkey, key):
            tau = r[t.time_column] if t.time_column else None
            if not in_window(tau, anchor, agg.window):
                continue
            if agg.filter is not None:
                try:
                    if not self.holds(agg.filter, child, r, anchor):
                        continue
                except Undefined:  # §7.4: inside an inline filter it drops the aggregated row
                    continue
            picked.append((pos, r))

        def order(item: tuple[int, dict]) -> tuple:
            pos, r = item
            tau = r[t.time_column] if t.time_column else None
            pk = r[t.primary_key] if t.primary_key else None
            return (tau is None, tau or dt.datetime.min, pk is None, pk if pk is not None else 0, pos)

        return [r for _, r in sorted(picked, key=order)]

    def aggregate(self, agg: A.Aggregation, ref: str, row: dict, anchor: dt.datetime) -> Any:
        rows = self.window_rows(agg, ref, row, anchor)
        if isinstance(agg.column, A.Wildcard):
            values: list[Any] = rows
        else:
            values = [r[agg.column.name] for r in rows if r[agg.column.name] is not None]
        return AGGREGATIONS[agg.func](values)

    def value(self, operand: A.Node, ref: str, row: dict, anchor: dt.datetime) -> Any:
        if isinstance(operand, A.Aggregation):
            return self.aggregate(operand, ref, row, anchor)
        return self.column(operand, ref, row)

    # -- conditions (two-valued, §7.4) -----------------------------------------------------------
    def holds(self, cond: A.Node, ref: str, row: dict, anchor: dt.datetime, *, null_target: bool = False) -> bool:
        """Truth of ``cond``. Every operand is evaluated, so an undefined aggregation anywhere
        raises ``Undefined`` whatever NOT or OR surrounds it. With ``null_target`` (a static
        condition target) a NULL column operand raises ``NullTarget`` instead of reading false."""
        if isinstance(cond, A.BoolOp):
            left = self.holds(cond.left, ref, row, anchor, null_target=null_target)
            right = self.holds(cond.right, ref, row, anchor, null_target=null_target)
            return (left and right) if cond.op is A.BoolOperator.AND else (left or right)
        if isinstance(cond, A.Not):
            return not self.holds(cond.operand, ref, row, anchor, null_target=null_target)
        return self.compare(cond, ref, row, anchor, null_target=null_target)

    def compare(self, cmp: A.Comparison, ref: str, row: dict, anchor: dt.datetime, *, null_target: bool) -> bool:
        v = self.value(cmp.left, ref, row, anchor)
        c = literal_value(cmp.right)
        if c is None:  # IS NULL / IS NOT NULL
            return (v is None) if cmp.op is A.CmpOp.EQ else (v is not None)
        if v is None:
            if null_target:
                raise NullTarget()
            return False
        return OPERATORS[cmp.op](v, c)


# ---------------------------------------------------------------------------------------------
# Queries


def _as_query(query: A.Query | str) -> A.Query:
    if isinstance(query, str):
        import pql

        return pql.parse(query)
    return query


def _target_aggregations(target: A.Node) -> list[A.Aggregation]:
    """Aggregations of the target outside any inline filter (§10.1)."""
    if isinstance(target, A.Aggregation):
        return [target]
    if isinstance(target, A.Comparison):
        return _target_aggregations(target.left)
    if isinstance(target, A.BoolOp):
        return _target_aggregations(target.left) + _target_aggregations(target.right)
    if isinstance(target, A.Not):
        return _target_aggregations(target.operand)
    return []


def is_temporal(query: A.Query) -> bool:
    return any(a.window is not None for a in _target_aggregations(query.target))


def link_destination(query: A.Query, graph: Graph) -> str | None:
    """The destination table of a link-prediction target ``LIST_DISTINCT(C.fk) RANK TOP k``."""
    t = query.target
    if (isinstance(t, A.Aggregation) and t.func is A.AggFunc.LIST_DISTINCT and isinstance(t.column, A.Column)
            and isinstance(query.problem, A.Rank)):
        edge = graph.foreign_key(t.column.table, t.column.name)
        if edge is not None:
            return edge.dst_table
    return None


def _target_value(query: A.Query, ev: Evaluator, entity: str, row: dict, anchor: dt.datetime,
                  dst: str | None) -> Any:
    """The label of one example, or raise Undefined when it has none (§7.4, §10.3, §10.5)."""
    target = query.target
    if isinstance(target, A.CONDITION_TYPES):
        try:
            return ev.holds(target, entity, row, anchor, null_target=not is_temporal(query))
        except NullTarget:
            raise Undefined() from None
    value = ev.value(target, entity, row, anchor)
    if dst is not None:  # §7.5: only destinations that exist at the anchor count
        value = [k for k in value if ev.data.exists(dst, ev.data.by_pk(dst, k), anchor)]
        if not value:
            raise Undefined()
    if value is None:
        raise Undefined()
    if isinstance(value, list):
        return sorted(set(value))
    return value


def reference_labels(query: A.Query | str, graph: Graph, rows_by_table: dict[str, list[dict]],
                     anchors: Sequence[dt.datetime | None]) -> list[tuple[Any, Any, Any]]:
    """Training rows (§10.3) for exactly the given anchors: ``(entity, anchor, target)`` sorted by
    (anchor, entity). A pair is kept when the entity exists at the anchor, the entity filter and
    ASSUMING hold, and the target is defined. X1 ids do not restrict training."""
    query = _as_query(query)
    data = Data(graph, rows_by_table)
    ev = Evaluator(graph, data)
    entity = query.entity.table
    pk = graph.table(entity).primary_key
    dst = link_destination(query, graph)
    out: list[tuple[Any, Any, Any]] = []
    for anchor in sorted(set(anchors), key=lambda a: (a is not None, a or dt.datetime.min)):
        for row in rows_by_table[entity]:
            if row[pk] is None or not data.exists(entity, row, anchor):
                continue
            try:
                if query.entity.filter is not None and not ev.holds(query.entity.filter, entity, row, anchor):
                    continue
                if query.assuming is not None and not ev.holds(query.assuming.condition, entity, row, anchor):
                    continue
                target = _target_value(query, ev, entity, row, anchor, dst)
            except Undefined:
                continue
            out.append((row[pk], anchor, target))
    out.sort(key=lambda r: (r[1] is not None, r[1] or dt.datetime.min, r[0]))
    return out


def reference_prediction(query: A.Query | str, graph: Graph, rows_by_table: dict[str, list[dict]],
                         anchor_time: dt.datetime | None = None) -> list[tuple[Any, Any]]:
    """Prediction rows (§10.6): entities that exist at p and pass the entity filter at p (ASSUMING is
    not applied); for static queries only those whose target is NULL (§10.5); under X1 exactly the
    listed ids found in the entity table."""
    query = _as_query(query)
    data = Data(graph, rows_by_table)
    ev = Evaluator(graph, data)
    entity = query.entity.table
    pk = graph.table(entity).primary_key
    if anchor_time is None:
        anchor_time = (_range(query, graph, rows_by_table)[1] if is_temporal(query)
                       else _max_timestamp(graph, rows_by_table))
    if query.entity.ids is not None:
        wanted = {literal_value(i) for i in query.entity.ids}
        keys = sorted({r[pk] for r in rows_by_table[entity] if r[pk] in wanted})
        return [(k, anchor_time) for k in keys]
    static = not is_temporal(query)
    dst = link_destination(query, graph)
    out = []
    for row in rows_by_table[entity]:
        if row[pk] is None or not data.exists(entity, row, anchor_time):
            continue
        try:
            if query.entity.filter is not None and not ev.holds(query.entity.filter, entity, row, anchor_time):
                continue
        except Undefined:
            continue
        if static and _is_labelled(query, ev, entity, row, anchor_time, dst):
            continue  # §10.5: a static task predicts the entities whose target is NULL
        out.append((row[pk], anchor_time))
    return sorted(out, key=lambda r: r[0])


def _is_labelled(query: A.Query, ev: Evaluator, entity: str, row: dict, anchor: Any, dst: str | None) -> bool:
    try:
        _target_value(query, ev, entity, row, anchor, dst)
    except Undefined:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Combined window and anchors (§10.1, §10.2, §10.5)


def _all_aggregations(node: A.Node | None) -> list[A.Aggregation]:
    return [n for n in A.walk(node) if isinstance(n, A.Aggregation)] if node is not None else []


def _finest(units: Iterable[A.TimeUnit]) -> A.TimeUnit:
    return min(units, key=lambda u: u.approx_seconds)


def _in_unit(n: int, unit: A.TimeUnit, target_unit: A.TimeUnit) -> Fraction:
    if unit is target_unit:
        return Fraction(n)
    return Fraction(n * unit.approx_seconds, target_unit.approx_seconds)


def combined_window(query: A.Query) -> tuple[A.TimeUnit, Fraction, Fraction, Fraction | None]:
    """(U, S, E, F) of §10.1. Months count as 30 days when units are mixed (W110)."""
    top = [a for a in _target_aggregations(query.target) if a.window is not None]
    unit = _finest(a.window.unit for a in top)
    start = min(_in_unit(a.window.start, a.window.unit, unit) for a in top)
    end = max(_in_unit(a.window.end, a.window.unit, unit) for a in top)
    filters = _all_aggregations(query.entity.filter)
    for a in top:
        filters += _all_aggregations(a.filter)
    finite = [_in_unit(a.window.start, a.window.unit, unit) for a in filters
              if a.window is not None and a.window.start is not None]
    return unit, start, end, (min(finite) if finite else None)


def _time_values(graph: Graph, rows_by_table: dict[str, list[dict]], table: str) -> list[dt.datetime]:
    col = graph.table(table).time_column
    return [r[col] for r in rows_by_table[table] if col is not None and r[col] is not None]


def _range(query: A.Query, graph: Graph, rows_by_table) -> tuple[dt.datetime, dt.datetime]:
    """(range_start, range_end): latest of the per-target-table minima, latest of the maxima."""
    tables = dict.fromkeys(a.table for a in _target_aggregations(query.target) if a.window is not None)
    values = [_time_values(graph, rows_by_table, t) for t in tables]
    if any(not v for v in values):
        raise ValueError("a target table has no time values")
    return max(min(v) for v in values), max(max(v) for v in values)


def _max_timestamp(graph: Graph, rows_by_table) -> dt.datetime | None:
    values = [v for t in graph if t.is_timed for v in _time_values(graph, rows_by_table, t.name)]
    return max(values) if values else None


def reference_anchors(query: A.Query | str, graph: Graph, rows_by_table: dict[str, list[dict]], *,
                      timeframe_step: int | None = None, start_time: dt.datetime | None = None,
                      end_time: dt.datetime | None = None, max_anchors: int | None = None) -> list[dt.datetime | None]:
    """Anchors of §10.2 (temporal) or the single static anchor of §10.5, oldest first.
    An empty list stands for E603 (no anchor fits)."""
    query = _as_query(query)
    if not is_temporal(query):
        return [_max_timestamp(graph, rows_by_table)]
    unit, S, E, F = combined_window(query)
    range_start, range_end = _range(query, graph, rows_by_table)
    buffered = F is not None and F < S
    if buffered:
        range_start = shift(range_start, S - F, unit)
    step = Fraction(timeframe_step) if timeframe_step is not None else E - S
    if start_time is not None:
        lower = start_time
    elif buffered:
        lower = range_start
    else:
        lower = shift(range_start, step, unit)
    anchors = []
    i = 0
    while True:
        a = shift(range_end, -(E + i * step), unit)
        if a < lower:
            break
        anchors.append(a)
        i += 1
    if end_time is not None:
        anchors = [a for a in anchors if a <= end_time]
    anchors.sort()
    if max_anchors is not None:
        anchors = anchors[-max_anchors:] if max_anchors > 0 else []
    return anchors


# ---------------------------------------------------------------------------------------------
# Splits (§10.4), per anchor, for temporal queries


def _round_half_up(x: Fraction) -> int:
    return int(x + Fraction(1, 2)) if x >= 0 else -int(-x + Fraction(1, 2))


def default_split(query: A.Query, graph: Graph) -> tuple[str, tuple]:
    """The default split kind of a temporal query and its parameters."""
    unit, S, E, _ = combined_window(query)
    if isinstance(query.problem, A.Forecast):
        return "last_span", ((E - S) * query.problem.n, unit)
    if link_destination(query, graph) is not None:
        return "last_span", (E - S, unit)
    if S > 0:
        return "last_span", (E - S, unit)
    return "chronological", (Fraction(1, 10), Fraction(1, 10))


def reference_split(query: A.Query | str, graph: Graph, anchors: Sequence[dt.datetime],
                    split: tuple[str, tuple] | None = None) -> dict[dt.datetime, str]:
    """``{anchor: split}`` for a temporal query. ``split`` is ``(kind, params)``:
    ``("chronological", (val, test))``, ``("last_span", (D, unit))`` or
    ``("time_range", (val_start, test_start))``; None means the default of §10.4."""
    query = _as_query(query)
    kind, params = split if split is not None else default_split(query, graph)
    ordered = sorted(set(anchors))
    out = {a: "train" for a in ordered}
    if kind == "chronological":
        val, test = (Fraction(p) for p in params)
        n = len(ordered)
        n_test = max(1, _round_half_up(test * n))
        n_val = max(1, _round_half_up(val * n))
        newest_first = ordered[::-1]
        for a in newest_first[:n_test]:
            out[a] = "test"
        for a in newest_first[n_test:n_test + n_val]:
            out[a] = "val"
    elif kind == "last_span":
        span, unit = params
        a0 = ordered[-1]
        one, two = shift(a0, -span, unit), shift(a0, -2 * span, unit)
        for a in ordered:
            out[a] = "test" if a > one else "val" if a > two else "train"
    elif kind == "time_range":
        val_start, test_start = params
        for a in ordered:
            out[a] = "test" if a >= test_start else "val" if a >= val_start else "train"
    else:
        raise ValueError(f"unknown split kind {kind!r}")
    return out
