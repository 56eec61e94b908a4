"""Label rows -> feature sets with labels: the bridge between the compiler's tables and the rankers.

Node tasks get one feature row per (ENTITY, ANCHOR_TIMESTAMP) from ``pql.features.entity_features``;
pair tasks get candidates and pair features from ``pql.features.candidates`` / ``pair_features``.
Here ``y`` is filled from TARGET and every row learns its SPLIT. Forecasting adds a
``forecast_horizon`` feature: a row (entity, a, h) has the features at a and the TARGET at
a + h·L·U (h = 0 … n−1), so one model forecasts every horizon from features at one anchor (§10.6).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pql.ast import Forecast, Rank, TaskType
from pql.compiler.timeunits import add_units
from pql.tasks import FeatureSet, TaskInfo
from pql.validated import ValidatedQuery

from .common import KEYS, match_rows

__all__ = ["task_info", "Labelled", "node_rows", "pair_rows", "sample_training_candidates", "forecast_rows",
           "forecast_n", "HORIZON", "split_of", "fill_node_y", "candidate_options", "forecast_prediction_rows"]

HORIZON = "forecast_horizon"


def forecast_n(vq: ValidatedQuery) -> int | None:
    p = vq.query.problem
    return p.n if isinstance(p, Forecast) else None


def task_info(vq: ValidatedQuery, table: pa.Table, seed: int) -> TaskInfo:
    """The task a ranker sees; multiclass classes are the sorted distinct TARGET values of ``table``
    (the training split)."""
    problem = vq.query.problem
    classes = None
    if vq.task_type is TaskType.MULTICLASS_CLASSIFICATION:
        values = pc.unique(pc.drop_null(table.column("TARGET"))).to_pylist()
        classes = sorted(values)
    return TaskInfo(task_type=vq.task_type, k=problem.k if isinstance(problem, Rank) else None,
                    classes=classes, entity_table=vq.entity_table, dst_table=vq.dst_table, seed=seed)


@dataclass
class Labelled:
    """A feature set with its rows' SPLIT (``split``, one per feature row) and, for pair tasks,
    ``group_rows``: for each group id the index of its label row in the table it came from."""

    fs: FeatureSet
    split: np.ndarray
    group_rows: np.ndarray | None = None

    def part(self, name: str) -> FeatureSet:
        return self.fs.take(np.flatnonzero(self.split == name))


def split_of(table: pa.Table) -> np.ndarray:
    if "SPLIT" not in table.column_names:
        return np.full(table.num_rows, "test", dtype=object)
    return np.asarray(table.column("SPLIT").to_pylist(), dtype=object)


def fill_node_y(fs: FeatureSet, target: pa.ChunkedArray | pa.Array, task: TaskInfo) -> None:
    """y from TARGET aligned with ``fs`` rows: 0/1, the value, or the class code (-1 if unseen)."""
    values = target.to_pylist()
    if task.task_type is TaskType.MULTICLASS_CLASSIFICATION:
        index = {c: i for i, c in enumerate(task.classes or [])}
        fs.y = np.asarray([index.get(v, -1) for v in values], dtype=np.int64)
    else:
        fs.y = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def node_rows(db: Any, vq: ValidatedQuery, table: pa.Table, task: TaskInfo) -> Labelled:
    """Entity features for every row of ``table`` (keys in the table's order), y from TARGET if present."""
    from pql import features

    fs = features.entity_features(db, vq, table.select(list(KEYS)))
    if "TARGET" in table.column_names:
        fill_node_y(fs, table.column("TARGET"), task)
    return Labelled(fs, split_of(table))


def candidate_options(options: Any, candidates: str) -> Any:
    """The compile options with ``candidates`` set (what ``pql.features.candidates`` reads)."""
    from pql.compiler.options import Options

    values = dict(getattr(options, "values", options or {}))
    values["candidates"] = candidates
    return Options(values)


def _truth_pairs(table: pa.Table) -> pa.Table:
    """One row (ENTITY, ANCHOR_TIMESTAMP, CLASS) per element of each TARGET list."""
    target = table.column("TARGET").combine_chunks()
    parents = pc.list_parent_indices(target)
    return pa.table({"ENTITY": table.column("ENTITY").take(parents),
                     "ANCHOR_TIMESTAMP": table.column("ANCHOR_TIMESTAMP").take(parents),
                     "CLASS": pc.list_flatten(target)})


def _relevance(keys: pa.Table, table: pa.Table) -> np.ndarray:
    """1.0 where the row's CLASS is in its (ENTITY, ANCHOR_TIMESTAMP)'s TARGET, else 0.0."""
    idx = match_rows(keys.select(["ENTITY", "ANCHOR_TIMESTAMP", "CLASS"]), _truth_pairs(table),
                     ["ENTITY", "ANCHOR_TIMESTAMP", "CLASS"])
    return (idx >= 0).astype(np.float64)


def _candidate_groups(cands: pa.Table) -> np.ndarray:
    """Group number of each candidate row (rows of one (ENTITY, ANCHOR_TIMESTAMP) are contiguous)."""
    n = cands.num_rows
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    for name in KEYS:
        col = cands.column(name).combine_chunks()
        diff = pc.not_equal(col.slice(1), col.slice(0, n - 1))
        diff = pc.fill_null(pc.or_kleene(diff, pc.xor(pc.is_null(col.slice(1)), pc.is_null(col.slice(0, n - 1)))),
                            False)
        change[1:] |= diff.to_numpy(zero_copy_only=False)
    return np.cumsum(change).astype(np.int64)


def sample_training_candidates(cands: pa.Table, y: np.ndarray, negatives: int, seed: int) -> np.ndarray:
    """Rows kept to train on: every relevant candidate and up to ``negatives`` others per group drawn
    with ``seed``; groups without a relevant candidate carry no signal and are dropped. Sorted."""
    group = _candidate_groups(cands)
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    pos = y > 0.5
    has_pos = np.bincount(group, weights=pos.astype(np.float64)) > 0
    order = np.lexsort((np.random.default_rng(seed).random(len(group)), pos, group))  # negatives first, shuffled
    neg_sorted = ~pos[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(group[order])) + 1])
    before = np.cumsum(neg_sorted) - neg_sorted  # negatives ahead in the whole order
    rank = before - np.repeat(before[starts], np.diff(np.concatenate([starts, [len(order)]])))
    keep_sorted = pos[order] | (neg_sorted & (rank < negatives))
    keep = np.zeros(len(group), dtype=bool)
    keep[order[keep_sorted]] = True
    keep &= has_pos[group]
    return np.flatnonzero(keep)


