"""Evaluation metrics (PQL-SPEC §14) and the repeat / explore subsets of buy-it-again (§13).

Every metric is a plain function of arrays. An undefined value (no positive, a constant truth, ...)
is ``None``; :func:`evaluate` collects a warning for it. :func:`default_metrics` lists the metric
names of a task in the spec's order (the first is the tuning metric); :func:`evaluate` dispatches
through the ``METRIC_FUNCS`` table, and :func:`metrics_table` turns results into the METRICS table
(SPLIT, METRIC, VALUE, N).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa

from pql.ast import TaskType
from pql.errors import PQLRunError, PQLWarning, did_you_mean

__all__ = [
    "auroc", "average_precision", "accuracy_binary", "accuracy_multiclass", "mae", "mse", "rmse", "r2", "nmae",
    "ap_macro", "ap_micro", "auroc_macro", "ranking_metrics", "RankingRow", "default_metrics", "k_values_for",
    "evaluate_binary", "evaluate_multiclass", "evaluate_regression", "evaluate_multilabel", "evaluate_ranking",
    "repeat_explore", "metrics_table", "MetricResult", "tune_metric", "higher_is_better", "METRICS_SCHEMA",
]

Values = dict[str, "MetricResult"]

METRICS_SCHEMA = pa.schema([("SPLIT", pa.string()), ("METRIC", pa.string()), ("VALUE", pa.float64()),
                            ("N", pa.int64())])


@dataclass(frozen=True)
class MetricResult:
    """One metric value (None when undefined) and the number of rows it was computed on."""

    value: float | None
    n: int


# -- classification ------------------------------------------------------------------------------------


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` ascending, tied values sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.concatenate([[0], np.flatnonzero(sorted_x[1:] != sorted_x[:-1]) + 1])
    ends = np.concatenate([starts[1:], [len(x)]])
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auroc(y: Sequence[Any], p: Sequence[float]) -> float | None:
    """P(a random positive scores above a random negative), ties counting 1/2; None when a class is absent."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(p)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def average_precision(y: Sequence[Any], p: Sequence[float]) -> float | None:
    """Σ (R_n − R_{n−1})·P_n over distinct score thresholds, descending; None without a positive."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-p, kind="mergesort")
    ys, ps = y[order], p[order]
    tp = np.cumsum(ys)
    # the last index of every group of tied scores: one threshold each
    last = np.concatenate([np.flatnonzero(ps[1:] != ps[:-1]), [len(ps) - 1]])
    tp_at = tp[last].astype(np.float64)
    precision = tp_at / (last + 1)
    recall = tp_at / n_pos
    gains = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(gains * precision))


def accuracy_binary(y: Sequence[Any], p: Sequence[float], threshold: float = 0.5) -> float | None:
    y = np.asarray(y).astype(bool)
    if len(y) == 0:
        return None
    return float(np.mean((np.asarray(p, dtype=np.float64) >= threshold) == y))


def accuracy_multiclass(y: Sequence[int], probs: np.ndarray) -> float | None:
    """Mean of argmax = y; ties go to the smallest class index (classes are sorted ascending).
    A truth code of -1 (a class the model never saw) counts as wrong."""
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        return None
    return float(np.mean(np.argmax(np.asarray(probs), axis=1) == y))


# -- regression ------------------------------------------------------------------------------------------


def _pair(y: Sequence[float], yhat: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(y, dtype=np.float64), np.asarray(yhat, dtype=np.float64)


def mae(y: Sequence[float], yhat: Sequence[float]) -> float | None:
    y, yhat = _pair(y, yhat)
    return float(np.mean(np.abs(y - yhat))) if len(y) else None


def mse(y: Sequence[float], yhat: Sequence[float]) -> float | None:
    y, yhat = _pair(y, yhat)
    return float(np.mean((y - yhat) ** 2)) if len(y) else None


def rmse(y: Sequence[float], yhat: Sequence[float]) -> float | None:
    m = mse(y, yhat)
    return None if m is None else math.sqrt(m)


def r2(y: Sequence[float], yhat: Sequence[float]) -> float | None:
    """1 − Σ(y − ŷ)² / Σ(y − ȳ)²; None when the denominator is 0."""
    y, yhat = _pair(y, yhat)
    if len(y) == 0:
        return None
    den = float(np.sum((y - y.mean()) ** 2))
    if den == 0.0:
        return None
    return 1.0 - float(np.sum((y - yhat) ** 2)) / den


def nmae(y: Sequence[float], yhat: Sequence[float], train_targets: Sequence[float]) -> float | None:
    """mae / std(train targets, ddof=1); None when that std is 0 or undefined."""
    t = np.asarray(train_targets, dtype=np.float64)
    m = mae(y, yhat)
    if m is None or len(t) < 2:
        return None
    sd = float(np.std(t, ddof=1))
    return None if sd == 0.0 else m / sd


# -- multilabel classification ----------------------------------------------------------------------


def _per_label(Y: np.ndarray, P: np.ndarray, fn: Callable[[np.ndarray, np.ndarray], float | None]) -> float | None:
    values = [fn(Y[:, j], P[:, j]) for j in range(Y.shape[1]) if np.asarray(Y[:, j]).astype(bool).any()]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def ap_macro(Y: np.ndarray, P: np.ndarray) -> float | None:
    """Mean per-label AP over labels with a positive."""
    return _per_label(np.asarray(Y), np.asarray(P, dtype=np.float64), average_precision)


def ap_micro(Y: np.ndarray, P: np.ndarray) -> float | None:
    """AP over the flattened (row, label) pairs."""
    return average_precision(np.asarray(Y).ravel(), np.asarray(P, dtype=np.float64).ravel())


def auroc_macro(Y: np.ndarray, P: np.ndarray) -> float | None:
    """Mean per-label AUROC over labels with a positive (and a negative)."""
    return _per_label(np.asarray(Y), np.asarray(P, dtype=np.float64), auroc)


# -- ranking ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankingRow:
    """One (entity, anchor) row to score: the predicted list (best first) and the truth set."""

    predicted: Sequence[Any]
    truth: frozenset[Any]


RANK_METRIC_KINDS = ("map", "precision", "recall", "ndcg", "hit")


def _dedup(items: Iterable[Any], limit: int) -> list[Any]:
    """The first occurrence of each item, in order, cut to ``limit``."""
    return list(dict.fromkeys(items))[:limit]


def _row_metrics(predicted: Sequence[Any], truth: frozenset[Any], ks: Sequence[int], kmax: int) -> dict[str, float]:
    plist = _dedup(predicted, kmax)
    rel = np.zeros(kmax, dtype=np.float64)
    rel[:len(plist)] = [item in truth for item in plist]
    positions = np.arange(1, kmax + 1, dtype=np.float64)
    cum = np.cumsum(rel)
    ap_cum = np.cumsum(rel * cum / positions)  # Σ_{i≤k} rel_i · precision@i
    discount = 1.0 / np.log2(positions + 1.0)
    dcg_cum = np.cumsum(rel * discount)
    ideal_cum = np.cumsum(discount)
    nt = len(truth)
    out: dict[str, float] = {}
    for k in ks:
        hits = float(cum[k - 1])
        m = min(nt, k)
        out[f"map@{k}"] = float(ap_cum[k - 1]) / m
        out[f"precision@{k}"] = hits / k
        out[f"recall@{k}"] = hits / nt
        out[f"ndcg@{k}"] = float(dcg_cum[k - 1]) / float(ideal_cum[m - 1])
        out[f"hit@{k}"] = 1.0 if hits >= 1 else 0.0
    first = np.flatnonzero(rel)
    out["mrr"] = 1.0 / (first[0] + 1) if len(first) else 0.0
    return out


def ranking_metrics(rows: Sequence[RankingRow], K: int | None, k_values: Sequence[int] = (1, 10, 100),
                    names: Sequence[str] | None = None) -> Values:
    """map@K, then map/precision/recall/ndcg/hit @k for k in k_values ∪ {K}, then mrr (§14).

    Rows with an empty truth set are left out; each row is scored on max(k) items.
    """
    names = list(names) if names is not None else ranking_metric_names(K, k_values)
    ks = sorted({int(n.split("@")[1]) for n in names if "@" in n} | ({K} if K else set()) | set(k_values))
    kmax = max(ks)
    scored = [r for r in rows if r.truth]
    sums = {n: 0.0 for n in names}
    for r in scored:
        vals = _row_metrics(r.predicted, r.truth, ks, kmax)
        for n in names:
            sums[n] += vals[n]
    n_rows = len(scored)
    return {n: MetricResult(sums[n] / n_rows if n_rows else None, n_rows) for n in names}


def ranking_metric_names(K: int | None, k_values: Sequence[int] = (1, 10, 100)) -> list[str]:
    ks = sorted(set(k_values) | ({K} if K else set()))
    names = [f"map@{K}"] if K else []
    for kind in RANK_METRIC_KINDS:
        names += [f"{kind}@{k}" for k in ks if f"{kind}@{k}" not in names]
    return names + ["mrr"]


def repeat_explore(rows: Sequence[RankingRow], history: Sequence[frozenset[Any]], K: int | None,
                   k_values: Sequence[int] = (1, 10, 100), names: Sequence[str] | None = None) -> Values:
    """§13: every ranking metric on the repeat truth T ∩ H (``repeat/<m>``) and the explore truth T \\ H
    (``explore/<m>``), rows with an empty subset left out; plus ``repeat_share`` = Σ|T ∩ H| / Σ|T|."""
    rep = [RankingRow(r.predicted, r.truth & h) for r, h in zip(rows, history)]
    exp_ = [RankingRow(r.predicted, r.truth - h) for r, h in zip(rows, history)]
    out: Values = {}
    for prefix, subset in (("repeat/", rep), ("explore/", exp_)):
        for name, res in ranking_metrics(subset, K, k_values, names).items():
            out[prefix + name] = res
    total = sum(len(r.truth) for r in rows)
    shared = sum(len(r.truth) for r in rep)
    out["repeat_share"] = MetricResult(shared / total if total else None, sum(1 for r in rows if r.truth))
    return out


# -- task dispatch ------------------------------------------------------------------------------------------

_NODE_DEFAULTS: dict[TaskType, tuple[str, ...]] = {
    TaskType.BINARY_CLASSIFICATION: ("auroc", "ap", "acc"),
    TaskType.MULTICLASS_CLASSIFICATION: ("acc",),
    TaskType.MULTILABEL_CLASSIFICATION: ("ap_macro", "ap_micro", "auroc_macro"),
    TaskType.REGRESSION: ("mae", "mse", "rmse", "r2"),
    TaskType.FORECASTING: ("mae", "mse", "rmse", "r2"),
}
_OPTIONAL: dict[TaskType, tuple[str, ...]] = {
    TaskType.REGRESSION: ("nmae",),
    TaskType.FORECASTING: ("nmae",),
}
_RANKING_TASKS = frozenset({TaskType.TEMPORAL_LINK_PREDICTION, TaskType.STATIC_LINK_PREDICTION,
                            TaskType.MULTILABEL_RANKING})
_LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse", "nmae"})


def k_values_for(k_values: Sequence[int] | None) -> tuple[int, ...]:
    return tuple(sorted(set(k_values))) if k_values else (1, 10, 100)


def default_metrics(task_type: TaskType, K: int | None = None, k_values: Sequence[int] | None = None) -> list[str]:
    """The spec's default metric names for a task, in order; the first is the tuning metric."""
    if task_type in _RANKING_TASKS:
        return ranking_metric_names(K, k_values_for(k_values))
    return list(_NODE_DEFAULTS[task_type])


