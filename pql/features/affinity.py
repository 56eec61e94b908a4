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

from pql.graph import TableSchema

from .sql import fetch, registered, tpl

__all__ = ["affinity_features"]


def _dst_codes(con: duckdb.DuckDBPyConnection, dst: TableSchema, columns: list[str]) -> pa.Table:
    """pk (sorted), time (if timed), and v{j}: the dense code of each column (NULL stays NULL)."""
    subs = {"dtab": dst.name, "dpk": dst.primary_key, **{f"ac{j}": c for j, c in enumerate(columns)}}
    codes = ", ".join(f"CASE WHEN d.__ac{j} IS NULL THEN NULL ELSE DENSE_RANK() OVER (ORDER BY d.__ac{j}) - 1 END "
                      f"AS v{j}" for j in range(len(columns)))
    time = ""
    if dst.time_column:
        subs["dt"] = dst.time_column
        time = "d.__dt AS t, "
    return fetch(con, tpl(f"SELECT d.__dpk AS pk, {time}{codes} FROM __dtab AS d WHERE d.__dpk IS NOT NULL "
                          "ORDER BY pk", **subs))


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
    visible = " AND d.t <= q.av" if dst.time_column else ""
    sets = ", ".join(f"(ph.gid, d.v{j})" for j in range(len(columns)))
    flags = ", ".join(f"GROUPING(d.v{j}) AS g{j}" for j in range(len(columns)))
    values = ", ".join(f"d.v{j}" for j in range(len(columns)))
    agg = fetch(con, tpl(f"SELECT ph.gid, {values}, {flags}, SUM(ph.n) AS n FROM __ph AS ph JOIN __fg AS q "
                         f"ON q.gid = ph.gid JOIN __dc AS d ON d.pk = ph.c{visible} GROUP BY GROUPING SETS ({sets})",
                         dc=dc, ph=subs["ph"], fg=subs["fg"]))
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
