"""Entity features for node tasks: one row per (ENTITY, ANCHOR_TIMESTAMP), time-correct (§7.5).

Generated from the graph: the entity's own row, each one-hop parent (dimension) row, and
aggregates over windows of every child table that points at the entity (``windows``). All pairs
are computed together, one pass per table; duplicated pairs are computed once.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Iterator

import duckdb
import numpy as np
import pyarrow as pa
from sqlglot import exp

from pql.compiler.sqlbuild import and_all, table_ref
from pql.graph import Graph, TableSchema
from pql.tasks import FeatureSet
from pql.validated import ValidatedQuery

from .blocks import ROW, Block, fill
from .columns import Exclusions, exclusions
from .rows import RowSource, row_block
from .sql import FAR_FUTURE, FAR_PAST, fetch, ident, qcol, registered, temp_table, ts_literal
from .windows import WINDOWS, child_blocks

__all__ = ["entity_features", "pair_table", "entity_blocks", "ENTITY", "ANCHOR"]

ENTITY = "ENTITY"
ANCHOR = "ANCHOR_TIMESTAMP"


def _as_pairs(pairs: pa.Table) -> pa.Table:
    """ENTITY and ANCHOR_TIMESTAMP (a TIMESTAMP, NULL for static anchors) plus the input row index."""
    anchor = pairs.column(ANCHOR)
    if not pa.types.is_timestamp(anchor.type):
        anchor = anchor.cast(pa.timestamp("us"))
    return pa.table({ENTITY: pairs.column(ENTITY), ANCHOR: anchor,
                     "i": pa.array(np.arange(pairs.num_rows, dtype=np.int64))})


def _c(name: str, table: str | None = None) -> exp.Column:
    """An engine column (``q.a``, ``s.i`` ...), written unquoted."""
    return exp.column(name, table)


def _as(e: exp.Expression, name: str) -> exp.Alias:
    return exp.alias_(e, name, copy=False)


def _join(source: exp.Expression, on: exp.Expression) -> exp.Join:
    return exp.Join(this=source, on=on)


def _pairs_select(src: str) -> exp.Select:
    """The distinct (e, a) of the registered input, numbered ``pql_row`` in (a NULLS FIRST, e) order,
    with the visibility bound ``av`` and the window starts ``a7`` ... ``a365``."""
    distinct = exp.select(_as(exp.Column(this=ident(ENTITY)), "e"),
                          _as(exp.cast(exp.Column(this=ident(ANCHOR)), "TIMESTAMP", copy=False), "a"), copy=False) \
        .from_(exp.Table(this=ident(src)), copy=False).distinct(copy=False)
    order = exp.Order(expressions=[exp.Ordered(this=_c("a", "q"), nulls_first=True),
                                   exp.Ordered(this=_c("e", "q"), nulls_first=False)])
    row = exp.Paren(this=exp.Sub(this=exp.Window(this=exp.RowNumber(), order=order), expression=exp.Literal.number(1)))
    cols = [_as(row, ROW), _c("e", "q"), _c("a", "q"),
            _as(exp.Coalesce(this=_c("a", "q"), expressions=[ts_literal(FAR_FUTURE)]), "av")]
    cols += [_as(exp.Coalesce(this=exp.Sub(this=_c("a", "q"), expression=exp.Interval(
        this=exp.Literal.string(str(w)), unit=exp.var("DAY"))), expressions=[ts_literal(FAR_PAST)]), f"a{w}")
        for w in WINDOWS]
    return exp.select(*cols, copy=False).from_(distinct.subquery("q", copy=False), copy=False)


@contextmanager
def pair_table(con: duckdb.DuckDBPyConnection, pairs: pa.Table) -> Iterator[tuple[str, np.ndarray, int]]:
    """A temp table of the distinct (entity, anchor) pairs, numbered ``pql_row`` in (anchor, entity)
    order, with the visibility bound ``av`` and the window starts ``a7`` … ``a365`` (a NULL static
    anchor sees everything: ``av`` in the far future, every window start in the far past); yields its name,
    the ``pql_row`` of each input row, and the number of distinct pairs."""
    with ExitStack() as stack:
        src = stack.enter_context(registered(con, _as_pairs(pairs), "pairs_in"))
        name = stack.enter_context(temp_table(con, _pairs_select(src), "pairs"))
        same_anchor = exp.NullSafeEQ(this=_c("a", "q"),
                                     expression=exp.cast(qcol(ANCHOR, "s"), "TIMESTAMP", copy=False))
        on = and_all([exp.EQ(this=_c("e", "q"), expression=qcol(ENTITY, "s")), same_anchor])
        mapping = fetch(con, exp.select(_c("i", "s"), _c(ROW, "q"), copy=False)
                        .from_(table_ref(src, "s"), copy=False).join(_join(table_ref(name, "q"), on), copy=False))
        index = np.empty(pairs.num_rows, dtype=np.int64)
        index[mapping.column("i").to_numpy()] = mapping.column("pql_row").to_numpy()
        count = exp.select(_as(exp.Count(this=exp.Star()), "n"), copy=False).from_(exp.Table(this=ident(name)),
                                                                                  copy=False)
        n = int(fetch(con, count).column("n")[0].as_py())
        yield name, index, n


def _visible(table: TableSchema, alias: str) -> exp.Expression | None:
    """``alias.time <= q.av`` for a timed table (untimed tables are static)."""
    if table.time_column is None:
        return None
    return exp.LTE(this=qcol(table.time_column, alias), expression=_c("av", "q"))


def _own_source(graph: Graph, entity: str, pairs: str) -> RowSource:
    """The pairs ``q`` joined to the entity's own row ``r`` visible at the anchor."""
    table = graph.table(entity)
    on = and_all([exp.EQ(this=qcol(table.primary_key, "r"), expression=_c("e", "q")), _visible(table, "r")])
    return table_ref(pairs, "q"), [_join(table_ref(entity, "r"), on)]


