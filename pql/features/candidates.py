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
from typing import Any, Mapping

import duckdb
import pyarrow as pa
from sqlglot import exp

from pql.validated import ValidatedQuery

from .entity import ANCHOR, ENTITY, _as_pairs
from .events import EventSource, event_source
from .filters import candidate_filter_sql, history_filter
from .sql import FAR_FUTURE, fetch, registered, temp_table, tpl

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


def _valid(src: EventSource, column: str, bound: str) -> tuple[str, dict]:
    """A JOIN keeping destinations valid at ``bound`` (template text, placeholders)."""
    dst = src.dst_table
    if dst is None:
        return "", {}
    cond = [f"d.__dpk = {column}"]
    subs: dict = {"dst": dst.name, "dpk": dst.primary_key}
    if dst.time_column:
        cond.append(f"d.__dt <= {bound}")
        subs["dt"] = dst.time_column
    if dst.end_time_column:
        cond.append(f"(d.__dend IS NULL OR d.__dend > {bound})")
        subs["dend"] = dst.end_time_column
    return f"JOIN __dst AS d ON {' AND '.join(cond)}", subs


def _visible(src: EventSource, bound: str) -> str:
    return f"h.t <= {bound}" if src.time else "TRUE"


def _recent(src: EventSource, days: int, bound: str = "an.av") -> str:
    """Events of the ``days`` before the bound (all visible events when untimed)."""
    if not src.time:
        return "TRUE"
    return f"h.t <= {bound} AND h.t > {bound} - INTERVAL {int(days)} DAY"


# Each step is a temp table over ``__fg`` (gid, e, a, av: the distinct pairs), ``__an`` (a, av: the
# anchors) and ``__ev`` (k, c, t, m: the events); later steps read earlier ones by name.
def _steps(src: EventSource, options: Any, mode: str, filtered: bool) -> list[tuple[str, str]]:
    steps = [("fs", "SELECT k, c, MIN(t) AS tf FROM __ev GROUP BY k, c"),
             ("hist", "SELECT q.gid, f.c FROM __fg AS q JOIN __fs AS f ON f.k = q.e"
                      + (" AND f.tf <= q.av" if src.time else ""))]
    if src.dst is None:  # multilabel: the vocabulary
        if mode != "history":
            steps.append(("vocab", "SELECT DISTINCT an.av, h.c FROM __an AS an JOIN __ev AS h ON "
                                   + _visible(src, "an.av")))
        return steps
    if mode == "history":
        return steps
    n_pop = int(_option(options, "num_popular"))
    window = _recent(src, _option(options, "popular_days")) if src.history else "TRUE"
    where = "WHERE __cfpop " if filtered else ""
    valid = _valid(src, "h.c", "an.av")[0]
    steps.append(("pop", f"SELECT an.av, h.c FROM __an AS an JOIN __ev AS h ON {window} {valid} "
                         f"{where}GROUP BY an.av, h.c QUALIFY ROW_NUMBER() OVER (PARTITION BY an.av "
                         f"ORDER BY SUM(h.m) DESC, h.c) <= {n_pop}"))
    if not src.history:
        return steps
    L, M = int(_option(options, "recent_items")), int(_option(options, "neighbours_per_item"))
    K = int(_option(options, "num_neighbours"))
    steps += [
        # every entity's L most recent distinct destinations in the profile window, per anchor
        ("prof", f"SELECT an.av, h.k, h.c FROM __an AS an JOIN __ev AS h ON "
                 f"{_recent(src, _option(options, 'profile_days'))} GROUP BY an.av, h.k, h.c "
                 f"QUALIFY ROW_NUMBER() OVER (PARTITION BY an.av, h.k ORDER BY MAX(h.t) DESC, h.c) <= {L}"),
        ("nb", "SELECT x.av, x.c AS i, y.c AS j, COUNT(*) AS w FROM __prof AS x JOIN __prof AS y "
               "ON y.av = x.av AND y.k = x.k AND y.c <> x.c GROUP BY x.av, x.c, y.c "
               f"QUALIFY ROW_NUMBER() OVER (PARTITION BY x.av, x.c ORDER BY COUNT(*) DESC, y.c) <= {M}"),
        ("co", "SELECT q.gid, nb.j AS c FROM __fg AS q JOIN __prof AS s ON s.av = q.av AND s.k = q.e "
               "JOIN __nb AS nb ON nb.av = s.av AND nb.i = s.c "
               "WHERE NOT EXISTS (SELECT 1 FROM __hist AS x WHERE x.gid = q.gid AND x.c = nb.j) "
               "GROUP BY q.gid, nb.j "
               f"QUALIFY ROW_NUMBER() OVER (PARTITION BY q.gid ORDER BY SUM(nb.w) DESC, nb.j) <= {K}"),
    ]
    return steps


def _union(src: EventSource, mode: str, steps: list[str]) -> str:
    """The candidate (gid, c) rows, each once, before the validity test."""
    if src.dst is None:
        if mode == "history":
            return "SELECT gid, c FROM __hist"
        return "SELECT q.gid, v.c FROM __fg AS q JOIN __vocab AS v ON v.av = q.av"
    parts = ["SELECT gid, c FROM __hist"] if (src.history or mode == "history") else []
    if "pop" in steps:
        pop = "SELECT q.gid, p.c FROM __fg AS q JOIN __pop AS p ON p.av = q.av"
        if parts:
            pop += " WHERE NOT EXISTS (SELECT 1 FROM __hist AS x WHERE x.gid = q.gid AND x.c = p.c)"
        parts.append(pop)
    if "co" in steps:  # already without history; drop the popular ones
        parts.append("SELECT co.gid, co.c FROM __co AS co JOIN __fg AS q ON q.gid = co.gid WHERE NOT EXISTS "
                     "(SELECT 1 FROM __pop AS p WHERE p.av = q.av AND p.c = co.c)")
    return " UNION ALL ".join(parts) if parts else "SELECT gid, c FROM __hist WHERE FALSE"


