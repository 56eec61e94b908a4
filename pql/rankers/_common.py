"""Helpers shared by the built-in rankers: contract features, label checks, negative sampling."""

from __future__ import annotations

from typing import Any

import numpy as np

from pql.ast import TaskType
from pql.errors import PQLRunError
from pql.tasks import PAIR_TASKS, FeatureSet, TaskInfo

__all__ = ["ALL_TASKS", "NODE_TASKS", "VALUE_TASKS", "contract_feature", "squash", "check_fitted",
           "check_labels", "group_bounds", "sample_pair_rows", "heuristic_pair_score", "resolve_params",
           "thread_count", "limited_threads", "grouped_map_at_k",
           "importance_sample", "permutation_importance"]

ALL_TASKS = frozenset(TaskType)
NODE_TASKS = ALL_TASKS - PAIR_TASKS
VALUE_TASKS = frozenset({TaskType.REGRESSION, TaskType.FORECASTING})


def contract_feature(data: FeatureSet, name: str, ranker: str) -> np.ndarray:
    """A contract pair feature as float64 with NaN read as 0 (E615 when the feature set lacks it)."""
    try:
        col = data.column(name)
    except KeyError:
        raise PQLRunError(f"ranker '{ranker}' needs the pair feature '{name}', which the feature set "
                          f"does not have", code="E615") from None
    return np.nan_to_num(col.astype(np.float64), nan=0.0)


def squash(x: np.ndarray) -> np.ndarray:
    """A fixed monotone map of [0, inf) onto [0, 1): keeps order, bounds the value."""
    x = np.maximum(x, 0.0)
    return x / (1.0 + x)


def check_fitted(ranker: Any) -> TaskInfo:
    if ranker.task is None:
        raise PQLRunError(f"ranker '{ranker.name}' is used before it was fitted", code="E613")
    return ranker.task


def check_labels(train: FeatureSet, task: TaskInfo, ranker: str) -> np.ndarray:
    """The training labels, after the checks every learning ranker needs (E616)."""
    if train.y is None:
        raise PQLRunError(f"ranker '{ranker}' was given a training set without labels", code="E616")
    if len(train) == 0:
        raise PQLRunError(f"ranker '{ranker}' was given an empty training set", code="E616")
    y = np.asarray(train.y)
    if task.task_type == TaskType.BINARY_CLASSIFICATION or task.is_pair:
        values = np.unique(y.astype(np.float64))
        if len(values) < 2:
            what = "relevant candidates" if task.is_pair else "TARGET values"
            raise PQLRunError(f"the training table has a single class ({what} are all {values[0]:g}); "
                              f"a classifier needs both", code="E616")
    if task.task_type == TaskType.MULTICLASS_CLASSIFICATION:
        if not task.classes:
            raise PQLRunError("a multiclass task needs TaskInfo.classes", code="E616")
        if len(np.unique(y)) < 2:
            raise PQLRunError(f"the training table has a single class ({task.classes[int(y[0])]!r}); "
                              f"a classifier needs at least two", code="E616")
    if task.is_pair and train.group is None:
        raise PQLRunError(f"ranker '{ranker}' needs the candidate groups of a pair task", code="E616")
    return y


def group_bounds(group: np.ndarray) -> np.ndarray:
    """Start offsets of the contiguous groups, plus the end (len = number of groups + 1)."""
    if len(group) == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(group[1:] != group[:-1]) + 1
    return np.concatenate([[0], change, [len(group)]]).astype(np.int64)


def heuristic_pair_score(data: FeatureSet) -> np.ndarray:
    """How 'hard' a candidate is as a negative: own recency-weighted count, then popularity.

    Uses the contract features when present, so any feature set can be sampled."""
    score = np.zeros(len(data), dtype=np.float64)
    if "pair_decay_count" in data.names:
        decay = np.nan_to_num(data.column("pair_decay_count").astype(np.float64))
        score += np.where(decay > 0, 2.0 + squash(decay), 0.0)
    if "class_pop_decay" in data.names:
        score += squash(np.nan_to_num(data.column("class_pop_decay").astype(np.float64)))
    return score


