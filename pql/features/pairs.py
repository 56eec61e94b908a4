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

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

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
from .sql import FAR_FUTURE, fetch, registered, render, temp_table, tpl

__all__ = ["pair_features", "PAIR_FEATURES", "MAX_AFFINITY", "HALF_LIFE_DAYS"]

HALF_LIFE_DAYS = 30
MAX_AFFINITY = 5  # categorical destination columns with an affinity feature
NAN = float("nan")
_AGE = "((EPOCH(q.av) - EPOCH(h.t)) / 86400.0)"
_DECAY = f"h.m * POW(0.5, {_AGE} / {HALF_LIFE_DAYS})"

# name -> (SQL over the final join's aliases, value when the SQL is NULL). ``ph`` pair history,
# ``pop`` popularity, ``ent`` entity totals, all precomputed as FLOAT. The names are part of the
# contract with the rankers.
PAIR_FEATURES: dict[str, tuple[str, float]] = {
    "pair_count": ("ph.n", 0.0),
    "pair_decay_count": ("ph.dec", 0.0),
    "pair_days_since_last": ("ph.dsl", NAN),
    "pair_days_since_first": ("ph.dsf", NAN),
    "pair_mean_gap": ("ph.gap", NAN),
    "pair_recency_ratio": ("ph.dsl / NULLIF(ph.gap, 0)", NAN),
    "pair_times": ("ph.nt", 0.0),
    "pair_count_7d": ("ph.n7", 0.0),
    "pair_count_30d": ("ph.n30", 0.0),
    "pair_count_90d": ("ph.n90", 0.0),
    "pair_share": ("COALESCE(ph.n, 0) / NULLIF(ent.n, 0)", NAN),
    "class_pop_7d": ("pop.p7", 0.0),
    "class_pop_30d": ("pop.p30", 0.0),
    "class_pop_90d": ("pop.p90", 0.0),
    "class_pop_prev_30d": ("pop.pp30", 0.0),
    "class_trend_30d": ("pop.trend", 1.0),
    "class_pop_decay": ("pop.dec", 0.0),
    "class_pop_all": ("pop.pall", 0.0),
    "class_entities_all": ("pop.users", 0.0),
    "entity_events": ("ent.n", 0.0),
    "entity_classes": ("ent.nc", 0.0),
    "entity_days_since_last": ("ent.dsl", NAN),
    "entity_events_30d": ("ent.n30", 0.0),
}


def _float(value: float) -> str:
    return "CAST('NaN' AS FLOAT)" if value != value else f"CAST({value!r} AS FLOAT)"


def _window_starts(bound: str) -> str:
    return ", ".join(f"{bound} - INTERVAL {d} DAY AS a{d}" for d in (7, 30, 60, 90))