def _allowed(task_type: TaskType, K: int | None, k_values: Sequence[int] | None) -> list[str]:
    names = default_metrics(task_type, K, k_values) + list(_OPTIONAL.get(task_type, ()))
    return names


_RANK_NAME = re.compile(r"(map|precision|recall|ndcg|hit)@([1-9][0-9]*)|mrr")


def select_metrics(task_type: TaskType, requested: Sequence[str] | None, K: int | None,
                   k_values: Sequence[int] | None) -> list[str]:
    """The ``metrics`` option checked against the task (E602 naming the valid ones), else the defaults."""
    if not requested:
        return default_metrics(task_type, K, k_values)
    allowed = _allowed(task_type, K, k_values)
    out: list[str] = []
    for name in requested:
        n = str(name).strip().lower()
        ok = n in allowed or (task_type in _RANKING_TASKS and _RANK_NAME.fullmatch(n) is not None)
        if not ok:
            dym, _ = did_you_mean(n, allowed)
            raise PQLRunError(f"metrics = {name} is invalid: not a metric of {task_type.value}{dym}", code="E602",
                              hints=["available: " + ", ".join(allowed)])
        if n not in out:
            out.append(n)
    return out


def tune_metric(names: Sequence[str]) -> str:
    return names[0]


def higher_is_better(name: str) -> bool:
    return name.split("/")[-1] not in _LOWER_IS_BETTER


