"""Running counts: COUNT over evenly spaced anchors without pairing rows with anchors (§11.1).

With anchors ``a_k = a_0 + k*D`` (k = 0..K-1, D an exact duration), the anchors whose window
``(a + s, a + e]`` holds a row at time ``t`` are one index range ``[lo, hi]``:

    a_k >= t - e  <=>  k >= ceil((t - e - a_0) / D)          (lo, at least 0)
    a_k <  t - s  <=>  k <= ceil((t - s - a_0) / D) - 1      (hi, at most K - 1; K - 1 for -INF)

so a COUNT at every anchor is a difference array: +1 at ``lo`` and -1 at ``hi + 1``, summed per key
in index order. The range join instead pairs every row with each anchor whose window holds it (13
anchors for a 90-day window at a weekly step) and aggregates all those pairs; here the work follows
the rows and the output. The arithmetic is on integer microseconds, so edges are exact. Months
are not evenly spaced, and other dialects lack these functions: both keep the range join.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

from sqlglot import exp

from pql import ast
from pql.graph import Graph

from .sqlbuild import ANCHOR_INDEX, KEY, and_all, col
from .timeunits import add_units, timestamp_literal

__all__ = ["AnchorGrid", "Destination", "EXPANDED", "NESTED_LOOP_MAX", "expanded_rows", "expansion_eligible", "member_ranges",
           "running_eligible", "running_count_select"]

_EPOCH = dt.datetime(1970, 1, 1)
_US = dt.timedelta(microseconds=1)
_DAY_US = 86_400_000_000

# Internal columns (quoted; none can meet the output columns K, i, v*, n*).
_IDX, _NEXT, _X = "__pql_k", "__pql_next", "__pql_x"


def _ok(j: int) -> str:
    return f"__pql_ok{j}"


def _delta(j: int) -> str:
    return f"__pql_d{j}"


def _running(j: int) -> str:
    return f"__pql_c{j}"


@dataclass(frozen=True)
class AnchorGrid:
    """Anchors ``a0 + k * step`` for k = 0..count-1 (one anchor: any step)."""

    a0: dt.datetime
    step_us: int
    count: int

    @classmethod
    def of(cls, anchors: Sequence[dt.datetime | None]) -> "AnchorGrid | None":
        """The grid of ``anchors`` (oldest first) if they are evenly spaced naive timestamps."""
        if not anchors or any(a is None or a.tzinfo is not None for a in anchors):
            return None
        us = [(a - _EPOCH) // _US for a in anchors]  # type: ignore[operator]
        if len(us) == 1:
            return cls(anchors[0], _DAY_US, 1)  # type: ignore[arg-type]
        step = us[1] - us[0]
        if step <= 0 or any(b - a != step for a, b in zip(us, us[1:])):
            return None
        return cls(anchors[0], step, len(us))  # type: ignore[arg-type]

    @property
    def a0_us(self) -> int:
        return (self.a0 - _EPOCH) // _US

    @property
    def last(self) -> dt.datetime:
        return self.a0 + (self.count - 1) * self.step_us * _US


def _unit_us(window: ast.Window) -> int:
    """Microseconds in one unit of an exact-unit window (not months)."""
    return window.unit.exact_seconds * 1_000_000  # type: ignore[operator]


# The range join pairs a row with about (window length / anchor step) anchors; the running count
# costs about two rows per row plus a sort. Below this many pairs per row the join is cheaper
# (Complete Journey: a 90-day and a 30-day window at a 30-day step pair a row with 4 anchors).
MIN_PAIRS_PER_ROW = 8


def _pairs_per_row(nodes: Sequence[ast.Aggregation], grid: AnchorGrid) -> float:
    total = 0.0
    for node in nodes:
        w = node.window
        if w is None or w.start is None or w.unit.exact_seconds is None:
            return float(grid.count)
        length_us = (w.end - w.start) * _unit_us(w)
        total += min(grid.count, length_us / grid.step_us)
    return total


def running_eligible(nodes: Sequence[ast.Aggregation], graph: Graph, grid: AnchorGrid | None,
                     dst_valid: bool) -> bool:
    """COUNTs over fixed-length windows whose inline filter reads only the row (no nested
    aggregation, no end-time column: those depend on the anchor)."""
    if grid is None or dst_valid:
        return False
    for node in nodes:
        if node.func is not ast.AggFunc.COUNT or node.window is None or node.window.unit.exact_seconds is None:
            return False
    if _pairs_per_row(nodes, grid) < MIN_PAIRS_PER_ROW:
        return False
    return row_only_filter(nodes[0], graph)


def _n(value: int) -> exp.Expression:
    lit = exp.Literal.number(abs(value))
    return exp.Neg(this=lit) if value < 0 else lit


def _epoch_us(ts: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="EPOCH_US", expressions=[ts.copy()])


def _first_from(delta: exp.Expression, step: int) -> exp.Expression:
    """The first k >= 0 with ``delta <= k * step`` (delta: microseconds after a0)."""
    d = exp.Paren(this=delta)
    return exp.Case(ifs=[exp.If(this=exp.LTE(this=d.copy(), expression=_n(0)), true=_n(0))],
                    default=exp.IntDiv(this=exp.Paren(this=exp.Add(this=d, expression=_n(step - 1))),
                                       expression=_n(step)))


def _last_before(delta: exp.Expression, step: int) -> exp.Expression:
    """The last k with ``k * step < delta`` (-1 when there is none)."""
    d = exp.Paren(this=delta)
    return exp.Case(ifs=[exp.If(this=exp.LTE(this=d.copy(), expression=_n(0)), true=_n(-1))],
                    default=exp.IntDiv(this=exp.Paren(this=exp.Sub(this=d, expression=_n(1))),
                                       expression=_n(step)))


def _bounds(window: ast.Window, x: exp.Expression, grid: AnchorGrid) -> tuple[exp.Expression, exp.Expression]:
    """The anchor index range [lo, hi] of a row at epoch microseconds ``x`` (empty when lo > hi):
    a_k >= t - e for lo, a_k < t - s for hi.

    Either end may fall past the last anchor: such points start no run that reaches an anchor."""
    unit_us = _unit_us(window)
    lo = _first_from(exp.Sub(this=x.copy(), expression=_n(window.end * unit_us + grid.a0_us)), grid.step_us)
    if window.start is None:
        return lo, _n(grid.count - 1)
    hi = _last_before(exp.Sub(this=x.copy(), expression=_n(window.start * unit_us + grid.a0_us)), grid.step_us)
    return lo, hi


def _time_bounds(nodes: Sequence[ast.Aggregation], time_col: exp.Expression, grid: AnchorGrid) -> list[exp.Expression]:
    """Rows no member's window can hold at any anchor are not read (and Parquet row groups skipped)."""
    starts = [n.window.start for n in nodes]  # type: ignore[union-attr]
    unit = nodes[0].window.unit  # type: ignore[union-attr]
    bounds: list[exp.Expression] = [exp.Not(this=exp.Is(this=time_col.copy(), expression=exp.Null()))]
    if None not in starts:
        first = add_units(grid.a0, min(starts), unit)  # type: ignore[type-var, arg-type]
        bounds.append(exp.GT(this=time_col.copy(), expression=timestamp_literal(first)))
    newest = add_units(grid.last, max(n.window.end for n in nodes), unit)  # type: ignore[union-attr]
    bounds.append(exp.LTE(this=time_col.copy(), expression=timestamp_literal(newest)))
    return bounds