def _steps(src: EventSource) -> list[tuple[str, str]]:
    """Temp tables over ``__fg`` (gid, e, a, av), ``__an`` (a, av) and ``__ev`` (k, c, t, m)."""
    visible = "AND h.t <= q.av" if src.time else ""
    ph = ("SELECT gid, c, CAST(n AS FLOAT) AS n, CAST(dec AS FLOAT) AS dec, CAST(nt AS FLOAT) AS nt, "
          "CAST(n7 AS FLOAT) AS n7, CAST(n30 AS FLOAT) AS n30, CAST(n90 AS FLOAT) AS n90, tl, "
          "CAST((EPOCH(av) - EPOCH(tl)) / 86400.0 AS FLOAT) AS dsl, CAST((EPOCH(av) - EPOCH(tf)) / 86400.0 AS FLOAT) "
          "AS dsf, CAST((EPOCH(tl) - EPOCH(tf)) / 86400.0 / NULLIF(nt - 1, 0) AS FLOAT) AS gap FROM ("
          "SELECT q.gid, h.c, ANY_VALUE(q.av) AS av, SUM(h.m) AS n, SUM(" + _DECAY + ") AS dec, MAX(h.t) AS tl, "
          "MIN(h.t) AS tf, COUNT(*) AS nt, SUM(CASE WHEN h.t > q.a7 THEN h.m ELSE 0 END) AS n7, "
          "SUM(CASE WHEN h.t > q.a30 THEN h.m ELSE 0 END) AS n30, "
          "SUM(CASE WHEN h.t > q.a90 THEN h.m ELSE 0 END) AS n90 "
          f"FROM (SELECT *, {_window_starts('av')} FROM __fg) AS q JOIN __ev AS h ON h.k = q.e {visible} "
          "GROUP BY q.gid, h.c)")
    bucket = "CASE WHEN h.t > q.a7 THEN 0 WHEN h.t > q.a30 THEN 1 WHEN h.t > q.a60 THEN 2 " \
             "WHEN h.t > q.a90 THEN 3 ELSE 4 END" if src.time else "4"
    pop_b = (f"SELECT q.av, h.c, {bucket} AS b, SUM(h.m) AS n, SUM({_DECAY}) AS dec "
             f"FROM (SELECT *, {_window_starts('av')} FROM __an) AS q JOIN __ev AS h ON TRUE {visible} "
             "GROUP BY q.av, h.c, b")
    first = "f.tf <= q.av" if src.time else "TRUE"
    users = ("SELECT q.av, f.c, COUNT(*) AS users FROM __an AS q JOIN (SELECT k, c, MIN(t) AS tf FROM __ev "
             f"GROUP BY k, c) AS f ON {first} GROUP BY q.av, f.c")
    pop = ("SELECT av, c, CAST(p7 AS FLOAT) AS p7, CAST(p30 AS FLOAT) AS p30, CAST(pp30 AS FLOAT) AS pp30, "
           "CAST(p90 AS FLOAT) AS p90, CAST(pall AS FLOAT) AS pall, CAST(dec AS FLOAT) AS dec, "
           "CAST(users AS FLOAT) AS users, CAST((p30 + 1.0) / (pp30 + 1.0) AS FLOAT) AS trend FROM ("
           "SELECT p.av, p.c, SUM(CASE WHEN p.b <= 0 THEN p.n ELSE 0 END) AS p7, "
           "SUM(CASE WHEN p.b <= 1 THEN p.n ELSE 0 END) AS p30, SUM(CASE WHEN p.b = 2 THEN p.n ELSE 0 END) AS pp30, "
           "SUM(CASE WHEN p.b <= 3 THEN p.n ELSE 0 END) AS p90, SUM(p.n) AS pall, SUM(p.dec) AS dec, "
           "ANY_VALUE(u.users) AS users FROM __popb AS p LEFT JOIN __users AS u ON u.av = p.av AND u.c = p.c "
           "GROUP BY p.av, p.c)")
    ent = ("SELECT p.gid, CAST(SUM(p.n) AS FLOAT) AS n, CAST(COUNT(*) AS FLOAT) AS nc, CAST(SUM(p.n30) AS FLOAT) "
           "AS n30, CAST((EPOCH(ANY_VALUE(q.av)) - EPOCH(MAX(p.tl))) / 86400.0 AS FLOAT) AS dsl "
           "FROM __ph AS p JOIN __fg AS q ON q.gid = p.gid GROUP BY p.gid")
    return [("ph", ph), ("popb", pop_b), ("users", users), ("pop", pop), ("etot", ent)]


