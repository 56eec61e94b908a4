"""``gbdt``: scikit-learn histogram gradient boosting for every task type.

Node tasks use HistGradientBoostingClassifier (binary, multiclass) or ...Regressor (regression,
forecasting). Pair tasks (link prediction, multilabel) train a classifier of "the candidate is
relevant" on every positive plus a bounded sample of negatives per (entity, anchor) group, half of
them hard (items the entity bought, then popular ones) and half drawn with the seed:

- ``objective="pointwise"`` (default): the classifier's probability is the score;
- ``objective="pairwise"``: a classifier of "row a beats row b" on feature differences of
  (positive, negative) pairs of a group; a row's score is its mean win probability against a fixed
  reference sample of training negatives, so it never depends on the other candidates.

Early stopping uses ``valid`` when given (the job passes the validation split, never test), else
an internal split of the training rows. Missing values (NaN) are handled natively.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pql.ast import TaskType
from pql.errors import PQLRunError
from pql.rankers._common import (ALL_TASKS, VALUE_TASKS, check_fitted, check_labels,
                                 heuristic_pair_score, importance_sample, limited_threads, permutation_importance,
                                 resolve_params, sample_pair_rows)
from pql.rankers.base import Progress, Ranker
from pql.tasks import FeatureSet, TaskInfo

__all__ = ["GBDTRanker"]

DEFAULTS: dict[str, Any] = {
    "objective": "pointwise",        # pair tasks: "pointwise" or "pairwise"
    "max_iter": 300,
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "max_bins": 255,
    "early_stopping": True,
    "n_iter_no_change": 20,
    "loss": "absolute_error",        # regression / forecasting: MAE is their tune metric (spec §14)
    "negatives_per_group": 40,       # pair tasks: negatives kept per (entity, anchor)
    "positives_per_group": 40,       # pair tasks: positives kept per group (0: all), weighted
    "hard_share": 0.5,               # of those, the share taken hardest-first
    "weighted": True,                # weight sampled negatives by their inverse inclusion probability
    "group_weight_power": 0.0,       # weight a group's rows by 1 / (its relevant rows) ** power
    "pairs_per_positive": 4,         # pairwise: negatives paired with each positive
    "reference_size": 16,            # pairwise: reference rows a score is averaged over
    "importance_rows": 4000,         # rows kept for permutation importance
    "n_threads": 0,                  # 0: half the CPUs (see _common.thread_count)
}
_OBJECTIVES = ("pointwise", "pairwise")
_LOSSES = ("absolute_error", "squared_error", "poisson", "gamma")


class GBDTRanker(Ranker):
    name = "gbdt"
    supported_tasks = ALL_TASKS

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed, **params)
        self.config = resolve_params(self.name, DEFAULTS, params)
        if self.config["objective"] not in _OBJECTIVES:
            raise PQLRunError(f"objective = {self.config['objective']!r} is invalid: expected one of "
                              f"{', '.join(_OBJECTIVES)}", code="E602")
        if self.config["loss"] not in _LOSSES:
            raise PQLRunError(f"loss = {self.config['loss']!r} is invalid: expected one of "
                              f"{', '.join(_LOSSES)}", code="E602")
        self.model: Any = None
        self.names: list[str] = []
        self.class_index: np.ndarray | None = None   # multiclass: model column -> task class code
        self.reference: np.ndarray | None = None     # pairwise: reference rows
        self._sample: FeatureSet | None = None       # rows for permutation importance
        self._importances: dict[str, float] | None = None

    # -- fitting ----------------------------------------------------------------------------------
    def _estimator(self, task: TaskInfo, n_rows: int, has_valid: bool) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        c = self.config
        common = dict(max_iter=c["max_iter"], learning_rate=c["learning_rate"],
                      max_leaf_nodes=c["max_leaf_nodes"], min_samples_leaf=c["min_samples_leaf"],
                      l2_regularization=c["l2_regularization"], max_bins=c["max_bins"],
                      n_iter_no_change=c["n_iter_no_change"], random_state=self.seed,
                      early_stopping=bool(c["early_stopping"]) and (has_valid or n_rows > 10_000))
        if task.task_type in VALUE_TASKS:
            return HistGradientBoostingRegressor(loss=c["loss"], **common)
        return HistGradientBoostingClassifier(**common)

    def fit(self, train: FeatureSet, task: TaskInfo, *, valid: FeatureSet | None = None,
            progress: Progress | None = None) -> None:
        y = check_labels(train, task, self.name)
        self.names = list(train.names)
        self._importances = None
        rng = np.random.default_rng(self.seed)
        if progress:
            progress("gbdt: preparing rows", 0.0)
        weight = None
        if task.is_pair:
            X, target, weight, val = self._pair_rows(train, y, valid, rng)
        else:
            X, target = train.X, self._node_target(y, task)
            val = self._node_valid(valid, task)
            self._check_loss_domain(target, task)
        empty = np.isnan(X).all(axis=0) if len(X) else np.zeros(X.shape[1], dtype=bool)
        if empty.any():  # scikit-learn cannot bin a column without any value; a constant is ignored
            X = X.copy()
            X[:, empty] = 0.0
        self.model = self._estimator(task, len(target), val is not None)
        if progress:
            progress(f"gbdt: boosting on {len(target):,} rows", 0.1)
        with limited_threads(int(self.config["n_threads"])):
            if val is not None:
                self.model.fit(X, target, sample_weight=weight, X_val=val[0], y_val=val[1],
                               sample_weight_val=val[2] if len(val) > 2 else None)
            else:
                self.model.fit(X, target, sample_weight=weight)
        if task.task_type == TaskType.MULTICLASS_CLASSIFICATION:
            self.class_index = np.asarray(self.model.classes_, dtype=np.int64)
        self.task = task
        self._sample = self._importance_sample(valid if valid is not None and valid.y is not None
                                               else train, rng)
        if progress:
            progress(f"gbdt: {self.model.n_iter_} trees", 1.0)

    def _check_loss_domain(self, target: np.ndarray, task: TaskInfo) -> None:
        loss = self.config["loss"]
        if task.task_type not in VALUE_TASKS or loss not in ("poisson", "gamma"):
            return
        bad = (target < 0) if loss == "poisson" else (target <= 0)
        if bad.any():
            need = "non-negative" if loss == "poisson" else "positive"
            raise PQLRunError(f"loss = '{loss}' is invalid: it needs {need} targets, found "
                              f"{float(target[bad][0]):g}", code="E602")

    @staticmethod
    def _node_target(y: np.ndarray, task: TaskInfo) -> np.ndarray:
        if task.task_type in VALUE_TASKS:
            return y.astype(np.float64)
        return y.astype(np.int64)

    def _node_valid(self, valid: FeatureSet | None, task: TaskInfo) -> tuple[np.ndarray, np.ndarray] | None:
        if valid is None or valid.y is None or len(valid) == 0 or not self.config["early_stopping"]:
            return None
        vy = self._node_target(np.asarray(valid.y), task)
        if task.task_type == TaskType.MULTICLASS_CLASSIFICATION:
            return None  # classes seen only in valid would break the loss; use the internal split
        if task.task_type == TaskType.BINARY_CLASSIFICATION and len(np.unique(vy)) < 2:
            return None
        return valid.X, vy

    def _pair_sample(self, data: FeatureSet, y: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Sampled rows and their weights (inverse inclusion probabilities, or 1 when unweighted)."""
        c = self.config
        rows, weight = sample_pair_rows(y, data.group, int(c["negatives_per_group"]), rng,
                                        hard=heuristic_pair_score(data), hard_share=float(c["hard_share"]),
                                        with_weights=True, positives=int(c["positives_per_group"]))
        weight = weight if c["weighted"] else np.ones(len(rows))
        power = float(c["group_weight_power"])
        if power and len(rows):
            # groups with many relevant rows would dominate the loss; MAP averages over groups
            g = data.group[rows]
            _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
            npos = np.bincount(inverse, weights=(y[rows] > 0.5).astype(np.float64))
            weight = weight / np.maximum(npos[inverse], 1.0) ** power
            weight *= len(weight) / weight.sum()
        return rows, weight

    def _pair_rows(self, train: FeatureSet, y: np.ndarray, valid: FeatureSet | None,
                   rng: np.random.Generator):
        rows, weight = self._pair_sample(train, y, rng)
        X, target = train.X[rows], (y[rows] > 0.5).astype(np.int64)
        val: tuple | None = None
        if valid is not None and valid.y is not None and valid.group is not None and self.config["early_stopping"]:
            vy = np.asarray(valid.y)
            vrows, vweight = self._pair_sample(valid, vy, np.random.default_rng(self.seed + 1))
            if len(np.unique(vy[vrows])) == 2:
                val = (valid.X[vrows], (vy[vrows] > 0.5).astype(np.int64), vweight)
        if self.config["objective"] == "pairwise":
            X, target = self._pairwise_rows(X, target, train.group[rows], rng)
            weight = None
            if val is not None:
                vg = valid.group[vrows]
                val = self._pairwise_rows(val[0], val[1], vg, np.random.default_rng(self.seed + 2))
            negatives = train.X[rows][(y[rows] <= 0.5)]
            pick = rng.choice(len(negatives), size=min(len(negatives), int(self.config["reference_size"])),
                              replace=False)
            self.reference = negatives[np.sort(pick)]
        return X, target, weight, val

    def _pairwise_rows(self, X: np.ndarray, rel: np.ndarray, group: np.ndarray,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Differences (positive - negative) labelled 1 and their negations labelled 0; each
        positive is paired with ``pairs_per_positive`` negatives of its group (drawn with
        replacement)."""
        m = int(self.config["pairs_per_positive"])
        negs = np.flatnonzero(rel == 0)            # rows are grouped, so negs are too
        pos = np.flatnonzero(rel == 1)
        groups, neg_start, neg_count = np.unique(group[negs], return_index=True, return_counts=True)
        slot = np.searchsorted(groups, group[pos])
        found = (slot < len(groups)) & (groups[np.minimum(slot, len(groups) - 1)] == group[pos])
        pos, slot = pos[found], slot[found]
        if len(pos) == 0:
            raise PQLRunError("no group has both a relevant and an irrelevant candidate; a pairwise "
                              "ranker cannot learn", code="E616")
        a = np.repeat(pos, m)
        draw = (rng.random(len(a)) * np.repeat(neg_count[slot], m)).astype(np.int64)
        b = negs[np.repeat(neg_start[slot], m) + draw]
        diff = X[a] - X[b]
        return np.vstack([diff, -diff]), np.concatenate([np.ones(len(a), np.int64), np.zeros(len(a), np.int64)])

    def _importance_sample(self, data: FeatureSet, rng: np.random.Generator) -> FeatureSet | None:
        rows = None
        if self.task.is_pair and data.group is not None:
            rows, _ = self._pair_sample(data, np.asarray(data.y), rng)
        return importance_sample(data, rows, int(self.config["importance_rows"]), rng)

    # -- scoring ----------------------------------------------------------------------------------
    def predict(self, data: FeatureSet) -> np.ndarray:
        with limited_threads(int(self.config["n_threads"])):
            return self._predict(data)

    def _predict(self, data: FeatureSet) -> np.ndarray:
        task = check_fitted(self)
        X = self._aligned(data)
        if len(data) == 0:
            width = len(task.classes or ()) if task.task_type == TaskType.MULTICLASS_CLASSIFICATION else 0
            return np.zeros((0, width)) if width else np.zeros(0)
        if task.task_type in VALUE_TASKS:
            return self.model.predict(X).astype(np.float64)
        if task.task_type == TaskType.MULTICLASS_CLASSIFICATION:
            out = np.zeros((len(data), len(task.classes)), dtype=np.float64)
            out[:, self.class_index] = self.model.predict_proba(X)
            return out
        if task.is_pair and self.config["objective"] == "pairwise":
            return self._pairwise_score(X)
        return self.model.predict_proba(X)[:, 1].astype(np.float64)

    def _pairwise_score(self, X: np.ndarray) -> np.ndarray:
        ref = self.reference
        total = np.zeros(len(X), dtype=np.float64)
        for r in ref:
            total += self.model.predict_proba(X - r)[:, 1]
        return total / max(len(ref), 1)

    def _aligned(self, data: FeatureSet) -> np.ndarray:
        if list(data.names) == self.names:
            return data.X
        missing = [n for n in self.names if n not in data.names]
        if missing:
            raise PQLRunError(f"ranker '{self.name}' was trained with feature '{missing[0]}', which "
                              f"this feature set does not have", code="E615")
        index = {n: i for i, n in enumerate(data.names)}
        return data.X[:, [index[n] for n in self.names]]

    # -- inspection -------------------------------------------------------------------------------
    def feature_importances(self) -> dict[str, float] | None:
        """Permutation importance on a small held-out sample (see _common.permutation_importance)."""
        if self.model is None or self._sample is None or self._sample.y is None:
            return None
        if self._importances is None:
            with limited_threads(int(self.config["n_threads"])):
                self._importances = permutation_importance(self._predict, self._sample, self.task,
                                                           self.seed)
        return dict(self._importances)

