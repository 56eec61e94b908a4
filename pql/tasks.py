"""What a ranker is trained on: the task description and feature sets (issue 4 hand-off form).

Feature builders (``pql.features``) turn label tables into :class:`FeatureSet` objects; rankers
(``pql.rankers``) fit and score them; jobs (``pql.jobs``) chain the two. Two shapes exist:

- **node tasks** (binary, multiclass, regression, forecasting): one row per (ENTITY, ANCHOR_TIMESTAMP);
- **pair tasks** (link prediction, multilabel ranking / classification): one row per
  (ENTITY, ANCHOR_TIMESTAMP, CLASS) candidate, ``group`` numbering the (ENTITY, ANCHOR_TIMESTAMP)
  each row belongs to, and ``y`` = 1 when CLASS is in the entity's TARGET set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from pql.ast import TaskType

__all__ = ["PAIR_TASKS", "TaskInfo", "FeatureSet", "is_pair_task"]

PAIR_TASKS = frozenset({
    TaskType.TEMPORAL_LINK_PREDICTION,
    TaskType.STATIC_LINK_PREDICTION,
    TaskType.MULTILABEL_RANKING,
    TaskType.MULTILABEL_CLASSIFICATION,
})


def is_pair_task(task_type: TaskType) -> bool:
    return task_type in PAIR_TASKS


@dataclass
class TaskInfo:
    """The task as a ranker sees it."""

    task_type: TaskType
    k: int | None = None  # RANK TOP k (pair tasks): predictions per entity
    classes: list[Any] | None = None  # multiclass: the class values, index = label code
    entity_table: str | None = None
    dst_table: str | None = None  # link prediction: the table CLASS keys point at
    seed: int = 0

    @property
    def is_pair(self) -> bool:
        return is_pair_task(self.task_type)


@dataclass
class FeatureSet:
    """A feature matrix aligned with its key rows.

    ``keys``: ENTITY, ANCHOR_TIMESTAMP (+ CLASS for pair tasks), one row per X row.
    ``X``: float32 (n, d); NaN marks a missing value. ``names``: d feature names.
    ``y``: binary 0/1, regression/forecasting value, multiclass code (index into TaskInfo.classes),
    pair tasks 0/1 relevance; None at prediction time.
    ``group``: pair tasks only, int id of each row's (ENTITY, ANCHOR_TIMESTAMP), rows of a group
    contiguous.
    ``extra``: named side arrays some rankers use (e.g. "entity_code", "class_code" for embeddings).
    """

    keys: pa.Table
    X: np.ndarray
    names: list[str]
    y: np.ndarray | None = None
    group: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.X.ndim != 2 or self.X.shape[0] != self.keys.num_rows or self.X.shape[1] != len(self.names):
            raise ValueError(f"FeatureSet shapes disagree: X {self.X.shape}, keys {self.keys.num_rows}, "
                             f"names {len(self.names)}")

    def __len__(self) -> int:
        return self.keys.num_rows

    def column(self, name: str) -> np.ndarray:
        """One feature by name (raises KeyError naming the missing feature)."""
        try:
            return self.X[:, self.names.index(name)]
        except ValueError:
            raise KeyError(f"feature '{name}' is not in this feature set") from None

    def take(self, rows: np.ndarray) -> "FeatureSet":
        return FeatureSet(
            keys=self.keys.take(pa.array(rows)),
            X=self.X[rows],
            names=list(self.names),
            y=None if self.y is None else self.y[rows],
            group=None if self.group is None else self.group[rows],
            # per-row arrays are taken; others (e.g. the 1-element counts "n_entity_codes") kept
            extra={k: (v[rows] if len(v) == len(self) else v) for k, v in self.extra.items()},
        )
