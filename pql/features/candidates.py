"""Candidate classes per (ENTITY, ANCHOR_TIMESTAMP) for pair tasks, and their recall.

Link prediction: the union of
- **history**: destinations the entity had at or before the anchor;
- **popular**: the top ``num_popular`` destinations by events in the 30 days up to the anchor (all
  history for a static task);
- **co-purchase neighbours**: each entity's profile is its ``recent_items`` most recent distinct
  destinations of the ``profile_days`` up to the anchor; two destinations co-occur once per entity
  whose profile holds both; each destination keeps its ``neighbours_per_item`` strongest neighbours,
  and an entity gets the neighbours of its profile, up to ``num_neighbours`` not in its history,
  ranked by summed co-occurrence. Bounded: profiles cap the item-item pairs per entity.
Every candidate is a destination valid at the anchor (§7.5: its row exists, time <= anchor, end
time NULL or later). ``candidates="history"`` keeps only the history (§13). Multilabel tasks rank
the label vocabulary: every value of the target column seen at or before the anchor.
A static task's events are its label, so there the candidates are popularity (LP) or the
vocabulary (multilabel) only, unless ``candidates="history"`` asks for the known links.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Callable, Mapping

import duckdb
import pyarrow as pa
from sqlglot import exp

from pql.compiler.sqlbuild import and_all, existence, left_join, table_ref
from pql.validated import ValidatedQuery

from .entity import ANCHOR, ENTITY, _as_pairs
from .events import EventSource, event_source
from .filters import candidate_filter_sql, history_filter
from .sql import FAR_FUTURE, fetch, qcol, registered, temp_table, ts_literal
from .windows import _as, _cte, _count, _eq, _join, _not_null, _num, _query

__all__ = ["candidates", "candidate_recall", "DEFAULTS", "CLASS"]

CLASS = "CLASS"
DEFAULTS: dict[str, Any] = {
    "candidates": "all",
    "num_popular": 100,
    "num_neighbours": 100,
    "neighbours_per_item": 10,
    "recent_items": 10,
    "popular_days": 30,
    "profile_days": 30,
}


def _option(options: Any, name: str) -> Any:
    if options is not None:
        value = options.get(name) if hasattr(options, "get") else None
        if value is not None:
            return value
    return DEFAULTS[name]


def _valid(src: EventSource, column: exp.Expression, bound: exp.Expression) -> exp.Join | None:
    """A JOIN keeping destinations ``d`` valid at ``bound`` (§7.5), keyed by ``column``."""
    dst = src.dst_table
    if dst is None:
        return None
    alive = existence(qcol(dst.time_column, "d") if dst.time_column else None,
                      qcol(dst.end_time_column, "d") if dst.end_time_column else None, bound)
    return _join(table_ref(dst.name, "d"), _eq(qcol(dst.primary_key, "d"), column), alive)


def _visible(src: EventSource, bound: exp.Expression) -> exp.Expression:
    return exp.LTE(this=qcol("t", "h"), expression=bound) if src.time else exp.true()


def _recent(src: EventSource, days: int, bound: tuple[str, str] = ("av", "an")) -> exp.Expression:
    """Events of the ``days`` before the bound (all visible events when untimed)."""
    if not src.time:
        return exp.true()
    start = exp.Sub(this=qcol(*bound), expression=exp.Interval(this=exp.Literal.string(str(int(days))),
                                                               unit=exp.var("DAY")))
    return and_all([exp.LTE(this=qcol("t", "h"), expression=qcol(*bound)),
                    exp.GT(this=qcol("t", "h"), expression=start)])


def _top(partition: list[exp.Expression], score: exp.Expression, tie: exp.Expression, n: int) -> exp.Expression:
    """``ROW_NUMBER() OVER (PARTITION BY partition ORDER BY score DESC, tie) <= n`` (a QUALIFY step)."""
    order = exp.Order(expressions=[exp.Ordered(this=score, desc=True, nulls_first=False),
                                   exp.Ordered(this=tie, nulls_first=False)])
    return exp.LTE(this=exp.Window(this=exp.RowNumber(), partition_by=partition, order=order), expression=_num(n))


def _not_in_history(hist: str, gid: exp.Expression, c: exp.Expression) -> exp.Expression:
    """``NOT EXISTS (SELECT 1 FROM hist AS x WHERE x.gid = gid AND x.c = c)``."""
    return exp.Not(this=exp.Exists(this=_query([_num(1)], table_ref(hist, "x"), where=and_all([
        _eq(qcol("gid", "x"), gid), _eq(qcol("c", "x"), c)]))))


Step = Callable[[dict], exp.Expression]  # a temp table's SELECT from the names of the earlier ones


# Each step is a temp table over ``fg`` (gid, e, a, av: the distinct pairs), ``an`` (a, av: the
# anchors) and ``ev`` (k, c, t, m: the events); later steps read earlier ones by name (``t``).
def _steps(src: EventSource, options: Any, mode: str, cfpop: exp.Expression | None) -> list[tuple[str, Step]]:
    def first_seen(t: dict) -> exp.Expression:
        return _query([qcol("k"), qcol("c"), _as(exp.Min(this=qcol("t")), "tf")], table_ref(t["ev"]),
                      group=(qcol("k"), qcol("c")))

    def hist(t: dict) -> exp.Expression:
        on = _join(table_ref(t["fs"], "f"), _eq(qcol("k", "f"), qcol("e", "q")),
                   exp.LTE(this=qcol("tf", "f"), expression=qcol("av", "q")) if src.time else None)
        return _query([qcol("gid", "q"), qcol("c", "f")], table_ref(t["fg"], "q"), joins=(on,))

    steps: list[tuple[str, Step]] = [("fs", first_seen), ("hist", hist)]
    if src.dst is None:  # multilabel: the vocabulary
        if mode != "history":
            steps.append(("vocab", lambda t: _query(
                [qcol("av", "an"), qcol("c", "h")], table_ref(t["an"], "an"),
                joins=(_join(table_ref(t["ev"], "h"), _visible(src, qcol("av", "an"))),)).distinct(copy=False)))
        return steps
    if mode == "history":
        return steps
    n_pop = int(_option(options, "num_popular"))
    popular_days = _option(options, "popular_days")

    def pop(t: dict) -> exp.Expression:
        window = _recent(src, popular_days) if src.history else exp.true()
        joins = (_join(table_ref(t["ev"], "h"), window), _valid(src, qcol("c", "h"), qcol("av", "an")))
        q = _query([qcol("av", "an"), qcol("c", "h")], table_ref(t["an"], "an"), joins=tuple(j for j in joins if j),
                   where=cfpop, group=(qcol("av", "an"), qcol("c", "h")))
        return q.qualify(_top([qcol("av", "an")], exp.Sum(this=qcol("m", "h")), qcol("c", "h"), n_pop), copy=False)

    steps.append(("pop", pop))
    if not src.history:
        return steps
    L, M = int(_option(options, "recent_items")), int(_option(options, "neighbours_per_item"))
    K = int(_option(options, "num_neighbours"))
    profile_days = _option(options, "profile_days")

    def prof(t: dict) -> exp.Expression:  # every entity's L most recent distinct destinations, per anchor
        q = _query([qcol("av", "an"), qcol("k", "h"), qcol("c", "h")], table_ref(t["an"], "an"),
                   joins=(_join(table_ref(t["ev"], "h"), _recent(src, profile_days)),),
                   group=(qcol("av", "an"), qcol("k", "h"), qcol("c", "h")))
        latest = _top([qcol("av", "an"), qcol("k", "h")], exp.Max(this=qcol("t", "h")), qcol("c", "h"), L)
        return q.qualify(latest, copy=False)

    def nb(t: dict) -> exp.Expression:  # co-occurrences within a profile: each item's M strongest neighbours
        on = _join(table_ref(t["prof"], "y"), _eq(qcol("av", "y"), qcol("av", "x")),
                   _eq(qcol("k", "y"), qcol("k", "x")), exp.NEQ(this=qcol("c", "y"), expression=qcol("c", "x")))
        q = _query([qcol("av", "x"), _as(qcol("c", "x"), "i"), _as(qcol("c", "y"), "j"), _as(_count(), "w")],
                   table_ref(t["prof"], "x"), joins=(on,), group=(qcol("av", "x"), qcol("c", "x"), qcol("c", "y")))
        return q.qualify(_top([qcol("av", "x"), qcol("c", "x")], _count(), qcol("c", "y"), M), copy=False)

    def co(t: dict) -> exp.Expression:  # an entity's K strongest neighbours outside its history
        joins = (_join(table_ref(t["prof"], "s"), _eq(qcol("av", "s"), qcol("av", "q")),
                       _eq(qcol("k", "s"), qcol("e", "q"))),
                 _join(table_ref(t["nb"], "nb"), _eq(qcol("av", "nb"), qcol("av", "s")),
                       _eq(qcol("i", "nb"), qcol("c", "s"))))
        q = _query([qcol("gid", "q"), _as(qcol("j", "nb"), "c")], table_ref(t["fg"], "q"), joins=joins,
                   where=_not_in_history(t["hist"], qcol("gid", "q"), qcol("j", "nb")),
                   group=(qcol("gid", "q"), qcol("j", "nb")))
        return q.qualify(_top([qcol("gid", "q")], exp.Sum(this=qcol("w", "nb")), qcol("j", "nb"), K), copy=False)

    steps += [("prof", prof), ("nb", nb), ("co", co)]
    return steps


def _union(src: EventSource, mode: str, t: dict) -> exp.Expression:
    """The candidate (gid, c) rows, each once, before the validity test."""
    def history() -> exp.Select:
        return _query([qcol("gid"), qcol("c")], table_ref(t["hist"]))

    if src.dst is None:
        if mode == "history":
            return history()
        return _query([qcol("gid", "q"), qcol("c", "v")], table_ref(t["fg"], "q"),
                      joins=(_join(table_ref(t["vocab"], "v"), _eq(qcol("av", "v"), qcol("av", "q"))),))
    parts: list[exp.Expression] = [history()] if (src.history or mode == "history") else []
    if "pop" in t:
        parts.append(_query([qcol("gid", "q"), qcol("c", "p")], table_ref(t["fg"], "q"),
                            joins=(_join(table_ref(t["pop"], "p"), _eq(qcol("av", "p"), qcol("av", "q"))),),
                            where=_not_in_history(t["hist"], qcol("gid", "q"), qcol("c", "p")) if parts else None))
    if "co" in t:  # already without history; drop the popular ones
        popular = _query([_num(1)], table_ref(t["pop"], "p"), where=and_all([
            _eq(qcol("av", "p"), qcol("av", "q")), _eq(qcol("c", "p"), qcol("c", "co"))]))
        parts.append(_query([qcol("gid", "co"), qcol("c", "co")], table_ref(t["co"], "co"),
                            joins=(_join(table_ref(t["fg"], "q"), _eq(qcol("gid", "q"), qcol("gid", "co"))),),
                            where=exp.Not(this=exp.Exists(this=popular))))
    if not parts:
        return history().where(exp.false(), copy=False)
    out = parts[0]
    for part in parts[1:]:
        out = exp.union(out, part, distinct=False, copy=False)
    return out


def candidates(db, vq: ValidatedQuery, pairs: pa.Table, *, options: Mapping[str, Any] | None = None) -> pa.Table:
    """ENTITY, ANCHOR_TIMESTAMP, CLASS: the candidate classes of each distinct (entity, anchor) of
    ``pairs``, ordered by ANCHOR_TIMESTAMP, ENTITY, CLASS. ``options``: ``candidates`` ("all" or
    "history"), ``candidate_filter`` (a PQL condition on destination columns, link prediction) and
    the sizes in :data:`DEFAULTS`."""
    con: duckdb.DuckDBPyConnection = db.con
    src = event_source(vq)
    mode = _option(options, "candidates")
    flt = options.get("candidate_filter") if options is not None and hasattr(options, "get") else None
    cfpop = cf = None
    if flt is not None and src.dst is not None:  # checked (E608, types) before anything runs
        cfpop = candidate_filter_sql(vq.graph, src.dst, flt, exp.column("av", "an"))
        cf = candidate_filter_sql(vq.graph, src.dst, flt, exp.column("av", "q"))
    with ExitStack() as stack:
        t = {"fg": group_table(con, pairs, stack)}
        distinct = _query([qcol("a"), qcol("av")], table_ref(t["fg"])).distinct(copy=False)
        t["an"] = stack.enter_context(temp_table(con, distinct, "an"))
        t["ev"] = stack.enter_context(temp_table(con, src.select(), "ev"))
        for name, step in _steps(src, options, mode, cfpop):
            statement = step(t)
            if name == "hist" and mode == "history":
                statement = _filtered_history(src, t) or statement
            t[name] = stack.enter_context(temp_table(con, statement, name))
        joins = (_join(table_ref(t["fg"], "q"), _eq(qcol("gid", "q"), qcol("gid", "u"))),
                 _valid(src, qcol("c", "u"), qcol("av", "q")))
        out = _query([_as(qcol("e", "q"), ENTITY), _as(qcol("a", "q"), ANCHOR), _as(qcol("c", "u"), CLASS)],
                     _union(src, mode, t).subquery("u", copy=False), joins=tuple(j for j in joins if j), where=cf)
        return fetch(con, out.order_by(qcol("gid", "u"), qcol("c", "u"), copy=False))


def _filtered_history(src: EventSource, t: dict) -> exp.Expression | None:
    """H(u, p) through the target's inline filter (§13), for link prediction; None without one."""
    if src.dst is None or src.parent_fk is not None:
        return None
    found = history_filter(src.graph, src.table, src.filter, exp.column("av", "q"))
    if found is None:
        return None
    joins, predicate = found
    on = _join(table_ref(src.table, "r"), _eq(qcol(src.key, "r"), qcol("e", "q")),
               exp.LTE(this=qcol(src.time, "r"), expression=qcol("av", "q")) if src.time else None)
    select = _query([qcol("gid", "q"), _as(qcol(src.column, "r"), "c")], table_ref(t["fg"], "q"),
                    joins=(on, *joins), where=_not_null(qcol(src.column, "r"))).distinct(copy=False)
    return select.where(predicate, copy=False)