def evaluate_binary(y: Sequence[Any], p: Sequence[float], names: Sequence[str], *,
                    threshold: float = 0.5) -> Values:
    funcs: dict[str, Callable[[], float | None]] = {
        "auroc": lambda: auroc(y, p),
        "ap": lambda: average_precision(y, p),
        "acc": lambda: accuracy_binary(y, p, threshold),
    }
    return {n: MetricResult(funcs[n](), len(y)) for n in names}


def evaluate_multiclass(y: Sequence[int], probs: np.ndarray, names: Sequence[str]) -> Values:
    return {n: MetricResult(accuracy_multiclass(y, probs), len(y)) for n in names}


def evaluate_regression(y: Sequence[float], yhat: Sequence[float], names: Sequence[str], *,
                        train_targets: Sequence[float] = ()) -> Values:
    funcs: dict[str, Callable[[], float | None]] = {
        "mae": lambda: mae(y, yhat),
        "mse": lambda: mse(y, yhat),
        "rmse": lambda: rmse(y, yhat),
        "r2": lambda: r2(y, yhat),
        "nmae": lambda: nmae(y, yhat, train_targets),
    }
    return {n: MetricResult(funcs[n](), len(y)) for n in names}


def evaluate_multilabel(Y: np.ndarray, P: np.ndarray, names: Sequence[str]) -> Values:
    funcs = {"ap_macro": ap_macro, "ap_micro": ap_micro, "auroc_macro": auroc_macro}
    return {n: MetricResult(funcs[n](Y, P), int(np.asarray(Y).shape[0])) for n in names}


