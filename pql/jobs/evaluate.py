"""Evaluation of a fitted ranker and the baselines on the val and test splits (PQL-SPEC §13, §14).

Node tasks compare scores with TARGET row by row. Pair tasks rank each (entity, anchor)'s candidates
by SCORE (ties to the smaller CLASS) and compare the list with the TARGET set, which may hold items
the candidates missed. Baselines: ranking tasks use the ``popularity`` and ``history`` rankers; node
tasks a constant (majority class / training mean) and the entity's last observed TARGET (the label
of the window that ended at the anchor, from ``CompiledQuery.labels``), falling back to the
constant.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from pql import metrics as M
from pql.ast import QueryKind, TaskType
from pql.compiler.timeunits import add_units
from pql.tasks import FeatureSet, TaskInfo

from .common import KEYS, class_order, match_rows
from .featurize import Labelled, split_of

__all__ = ["EvalContext", "top_lists", "node_metrics", "pair_metrics", "node_baseline_scores",
           "last_targets", "candidate_recall", "history_sets"]

_RANKING = frozenset({TaskType.TEMPORAL_LINK_PREDICTION, TaskType.STATIC_LINK_PREDICTION,
                      TaskType.MULTILABEL_RANKING})


@dataclass
class EvalContext:
    task: TaskInfo
    names: list[str]
    K: int | None
    k_values: tuple[int, ...]
    threshold: float = 0.5
    train_y: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def kmax(self) -> int:
        ks = [int(n.split("@")[1]) for n in self.names if "@" in n]
        return max(ks + list(self.k_values) + ([self.K] if self.K else []))


# -- node tasks ------------------------------------------------------------------------------------------


def node_metrics(ctx: EvalContext, y: np.ndarray, scores: np.ndarray) -> M.Values:
    tt = ctx.task.task_type
    if tt is TaskType.BINARY_CLASSIFICATION:
        return M.evaluate_binary(np.asarray(y) > 0.5, scores, ctx.names, threshold=ctx.threshold)
    if tt is TaskType.MULTICLASS_CLASSIFICATION:
        return M.evaluate_multiclass(y, scores, ctx.names)
    return M.evaluate_regression(y, scores, ctx.names, train_targets=ctx.train_y)


def last_targets(cq: Any, rows: pa.Table) -> list[Any]:
    """Each row's TARGET at anchor − E·U (the newest label window fully observed at the anchor);
    None where the entity had no row there (or for static queries)."""
    if cq.kind is QueryKind.STATIC or rows.num_rows == 0:
        return [None] * rows.num_rows
    w = cq.validated.window
    stamps = rows.column("ANCHOR_TIMESTAMP").to_pylist()
    prev: dict[dt.datetime, dt.datetime] = {a: add_units(a, -w.end, w.unit) for a in set(stamps)}
    labels = cq.labels(sorted(set(prev.values())))
    keys = pa.table({"ENTITY": rows.column("ENTITY"),
                     "ANCHOR_TIMESTAMP": pa.array([prev[a] for a in stamps], type=pa.timestamp("us"))})
    idx = match_rows(keys, labels.select(["ENTITY", "ANCHOR_TIMESTAMP"]), KEYS)
    target = labels.column("TARGET").to_pylist()
    return [target[i] if i >= 0 else None for i in idx]


def node_baseline_scores(task: TaskInfo, train_y: np.ndarray, last: Sequence[Any], n: int,
                         *, static: bool) -> dict[str, np.ndarray]:
    """Scores of the node baselines for ``n`` rows whose last TARGETs are ``last``."""
    tt = task.task_type
    if tt is TaskType.MULTICLASS_CLASSIFICATION:
        nclass = len(task.classes or [])
        counts = np.bincount(train_y[train_y >= 0].astype(np.int64), minlength=nclass).astype(np.float64)
        freq = counts / max(counts.sum(), 1.0)
        majority = np.tile(freq, (n, 1))
        out = {"majority": majority}
        if not static:
            index = {c: i for i, c in enumerate(task.classes or [])}
            lastp = majority.copy()
            for r, v in enumerate(last):
                if v is not None and v in index:
                    lastp[r] = 0.0
                    lastp[r, index[v]] = 1.0
            out["last"] = lastp
        return out
    constant = float(np.mean(train_y)) if len(train_y) else 0.0
    name = "majority" if tt is TaskType.BINARY_CLASSIFICATION else "mean"
    out = {name: np.full(n, constant)}
    if not static:
        out["last"] = np.asarray([constant if v is None else float(v) for v in last], dtype=np.float64)
    return out


# -- pair tasks -------------------------------------------------------------------------------------------


def top_lists(fs: FeatureSet, scores: np.ndarray, kmax: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of each group's best ``kmax`` candidates, ordered by group, SCORE descending and
    CLASS ascending; returns (rows, rank 1-based)."""
    if len(fs) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    s = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
    corder = class_order(fs.keys.column("CLASS"))
    order = np.lexsort((corder, -s, fs.group))
    g = fs.group[order]
    starts = np.concatenate([[0], np.flatnonzero(g[1:] != g[:-1]) + 1])
    sizes = np.diff(np.concatenate([starts, [len(g)]]))
    pos = np.arange(len(order)) - np.repeat(starts, sizes)
    keep = pos < kmax if kmax else np.ones(len(order), dtype=bool)
    return order[keep], pos[keep] + 1