def sample_pair_rows(y: np.ndarray, group: np.ndarray, negatives: int, rng: np.random.Generator,
                     hard: np.ndarray | None = None, hard_share: float = 0.5,
                     with_weights: bool = False, positives: int = 0) -> Any:
    """Rows kept for training a pair model: every positive and up to ``negatives`` negatives per group.

    ``positives`` > 0 also bounds the positives kept per group (drawn uniformly, weighted).
    Groups without a positive carry no signal for ranking and are dropped. A ``hard_share`` of the
    negatives are the group's highest-``hard`` ones (ties by row order); the rest are drawn uniformly
    with ``rng``. Returns sorted row indices, so the output keeps the input's group order; with
    ``with_weights`` also each kept row's inverse inclusion probability (1 for positives and hard
    negatives), which makes a weighted loss on the sample estimate the loss on every candidate.
    """
    bounds = group_bounds(group)
    pos = np.asarray(y) > 0.5
    keep: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    n_hard = int(round(negatives * hard_share)) if hard is not None else 0
    for g in range(len(bounds) - 1):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        gpos = pos[lo:hi]
        if not gpos.any():
            continue
        neg = np.flatnonzero(~gpos) + lo
        p = np.flatnonzero(gpos) + lo
        wp = np.ones(len(p))
        if 0 < positives < len(p):
            wp = np.full(positives, len(p) / positives)
            p = np.sort(rng.choice(p, size=positives, replace=False))
        if len(neg) <= negatives:
            keep += [p, neg]
            weights += [wp, np.ones(len(neg))]
            continue
        chosen = np.zeros(len(neg), dtype=bool)
        if n_hard:
            order = np.argsort(-hard[neg], kind="stable")
            chosen[order[:n_hard]] = True
        rest = np.flatnonzero(~chosen)
        drawn = rng.choice(rest, size=negatives - int(chosen.sum()), replace=False)
        w = np.ones(len(neg))
        w[drawn] = len(rest) / len(drawn)
        chosen[drawn] = True
        keep += [p, neg[chosen]]
        weights += [wp, w[chosen]]
    if not keep:
        rows, w = np.zeros(0, dtype=np.int64), np.zeros(0)
    else:
        rows, w = np.concatenate(keep).astype(np.int64), np.concatenate(weights)
        order = np.argsort(rows, kind="stable")
        rows, w = rows[order], w[order]
    return (rows, w) if with_weights else rows

