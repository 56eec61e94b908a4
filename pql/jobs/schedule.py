"""Anchors for a training job: the automatic timeframe step and the purge of overlapping labels.

Two additions to the compiler's §10.2/§10.4 rules that a training job needs:

- **Automatic step.** When the default step (L) leaves too few anchors to form train / val / test
  with several training anchors, the job picks the largest step (in the query's unit, never below
  one) that gives at least ``MIN_ANCHORS`` anchors and a valid split, and says so.
- **Purge.** A training row whose label window (anchor + E·U) reaches past the first validation
  anchor is dropped, so no label event of the validation or test period is ever trained on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pql.ast import QueryKind
from pql.compiler.anchors import TimeRange, read_time_range, time_range_sql, training_anchors
from pql.compiler.options import Options
from pql.compiler.splits import anchor_splits, default_split
from pql.compiler.timeunits import add_units, units_between
from pql.errors import PQLRunError, PQLWarning
from pql.validated import ValidatedQuery

__all__ = ["StepChoice", "choose_step", "purge", "MIN_ANCHORS", "MIN_TRAIN_ANCHORS", "label_end"]

MIN_ANCHORS = 8  # the automatic step gives at least this many anchors
MIN_TRAIN_ANCHORS = 3  # "several" training anchors: fewer with the default step triggers the search


@dataclass(frozen=True)
class StepChoice:
    """The step the job uses: ``step`` is None when the compiler's own (default or given) applies."""

    step: int | None
    default_step: int | None
    default_anchors: int
    anchors: int
    warning: PQLWarning | None = None


def _time_range(db: Any, vq: ValidatedQuery) -> TimeRange:
    sql = time_range_sql(vq.graph, list(vq.target_tables)).sql(dialect="duckdb")
    rows = db.con.sql(sql).fetchall()
    return read_time_range([(r[0], r[1], r[2]) for r in rows])


def _try(vq: ValidatedQuery, tr: TimeRange, values: dict[str, Any], step: int) -> tuple[int, int] | None:
    """(anchors, training anchors left after the purge) for ``step``, or None when no valid split forms."""
    opts = Options({**values, "timeframe_step": step})
    spec = opts.get("split") or default_split(vq)
    try:
        anchors, _ = training_anchors(vq.window, tr, opts)
        assignment = anchor_splits(spec, anchors, vq)
    except PQLRunError:
        return None
    first_val = min(a for a, s in assignment.items() if s == "val")
    kept = sum(1 for a, s in assignment.items() if s == "train" and label_end(a, vq) <= first_val)
    return len(anchors), kept


def _min_history(vq: ValidatedQuery, tr: TimeRange, values: dict[str, Any]) -> tuple[int, int] | None:
    """(units of data, anchors) the query needs at a one-unit step: the shortest span from the data's
    start for which train (after the purge), val and test all get anchors. None beyond ~500 years."""
    unit = vq.window.unit

    def fits(m: int) -> tuple[int, int] | None:
        got = _try(vq, TimeRange(tr.start, add_units(tr.start, m, unit), tr.first), values, 1)
        return got if got is not None and got[1] >= 1 else None

    lo, hi = 1, 2
    while fits(hi) is None:
        lo, hi = hi + 1, hi * 2
        if hi > 200_000:
            return None
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid) is not None:
            hi = mid
        else:
            lo = mid + 1
    return hi, fits(hi)[0]