def _lists_by_group(fs: FeatureSet, scores: np.ndarray, kmax: int) -> dict[int, list[Any]]:
    rows, _ = top_lists(fs, scores, kmax)
    classes = fs.keys.column("CLASS").take(pa.array(rows)).to_pylist()
    groups = fs.group[rows]
    out: dict[int, list[Any]] = {}
    for g, c in zip(groups.tolist(), classes):
        out.setdefault(g, []).append(c)
    return out


def _split_rows(table: pa.Table, split: str) -> np.ndarray:
    return np.flatnonzero(split_of(table) == split)


def _group_of_row(group_rows: np.ndarray) -> dict[int, int]:
    return {int(r): g for g, r in enumerate(group_rows.tolist()) if r >= 0}


def pair_metrics(ctx: EvalContext, sub: FeatureSet, scores: np.ndarray, table: pa.Table, split: str,
                 group_rows: np.ndarray, history: Sequence[frozenset[Any]] | None = None) -> M.Values:
    """Metrics of one split: ``sub`` holds the split's candidate rows (their original group ids),
    ``scores`` their scores; ``group_rows`` maps group id -> row of ``table``."""
    rows = _split_rows(table, split)
    targets = table.column("TARGET").to_pylist()
    g_of = _group_of_row(group_rows)
    if ctx.task.task_type is TaskType.MULTILABEL_CLASSIFICATION:
        return _multilabel(ctx, sub, scores, rows, targets, g_of)
    lists = _lists_by_group(sub, scores, ctx.kmax)
    ranked = [M.RankingRow(lists.get(g_of.get(int(r), -1), []), frozenset(targets[r] or ())) for r in rows]
    values = M.evaluate_ranking(ranked, ctx.names, ctx.K, ctx.k_values)
    if history is not None:
        values.update(M.repeat_explore(ranked, history, ctx.K, M.k_values_for(ctx.k_values), ctx.names))
    return values


def _multilabel(ctx: EvalContext, sub: FeatureSet, scores: np.ndarray, rows: np.ndarray, targets: list[Any],
                g_of: dict[int, int]) -> M.Values:
    labels = sorted({v for r in rows for v in (targets[r] or ())} | set(sub.keys.column("CLASS").to_pylist()))
    index = {v: j for j, v in enumerate(labels)}
    s = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
    floor = (float(np.min(s[np.isfinite(s)])) if np.isfinite(s).any() else 0.0) - 1.0
    Y = np.zeros((len(rows), len(labels)), dtype=np.int8)
    P = np.full((len(rows), len(labels)), floor)
    pos_of_group = {g_of.get(int(r), -1): i for i, r in enumerate(rows)}
    classes = sub.keys.column("CLASS").to_pylist()
    for j, (g, c) in enumerate(zip(sub.group.tolist(), classes)):
        i = pos_of_group.get(g)
        if i is not None and np.isfinite(s[j]):
            P[i, index[c]] = s[j]
    for i, r in enumerate(rows):
        for v in targets[r] or ():
            Y[i, index[v]] = 1
    return M.evaluate_multilabel(Y, P, ctx.names)


def candidate_recall(lab: Labelled, part: np.ndarray, table: pa.Table, split: str) -> float | None:
    """Σ|T ∩ C| / Σ|T| over the split's rows: the share of true items the candidates contain."""
    rows = _split_rows(table, split)
    targets = table.column("TARGET").to_pylist()
    total = sum(len(targets[r] or ()) for r in rows)
    if total == 0 or lab.fs.y is None:
        return None
    return float(np.sum(lab.fs.y[part] > 0.5)) / total


def history_sets(db: Any, vq: Any, table: pa.Table, split: str, options: Any) -> list[frozenset[Any]]:
    """H(u, a) ∩ valid items for the split's rows, from the ``candidates = "history"`` generator."""
    from pql import features

    from .featurize import candidate_options

    rows = _split_rows(table, split)
    keys = table.select(list(KEYS)).take(pa.array(rows, type=pa.int64()))
    cands = features.candidates(db, vq, keys, options=candidate_options(options, "history"))
    idx = match_rows(cands.select(list(KEYS)), keys, KEYS)
    classes = cands.column("CLASS").to_pylist()
    sets: list[set[Any]] = [set() for _ in range(len(rows))]
    for i, c in zip(idx.tolist(), classes):
        if i >= 0:
            sets[i].add(c)
    return [frozenset(s) for s in sets]
