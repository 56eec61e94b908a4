"""Baseline rankers: ``popularity`` (every task type) and ``history`` (pair tasks).

Neither learns beyond storing constants; both are deterministic. Pair-task scores are fixed
functions of one row's contract features (``class_pop_decay``, ``class_pop_30d``,
``pair_decay_count``, ``pair_count``), so a pair's score never depends on the other candidates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pql.ast import TaskType
from pql.errors import PQLRunError
from pql.rankers._common import ALL_TASKS, VALUE_TASKS, check_fitted, contract_feature, squash
from pql.rankers.base import Progress, Ranker
from pql.tasks import PAIR_TASKS, FeatureSet, TaskInfo

__all__ = ["PopularityRanker", "HistoryRanker", "popularity_score", "history_score"]

# History items score at least HISTORY_BASE; popularity scores (log1p of a decayed event count)
# stay far below it, so an item the entity bought always ranks above one it never bought.
HISTORY_BASE = 1e3


def popularity_score(data: FeatureSet, ranker: str = "popularity") -> np.ndarray:
    """Recency-decayed popularity of the row's class, the 30-day count breaking ties."""
    decay = contract_feature(data, "class_pop_decay", ranker)
    recent = contract_feature(data, "class_pop_30d", ranker)
    return np.log1p(np.maximum(decay, 0.0)) + 1e-6 * squash(recent)


def history_score(data: FeatureSet, ranker: str = "history") -> np.ndarray:
    """The entity's own recency-decayed purchase count (ties: plain count), padded by popularity."""
    decay = contract_feature(data, "pair_decay_count", ranker)
    count = contract_feature(data, "pair_count", ranker)
    pop = contract_feature(data, "class_pop_decay", ranker)
    bought = (count > 0) | (decay > 0)
    own = HISTORY_BASE + np.log1p(np.maximum(decay, 0.0)) + 1e-6 * squash(count) + 1e-9 * squash(pop)
    return np.where(bought, own, popularity_score(data, ranker))


def _node_constant(y: np.ndarray, task: TaskInfo) -> np.ndarray:
    if task.task_type == TaskType.MULTICLASS_CLASSIFICATION:
        counts = np.bincount(y.astype(np.int64), minlength=len(task.classes or ()))
        return counts / counts.sum()
    return np.array([float(np.mean(y.astype(np.float64)))])


class PopularityRanker(Ranker):
    """The most popular answer for every entity.

    Pair tasks: the class's recency-decayed popularity at the anchor (feature ``class_pop_decay``,
    ties broken by ``class_pop_30d``). Node tasks: the training positive rate (binary), the
    training mean (regression, forecasting) or the training class frequencies (multiclass).
    """

    name = "popularity"
    supported_tasks = ALL_TASKS

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed, **params)
        self.constant: np.ndarray | None = None

    def fit(self, train: FeatureSet, task: TaskInfo, *, valid: FeatureSet | None = None,
            progress: Progress | None = None) -> None:
        if task.task_type not in PAIR_TASKS:
            if train.y is None or len(train) == 0:
                raise PQLRunError("ranker 'popularity' needs a non-empty labelled training set",
                                  code="E616")
            y = np.asarray(train.y)
            if task.task_type == TaskType.MULTICLASS_CLASSIFICATION and not task.classes:
                raise PQLRunError("a multiclass task needs TaskInfo.classes", code="E616")
            self.constant = _node_constant(y, task)
        self.task = task
        if progress:
            progress("popularity", 1.0)

    def predict(self, data: FeatureSet) -> np.ndarray:
        task = check_fitted(self)
        n = len(data)
        if task.task_type in PAIR_TASKS:
            return popularity_score(data, self.name)
        assert self.constant is not None
        if task.task_type == TaskType.MULTICLASS_CLASSIFICATION:
            return np.tile(self.constant, (n, 1))
        value = self.constant[0]
        if task.task_type not in VALUE_TASKS:  # binary: a probability
            value = min(max(value, 0.0), 1.0)
        return np.full(n, value, dtype=np.float64)


class HistoryRanker(Ranker):
    """Buy-it-again by frequency: items the entity bought most (recency-weighted) first.

    Score: items bought at or before the anchor rank by ``pair_decay_count`` (ties:
    ``pair_count``), always above never-bought items, which rank by popularity.
    """

    name = "history"
    supported_tasks = PAIR_TASKS

    def fit(self, train: FeatureSet, task: TaskInfo, *, valid: FeatureSet | None = None,
            progress: Progress | None = None) -> None:
        self.task = task
        if progress:
            progress("history", 1.0)

    def predict(self, data: FeatureSet) -> np.ndarray:
        check_fitted(self)
        return history_score(data, self.name)
