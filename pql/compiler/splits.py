"""Train/val/test splits (spec §10.4).

Temporal splits are decided per anchor in Python (the anchors are a short, known list) and reach
SQL as a CASE over two anchor thresholds. Static splits are per entity and are computed in SQL
with window functions over the labelled rows: ``entity_time`` orders by the entity's time column,
``random`` by ``md5(seed || ':' || ENTITY)``.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Callable, Sequence

from sqlglot import exp

from pql.ast import Forecast, QueryKind
from pql.errors import PQLRunError, PQLWarning
from pql.validated import ValidatedQuery

from .options import SplitSpec, invalid
from .sqlbuild import ANCHOR, ENTITY, SPLIT, TARGET, col
from .timeunits import add_units, timestamp_literal

__all__ = ["default_split", "check_split", "anchor_splits", "split_case", "static_split_select",
           "round_half_up", "SPLIT_TIME", "SPLITS"]

SPLITS = ("train", "val", "test")
SPLIT_TIME = "__pql_split_time"  # the entity's time column, carried for entity_time


def round_half_up(fraction: float, n: int) -> int:
    return int((Decimal(repr(fraction)) * n).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def default_split(vq: ValidatedQuery) -> SplitSpec:
    """The §10.4 default for this query."""
    if vq.kind is QueryKind.STATIC:
        if vq.graph.table(vq.entity_table).time_column is not None:
            return SplitSpec("entity_time", (0.1, 0.1))
        return SplitSpec("random", (0.1, 0.1))
    w = vq.window
    problem = vq.query.problem
    if isinstance(problem, Forecast):
        return SplitSpec("last_span", (problem.n * w.length,))
    if vq.task_type.is_link_prediction or w.start > 0:
        return SplitSpec("last_span", (w.length,))
    return SplitSpec("chronological", (0.1, 0.1))


_TEMPORAL_KINDS = ("chronological", "last_span", "time_range")
_STATIC_KINDS = ("entity_time", "random")


def check_split(spec: SplitSpec, vq: ValidatedQuery) -> list[PQLWarning]:
    """E602 when the kind does not suit the query; W112 for a random split over timed data."""
    static = vq.kind is QueryKind.STATIC
    allowed = _STATIC_KINDS if static else _TEMPORAL_KINDS
    if spec.kind not in allowed:
        what = "static" if static else "temporal"
        raise invalid("split", spec, f"a {what} query splits with " + " or ".join(allowed))
    if spec.kind == "entity_time" and vq.graph.table(vq.entity_table).time_column is None:
        raise invalid("split", spec, f"'{vq.entity_table}' has no time column; use random(val, test)")
    warnings: list[PQLWarning] = []
    if static and spec.kind == "random" and vq.graph.table(vq.entity_table).time_column is None:
        others = [t for t in vq.graph.timed_tables if t != vq.entity_table]
        if others and not any(w.code == "W112" for w in vq.warnings):
            warnings.append(PQLWarning(
                "W112", f"possible leakage: static query over untimed '{vq.entity_table}' while "
                        f"{', '.join(others)} are timed; the split is random"))
    return warnings


# -- temporal: per anchor --------------------------------------------------------------------------


def _chronological(spec: SplitSpec, anchors: list[dt.datetime], vq: ValidatedQuery) -> dict[dt.datetime, str]:
    val, test = spec.args
    n = len(anchors)
    n_test, n_val = max(1, round_half_up(test, n)), max(1, round_half_up(val, n))
    newest_first = anchors[::-1]
    out = {a: "train" for a in anchors}
    out.update({a: "test" for a in newest_first[:n_test]})
    out.update({a: "val" for a in newest_first[n_test:n_test + n_val]})
    return out


def _last_span(spec: SplitSpec, anchors: list[dt.datetime], vq: ValidatedQuery) -> dict[dt.datetime, str]:
    (span,) = spec.args
    unit = vq.window.unit
    a0 = anchors[-1]
    one, two = add_units(a0, -span, unit), add_units(a0, -2 * span, unit)
    return {a: "test" if a > one else "val" if a > two else "train" for a in anchors}


def _time_range(spec: SplitSpec, anchors: list[dt.datetime], vq: ValidatedQuery) -> dict[dt.datetime, str]:
    val_start, test_start = spec.args
    return {a: "test" if a >= test_start else "val" if a >= val_start else "train" for a in anchors}


_ANCHOR_SPLITS: dict[str, Callable[[SplitSpec, list[dt.datetime], ValidatedQuery], dict[dt.datetime, str]]] = {
    "chronological": _chronological,
    "last_span": _last_span,
    "time_range": _time_range,
}


def _needed(spec: SplitSpec, assignment: dict[dt.datetime, str]) -> int:
    if spec.kind == "chronological":
        val, test = spec.args
        m = 3
        while m - max(1, round_half_up(test, m)) - max(1, round_half_up(val, m)) < 1:
            m += 1
        return m
    counts = {s: sum(1 for v in assignment.values() if v == s) for s in SPLITS}
    return counts["test"] + max(counts["val"], 1) + 1 if spec.kind == "last_span" else 3


def anchor_splits(spec: SplitSpec, anchors: Sequence[dt.datetime], vq: ValidatedQuery) -> dict[dt.datetime, str]:
    """``{anchor: split}``; E604 when an anchor-level split comes out empty."""
    ordered = sorted(set(anchors))
    assignment = _ANCHOR_SPLITS[spec.kind](spec, ordered, vq) if ordered else {}
    if any(s not in assignment.values() for s in SPLITS):
        raise PQLRunError(f"{len(ordered)} anchors cannot form train/val/test (need {_needed(spec, assignment)}); "
                          "lower timeframe_step or set split", code="E604")
    return assignment


def split_case(assignment: dict[dt.datetime, str], anchor: exp.Expression) -> exp.Expression:
    """CASE over the anchor thresholds: the oldest test anchor, then the oldest val anchor."""
    test_from = min(a for a, s in assignment.items() if s == "test")
    val_from = min(a for a, s in assignment.items() if s == "val")
    return exp.Case(ifs=[
        exp.If(this=exp.GTE(this=anchor.copy(), expression=timestamp_literal(test_from)), true=exp.Literal.string("test")),
        exp.If(this=exp.GTE(this=anchor.copy(), expression=timestamp_literal(val_from)), true=exp.Literal.string("val")),
    ], default=exp.Literal.string("train"))


# -- static: per entity -------------------------------------------------------------------------------


def _count_for(fraction: float, total: exp.Expression) -> exp.Expression:
    """max(1, round_half_up(fraction * total)) in exact decimal arithmetic."""
    scaled = exp.Mul(this=exp.Literal.number(repr(fraction)), expression=total.copy())
    rounded = exp.Floor(this=exp.Add(this=scaled, expression=exp.Literal.number("0.5")))
    return exp.Greatest(this=exp.Literal.number(1), expressions=[exp.cast(rounded, "BIGINT")])


def static_split_select(spec: SplitSpec, source: str, seed: int) -> exp.Select:
    """The labelled rows of ``source`` with SPLIT per entity (entity_time or random)."""
    val, test = spec.args
    total = exp.Window(this=exp.Count(this=exp.Star()))
    entity = col(ENTITY)
    if spec.kind == "entity_time":
        t = col(SPLIT_TIME)
        order = exp.Order(expressions=[exp.Ordered(this=t.copy(), desc=True, nulls_first=False),
                                       exp.Ordered(this=entity.copy(), desc=True)])
    else:
        key = exp.Concat(expressions=[exp.Literal.string(f"{seed}:"), exp.cast(entity.copy(), "VARCHAR")])
        order = exp.Order(expressions=[exp.Ordered(this=exp.MD5(this=key)), exp.Ordered(this=entity.copy())])
    rank = exp.Window(this=exp.RowNumber(), order=order)
    n_test, n_val = _count_for(test, col("__pql_n")), _count_for(val, col("__pql_n"))
    rn = col("__pql_rn")
    if spec.kind == "entity_time":  # newest first: test, then val; NULL times stay in train
        ifs = [exp.If(this=exp.Is(this=col(SPLIT_TIME), expression=exp.Null()), true=exp.Literal.string("train")),
               exp.If(this=exp.LTE(this=rn.copy(), expression=n_test), true=exp.Literal.string("test")),
               exp.If(this=exp.LTE(this=rn.copy(), expression=exp.Paren(this=exp.Add(this=n_test.copy(), expression=n_val))),
                      true=exp.Literal.string("val"))]
    else:  # hash order: train first, then val, then test
        ifs = [exp.If(this=exp.GT(this=rn.copy(), expression=exp.Sub(this=col("__pql_n"), expression=n_test)),
                      true=exp.Literal.string("test")),
               exp.If(this=exp.GT(this=rn.copy(), expression=exp.Sub(
                   this=col("__pql_n"), expression=exp.Paren(this=exp.Add(this=n_test.copy(), expression=n_val)))),
                      true=exp.Literal.string("val"))]
    ranked = exp.select(exp.Star(), exp.alias_(rank, "__pql_rn", quoted=True),
                        exp.alias_(total, "__pql_n", quoted=True)).from_(exp.Table(this=exp.to_identifier(source, quoted=True)))
    split = exp.Case(ifs=ifs, default=exp.Literal.string("train"))
    return (exp.select(col(ENTITY), col(ANCHOR), col(TARGET), exp.alias_(split, SPLIT, quoted=True))
            .from_(exp.Subquery(this=ranked, alias=exp.TableAlias(this=exp.to_identifier("s"))))
            .order_by(col(ANCHOR), col(ENTITY)))