def group_table(con: duckdb.DuckDBPyConnection, pairs: pa.Table, stack: ExitStack) -> str:
    """A temp table of the distinct (entity, anchor) pairs: ``gid`` (0, 1, … in ANCHOR_TIMESTAMP,
    ENTITY order), ``e``, ``a`` and the visibility bound ``av`` (the far future for a NULL anchor)."""
    raw = stack.enter_context(registered(con, _as_pairs(pairs), "pairs_in"))
    inner = _query([_as(qcol(ENTITY), "e"), _as(exp.cast(qcol(ANCHOR), "TIMESTAMP", copy=False), "a")],
                   table_ref(raw)).distinct(copy=False)
    order = exp.Order(expressions=[exp.Ordered(this=qcol("a"), nulls_first=True),
                                   exp.Ordered(this=qcol("e"), nulls_first=False)])
    gid = exp.Sub(this=exp.Window(this=exp.RowNumber(), order=order), expression=_num(1))
    av = exp.Coalesce(this=qcol("a"), expressions=[ts_literal(FAR_FUTURE)])
    select = _query([_as(gid, "gid"), qcol("e"), qcol("a"), _as(av, "av")], inner.subquery(copy=False))
    return stack.enter_context(temp_table(con, select, "fg"))


def candidate_recall(cands: pa.Table, labels: pa.Table) -> float:
    """Share of the truth pairs (ENTITY, ANCHOR_TIMESTAMP, each value of the TARGET list) that
    ``cands`` (ENTITY, ANCHOR_TIMESTAMP, CLASS) contains; NaN without truth pairs."""
    con = duckdb.connect()
    try:
        con.register("c", cands.select([ENTITY, ANCHOR, CLASS]))
        con.register("l", labels.select([ENTITY, ANCHOR, "TARGET"]))
        label = _query([_as(qcol(ENTITY, "l"), "e"), _as(qcol(ANCHOR, "l"), "a"),
                        _as(exp.Explode(this=qcol("TARGET", "l")), "c")], table_ref("l", "l")).distinct(copy=False)
        known = _query([qcol(ENTITY), qcol(ANCHOR), qcol(CLASS)], table_ref("c")).distinct(copy=False)
        on = left_join(known.subquery("x", copy=False), and_all([
            _eq(qcol(ENTITY, "x"), qcol("e", "t")), exp.NullSafeEQ(this=qcol(ANCHOR, "x"), expression=qcol("a", "t")),
            _eq(qcol(CLASS, "x"), qcol("c", "t"))]))
        text = _query([_as(_count(), "n"), _as(exp.Count(this=qcol(CLASS, "x")), "hit")], _cte("t"), joins=(on,),
                      ctes=(("t", label),))
        row = fetch(con, text).to_pylist()[0]
    finally:
        con.close()
    return float(row["hit"]) / row["n"] if row["n"] else float("nan")

