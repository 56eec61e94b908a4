"""Pair features for link prediction and multilabel tasks: one row per (ENTITY, ANCHOR_TIMESTAMP, CLASS).

Computed for all candidates at once from a few pre-aggregated temp tables:
- ``ph`` pair history, one range join of the (entity, anchor) groups to the entity's events up to
  the anchor, grouped per (group, class): times bought, recency-weighted count, first and last
  time, distinct event times (for the mean gap), counts in the last 7/30/90 days;
- ``pop`` class popularity per (anchor, class), from one range join of the anchors to all events,
  grouped per nested window bucket then combined: 7/30/90 days, the previous 30 days, decayed and
  all-time counts;
- ``ent`` the entity's totals (from ``ph``); the affinity to the candidate's categories
  (``affinity``);
- destination attributes at the anchor (``rows.row_block``) for link prediction.
Static tasks: the events are the label itself, so nothing of the entity's own history is a
feature; popularity leaves the entity's own events out.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from pql.compiler.sqlbuild import and_all, inner_join, left_join, table_ref
from pql.errors import PQLInternalError
from pql.tasks import FeatureSet
from pql.validated import ValidatedQuery

from .blocks import fill
from .affinity import affinity_features
from .candidates import CLASS
from .columns import exclusions, roles
from .entity import ANCHOR, ENTITY
from .events import EventSource, event_source
from .rows import row_block
from .sql import FAR_FUTURE, days_between, fetch, qcol, registered, render, temp_table, ts_literal
from .windows import _as, _count, _eq, _not_null, _num, _query

__all__ = ["pair_features", "PAIR_FEATURES", "MAX_AFFINITY", "HALF_LIFE_DAYS"]

HALF_LIFE_DAYS = 30
MAX_AFFINITY = 5  # categorical destination columns with an affinity feature
NAN = float("nan")
WINDOW_STARTS = (7, 30, 60, 90)  # days before the anchor: a7, a30, a60, a90 (60: the previous 30 days)

Build = Callable[[], exp.Expression]  # builds a fresh expression tree for each statement


def _f(e: exp.Expression) -> exp.Expression:
    return exp.cast(e, "FLOAT", copy=False)


def _days_before(bound: exp.Expression, days: int) -> exp.Expression:
    """``bound - INTERVAL days DAY``."""
    return exp.Sub(this=bound, expression=exp.Interval(this=exp.Literal.string(str(days)), unit=exp.var("DAY")))


def _div(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return exp.Div(this=a, expression=b, typed=False, safe=False)


def _nullif0(e: exp.Expression) -> exp.Expression:
    return exp.Nullif(this=e, expression=_num(0))


def _col(table: str, name: str) -> Build:
    return lambda: qcol(name, table)


def _ratio(a: Build, b: Build) -> Build:
    return lambda: _div(a(), _nullif0(b()))


def _or0(a: Build) -> Build:
    return lambda: exp.Coalesce(this=a(), expressions=[_num(0)])


# name -> (expression over the final join's aliases, value when it is NULL). ``ph`` pair history,
# ``pop`` popularity, ``ent`` entity totals, all precomputed as FLOAT. The names are part of the
# contract with the rankers.
PAIR_FEATURES: dict[str, tuple[Build, float]] = {
    "pair_count": (_col("ph", "n"), 0.0),
    "pair_decay_count": (_col("ph", "dec"), 0.0),
    "pair_days_since_last": (_col("ph", "dsl"), NAN),
    "pair_days_since_first": (_col("ph", "dsf"), NAN),
    "pair_mean_gap": (_col("ph", "gap"), NAN),
    "pair_recency_ratio": (_ratio(_col("ph", "dsl"), _col("ph", "gap")), NAN),
    "pair_times": (_col("ph", "nt"), 0.0),
    "pair_count_7d": (_col("ph", "n7"), 0.0),
    "pair_count_30d": (_col("ph", "n30"), 0.0),
    "pair_count_90d": (_col("ph", "n90"), 0.0),
    "pair_share": (_ratio(_or0(_col("ph", "n")), _col("ent", "n")), NAN),
    "class_pop_7d": (_col("pop", "p7"), 0.0),
    "class_pop_30d": (_col("pop", "p30"), 0.0),
    "class_pop_90d": (_col("pop", "p90"), 0.0),
    "class_pop_prev_30d": (_col("pop", "pp30"), 0.0),
    "class_trend_30d": (_col("pop", "trend"), 1.0),
    "class_pop_decay": (_col("pop", "dec"), 0.0),
    "class_pop_all": (_col("pop", "pall"), 0.0),
    "class_entities_all": (_col("pop", "users"), 0.0),
    "entity_events": (_col("ent", "n"), 0.0),
    "entity_classes": (_col("ent", "nc"), 0.0),
    "entity_days_since_last": (_col("ent", "dsl"), NAN),
    "entity_events_30d": (_col("ent", "n30"), 0.0),
}


def _float(value: float) -> exp.Expression:
    """``value`` as a FLOAT constant (NaN included)."""
    return _f(exp.Literal.string("NaN") if value != value else exp.Literal.number(repr(value)))


def _decay() -> exp.Expression:
    """``h.m * POW(0.5, age / HALF_LIFE_DAYS)``, age = days from the event ``h.t`` to the bound ``q.av``."""
    age = exp.Paren(this=days_between(qcol("av", "q"), qcol("t", "h")))
    return exp.Mul(this=qcol("m", "h"), expression=exp.Pow(this=exp.Literal.number("0.5"),
                                                           expression=_div(age, _num(HALF_LIFE_DAYS))))


def _with_window_starts(table: str) -> exp.Subquery:
    """``(SELECT *, av - INTERVAL 7 DAY AS a7, ... FROM table) AS q``."""
    starts = [_as(_days_before(qcol("av"), d), f"a{d}") for d in WINDOW_STARTS]
    return _query([exp.Star(), *starts], table_ref(table)).subquery("q", copy=False)


def _floats(*names: str) -> list[exp.Expression]:
    """``CAST(name AS FLOAT) AS name`` for each name."""
    return [_as(_f(qcol(n)), n) for n in names]


def _if_then_m(cond: exp.Expression, value: exp.Expression) -> exp.Expression:
    """``SUM(CASE WHEN cond THEN value ELSE 0 END)``."""
    return exp.Sum(this=exp.Case(ifs=[exp.If(this=cond, true=value)], default=_num(0)))


def _steps(src: EventSource) -> list[tuple[str, Callable[[dict], exp.Expression]]]:
    """Temp tables over ``fg`` (gid, e, a, av), ``an`` (a, av) and ``ev`` (k, c, t, m); later steps
    read earlier ones by name (``t``)."""
    def h(name: str) -> exp.Column:
        return qcol(name, "h")

    def visible(*on: exp.Expression) -> exp.Expression:
        return and_all([*on, exp.LTE(this=h("t"), expression=qcol("av", "q")) if src.time else None])

    def ph(t: dict) -> exp.Expression:
        cols = [qcol("gid", "q"), h("c"), _as(exp.AnyValue(this=qcol("av", "q")), "av"), _as(exp.Sum(this=h("m")), "n"),
                _as(exp.Sum(this=_decay()), "dec"), _as(exp.Max(this=h("t")), "tl"), _as(exp.Min(this=h("t")), "tf"),
                _as(_count(), "nt")]
        cols += [_as(_if_then_m(exp.GT(this=h("t"), expression=qcol(f"a{d}", "q")), h("m")), f"n{d}")
                 for d in (7, 30, 90)]
        on = inner_join(table_ref(t["ev"], "h"), visible(_eq(h("k"), qcol("e", "q"))))
        inner = _query(cols, _with_window_starts(t["fg"]), joins=(on,), group=(qcol("gid", "q"), h("c")))
        span = exp.Paren(this=exp.Sub(this=exp.TimeToUnix(this=qcol("tl")), expression=exp.TimeToUnix(this=qcol("tf"))))
        gap = _div(_div(span, exp.Literal.number("86400.0")), _nullif0(exp.Sub(this=qcol("nt"), expression=_num(1))))
        return _query([qcol("gid"), qcol("c"), *_floats("n", "dec", "nt", "n7", "n30", "n90"), qcol("tl"),
                       _as(_f(days_between(qcol("av"), qcol("tl"))), "dsl"),
                       _as(_f(days_between(qcol("av"), qcol("tf"))), "dsf"), _as(_f(gap), "gap")],
                      inner.subquery(copy=False))

    def popb(t: dict) -> exp.Expression:
        if src.time:
            bucket: exp.Expression = exp.Case(ifs=[exp.If(this=exp.GT(this=h("t"), expression=qcol(f"a{d}", "q")),
                                                          true=_num(i)) for i, d in enumerate(WINDOW_STARTS)],
                                              default=_num(len(WINDOW_STARTS)))
        else:
            bucket = _num(len(WINDOW_STARTS))
        cols = [qcol("av", "q"), h("c"), _as(bucket, "b"), _as(exp.Sum(this=h("m")), "n"),
                _as(exp.Sum(this=_decay()), "dec")]
        on = inner_join(table_ref(t["ev"], "h"), visible(exp.true()))
        return _query(cols, _with_window_starts(t["an"]), joins=(on,), group=(qcol("av", "q"), h("c"), qcol("b")))

    def users(t: dict) -> exp.Expression:
        first = _query([qcol("k"), qcol("c"), _as(exp.Min(this=qcol("t")), "tf")], table_ref(t["ev"]),
                       group=(qcol("k"), qcol("c")))
        seen = exp.LTE(this=qcol("tf", "f"), expression=qcol("av", "q")) if src.time else exp.true()
        return _query([qcol("av", "q"), qcol("c", "f"), _as(_count(), "users")], table_ref(t["an"], "q"),
                      joins=(inner_join(first.subquery("f", copy=False), seen),),
                      group=(qcol("av", "q"), qcol("c", "f")))

    def pop(t: dict) -> exp.Expression:
        def p(name: str) -> exp.Column:
            return qcol(name, "p")

        def within(cond: exp.Expression) -> exp.Expression:
            return _if_then_m(cond, p("n"))

        cols = [p("av"), p("c"), _as(within(exp.LTE(this=p("b"), expression=_num(0))), "p7"),
                _as(within(exp.LTE(this=p("b"), expression=_num(1))), "p30"),
                _as(within(_eq(p("b"), _num(2))), "pp30"), _as(within(exp.LTE(this=p("b"), expression=_num(3))), "p90"),
                _as(exp.Sum(this=p("n")), "pall"), _as(exp.Sum(this=p("dec")), "dec"),
                _as(exp.AnyValue(this=qcol("users", "u")), "users")]
        on = left_join(table_ref(t["users"], "u"),
                       and_all([_eq(qcol("av", "u"), p("av")), _eq(qcol("c", "u"), p("c"))]))
        inner = _query(cols, table_ref(t["popb"], "p"), joins=(on,), group=(p("av"), p("c")))
        trend = _div(exp.Paren(this=exp.Add(this=qcol("p30"), expression=exp.Literal.number("1.0"))),
                     exp.Paren(this=exp.Add(this=qcol("pp30"), expression=exp.Literal.number("1.0"))))
        return _query([qcol("av"), qcol("c"), *_floats("p7", "p30", "pp30", "p90", "pall", "dec", "users"),
                       _as(_f(trend), "trend")], inner.subquery(copy=False))

    def etot(t: dict) -> exp.Expression:
        def p(name: str) -> exp.Column:
            return qcol(name, "p")

        dsl = days_between(exp.AnyValue(this=qcol("av", "q")), exp.Max(this=p("tl")))
        cols = [p("gid"), _as(_f(exp.Sum(this=p("n"))), "n"), _as(_f(_count()), "nc"),
                _as(_f(exp.Sum(this=p("n30"))), "n30"), _as(_f(dsl), "dsl")]
        on = inner_join(table_ref(t["fg"], "q"), _eq(qcol("gid", "q"), p("gid")))
        return _query(cols, table_ref(t["ph"], "p"), joins=(on,), group=(p("gid"),))

    return [("ph", ph), ("popb", popb), ("users", users), ("pop", pop), ("etot", etot)]


def _code_keys(src: EventSource, vq: ValidatedQuery) -> tuple[exp.Expression, exp.Expression]:
    """The sorted distinct keys whose positions are the codes: entities (the whole entity table) and
    classes (the destination table's keys, or every label value)."""
    def distinct_keys(table: str, key: str) -> exp.Expression:
        q = _query([_as(qcol(key), "k")], table_ref(table), where=_not_null(qcol(key))).distinct(copy=False)
        return q.order_by(exp.Ordered(this=qcol("k"), nulls_first=False), copy=False)

    ekeys = distinct_keys(vq.entity_table, vq.entity_pk)
    if src.dst is not None:
        ckeys = distinct_keys(src.dst, src.dst_table.primary_key)
    else:
        inner = src.select()
        ckeys = exp.select("k").from_(exp.select(exp.alias_("c", "k")).from_(inner.subquery()).distinct().subquery()
                                      ).order_by("k")
    return ekeys, ckeys


def _positions(values: pa.ChunkedArray, sorted_keys: pa.Array) -> np.ndarray:
    """Index of each value in ``sorted_keys`` (-1 when absent)."""
    if sorted_keys.type != values.type:
        try:
            values = values.cast(sorted_keys.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return np.full(len(values), -1, dtype=np.int64)
    idx = pc.index_in(values, value_set=sorted_keys)
    return idx.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _affinity(src: EventSource, vq: ValidatedQuery) -> list[str]:
    if src.dst is None or not src.history:
        return []
    r = roles(vq.graph, src.dst_table, exclusions(vq))
    return r.categorical[:MAX_AFFINITY]


def sorted_keys(cands: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """The distinct (ENTITY, ANCHOR_TIMESTAMP, CLASS) rows sorted by anchor (NULL first), entity,
    class, and the group id of each row (0, 1, … per (ENTITY, ANCHOR_TIMESTAMP))."""
    anchor = cands.column(ANCHOR)
    if not pa.types.is_timestamp(anchor.type):
        anchor = anchor.cast(pa.timestamp("us"))
    keys = pa.table({ENTITY: cands.column(ENTITY), ANCHOR: anchor, CLASS: cands.column(CLASS)})
    keys = keys.take(pc.sort_indices(keys, sort_keys=[(ANCHOR, "ascending", "at_start"),
                                                      (ENTITY, "ascending", "at_start"),
                                                      (CLASS, "ascending", "at_start")]))
    n = keys.num_rows
    if n == 0:
        return keys, np.zeros(0, dtype=np.int64)

    def same_as_previous(column: pa.ChunkedArray) -> np.ndarray:
        prev, cur = column.slice(0, n - 1), column.slice(1)
        eq = pc.fill_null(pc.equal(cur, prev), False).to_numpy(zero_copy_only=False)
        both_null = pc.and_(pc.is_null(cur), pc.is_null(prev)).to_numpy(zero_copy_only=False)
        return np.concatenate([[False], eq | both_null])

    same_group = same_as_previous(keys.column(ENTITY)) & same_as_previous(keys.column(ANCHOR))
    duplicate = same_group & same_as_previous(keys.column(CLASS))
    if duplicate.any():
        keys, same_group = keys.filter(pa.array(~duplicate)), same_group[~duplicate]
    return keys, np.cumsum(~same_group) - 1


def pair_features(db, vq: ValidatedQuery, cands: pa.Table) -> FeatureSet:
    """Features of each distinct (ENTITY, ANCHOR_TIMESTAMP, CLASS) of ``cands``, ordered by
    ANCHOR_TIMESTAMP, ENTITY, CLASS, with ``group`` numbering the (ENTITY, ANCHOR_TIMESTAMP) groups
    and ``extra`` entity_code / class_code (+ 1-element n_entity_codes / n_class_codes)."""
    con: duckdb.DuckDBPyConnection = db.con
    src = event_source(vq)
    affinity = _affinity(src, vq)
    keys, group = sorted_keys(cands)
    n = keys.num_rows
    starts = np.flatnonzero(np.diff(group, prepend=-1)) if n else np.zeros(0, dtype=np.int64)
    with ExitStack() as stack:
        fk = pa.table({"pql_row": np.arange(n, dtype=np.int64), "gid": group, "c": keys.column(CLASS)})
        gk = pa.table({"gid": group[starts], "e": keys.column(ENTITY).take(starts),
                       "a": keys.column(ANCHOR).take(starts)})
        subs = {"fc": stack.enter_context(registered(con, fk, "fc"))}
        graw = stack.enter_context(registered(con, gk, "fg_in"))
        av = exp.Coalesce(this=qcol("a"), expressions=[ts_literal(FAR_FUTURE)])
        subs["fg"] = stack.enter_context(temp_table(con, _query([qcol("gid"), qcol("e"), qcol("a"), _as(av, "av")],
                                                                table_ref(graw)), "fg"))
        anchors = _query([qcol("a"), qcol("av")], table_ref(subs["fg"])).distinct(copy=False)
        subs["an"] = stack.enter_context(temp_table(con, anchors, "an"))
        subs["ev"] = stack.enter_context(temp_table(con, src.select(), "ev"))
        for name, step in _steps(src):
            subs[name] = stack.enter_context(temp_table(con, step(subs), name))
        ekeys_sql, ckeys_sql = _code_keys(src, vq)
        ekeys = fetch(con, ekeys_sql).column("k").combine_chunks()
        ckeys = fetch(con, ckeys_sql).column("k").combine_chunks()
        names = list(PAIR_FEATURES)
        X = np.full((n, len(names)), np.nan, dtype=np.float32)
        _scatter(con, _pair_select(subs, src.history), X)
        if affinity:
            totals = X[:, names.index("entity_events")]
            X = np.concatenate([X, affinity_features(con, src.dst_table, affinity, subs, keys, group, totals,
                                                     stack)], axis=1)
            names += [f"affinity.{c}" for c in affinity]
        if src.dst is not None:  # destination attributes at the anchor
            Xd, dnames = _destination(con, vq, src, subs, stack, n)
            X = np.concatenate([X, Xd], axis=1)
            names += dnames
    return FeatureSet(keys=keys, X=X, names=names, group=group.astype(np.int64),
                      extra={"entity_code": _positions(keys.column(ENTITY), ekeys),
                             "class_code": _positions(keys.column(CLASS), ckeys),
                             "n_entity_codes": np.array([len(ekeys)], dtype=np.int64),
                             "n_class_codes": np.array([len(ckeys)], dtype=np.int64)})


def _pair_select(t: dict, history: bool) -> exp.Expression:
    """Every pair feature of each candidate ``f`` (``pql_row``, FLOAT columns ``f0``, ``f1`` …, no NULLs)."""
    cols: list[exp.Expression] = [qcol("pql_row", "f")]
    for i, (name, (build, default)) in enumerate(PAIR_FEATURES.items()):
        e = exp.Coalesce(this=build(), expressions=[_float(default)])
        if not history:  # static: the events are the label; popularity without the entity's own
            e = _static_expr(name, e)
        cols.append(_as(_f(e), f"f{i}"))

    joins = (inner_join(table_ref(t["fg"], "q"), _eq(qcol("gid", "q"), qcol("gid", "f"))),
             left_join(table_ref(t["ph"], "ph"), and_all([_eq(qcol("gid", "ph"), qcol("gid", "f")),
                                                           _eq(qcol("c", "ph"), qcol("c", "f"))])),
             left_join(table_ref(t["pop"], "pop"), and_all([_eq(qcol("av", "pop"), qcol("av", "q")),
                                                             _eq(qcol("c", "pop"), qcol("c", "f"))])),
             left_join(table_ref(t["etot"], "ent"), _eq(qcol("gid", "ent"), qcol("gid", "f"))))
    return _query(cols, table_ref(t["fc"], "f"), joins=joins)


def _n_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(fetch(con, _query([_as(_count(), "n")], table_ref(table))).column("n")[0].as_py())


_STATIC_ZERO = {"pair_count", "pair_decay_count", "pair_times", "pair_count_7d", "pair_count_30d",
                "pair_count_90d", "entity_events", "entity_classes", "entity_events_30d"}


def _static_expr(name: str, e: exp.Expression) -> exp.Expression:
    """A static task's feature: no own history; popularity minus the entity's own events."""
    if name in _STATIC_ZERO:
        return _num(0)
    if name.startswith("class_pop") or name == "class_entities_all":
        if name == "class_entities_all":
            own: exp.Expression = exp.Case(ifs=[exp.If(this=exp.GT(this=qcol("n", "ph"), expression=_num(0)),
                                                       true=_num(1))], default=_num(0))
        else:
            own = _or0(_col("ph", "n"))()
        return exp.Greatest(this=exp.Sub(this=e, expression=own), expressions=[_num(0)], ignore_nulls=True)
    if name == "class_trend_30d":
        return exp.Literal.number("1.0")
    return _float(NAN)


def _scatter(con: duckdb.DuckDBPyConnection, statement: exp.Expression, X: np.ndarray) -> None:
    """Fill X from ``statement`` (columns pql_row, f0…; FLOAT without NULLs), one row block per batch."""
    try:
        reader = con.sql(render(statement)).to_arrow_reader(1 << 20)
    except duckdb.Error as e:
        raise PQLInternalError(f"internal error, please report: feature SQL failed: {e}") from None
    for batch in reader:
        rows = batch.column("pql_row").to_numpy()
        X[rows] = np.column_stack([batch.column(f"f{j}").to_numpy() for j in range(X.shape[1])])


def _destination(con: duckdb.DuckDBPyConnection, vq: ValidatedQuery, src: EventSource, subs: dict,
                 stack: ExitStack, n: int) -> tuple[np.ndarray, list[str]]:
    """Attributes of each candidate's destination row visible at its anchor, computed once per
    distinct (anchor, class), or once per class when nothing about the row depends on the anchor."""
    dst = src.dst_table
    r = roles(vq.graph, dst, exclusions(vq))
    per_anchor = bool(dst.time_column or dst.end_time_column or r.timestamps)
    by = [qcol("a", "q"), qcol("av", "q"), qcol("c", "f")] if per_anchor else [qcol("c", "f")]
    candidate_groups = (inner_join(table_ref(subs["fg"], "q"), _eq(qcol("gid", "q"), qcol("gid", "f"))),)
    distinct = _query(by, table_ref(subs["fc"], "f"), joins=candidate_groups).distinct(copy=False)
    joins: tuple[exp.Join, ...] = ()
    if not per_anchor:  # one row per class, at a NULL anchor (everything visible)
        static = exp.select(_as(exp.cast(exp.null(), "TIMESTAMP", copy=False), "a"),
                            _as(ts_literal(FAR_FUTURE), "av"), copy=False)
        joins = (exp.Join(this=static.subquery(copy=False)),)
    order = exp.Order(expressions=[exp.Ordered(this=qcol(c), nulls_first=False)
                                   for c in (("av", "c") if per_anchor else ("c",))])
    number = exp.Sub(this=exp.Window(this=exp.RowNumber(), order=order), expression=_num(1))
    keyed = stack.enter_context(temp_table(con, _query([_as(number, "pql_row"), exp.Star()],
                                                       distinct.subquery(copy=False), joins=joins), "dk"))
    visible = exp.LTE(this=qcol(dst.time_column, "r"), expression=qcol("av", "q")) if dst.time_column else None
    row = inner_join(table_ref(dst.name, "r"), and_all([_eq(qcol(dst.primary_key, "r"), qcol("c", "q")), visible]))
    block = row_block(con, vq.graph, dst, dst.name, (table_ref(keyed, "q"), [row]), None, exclusions(vq))
    Xd, names = fill(con, [block] if block.names else [], _n_rows(con, keyed))
    same = [_eq(qcol("av", "k"), qcol("av", "q"))] if per_anchor else []
    on = inner_join(table_ref(keyed, "k"), and_all([*same, _eq(qcol("c", "k"), qcol("c", "f"))]))
    index = fetch(con, _query([_as(qcol("pql_row", "f"), "i"), _as(qcol("pql_row", "k"), "j")],
                              table_ref(subs["fc"], "f"), joins=(*candidate_groups, on)))
    out = np.empty((n, len(names)), dtype=np.float32)
    out[index.column("i").to_numpy()] = Xd[index.column("j").to_numpy()]
    return out, names