def _window(fn: exp.Expression, key: exp.Expression, idx: exp.Expression) -> exp.Window:
    return exp.Window(this=fn, partition_by=[key], order=exp.Order(expressions=[exp.Ordered(this=idx)]))


def running_count_select(nodes: Sequence[ast.Aggregation], *, source: exp.Expression, key: exp.Expression,
                         time_col: exp.Expression, where: list[exp.Expression], joins: list[exp.Join],
                         member_conditions: list[list[exp.Expression]], names: list[tuple[str, str]],
                         grid: AnchorGrid) -> exp.Select:
    """(K, i, v, n per member) for the COUNT ``nodes`` over rows ``source`` (alias r) that pass
    ``where`` (row-only conditions) and, per member, ``member_conditions`` (e.g. value not NULL)."""
    x = _epoch_us(time_col)
    bounds = _time_bounds(nodes, time_col, grid)

    # The rows: key, time in microseconds, and whether each member counts the row.
    rows = exp.select(exp.alias_(key.copy(), KEY, quoted=True), exp.alias_(x, _X, quoted=True),
                      *[exp.alias_(and_all(c) if c else exp.true(), _ok(j), quoted=True)
                        for j, c in enumerate(member_conditions)], copy=False).from_(source, copy=False)
    for j in joins:
        rows = rows.join(j, copy=False)
    rows = rows.where(and_all(where + bounds), copy=False)
    # Each member's anchor index range.
    ranges = exp.select(col(KEY), *[col(_ok(j)) for j in range(len(nodes))], copy=False)
    for j, node in enumerate(nodes):
        lo, hi = _bounds(node.window, col(_X), grid)  # type: ignore[arg-type]
        ranges = ranges.select(exp.alias_(lo, _lo(j), quoted=True), exp.alias_(hi, _hi(j), quoted=True), copy=False)
    ranges = ranges.from_(rows.subquery("r0", copy=False), copy=False)
    # One row per (row, window edge): the index where the row enters (at lo, from the window's end
    # e) or leaves (at hi + 1, from its start s) a member's window, and each member's +1 / -1 there.
    # Both are "the first k with a_k >= t - offset", so members whose edges share an offset (churn's
    # (-90, 0] and (0, 30]) share the row: three rows per row instead of four.
    edges: dict[int, tuple[exp.Expression, dict[int, int]]] = {}  # offset -> (index, member -> sign)
    for j, node in enumerate(nodes):
        w = node.window
        unit_us = _unit_us(w)  # type: ignore[arg-type]
        edges.setdefault(w.end * unit_us, (col(_lo(j)), {}))[1][j] = 1  # type: ignore[union-attr]
        if w.start is not None:  # type: ignore[union-attr]
            leave = exp.Add(this=col(_hi(j)), expression=_n(1))
            edges.setdefault(w.start * unit_us, (leave, {}))[1][j] = -1  # type: ignore[union-attr]
    weights = [exp.Case(ifs=[exp.If(this=exp.and_(exp.LTE(this=col(_lo(j)), expression=col(_hi(j))), col(_ok(j))),
                                     true=_n(1))], default=_n(0)) for j in range(len(nodes))]
    points = [index for index, _ in edges.values()]
    deltas: list[list[exp.Expression]] = [
        [weights[m].copy() if signs.get(m) == 1 else exp.Neg(this=exp.Paren(this=weights[m].copy()))
         if signs.get(m) == -1 else _n(0) for _, signs in edges.values()] for m in range(len(nodes))]
    emit = exp.select(col(KEY), exp.alias_(exp.Explode(this=exp.Array(expressions=points)), _IDX, quoted=True),
                      *[exp.alias_(exp.Explode(this=exp.Array(expressions=d)), _delta(j), quoted=True)
                        for j, d in enumerate(deltas)], copy=False).from_(ranges.subquery("r1", copy=False), copy=False)

    k, idx = col(KEY), col(_IDX)
    summed = (exp.select(k.copy(), idx.copy(), *[exp.alias_(exp.Sum(this=col(_delta(j))), _delta(j), quoted=True)
                                                 for j in range(len(nodes))], copy=False)
              .from_(emit.subquery("e", copy=False), copy=False).group_by(k.copy(), idx.copy(), copy=False))
    runs = exp.select(
        k.copy(), idx.copy(),
        *[exp.alias_(_window(exp.Sum(this=col(_delta(j))), k, idx), _running(j), quoted=True)
          for j in range(len(nodes))],
        exp.alias_(_window(exp.Lead(this=idx.copy(), offset=_n(1), default=_n(grid.count)), k, idx), _NEXT,
                   quoted=True), copy=False).from_(summed.subquery("s", copy=False), copy=False)
    nonzero = [exp.NEQ(this=col(_running(j)), expression=_n(0)) for j in range(len(nodes))]
    any_nonzero = nonzero[0]
    for cond in nonzero[1:]:
        any_nonzero = exp.Or(this=any_nonzero, expression=cond)
    spread = (exp.select(k.copy(), exp.alias_(exp.cast(exp.Explode(this=exp.GenerateSeries(
        start=idx.copy(), end=col(_NEXT), is_end_exclusive=True)), "INT"), ANCHOR_INDEX, quoted=True),
        *[col(_running(j)) for j in range(len(nodes))], copy=False)
        .from_(runs.subquery("u", copy=False), copy=False).where(any_nonzero, copy=False))
    out = [k.copy(), col(ANCHOR_INDEX)]
    for j, (v, n) in enumerate(names):
        count = exp.cast(col(_running(j)), "BIGINT")
        out += [exp.alias_(count, v, quoted=True), exp.alias_(count.copy(), n, quoted=True)]
    return exp.select(*out, copy=False).from_(spread.subquery("w", copy=False), copy=False)