def evaluate_ranking(rows: Sequence[RankingRow], names: Sequence[str], K: int | None,
                     k_values: Sequence[int] | None = None) -> Values:
    return ranking_metrics(rows, K, k_values_for(k_values), names)


def undefined_warnings(values: dict[str, Values], who: str = "model") -> list[PQLWarning]:
    """One warning per undefined metric: ``values`` maps split -> metric results."""
    out = []
    for split, results in values.items():
        for name, res in results.items():
            if res.value is None:
                out.append(PQLWarning("W601", f"{who}: metric '{name}' is undefined on the {split} split "
                                              f"({res.n} rows); it is reported as NULL"))
    return out


def metrics_table(values: dict[str, Values]) -> pa.Table:
    """The METRICS table (SPLIT, METRIC, VALUE, N) from ``{split: {metric: MetricResult}}``."""
    rows = [(split, name, res.value, res.n) for split, results in values.items() for name, res in results.items()]
    return pa.table({
        "SPLIT": pa.array([r[0] for r in rows], pa.string()),
        "METRIC": pa.array([r[1] for r in rows], pa.string()),
        "VALUE": pa.array([r[2] for r in rows], pa.float64()),
        "N": pa.array([r[3] for r in rows], pa.int64()),
    }, schema=METRICS_SCHEMA)
