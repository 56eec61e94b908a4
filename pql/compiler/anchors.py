"""Anchor times (spec §10.2, §10.5, §10.6).

The data enters only through :class:`TimeRange`, read with one min/max statement over the target
tables' time columns; everything else is plain date arithmetic, so it is easy to test.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

from sqlglot import exp

from pql.ast import TimeUnit
from pql.errors import PQLRunError, PQLWarning
from pql.graph import Graph
from pql.validated import CombinedWindow

from .options import Options, invalid, parse_timestamp
from .timeunits import add_units, describe_amount, units_between

__all__ = ["TimeRange", "time_range_sql", "read_time_range", "training_anchors", "prediction_anchor",
           "MAX_ANCHORS_HARD"]

MAX_ANCHORS_HARD = 100_000  # beyond this the VALUES list would dwarf the data; set max_anchors


@dataclass(frozen=True)
class TimeRange:
    """``start``: latest per-table minimum; ``end``: latest maximum; ``first``: earliest minimum."""

    start: dt.datetime | None
    end: dt.datetime | None
    first: dt.datetime | None = None

    @property
    def empty(self) -> bool:
        return self.start is None or self.end is None


def time_range_sql(graph: Graph, tables: Sequence[str]) -> exp.Expression:
    """One statement: per table, ``MIN`` and ``MAX`` of its non-NULL time values (a UNION ALL)."""
    parts = []
    for i, name in enumerate(tables):
        col = exp.column(graph.table(name).time_column, quoted=True)
        parts.append(
            exp.select(
                exp.alias_(exp.Literal.number(i), "i", quoted=True),
                exp.alias_(exp.Min(this=col.copy()), "lo", quoted=True),
                exp.alias_(exp.Max(this=col.copy()), "hi", quoted=True),
            ).from_(exp.Table(this=exp.to_identifier(name, quoted=True)))
        )
    stmt: exp.Expression = parts[0]
    for p in parts[1:]:
        stmt = exp.union(stmt, p, distinct=False)
    return stmt


def _as_naive(v: Any) -> dt.datetime | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.timezone.utc).replace(tzinfo=None) if v.tzinfo else v
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day)
    return parse_timestamp(v)


def read_time_range(rows: Sequence[tuple[Any, Any, Any]]) -> TimeRange:
    """Combine the (i, min, max) rows of :func:`time_range_sql` (§10.2 step 1)."""
    mins = [_as_naive(r[1]) for r in rows]
    maxs = [_as_naive(r[2]) for r in rows]
    if not rows or any(m is None for m in mins) or any(m is None for m in maxs):
        present = [m for m in mins if m is not None]
        return TimeRange(None, max(maxs, default=None) if all(m is not None for m in maxs) else None,
                         min(present) if present else None)
    return TimeRange(max(mins), max(maxs), min(mins))


def _fmt(ts: dt.datetime | None) -> str:
    return ts.isoformat(sep=" ") if ts is not None else "(no timestamps)"


def training_anchors(window: CombinedWindow, tr: TimeRange, options: Options) -> tuple[list[dt.datetime], list[PQLWarning]]:
    """§10.2: the training anchors in ascending order, and W115 when the step is below L."""
    unit = window.unit
    S, E, L = window.start, window.end, window.length
    warnings: list[PQLWarning] = []
    step = options.get("timeframe_step", L)
    if step < L:
        warnings.append(PQLWarning(
            "W115", f"timeframe_step {describe_amount(step, unit)} is shorter than the target window "
                    f"({describe_amount(L, unit)}): label windows overlap across splits"))
    F = window.filter_start
    buffer = S - F if F is not None and F < S else 0
    need = describe_amount(E + step + buffer, unit)
    if tr.empty:
        raise PQLRunError(f"no anchor fits: target tables span {_fmt(tr.start)} … {_fmt(tr.end)}, less than "
                          f"window plus look-back ({need})", code="E603")
    try:
        range_start = add_units(tr.start, buffer, unit)
        if "start_time" in options:
            lower = options.get("start_time")
        elif buffer:
            lower = range_start
        else:
            lower = add_units(range_start, step, unit)
    except OverflowError:
        raise invalid("timeframe_step", step, "the step leaves the calendar range") from None
    end_time = options.get("end_time")
    max_anchors = options.get("max_anchors")

    anchors: list[dt.datetime] = []
    i = _first_index(tr.end, E, step, unit, end_time)
    while True:
        try:
            a = add_units(tr.end, -(E + i * step), unit)
        except OverflowError:
            break
        if a < lower:
            break
        if end_time is None or a <= end_time:
            anchors.append(a)
            if max_anchors is not None and len(anchors) >= max_anchors:
                break
            if len(anchors) > MAX_ANCHORS_HARD:
                raise invalid("timeframe_step", step, f"it gives more than {MAX_ANCHORS_HARD} anchors; "
                                                      "raise timeframe_step or set max_anchors")
        i += 1
    if not anchors:
        _raise_no_anchor(tr, window, step, buffer, options, need)
    anchors.reverse()
    return anchors, warnings


def _first_index(end: dt.datetime, E: int, step: int, unit: TimeUnit, end_time: dt.datetime | None) -> int:
    """Skip, without iterating, the anchors newer than ``end_time`` (exact units only)."""
    if end_time is None or unit is TimeUnit.MONTHS:
        return 0
    newest = add_units(end, -E, unit)
    if newest <= end_time:
        return 0
    over = (newest - end_time).total_seconds() / (step * unit.exact_seconds)
    return max(0, int(over) - 1)


def _raise_no_anchor(tr: TimeRange, window: CombinedWindow, step: int, buffer: int, options: Options,
                     need: str) -> None:
    unit = window.unit
    if "timeframe_step" in options and not buffer and "start_time" not in options:
        room = units_between(tr.start, tr.end, unit) - window.end
        if 1 <= room < step:
            raise PQLRunError(f"timeframe_step {step} {unit.word} must be below data span minus window "
                              f"({room} {unit.word})", code="E606")
    raise PQLRunError(f"no anchor fits: target tables span {_fmt(tr.start)} … {_fmt(tr.end)}, less than "
                      f"window plus look-back ({need})", code="E603")


def prediction_anchor(tr: TimeRange, options: Options, first: dt.datetime | None = None) -> dt.datetime:
    """§10.6: ``range_end`` unless ``anchor_time`` overrides it (E609 when invalid or before ``first``,
    the earliest timestamp of the data; default: of the target tables)."""
    raw = options.get("anchor_time")
    if raw is None:
        if tr.end is None:
            raise PQLRunError(f"no anchor fits: target tables span {_fmt(tr.start)} … {_fmt(tr.end)}, "
                              "less than window plus look-back (no timestamps)", code="E603")
        return tr.end
    try:
        p = parse_timestamp(raw)
    except ValueError:
        p = None
    first = first if first is not None else tr.first
    if p is None or (first is not None and p < first):
        raise PQLRunError(f"anchor_time {raw} is invalid or before the first timestamp {_fmt(first)}",
                          code="E609")
    return p