# -- expanded rows: any aggregation at evenly spaced anchors ----------------------------------------
# Up to this many anchors a window join runs as a nested loop (compiled.DUCKDB_SETTINGS), which is
# cheap; beyond it DuckDB sorts for a merge join, and each row's anchor index range, expanded in
# place, costs less (half the time on the flagship's 50 weekly anchors).
NESTED_LOOP_MAX = 16
EXPANDED = "__pql_i"  # the anchor index of an expanded row


def _lo(j: int | None = None) -> str:
    return "__pql_lo" if j is None else f"__pql_lo{j}"


def _hi(j: int | None = None) -> str:
    return "__pql_hi" if j is None else f"__pql_hi{j}"


def row_only_filter(node: ast.Aggregation, graph: Graph) -> bool:
    """Whether the inline filter reads only the row and its parents (no nested aggregation, no
    end-time column), so it does not depend on the anchor."""
    for sub in ast.walk(node.filter):
        if isinstance(sub, ast.Aggregation):
            return False
        if isinstance(sub, ast.Column) and sub.name == graph.table(sub.table).end_time_column:
            return False
    return True


def expansion_eligible(nodes: Sequence[ast.Aggregation], graph: Graph, grid: AnchorGrid | None) -> bool:
    if grid is None or grid.count <= NESTED_LOOP_MAX:
        return False
    if any(n.window is None or n.window.unit.exact_seconds is None for n in nodes):
        return False
    return row_only_filter(nodes[0], graph)