def _code_keys(src: EventSource, vq: ValidatedQuery) -> tuple[exp.Expression, exp.Expression]:
    """The sorted distinct keys whose positions are the codes: entities (the whole entity table) and
    classes (the destination table's keys, or every label value)."""
    ekeys = tpl("SELECT DISTINCT __epk AS k FROM __etab WHERE __epk IS NOT NULL ORDER BY k",
                etab=vq.entity_table, epk=vq.entity_pk)
    if src.dst is not None:
        ckeys = tpl("SELECT DISTINCT __dpk AS k FROM __dtab WHERE __dpk IS NOT NULL ORDER BY k",
                    dtab=src.dst, dpk=src.dst_table.primary_key)
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
        subs["fg"] = stack.enter_context(temp_table(con, tpl(
            f"SELECT gid, e, a, COALESCE(a, CAST('{FAR_FUTURE}' AS TIMESTAMP)) AS av FROM __g", g=graw), "fg"))
        subs["an"] = stack.enter_context(temp_table(con, tpl("SELECT DISTINCT a, av FROM __fg", **subs), "an"))
        subs["ev"] = stack.enter_context(temp_table(con, src.select(), "ev"))
        for name, text in _steps(src):
            subs[name] = stack.enter_context(temp_table(con, tpl(text, **subs), name))
        ekeys_sql, ckeys_sql = _code_keys(src, vq)
        ekeys = fetch(con, ekeys_sql).column("k").combine_chunks()
        ckeys = fetch(con, ckeys_sql).column("k").combine_chunks()
        names = list(PAIR_FEATURES)
        exprs = [f"COALESCE({sql}, {_float(d)})" for sql, d in PAIR_FEATURES.values()]
        if not src.history:  # static: the events are the label; popularity without the entity's own
            exprs = [_static_expr(nm, e) for nm, e in zip(names, exprs)]
        select = ", ".join(f"CAST({e} AS FLOAT) AS f{i}" for i, e in enumerate(exprs))
        text = (f"SELECT f.pql_row, {select} "
                "FROM __fc AS f JOIN __fg AS q ON q.gid = f.gid LEFT JOIN __ph AS ph ON ph.gid = f.gid AND ph.c = f.c "
                "LEFT JOIN __pop AS pop ON pop.av = q.av AND pop.c = f.c LEFT JOIN __etot AS ent ON ent.gid = f.gid")
        X = np.full((n, len(names)), np.nan, dtype=np.float32)
        _scatter(con, tpl(text, **subs), X)
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


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(fetch(con, tpl("SELECT COUNT(*) AS n FROM __t", t=table)).column("n")[0].as_py())


_STATIC_ZERO = {"pair_count", "pair_decay_count", "pair_times", "pair_count_7d", "pair_count_30d",
                "pair_count_90d", "entity_events", "entity_classes", "entity_events_30d"}


def _static_expr(name: str, expr: str) -> str:
    """A static task's feature: no own history; popularity minus the entity's own events."""
    if name in _STATIC_ZERO:
        return "0"
    if name.startswith("class_pop") or name == "class_entities_all":
        own = "COALESCE(ph.n, 0)" if name != "class_entities_all" else "CASE WHEN ph.n > 0 THEN 1 ELSE 0 END"
        return f"GREATEST({expr} - {own}, 0)"
    if name == "class_trend_30d":
        return "1.0"
    return "CAST('NaN' AS FLOAT)"


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
    by = "q.a, q.av, f.c" if per_anchor else "f.c"
    keyed = stack.enter_context(temp_table(con, tpl(
        f"SELECT ROW_NUMBER() OVER (ORDER BY {'av, c' if per_anchor else 'c'}) - 1 AS pql_row, * FROM "
        f"(SELECT DISTINCT {by} FROM __fc AS f JOIN __fg AS q ON q.gid = f.gid)"
        + ("" if per_anchor else f", (SELECT CAST(NULL AS TIMESTAMP) AS a, CAST('{FAR_FUTURE}' AS TIMESTAMP) AS av)"),
        **subs), "dk"))
    vis = " AND r.__dt <= q.av" if dst.time_column else ""
    bsubs = {"dk": keyed, "dtab": dst.name, "dpk": dst.primary_key}
    if dst.time_column:
        bsubs["dt"] = dst.time_column
    block = row_block(con, vq.graph, dst, dst.name, f"__dk AS q JOIN __dtab AS r ON r.__dpk = q.c{vis}", bsubs,
                      exclusions(vq))
    Xd, names = fill(con, [block] if block.names else [], _count(con, keyed))
    on = "k.av = q.av AND k.c = f.c" if per_anchor else "k.c = f.c"
    index = fetch(con, tpl(f"SELECT f.pql_row AS i, k.pql_row AS j FROM __fc AS f JOIN __fg AS q ON q.gid = f.gid "
                           f"JOIN __dk AS k ON {on}", dk=keyed, **subs))
    out = np.empty((n, len(names)), dtype=np.float32)
    out[index.column("i").to_numpy()] = Xd[index.column("j").to_numpy()]
    return out, names