def resolve_params(ranker: str, defaults: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` overridden by ``params``; an unknown name is E601 with did-you-mean, a value of
    the wrong kind E602."""
    from pql.errors import did_you_mean

    out = dict(defaults)
    for key in sorted(params):
        value = params[key]
        if key not in defaults:
            dym, hints = did_you_mean(key, sorted(defaults))
            raise PQLRunError(f"unknown option '{key}' for ranker '{ranker}'{dym}", code="E601", hints=hints)
        want = defaults[key]
        value, ok = _coerce(value, want)
        if not ok:
            raise PQLRunError(f"{key} = {value!r} is invalid: ranker '{ranker}' expects "
                              f"{type(want).__name__}", code="E602")
        out[key] = value
    return out


def _coerce(value: Any, want: Any) -> tuple[Any, bool]:
    """``value`` as the kind of ``want`` (strings from a command line are parsed)."""
    if want is None:
        return value, True
    if isinstance(value, str) and not isinstance(want, str):
        text = value.strip().lower()
        if isinstance(want, bool):
            if text in ("true", "1", "yes"):
                return True, True
            return (False, True) if text in ("false", "0", "no") else (value, False)
        try:
            value = float(text)
        except ValueError:
            return value, False
    if isinstance(want, bool):
        return value, isinstance(value, bool)
    if isinstance(want, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, False
        if isinstance(want, int):
            return (int(value), True) if float(value).is_integer() else (value, False)
        return float(value), True
    return value, isinstance(value, type(want))


def thread_count(requested: int) -> int:
    """Threads for a native library: ``requested`` when > 0, else half the CPUs (at least one).

    OpenMP pools spin while waiting, so on a small, busy machine using every core is much slower
    than leaving one free."""
    import os

    if requested > 0:
        return int(requested)
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def limited_threads(requested: int):
    """A context limiting OpenMP/BLAS pools (scikit-learn's) to :func:`thread_count` threads."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=thread_count(requested))


def grouped_map_at_k(score: np.ndarray, y: np.ndarray, group: np.ndarray, k: int) -> float:
    """Mean MAP@k over groups with a relevant row (spec §14, truth = the group's relevant rows).

    Ties in score go to the earlier row. Used for model selection on validation candidates."""
    bounds = group_bounds(group)
    rel = np.asarray(y) > 0.5
    total, n = 0.0, 0
    for g in range(len(bounds) - 1):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        r = rel[lo:hi]
        n_true = int(r.sum())
        if n_true == 0:
            continue
        top = np.argsort(-score[lo:hi], kind="stable")[:k]
        hits = r[top].astype(np.float64)
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        total += float((hits * precision).sum()) / min(n_true, k)
        n += 1
    return total / n if n else 0.0


def importance_sample(data: FeatureSet, rows: np.ndarray | None, n: int,
                      rng: np.random.Generator) -> FeatureSet | None:
    """About ``n`` labelled rows of ``data`` for permutation importance: of ``rows`` (default all);
    for pair tasks whole groups, so rankings within a group can be scored."""
    if n <= 0 or len(data) == 0 or data.y is None:
        return None
    rows = np.arange(len(data)) if rows is None else rows
    if len(rows) > n:
        if data.group is not None:
            g = data.group[rows]
            uniq, counts = np.unique(g, return_counts=True)
            order = rng.permutation(len(uniq))
            chosen = uniq[order[: max(1, int(np.searchsorted(np.cumsum(counts[order]), n)))]]
            rows = rows[np.isin(g, chosen)]
        else:
            rows = np.sort(rng.choice(rows, size=n, replace=False))
    return data.take(rows) if len(rows) else None


def _importance_score(predict: Any, data: FeatureSet, task: TaskInfo) -> float:
    """Higher is better: -MAE (regression, forecasting), mean log-likelihood (multiclass), AUROC
    (binary) or the mean within-group AUROC (pair tasks: how well each group's rows are ordered)."""
    y = np.asarray(data.y)
    pred = predict(data)
    if task.task_type in VALUE_TASKS:
        return -float(np.mean(np.abs(pred - y.astype(np.float64))))
    if task.task_type == TaskType.MULTICLASS_CLASSIFICATION:
        p = pred[np.arange(len(y)), y.astype(np.int64)]
        return float(np.mean(np.log(np.clip(p, 1e-12, 1.0))))
    rel = y.astype(np.float64) > 0.5
    if task.is_pair and data.group is not None:
        bounds = group_bounds(data.group)
        aucs = [_auroc(rel[lo:hi], pred[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
        aucs = [a for a in aucs if a is not None]
        return float(np.mean(aucs)) if aucs else 0.0
    auc = _auroc(rel, pred)
    return 0.0 if auc is None else auc


def _auroc(rel: np.ndarray, score: np.ndarray) -> float | None:
    """P(a random positive scores above a random negative), ties half (None without both)."""
    n_pos = int(rel.sum())
    n_neg = len(rel) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(score)
    return float((ranks[rel].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def permutation_importance(predict: Any, sample: FeatureSet, task: TaskInfo, seed: int,
                           repeats: int = 2) -> dict[str, float]:
    """Feature name -> mean drop of :func:`_importance_score` when that column is shuffled."""
    rng = np.random.default_rng(seed + 7)
    base = _importance_score(predict, sample, task)
    out: dict[str, float] = {}
    for j, name in enumerate(sample.names):
        drops = []
        for _ in range(repeats):
            X = sample.X.copy()
            X[:, j] = X[rng.permutation(len(X)), j]
            shuffled = FeatureSet(keys=sample.keys, X=X, names=sample.names, y=sample.y,
                                  group=sample.group, extra=sample.extra)
            drops.append(base - _importance_score(predict, shuffled, task))
        out[name] = float(np.mean(drops))
    return out