@dataclass(frozen=True)
class Destination:
    """A link target's destination table for §7.5 validity: joined as ``d`` on its key."""

    table: exp.Expression  # aliased d
    on: exp.Expression
    start: exp.Expression | None  # d's time column: alive from it on
    end: exp.Expression | None  # d's end-time column: alive while later than the anchor


def _alive_from(start: exp.Expression, grid: AnchorGrid) -> exp.Expression:
    """The first anchor index with ``start <= a_k`` (none when start is NULL)."""
    first = _first_from(exp.Sub(this=_epoch_us(start), expression=_n(grid.a0_us)), grid.step_us)
    return exp.Case(ifs=[exp.If(this=exp.Is(this=start.copy(), expression=exp.Null()), true=_n(grid.count))],
                    default=first)


def _alive_until(end: exp.Expression, grid: AnchorGrid) -> exp.Expression:
    """The last anchor index with ``end > a_k`` (every anchor when end is NULL)."""
    last = _last_before(exp.Sub(this=_epoch_us(end), expression=_n(grid.a0_us)), grid.step_us)
    return exp.Case(ifs=[exp.If(this=exp.Is(this=end.copy(), expression=exp.Null()), true=_n(grid.count - 1))],
                    default=last)


def _fold(cls: type, items: list[exp.Expression]) -> exp.Expression:
    """GREATEST or LEAST of ``items``, none of them NULL here: rendered as DuckDB's own function
    (sqlglot would otherwise wrap it in a NULL test of every argument, evaluated on every row)."""
    return items[0] if len(items) == 1 else cls(this=items[0], expressions=items[1:], ignore_nulls=True)