def choose_step(vq: ValidatedQuery, db: Any, values: dict[str, Any]) -> StepChoice:
    """Decide the timeframe step (see the module docstring); E604 saying how much history is needed
    when even a one-unit step cannot form train / val / test."""
    if vq.kind is QueryKind.STATIC or values.get("timeframe_step") is not None or values.get("max_anchors"):
        return StepChoice(None, None, 0, 0)
    L = vq.window.length
    tr = _time_range(db, vq)
    if tr.empty:
        return StepChoice(None, L, 0, 0)  # the compiler raises its own E603
    default = _try(vq, tr, values, L)
    if default is not None and default[1] >= MIN_TRAIN_ANCHORS:
        return StepChoice(None, L, default[0], default[0])
    n_default = default[0] if default else _count(vq, tr, values, L)
    for step in range(L - 1, 0, -1):
        got = _try(vq, tr, values, step)
        if got is not None and got[0] >= MIN_ANCHORS and got[1] >= 1:
            unit = vq.window.unit.word
            warning = PQLWarning(
                "W116", f"timeframe_step set to {step} {unit}: the default step ({L} {unit}) gives "
                        f"{n_default} anchors, too few for train, val and test with several training "
                        f"anchors; {step} {unit} gives {got[0]}",
                hints=["set timeframe_step (or split) to choose it yourself"])
            return StepChoice(step, L, n_default, got[0], warning)
    if default is not None and default[1] >= 1:
        return StepChoice(None, L, default[0], default[0])  # a valid split, though few training anchors
    raise _too_little_history(vq, tr, values, n_default)


def _too_little_history(vq: ValidatedQuery, tr: TimeRange, values: dict[str, Any], n_default: int) -> PQLRunError:
    """E603 (no anchor at all) or E604, with a hint saying how much history the query needs."""
    unit = vq.window.unit.word
    span = units_between(tr.start, tr.end, vq.window.unit)
    need = _min_history(vq, tr, values)
    hints = []
    if need is not None:
        hints.append(f"this query needs at least {need[0]} {unit} of data in {', '.join(vq.target_tables)} (its "
                     f"target window and look-back, and train, val and test anchors with every training label "
                     f"window ending before validation starts); the data spans {span} {unit}")
    if n_default == 0:
        try:
            training_anchors(vq.window, tr, Options(dict(values)))
        except PQLRunError as e:
            return PQLRunError(e.message, code=e.code, hints=[*e.hints, *hints])
    needed = need[1] if need is not None else 3
    return PQLRunError(f"{n_default} anchors cannot form train/val/test (need {needed}); lower timeframe_step or "
                       "set split", code="E604", hints=hints)


def _count(vq: ValidatedQuery, tr: TimeRange, values: dict[str, Any], step: int) -> int:
    try:
        anchors, _ = training_anchors(vq.window, tr, Options({**values, "timeframe_step": step}))
    except PQLRunError:
        return 0
    return len(anchors)


def label_end(anchor: dt.datetime, vq: ValidatedQuery, extra_units: int = 0) -> dt.datetime:
    """anchor + (E + extra)·U: the end of the row's label window."""
    return add_units(anchor, vq.window.end + extra_units, vq.window.unit)


def purge(table: pa.Table, vq: ValidatedQuery, *, offsets: np.ndarray | None = None) -> tuple[pa.Table, int]:
    """Drop ``train`` rows whose label window reaches past the first ``val`` anchor.

    ``offsets`` (forecasting) adds per-row units to the label end (horizon h·L). Returns the kept
    rows and the number dropped. Static queries are returned unchanged.
    """
    if vq.kind is QueryKind.STATIC or table.num_rows == 0:
        return table, 0
    split = table.column("SPLIT")
    val_anchors = pc.filter(table.column("ANCHOR_TIMESTAMP"), pc.equal(split, "val"))
    if len(val_anchors) == 0:
        return table, 0
    first_val = pc.min(val_anchors).as_py()
    anchors = table.column("ANCHOR_TIMESTAMP").to_pylist()
    is_train = pc.equal(split, "train").to_numpy(zero_copy_only=False)
    extra = offsets if offsets is not None else np.zeros(table.num_rows, dtype=np.int64)
    ends: dict[tuple[dt.datetime, int], bool] = {}
    keep = np.ones(table.num_rows, dtype=bool)
    for i in np.flatnonzero(is_train):
        key = (anchors[i], int(extra[i]))
        if key not in ends:
            ends[key] = label_end(key[0], vq, key[1]) > first_val
        keep[i] = not ends[key]
    dropped = int((~keep).sum())
    return (table.filter(pa.array(keep)) if dropped else table), dropped
