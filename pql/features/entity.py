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

from pql.graph import Graph
from pql.tasks import FeatureSet
from pql.validated import ValidatedQuery

from .blocks import Block, fill
from .columns import Exclusions, exclusions
from .rows import row_block
from .sql import FAR_FUTURE, FAR_PAST, fetch, registered, temp_table, tpl
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


@contextmanager
def pair_table(con: duckdb.DuckDBPyConnection, pairs: pa.Table) -> Iterator[tuple[str, np.ndarray, int]]:
    """A temp table of the distinct (entity, anchor) pairs, numbered ``pql_row`` in (anchor, entity)
    order, with the visibility bound ``av`` and the window starts ``a7`` … ``a365`` (a NULL static
    anchor sees everything: ``av`` in the far future, every window start in the far past); yields its name,
    the ``pql_row`` of each input row, and the number of distinct pairs."""
    starts = ", ".join(f"COALESCE(q.a - INTERVAL {w} DAY, CAST('{FAR_PAST}' AS TIMESTAMP)) AS a{w}" for w in WINDOWS)
    with ExitStack() as stack:
        src = stack.enter_context(registered(con, _as_pairs(pairs), "pairs_in"))
        body = tpl(f"SELECT (ROW_NUMBER() OVER (ORDER BY q.a NULLS FIRST, q.e) - 1) AS pql_row, q.e, q.a, "
                   f"COALESCE(q.a, CAST('{FAR_FUTURE}' AS TIMESTAMP)) AS av, {starts} "
                   f"FROM (SELECT DISTINCT __ent AS e, CAST(__anc AS TIMESTAMP) AS a FROM __src) AS q",
                   ent=ENTITY, anc=ANCHOR, src=src)
        name = stack.enter_context(temp_table(con, body, "pairs"))
        mapping = fetch(con, tpl("SELECT s.i, q.pql_row FROM __src AS s JOIN __fp AS q ON q.e = s.__ent "
                                 "AND q.a IS NOT DISTINCT FROM CAST(s.__anc AS TIMESTAMP)",
                                 src=src, fp=name, ent=ENTITY, anc=ANCHOR))
        index = np.empty(pairs.num_rows, dtype=np.int64)
        index[mapping.column("i").to_numpy()] = mapping.column("pql_row").to_numpy()
        n = int(fetch(con, tpl("SELECT COUNT(*) AS n FROM __fp", fp=name)).column("n")[0].as_py())
        yield name, index, n


def _own_source(graph: Graph, entity: str) -> tuple[str, dict]:
    table = graph.table(entity)
    vis = " AND r.__t <= q.av" if table.time_column else ""
    subs = {"pairs": "", "ent": entity, "pk": table.primary_key}
    if table.time_column:
        subs["t"] = table.time_column
    return f"__pairs AS q JOIN __ent AS r ON r.__pk = q.e{vis}", subs


def _parent_source(graph: Graph, entity: str, fkey: str, parent: str) -> tuple[str, dict]:
    et, pt = graph.table(entity), graph.table(parent)
    evis = " AND e0.__et <= q.av" if et.time_column else ""
    pvis = " AND r.__pt <= q.av" if pt.time_column else ""
    subs = {"ent": entity, "epk": et.primary_key, "fk": fkey, "par": parent, "ppk": pt.primary_key}
    if et.time_column:
        subs["et"] = et.time_column
    if pt.time_column:
        subs["pt"] = pt.time_column
    return (f"__pairs AS q JOIN __ent AS e0 ON e0.__epk = q.e{evis} JOIN __par AS r ON r.__ppk = e0.__fk{pvis}",
            subs)


def entity_blocks(con: duckdb.DuckDBPyConnection, graph: Graph, entity: str, pairs: str,
                  excluded: Exclusions, stack: ExitStack) -> list[Block]:
    """Own row, one-hop parents, then child aggregates (in graph order)."""
    blocks: list[Block] = []
    source, subs = _own_source(graph, entity)
    blocks.append(row_block(con, graph, graph.table(entity), entity, source, {**subs, "pairs": pairs}, excluded))
    for edge in graph.parents(entity):
        if edge.dst_table in excluded.tables:
            continue
        source, subs = _parent_source(graph, entity, edge.fkey, edge.dst_table)
        parallel = len(graph.edges_between(entity, edge.dst_table)) > 1
        prefix = f"{entity}.{edge.fkey}" if parallel else edge.dst_table
        blocks.append(row_block(con, graph, graph.table(edge.dst_table), prefix, source,
                                {**subs, "pairs": pairs}, excluded))
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