def candidates(db, vq: ValidatedQuery, pairs: pa.Table, *, options: Mapping[str, Any] | None = None) -> pa.Table:
    """ENTITY, ANCHOR_TIMESTAMP, CLASS: the candidate classes of each distinct (entity, anchor) of
    ``pairs``, ordered by ANCHOR_TIMESTAMP, ENTITY, CLASS. ``options``: ``candidates`` ("all" or
    "history"), ``candidate_filter`` (a PQL condition on destination columns, link prediction) and
    the sizes in :data:`DEFAULTS`."""
    con: duckdb.DuckDBPyConnection = db.con
    src = event_source(vq)
    mode = _option(options, "candidates")
    flt = options.get("candidate_filter") if options is not None and hasattr(options, "get") else None
    filters: dict = {}
    if flt is not None and src.dst is not None:  # checked (E608, types) before anything runs
        filters = {"cfpop": candidate_filter_sql(vq.graph, src.dst, flt, exp.column("av", "an")),
                   "cf": candidate_filter_sql(vq.graph, src.dst, flt, exp.column("av", "q"))}
    with ExitStack() as stack:
        subs = {"fg": group_table(con, pairs, stack)}
        subs["an"] = stack.enter_context(temp_table(con, tpl("SELECT DISTINCT a, av FROM __fg", **subs), "an"))
        subs["ev"] = stack.enter_context(temp_table(con, src.select(), "ev"))
        steps = _steps(src, options, mode, bool(filters))
        for name, text in steps:
            statement = tpl(text, **subs, **_valid(src, "h.c", "an.av")[1], **filters)
            if name == "hist" and mode == "history":
                statement = _filtered_history(src, subs) or statement
            subs[name] = stack.enter_context(temp_table(con, statement, name))
        valid, vsubs = _valid(src, "u.c", "q.av")
        where = "WHERE __cf " if filters else ""
        text = (f"SELECT q.e AS __ent, q.a AS __anc, u.c AS __cls FROM ({_union(src, mode, [n for n, _ in steps])}) "
                f"AS u JOIN __fg AS q ON q.gid = u.gid {valid} {where}ORDER BY u.gid, u.c")
        return fetch(con, tpl(text, **subs, **vsubs, **filters, ent=ENTITY, anc=ANCHOR, cls=CLASS))


def _filtered_history(src: EventSource, subs: dict) -> exp.Expression | None:
    """H(u, p) through the target's inline filter (§13), for link prediction; None without one."""
    if src.dst is None or src.parent_fk is not None:
        return None
    found = history_filter(src.graph, src.table, src.filter, exp.column("av", "q"))
    if found is None:
        return None
    joins, predicate = found
    visible = " AND r.__time <= q.av" if src.time else ""
    select = tpl(f"SELECT DISTINCT q.gid, r.__col AS c FROM __fg AS q JOIN __tbl AS r ON r.__key = q.e{visible} "
                 "WHERE r.__col IS NOT NULL", fg=subs["fg"], tbl=src.table, col=src.column, key=src.key,
                 **({"time": src.time} if src.time else {}))
    for join in joins:
        select = select.join(join)
    return select.where(predicate)


def group_table(con: duckdb.DuckDBPyConnection, pairs: pa.Table, stack: ExitStack) -> str:
    """A temp table of the distinct (entity, anchor) pairs: ``gid`` (0, 1, … in ANCHOR_TIMESTAMP,
    ENTITY order), ``e``, ``a`` and the visibility bound ``av`` (the far future for a NULL anchor)."""
    raw = stack.enter_context(registered(con, _as_pairs(pairs), "pairs_in"))
    return stack.enter_context(temp_table(con, tpl(
        "SELECT ROW_NUMBER() OVER (ORDER BY a NULLS FIRST, e) - 1 AS gid, e, a, "
        f"COALESCE(a, CAST('{FAR_FUTURE}' AS TIMESTAMP)) AS av FROM "
        "(SELECT DISTINCT __ent AS e, CAST(__anc AS TIMESTAMP) AS a FROM __src)",
        ent=ENTITY, anc=ANCHOR, src=raw), "fg"))


def candidate_recall(cands: pa.Table, labels: pa.Table) -> float:
    """Share of the truth pairs (ENTITY, ANCHOR_TIMESTAMP, each value of the TARGET list) that
    ``cands`` (ENTITY, ANCHOR_TIMESTAMP, CLASS) contains; NaN without truth pairs."""
    con = duckdb.connect()
    try:
        con.register("c", cands.select([ENTITY, ANCHOR, CLASS]))
        con.register("l", labels.select([ENTITY, ANCHOR, "TARGET"]))
        text = tpl("WITH t AS (SELECT DISTINCT l.__ent AS e, l.__anc AS a, UNNEST(l.TARGET) AS c FROM l) "
                   "SELECT COUNT(*) AS n, COUNT(x.__cls) AS hit FROM t LEFT JOIN (SELECT DISTINCT __ent, __anc, "
                   "__cls FROM c) AS x ON x.__ent = t.e AND x.__anc IS NOT DISTINCT FROM t.a AND x.__cls = t.c",
                   ent=ENTITY, anc=ANCHOR, cls=CLASS)
        row = fetch(con, text).to_pylist()[0]
    finally:
        con.close()
    return float(row["hit"]) / row["n"] if row["n"] else float("nan")

