"""Kumo's ``PredictiveQuery``: a query over a graph, its task type, plans, and its training and
prediction tables.

A thin layer over the core: ``validate`` is :func:`pql.validate`, the tables come from
:func:`pql.compile` (``CompiledQuery.training_table`` / ``.prediction_table``), and the automatic
timeframe step is the training job's own (:func:`pql.jobs.schedule.choose_step`), so a table made
here is exactly the one ``pql.jobs.run`` would build.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pql.ast import QueryKind, TaskType
from pql.errors import PQLRunError, PQLWarning

from .graph import check_graph
from .jobs import Job, database_for
from .plans import ModelPlan, TrainingTablePlan

__all__ = ["PredictiveQuery", "TrainingTable", "PredictionTable", "TrainingTableJob", "PredictionTableJob",
           "SUGGESTED_RANKER"]

# Kumo's models give predictions and embeddings; the torch ranker is the built-in that gives both.
SUGGESTED_RANKER = "torch"


class _Table:
    """Shared by training and prediction tables: the rows, and where they came from."""

    table: pa.Table
    pquery: "PredictiveQuery"

    @property
    def query(self) -> str:
        """The canonical text of the query this table was generated for."""
        return self.pquery.canonical

    @property
    def graph(self) -> Any:
        return self.pquery.graph

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def to_arrow(self) -> pa.Table:
        return self.table

    def data_df(self) -> Any:
        """The rows as a pandas DataFrame."""
        return self.table.to_pandas()


@dataclass(repr=False)
class TrainingTable(_Table):
    """The labelled rows (ENTITY, ANCHOR_TIMESTAMP, TARGET, SPLIT) of spec §10 and §12."""

    pquery: "PredictiveQuery"
    plan: TrainingTablePlan
    options: dict[str, Any]  # the options it was built with, the automatic timeframe step included
    table: pa.Table
    warnings: list[PQLWarning] = field(default_factory=list)

    def split_counts(self) -> dict[str, int]:
        split = self.table.column("SPLIT")
        return {s: int(pc.sum(pc.equal(split, s).cast(pa.int64())).as_py() or 0) for s in ("train", "val", "test")}

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v:,}" for k, v in self.split_counts().items())
        return f"TrainingTable(rows={self.num_rows:,}: {counts}; query={self.query!r})"


@dataclass(repr=False)
class PredictionTable(_Table):
    """The rows to predict (ENTITY, ANCHOR_TIMESTAMP) at ``anchor_time`` (spec §10.6)."""

    pquery: "PredictiveQuery"
    anchor_time: dt.datetime | None
    table: pa.Table
    warnings: list[PQLWarning] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"PredictionTable(rows={self.num_rows:,}, anchor_time={self.anchor_time}, query={self.query!r})"


class TrainingTableJob(Job[TrainingTable]):
    """A training table being generated in the background."""


class PredictionTableJob(Job[PredictionTable]):
    """A prediction table being generated in the background."""


class PredictiveQuery:
    """A PQL query over a graph (Kumo's ``kumoai.PredictiveQuery``)."""

    def __init__(self, graph: Any, query: str) -> None:
        self.graph = check_graph(graph)
        if not isinstance(query, str):
            raise PQLRunError(f"query must be PQL text, not {type(query).__name__}", code="E602")
        self.query = query
        self._vq: Any = None
        self.train_table: TrainingTable | TrainingTableJob | None = None
        self.prediction_table: PredictionTable | PredictionTableJob | None = None

    def __repr__(self) -> str:
        return f"PredictiveQuery(query={self.query!r})"

    # -- the query -----------------------------------------------------------------------------------------
    def _validated(self) -> Any:
        if self._vq is None:
            import pql
            from pql.errors import PQLError

            try:
                self._vq = pql.validate(self.query, self.graph)
            except PQLError as e:
                e.pql_source = self.query  # type: ignore[attr-defined]  # rendered with carets by pql.init's hook
                raise
        return self._vq

    @property
    def canonical(self) -> str:
        import pql

        return pql.format(self._validated().query)

    def validate(self, verbose: bool = True) -> "PredictiveQuery":
        """Parse and validate against the graph (raises PQLSyntaxError / PQLValidationError); with
        ``verbose``, print what the query predicts and its warnings."""
        vq = self._validated()
        if verbose:
            from pql.describe import describe_query

            lines = [f"Query is valid: {vq.task_type.value}", describe_query(vq)]
            lines += [w.render(self.query) for w in vq.warnings]
            print("\n".join(lines))
        return self

    def get_task_type(self) -> TaskType:
        return self._validated().task_type

    # -- plans ------------------------------------------------------------------------------------------------
    def suggest_training_table_plan(self) -> TrainingTablePlan:
        """The plan the training job would use: the spec's defaults, with the automatic timeframe step
        when the default leaves too few anchors (``notes`` say why)."""
        import pql
        from pql.compiler.splits import default_split
        from pql.jobs.schedule import choose_step

        vq = self._validated()
        plan = TrainingTablePlan()
        if vq.kind is QueryKind.STATIC:
            plan.notes.append("static query: one anchor at the latest timestamp; split "
                              f"{default_split(vq)}")
            return plan
        db, lock = database_for(self.graph)
        with lock:
            cq = pql.compile(vq, self.graph, database=db)
            choice = choose_step(vq, db, cq.options.values)
        unit = vq.window.unit.word
        if choice.step is not None:
            plan.timeframe_step = choice.step
            plan.notes.append(choice.warning.message if choice.warning else f"timeframe_step {choice.step} {unit}")
        else:
            plan.notes.append(f"default timeframe_step {vq.window.length} {unit} gives {choice.anchors} anchors")
        plan.notes.append(f"default split: {default_split(vq)}")
        return plan

    def suggest_model_plan(self) -> ModelPlan:
        """A model plan for this query: the suggested training table plan, the torch ranker (it gives
        predictions and embeddings, like Kumo's models) tuned on the validation split, seed 0."""
        from pql.rankers import get_ranker_class

        vq = self._validated()
        ranker = SUGGESTED_RANKER if get_ranker_class(SUGGESTED_RANKER).supports(vq.task_type) else "gbdt"
        return ModelPlan(ranker=ranker, training_table=self.suggest_training_table_plan(), query=self.canonical,
                         task_type=vq.task_type.value)

    # -- tables -----------------------------------------------------------------------------------------------
    def generate_training_table(self, plan: TrainingTablePlan | None = None,
                                non_blocking: bool = False) -> TrainingTable | TrainingTableJob:
        """The training table for ``plan`` (default: the suggested plan); ``non_blocking`` returns a
        job at once and builds the table in the background."""
        if plan is not None and not isinstance(plan, TrainingTablePlan):
            raise PQLRunError(f"plan must be a TrainingTablePlan, not {type(plan).__name__}", code="E602",
                              hints=["start from pquery.suggest_training_table_plan() and edit its fields"])
        self._validated()
        plan = dataclasses.replace(plan) if plan is not None else None

        def build() -> TrainingTable:
            return self._training_table(plan if plan is not None else self.suggest_training_table_plan())

        result: Any = TrainingTableJob("td-job", build) if non_blocking else build()
        self.train_table = result
        return result

    def _training_table(self, plan: TrainingTablePlan) -> TrainingTable:
        import pql
        from pql.jobs.schedule import choose_step

        vq = self._validated()
        options = plan.options()
        db, lock = database_for(self.graph)
        with lock:
            cq = pql.compile(vq, self.graph, database=db, **options)
            warnings: list[PQLWarning] = []
            if vq.kind is not QueryKind.STATIC and options.get("timeframe_step") is None:
                choice = choose_step(vq, db, cq.options.values)  # as the training job decides it
                if choice.step is not None:
                    options["timeframe_step"] = choice.step
                    cq = pql.compile(vq, self.graph, database=db, **options)
                    warnings += [choice.warning] if choice.warning else []
            table = cq.training_table()
        return TrainingTable(self, plan, options, table, list(cq.warnings) + warnings)

    def generate_prediction_table(self, anchor_time: Any = None,
                                  non_blocking: bool = False) -> PredictionTable | PredictionTableJob:
        """The entities to predict at ``anchor_time`` (default: the latest timestamp of the target
        tables, spec §10.6); ``non_blocking`` returns a job at once."""
        self._validated()

        def build() -> PredictionTable:
            import pql

            db, lock = database_for(self.graph)
            with lock:
                cq = pql.compile(self._validated(), self.graph, database=db)
                table = cq.prediction_table(anchor_time)
                anchor = cq.prediction_anchor(anchor_time)
            return PredictionTable(self, anchor, table, list(cq.warnings))

        result: Any = PredictionTableJob("pt-job", build) if non_blocking else build()
        self.prediction_table = result
        return result
