"""The entity's affinity to a candidate's categories (link prediction).

For each categorical column of the destination table (e.g. department, brand): the share of the
entity's events up to the anchor whose destination has the candidate's value of that column.
Values become integer codes once (dense ranks over the destination table); the per (group,
value) event counts come from one GROUPING SETS pass over the pair history, joined only to
destination rows visible at the anchor; each candidate then looks its count up in NumPy by
(group, code), so no wide join runs over the candidate rows.
"""

from __future__ import annotations

from contextlib import ExitStack

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from pql.compiler.sqlbuild import and_all, table_ref
from pql.graph import TableSchema

from .sql import fetch, qcol, registered

__all__ = ["affinity_features"]


def _c(name: str, table: str | None = None) -> exp.Column:
    """An engine column (``d.v0``, ``ph.gid`` ...), written unquoted."""
    return exp.column(name, table)


def _as(e: exp.Expression, name: str) -> exp.Alias:
    return exp.alias_(e, name, copy=False)


def _dst_codes(con: duckdb.DuckDBPyConnection, dst: TableSchema, columns: list[str]) -> pa.Table:
    """pk (sorted), time (if timed), and v{j}: the dense code of each column (NULL stays NULL)."""
    def code(c: str) -> exp.Expression:
        rank = exp.Window(this=exp.DenseRank(), order=exp.Order(expressions=[
            exp.Ordered(this=qcol(c, "d"), nulls_first=False)]))
        return exp.Case(ifs=[exp.If(this=exp.Is(this=qcol(c, "d"), expression=exp.Null()), true=exp.Null())],
                        default=exp.Sub(this=rank, expression=exp.Literal.number(1)))

    cols = [_as(qcol(dst.primary_key, "d"), "pk")]
    if dst.time_column:
        cols.append(_as(qcol(dst.time_column, "d"), "t"))
    cols += [_as(code(c), f"v{j}") for j, c in enumerate(columns)]
    q = exp.select(*cols, copy=False).from_(table_ref(dst.name, "d"), copy=False) \
        .where(exp.Not(this=exp.Is(this=qcol(dst.primary_key, "d"), expression=exp.Null())), copy=False) \
        .order_by(exp.Ordered(this=_c("pk"), nulls_first=False), copy=False)
    return fetch(con, q)


def _group_counts(dst: TableSchema, n_columns: int, subs: dict, codes: str) -> exp.Expression:
    """Event counts per (gid, v{j}) for each column j in one GROUPING SETS pass over the pair history
    ``ph``, joined to the destination codes visible at the group's anchor (``g{j}`` = 0 marks column j's rows)."""
    values = [_c(f"v{j}", "d") for j in range(n_columns)]
    cols = [_c("gid", "ph"), *values, *(_as(exp.Grouping(expressions=[_c(f"v{j}", "d")]), f"g{j}")
                                        for j in range(n_columns)),
            _as(exp.Sum(this=_c("n", "ph")), "n")]
    by_code = and_all([exp.EQ(this=_c("pk", "d"), expression=_c("c", "ph")),
                       exp.LTE(this=_c("t", "d"), expression=_c("av", "q")) if dst.time_column else None])
    sets = exp.GroupingSets(expressions=[exp.Tuple(expressions=[_c("gid", "ph"), _c(f"v{j}", "d")])
                                         for j in range(n_columns)])
    return exp.select(*cols, copy=False).from_(table_ref(subs["ph"], "ph"), copy=False) \
        .join(exp.Join(this=table_ref(subs["fg"], "q"), on=exp.EQ(this=_c("gid", "q"), expression=_c("gid", "ph"))),
              copy=False) \
        .join(exp.Join(this=table_ref(codes, "d"), on=by_code), copy=False).group_by(sets, copy=False)


def affinity_features(con: duckdb.DuckDBPyConnection, dst: TableSchema, columns: list[str], subs: dict,
                      keys: pa.Table, group: np.ndarray, totals: np.ndarray, stack: ExitStack) -> np.ndarray:
    """(n candidates x len(columns)) affinity shares; ``subs`` names the temp tables ``ph`` (gid, c,
    n) and ``fg`` (gid, av); ``totals`` is each candidate's entity event count."""
    n = keys.num_rows
    out = np.zeros((n, len(columns)), dtype=np.float32)
    if not columns or n == 0:
        return out
    codes = _dst_codes(con, dst, columns)
    dc = stack.enter_context(registered(con, codes, "dcodes"))
    agg = fetch(con, _group_counts(dst, len(columns), subs, dc))
    # each candidate's destination row: its codes, and whether it is visible at the candidate's anchor
    row = pc.index_in(keys.column("CLASS").cast(codes.column("pk").type, safe=False)
                      if keys.column("CLASS").type != codes.column("pk").type else keys.column("CLASS"),
                      value_set=codes.column("pk").combine_chunks())
    row = row.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
    ok = row >= 0
    if dst.time_column:
        t = codes.column("t").cast(pa.int64()).fill_null(np.iinfo(np.int64).max).to_numpy(zero_copy_only=False)
        anchor = keys.column("ANCHOR_TIMESTAMP").cast(pa.timestamp("us")).cast(pa.int64()) \
            .fill_null(np.iinfo(np.int64).max).to_numpy(zero_copy_only=False)
        ok &= t[np.maximum(row, 0)] <= anchor
    gids = agg.column("gid").to_numpy(zero_copy_only=False).astype(np.int64)
    counts = agg.column("n").to_numpy(zero_copy_only=False).astype(np.float64)
    n_groups = int(group.max()) + 1
    for j in range(len(columns)):
        mine = (agg.column(f"g{j}").to_numpy(zero_copy_only=False) == 0) & \
            agg.column(f"v{j}").is_valid().to_numpy(zero_copy_only=False)
        v = agg.column(f"v{j}").cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)[mine]
        cand = codes.column(f"v{j}").cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
        code = np.where(ok, cand[np.maximum(row, 0)], -1)
        found = _lookup(gids[mine], v, counts[mine], group.astype(np.int64), code, n_groups,
                        int(cand.max()) + 1 if len(cand) else 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, j] = np.where(totals > 0, found / totals, 0.0)
    return out


DENSE_LIMIT = 1 << 24  # cells of a dense (group x value) table


def _lookup(gids: np.ndarray, values: np.ndarray, counts: np.ndarray, group: np.ndarray, code: np.ndarray,
            n_groups: int, n_values: int) -> np.ndarray:
    """counts[(gid, value) == (group, code)] per candidate, 0 when absent or code < 0."""
    valid = code >= 0
    if n_values == 0 or len(gids) == 0:
        return np.zeros(len(code), dtype=np.float64)
    if n_groups * n_values <= DENSE_LIMIT:  # a dense table: one index per candidate
        table = np.zeros(n_groups * n_values, dtype=np.float64)
        keep = gids < n_groups
        table[gids[keep] * n_values + values[keep]] = counts[keep]
        return np.where(valid, table[group * n_values + np.maximum(code, 0)], 0.0)
    keys = gids * n_values + values
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    probe = group * n_values + np.maximum(code, 0)
    pos = np.clip(np.searchsorted(keys, probe), 0, len(keys) - 1)
    return np.where(valid & (keys[pos] == probe), counts[pos], 0.0)
