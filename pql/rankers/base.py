"""The ranker plugin interface and its registry (entry-point group ``pql.rankers``).

A ranker fits on a :class:`~pql.tasks.FeatureSet` for a task type and scores feature sets. The
built-ins register through the same entry-point group as third-party rankers; loading is lazy,
so a ranker whose optional dependency is missing fails only when it is used, with one error
naming the install command.

Write a ranker::

    from pql.rankers import Ranker
    from pql.ast import TaskType

    class MyRanker(Ranker):
        name = "mine"
        supported_tasks = frozenset({TaskType.BINARY_CLASSIFICATION})

        def fit(self, train, task, *, valid=None, progress=None): ...
        def predict(self, data): ...   # see Ranker.predict for the shape per task

and register it in your package's pyproject.toml::

    [project.entry-points."pql.rankers"]
    mine = "my_package.module:MyRanker"
"""

from __future__ import annotations

import abc
import importlib
import json
import pickle
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from pql.ast import TaskType
from pql.errors import PQLRunError, did_you_mean
from pql.tasks import FeatureSet, TaskInfo

__all__ = ["Ranker", "ENTRY_POINT_GROUP", "available_rankers", "get_ranker_class", "create_ranker",
           "load_ranker", "Progress"]

ENTRY_POINT_GROUP = "pql.rankers"

Progress = Callable[[str, float], None]  # (message, fraction done in [0, 1])

# Built-ins, used when package metadata is unavailable (e.g. running from a source tree that was
# never installed). Installed pql registers the same names through its entry points.
_BUILTINS = {
    "popularity": "pql.rankers.baselines:PopularityRanker",
    "history": "pql.rankers.baselines:HistoryRanker",
    "gbdt": "pql.rankers.gbdt:GBDTRanker",
    "torch": "pql.rankers.neural:TorchRanker",
}


class Ranker(abc.ABC):
    """Base class of every ranker.

    Contract (spec §12): features obey time visibility (the feature builders guarantee it); the
    score of an (entity, class) pair does not depend on which other candidates are scored; the
    same seed gives the same scores.
    """

    name: ClassVar[str] = ""
    supported_tasks: ClassVar[frozenset[TaskType]] = frozenset()
    produces_embeddings: ClassVar[bool] = False
    #: the pip requirement that provides this ranker's optional dependencies, for error messages
    requires: ClassVar[str | None] = None

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        self.seed = seed
        self.params = dict(params)
        self.task: TaskInfo | None = None

    @classmethod
    def supports(cls, task_type: TaskType) -> bool:
        return task_type in cls.supported_tasks

    @abc.abstractmethod
    def fit(self, train: FeatureSet, task: TaskInfo, *, valid: FeatureSet | None = None,
            progress: Progress | None = None) -> None:
        """Learn from ``train`` (``valid`` may be used for early stopping; never for final metrics)."""

    @abc.abstractmethod
    def predict(self, data: FeatureSet) -> np.ndarray:
        """Scores, one per row of ``data``.

        binary: P(TARGET is true), shape (n,); regression / forecasting: the value, (n,);
        multiclass: class probabilities, (n, len(task.classes)); pair tasks: a relevance score, (n,)
        (higher ranks first).
        """

    def entity_embeddings(self, data: FeatureSet) -> np.ndarray | None:
        """(n, dim) embeddings of the rows' entities, when ``produces_embeddings``."""
        return None

    def class_embeddings(self) -> tuple[list[Any], np.ndarray] | None:
        """(classes, (m, dim) matrix) for link prediction destinations, when ``produces_embeddings``."""
        return None

    def feature_importances(self) -> dict[str, float] | None:
        return None

    # -- persistence ------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the fitted ranker to ``directory`` (default: a pickle plus a small JSON header)."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ranker.json").write_text(json.dumps({"name": self.name, "seed": self.seed,
                                                            "params": self.params}, default=str, indent=2))
        with open(directory / "ranker.pkl", "wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, directory: Path) -> "Ranker":
        with open(directory / "ranker.pkl", "rb") as fh:
            obj = pickle.load(fh)
        if not isinstance(obj, Ranker):
            raise PQLRunError(f"'{directory}' does not hold a pql ranker", code="E613")
        return obj

    def describe(self) -> str:
        ps = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{self.name}({ps})" if ps else self.name


def _entry_points() -> dict[str, Any]:
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # noqa: BLE001 - broken metadata must not hide the built-ins
        return {}
    return {ep.name: ep for ep in eps}


def available_rankers() -> list[str]:
    return sorted(set(_BUILTINS) | set(_entry_points()))


def _import(target: str) -> type:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_ranker_class(name: str) -> type[Ranker]:
    """The ranker class registered under ``name`` (E610 with did-you-mean when unknown)."""
    eps = _entry_points()
    if name not in eps and name not in _BUILTINS:
        dym, _ = did_you_mean(name, available_rankers())
        raise PQLRunError(f"unknown ranker '{name}'{dym} (available: {', '.join(available_rankers())})",
                          code="E610")
    try:
        cls = eps[name].load() if name in eps else _import(_BUILTINS[name])
    except ImportError as exc:
        req = _BUILTINS.get(name)
        hint = f"pip install {exc.name}" if getattr(exc, "name", None) else "reinstall the package providing it"
        raise PQLRunError(f"ranker '{name}' cannot be loaded: {exc}", code="E610",
                          hints=[hint] + ([f"built-in ranker {req}"] if req else [])) from None
    if not (isinstance(cls, type) and issubclass(cls, Ranker)):
        raise PQLRunError(f"ranker '{name}' does not subclass pql.rankers.Ranker", code="E610")
    return cls


def create_ranker(name: str, task_type: TaskType, *, seed: int = 0, **params: Any) -> Ranker:
    """Instantiate ``name`` for ``task_type`` (E614 listing the rankers that support the task)."""
    cls = get_ranker_class(name)
    if not cls.supports(task_type):
        ok = [n for n in available_rankers() if _supports_safely(n, task_type)]
        raise PQLRunError(f"ranker '{name}' does not support {task_type.value}; rankers that do: "
                          f"{', '.join(ok) or 'none'}", code="E614")
    return cls(seed=seed, **params)


def _supports_safely(name: str, task_type: TaskType) -> bool:
    try:
        return get_ranker_class(name).supports(task_type)
    except PQLRunError:
        return False


def load_ranker(directory: Path) -> Ranker:
    """Load a ranker saved by :meth:`Ranker.save` (through its class, which may override ``load``)."""
    header = directory / "ranker.json"
    if not header.is_file():
        raise PQLRunError(f"'{directory}' holds no saved ranker (ranker.json missing)", code="E613")
    name = json.loads(header.read_text())["name"]
    return get_ranker_class(name).load(directory)
