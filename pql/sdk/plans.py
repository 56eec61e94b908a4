"""Plans: plain, editable dataclasses that say how a training table is built and a model trained.

``PredictiveQuery.suggest_training_table_plan()`` and ``.suggest_model_plan()`` fill them in; edit
any field before use (``plan.timeframe_step = 7``; ``model_plan.ranker = 'gbdt'``). ``print(plan)``
shows every field. Values are checked when the plan is used, by the same option parsers as
``pql.compile`` (E601 / E602, spec §15).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainingTablePlan", "ModelPlan"]


def _fmt(value: Any) -> str:
    return "default" if value is None else repr(value)


@dataclass
class TrainingTablePlan:
    """Anchors and split of a training table (spec §10.2, §10.4, §15). ``None`` means the spec's default."""

    timeframe_step: int | None = None  # anchors apart, in the query's unit
    split: str | None = None  # e.g. "last_span(30)", "chronological(0.1, 0.1)", "time_range(2024-01-01, 2024-03-01)"
    start_time: str | None = None
    end_time: str | None = None
    max_anchors: int | None = None
    seed: int = 0  # the random split's seed
    notes: list[str] = field(default_factory=list, compare=False)  # why the suggestion chose these values

    def options(self) -> dict[str, Any]:
        """The runtime options (§15) this plan sets."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "notes" and getattr(self, f.name) is not None}

    def lines(self, indent: str = "") -> list[str]:
        out = [f"{indent}{f.name}: {_fmt(getattr(self, f.name))}" for f in dataclasses.fields(self)
               if f.name != "notes"]
        out += [f"{indent}# {n}" for n in self.notes]
        return out

    def __str__(self) -> str:
        return "\n".join(["TrainingTablePlan", *self.lines("  ")])


@dataclass
class ModelPlan:
    """How the trainer fits a model: the ranker and its parameters, the training table it expects,
    the seed, and prediction options. ``query`` (the canonical query the plan was suggested for) lets
    ``Trainer.fit`` reject a training table of another query; set it to None to skip that check."""

    ranker: str = "gbdt"  # a registered ranker: popularity, history, gbdt, torch, or a plugin
    ranker_params: dict[str, Any] | None = None  # None: try the ranker's settings on the validation split
    seed: int = 0
    training_table: TrainingTablePlan = field(default_factory=TrainingTablePlan)
    metrics: list[str] | None = None  # None: the task's metrics (§14)
    k_values: list[int] | None = None
    candidates: str = "all"  # link prediction: "all" or "history" (§13)
    num_predictions: int | None = None  # ranking outputs per entity; None: the query's TOP k
    threshold: float | None = None  # binary classification; None: 0.5
    query: str | None = None
    task_type: str | None = None

    def run_options(self) -> dict[str, Any]:
        """Options for ``pql.jobs.run`` besides the training table's."""
        opts = {"metrics": self.metrics, "k_values": self.k_values, "num_predictions": self.num_predictions,
                "threshold": self.threshold}
        return {k: (tuple(v) if isinstance(v, list) else v) for k, v in opts.items() if v is not None}

    def __str__(self) -> str:
        lines = ["ModelPlan" + (f" for {self.task_type}" if self.task_type else "")]
        if self.query:
            lines.append(f"  query: {self.query}")
        params = "tuned on the validation split" if self.ranker_params is None else repr(self.ranker_params)
        lines += [f"  ranker: {self.ranker!r}", f"  ranker_params: {params}", f"  seed: {self.seed}",
                  "  training_table:", *self.training_table.lines("    "),
                  f"  metrics: {_fmt(self.metrics)}", f"  k_values: {_fmt(self.k_values)}",
                  f"  candidates: {self.candidates!r}", f"  num_predictions: {_fmt(self.num_predictions)}",
                  f"  threshold: {_fmt(self.threshold)}"]
        return "\n".join(lines)