def member_ranges(nodes: Sequence[ast.Aggregation]) -> list[tuple[str, str]]:
    """The columns of each member's own anchor index range in the expanded rows (several members)."""
    return [(_lo(j), _hi(j)) for j in range(len(nodes))] if len(nodes) > 1 else []


def expanded_rows(nodes: Sequence[ast.Aggregation], *, source: exp.Expression, columns: Sequence[str],
                  time_col: exp.Expression, grid: AnchorGrid, destination: Destination | None) -> exp.Subquery:
    """The rows of ``source`` (alias r), each repeated once per anchor whose window (of any member)
    holds it, as the subquery ``r`` with the source's ``columns``, the anchor index ``__pql_i`` and
    the member ranges of :func:`member_ranges`. With a ``destination``, only anchors at which the
    row's destination is alive are kept (§7.5). Only the columns read later are repeated."""
    x = _epoch_us(time_col)
    ranges = [_bounds(n.window, x, grid) for n in nodes]  # type: ignore[arg-type]
    lo = _fold(exp.Least, [r[0] for r in ranges])
    hi = _fold(exp.Greatest, [r[1] for r in ranges])
    his = [hi, _n(grid.count - 1)]
    los = [lo]
    if destination is not None:
        if destination.start is not None:
            los.append(_alive_from(destination.start, grid))
        if destination.end is not None:
            his.append(_alive_until(destination.end, grid))
    projections: list[exp.Expression] = [col(c, "r") for c in columns]
    projections += [exp.alias_(_fold(exp.Greatest, los), _lo(), quoted=True),
                    exp.alias_(_fold(exp.Least, his), _hi(), quoted=True)]
    for (mlo, mhi), (lo_name, hi_name) in zip(ranges, member_ranges(nodes)):
        projections += [exp.alias_(mlo, lo_name, quoted=True), exp.alias_(mhi, hi_name, quoted=True)]
    bounds = _time_bounds(nodes, time_col, grid)
    ranged = exp.select(*projections, copy=False).from_(source, copy=False)
    if destination is not None:
        ranged = ranged.join(exp.Join(this=destination.table, on=destination.on, kind="INNER"), copy=False)
    ranged = ranged.where(and_all(bounds), copy=False)
    kept = [col(c) for c in columns] + [col(n) for pair in member_ranges(nodes) for n in pair]
    # INT like the anchors' index, so joins on (key, index) stay hash joins on both columns
    index = exp.cast(exp.Explode(this=exp.GenerateSeries(
        start=col(_lo()), end=exp.Add(this=col(_hi()), expression=_n(1)), is_end_exclusive=True)), "INT")
    spread = (exp.select(*kept, exp.alias_(index, EXPANDED, quoted=True), copy=False)
        .from_(ranged.subquery("r", copy=False), copy=False)
        .where(exp.LTE(this=col(_lo()), expression=col(_hi())), copy=False))
    return spread.subquery("r", copy=False)