def _parent_source(graph: Graph, entity: str, fkey: str, parent: str, pairs: str) -> RowSource:
    """The pairs ``q`` joined to the entity row ``e0`` and its parent row ``r``, both visible at the anchor."""
    et, pt = graph.table(entity), graph.table(parent)
    own = and_all([exp.EQ(this=qcol(et.primary_key, "e0"), expression=_c("e", "q")), _visible(et, "e0")])
    par = and_all([exp.EQ(this=qcol(pt.primary_key, "r"), expression=qcol(fkey, "e0")), _visible(pt, "r")])
    return table_ref(pairs, "q"), [_join(table_ref(entity, "e0"), own), _join(table_ref(parent, "r"), par)]


def entity_blocks(con: duckdb.DuckDBPyConnection, graph: Graph, entity: str, pairs: str,
                  excluded: Exclusions, stack: ExitStack) -> list[Block]:
    """Own row, one-hop parents, then child aggregates (in graph order)."""
    blocks: list[Block] = []
    blocks.append(row_block(con, graph, graph.table(entity), entity, _own_source(graph, entity, pairs), None,
                            excluded))
    for edge in graph.parents(entity):
        if edge.dst_table in excluded.tables:
            continue
        source = _parent_source(graph, entity, edge.fkey, edge.dst_table, pairs)
        parallel = len(graph.edges_between(entity, edge.dst_table)) > 1
        prefix = f"{entity}.{edge.fkey}" if parallel else edge.dst_table
        blocks.append(row_block(con, graph, graph.table(edge.dst_table), prefix, source, None, excluded))
    blocks += child_blocks(con, graph, entity, pairs, excluded, stack)
    return [b for b in blocks if b.names]


def entity_features(db, vq: ValidatedQuery, pairs: pa.Table) -> FeatureSet:
    """Features of each (ENTITY, ANCHOR_TIMESTAMP) row of ``pairs`` (order kept), reading only rows
    visible at the row's anchor (§7.5); a NULL anchor (static task) sees everything. ``y`` is None."""
    con = db.con
    keys = pairs.select([ENTITY, ANCHOR])
    with ExitStack() as stack:
        name, index, n = stack.enter_context(pair_table(con, pairs))
        blocks = entity_blocks(con, vq.graph, vq.entity_table, name, exclusions(vq), stack)
        if len(index) == n:  # distinct pairs: write each straight to its input row
            inverse = np.empty(n, dtype=np.int64)
            inverse[index] = np.arange(n)
            X, names = fill(con, blocks, n, row_map=inverse)
        else:  # duplicated pairs: compute once, then copy out
            X, names = fill(con, blocks, n)
            X = np.ascontiguousarray(X[index])
    return FeatureSet(keys=keys, X=X, names=names)