def pair_rows(db: Any, vq: ValidatedQuery, table: pa.Table, options: Any, candidates: str = "all",
              cands: pa.Table | None = None, *, negatives: int | None = None, seed: int = 0) -> Labelled:
    """Candidates and pair features for every (ENTITY, ANCHOR_TIMESTAMP) of ``table``; y = CLASS in TARGET.

    With ``negatives`` (training), only a sample of the candidates gets features: see
    :func:`sample_training_candidates`.
    """
    from pql import features

    if cands is None:
        cands = features.candidates(db, vq, table.select(list(KEYS)), options=candidate_options(options, candidates))
    labelled = "TARGET" in table.column_names
    if labelled and negatives is not None:
        cands = cands.take(pa.array(sample_training_candidates(cands, _relevance(cands, table), negatives, seed),
                                    type=pa.int64()))
    fs = features.pair_features(db, vq, cands)
    group = fs.group if fs.group is not None else np.zeros(len(fs), dtype=np.int64)
    firsts = _group_firsts(group)
    ngroups = int(group.max()) + 1 if len(group) else 0
    group_rows = np.full(ngroups, -1, dtype=np.int64)
    if len(firsts):
        heads = fs.keys.select(list(KEYS)).take(pa.array(firsts))
        group_rows[group[firsts]] = match_rows(heads, table, KEYS)
    if labelled:
        fs.y = _relevance(fs.keys, table)
    splits = split_of(table)
    row_of = group_rows[group] if len(group) else np.zeros(0, dtype=np.int64)
    split = np.where(row_of >= 0, splits[np.maximum(row_of, 0)] if len(splits) else "test", "none")
    return Labelled(fs, np.asarray(split, dtype=object), group_rows)


def _group_firsts(group: np.ndarray) -> np.ndarray:
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.flatnonzero(group[1:] != group[:-1]) + 1]).astype(np.int64)


# -- forecasting ------------------------------------------------------------------------------------


def _with_horizon(fs: FeatureSet, rows: np.ndarray, horizons: np.ndarray, y: np.ndarray | None,
                  keys: pa.Table | None = None) -> FeatureSet:
    X = np.hstack([fs.X[rows], horizons.reshape(-1, 1).astype(np.float32)])
    return FeatureSet(keys=keys if keys is not None else fs.keys.take(pa.array(rows)), X=X,
                      names=list(fs.names) + [HORIZON], y=y,
                      extra={k: (v[rows] if len(v) == len(fs) else v) for k, v in fs.extra.items()})


def forecast_rows(labelled: Labelled, table: pa.Table, vq: ValidatedQuery, n: int, *,
                  splits: Sequence[str] = ("train",), same_split: bool = False,
                  anchors: dict[str, dt.datetime] | None = None) -> tuple[Labelled, np.ndarray]:
    """Expand node rows into (row, horizon) rows with y = TARGET at anchor + h·L·U.

    Only rows of ``splits`` are expanded (and, with ``anchors``, only those at the split's given
    anchor a*); with ``same_split`` the target must lie in the row's own split. Returns the
    expanded set and each row's offset h·L in units (for the purge).
    """
    w = vq.window
    ents = table.column("ENTITY")
    stamps = table.column("ANCHOR_TIMESTAMP").to_pylist()
    tsplit = split_of(table)
    y_all = labelled.fs.y
    rows, hs, ys, out_split = [], [], [], []
    source = [i for i in range(table.num_rows) if tsplit[i] in splits
              and (anchors is None or stamps[i] == anchors.get(tsplit[i]))]
    targets: list[tuple[int, dt.datetime]] = [(i, add_units(stamps[i], h * w.length, w.unit))
                                              for i in source for h in range(n)]
    lookup = pa.table({"ENTITY": ents.take(pa.array([i for i, _ in targets], type=pa.int64())),
                       "ANCHOR_TIMESTAMP": pa.array([t for _, t in targets], type=pa.timestamp("us"))})
    found = match_rows(lookup, table, KEYS)
    for j, (i, _) in enumerate(targets):
        h = j % n
        t = found[j]
        if t < 0 or (same_split and tsplit[t] != tsplit[i]):
            continue
        rows.append(i)
        hs.append(h)
        ys.append(y_all[t])
        out_split.append(tsplit[i])
    r = np.asarray(rows, dtype=np.int64)
    h_arr = np.asarray(hs, dtype=np.int64)
    fs = _with_horizon(labelled.fs, r, h_arr, np.asarray(ys, dtype=np.float64))
    return Labelled(fs, np.asarray(out_split, dtype=object)), h_arr * w.length


def forecast_prediction_rows(fs_at_p: FeatureSet, pred_table: pa.Table, p_rows: np.ndarray,
                             horizons: np.ndarray) -> FeatureSet:
    """Features at p for every row of the prediction table, with its horizon index."""
    return _with_horizon(fs_at_p, p_rows, horizons, None, keys=pred_table.select(list(KEYS)))

