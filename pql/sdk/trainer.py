"""Kumo's ``Trainer``: ``fit`` runs the training job, ``predict`` the prediction job.

``fit`` is :func:`pql.jobs.run` on the training table the PredictiveQuery generated (not built
again), writing the run folder (model included) to ``<working_dir>/<job_id>``; ``predict`` is
:func:`pql.jobs.predict` on that model folder, writing the requested outputs through an output
connector. A job id therefore stays usable after the Python objects are gone
(``Trainer.load(job_id)``, ``trainer.predict(training_job_id=...)``), with a persistent
``pql.init(working_dir=...)`` also from another process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pql.errors import PQLRunError, PQLWarning, did_you_mean

from .config import settings, working_dir
from .connectors import Connector
from .graph import check_graph
from .jobs import Job, JobStatus, database_for, new_job_id, resolve
from .plans import ModelPlan, TrainingTablePlan
from .pquery import PredictionTable, TrainingTable

__all__ = ["Trainer", "TrainingJobResult", "TrainingJob", "TrainingMetrics", "BatchPredictionJobResult",
           "BatchPredictionJob", "PredictionSummary", "OUTPUT_TYPES"]

OUTPUT_TYPES = ("predictions", "embeddings")
_SPLIT_NAMES = {"test": "test", "val": "validation", "train": "training"}


def _short(values: dict[str, float | None], k: int | None) -> str:
    """The headline metrics of one split: no repeat/explore subsets, and only @K among the @k's."""
    keep = [(n, v) for n, v in values.items() if "/" not in n and ("@" not in n or k is None or n.endswith(f"@{k}"))]
    return ", ".join(f"{n}={'n/a' if v is None else f'{v:.4f}'}" for n, v in keep)


@dataclass
class TrainingMetrics:
    """Metrics of the trained model on each split (``None`` where undefined), and the baselines'."""

    test: dict[str, float | None]
    validation: dict[str, float | None]
    training: dict[str, float | None]
    baselines: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    k: int | None = None

    def __str__(self) -> str:
        parts = [f"{name}: {_short(getattr(self, name), self.k)}" for name in ("test", "validation", "training")]
        return "; ".join(parts)


@dataclass
class TrainingJobResult:
    """A finished training job (Kumo's ``TrainingJobResult``)."""

    job_id: str
    run: Any  # pql.jobs.RunResult
    train_table: TrainingTable
    model_plan: ModelPlan
    model_dir: Path

    def metrics(self) -> TrainingMetrics:
        m = self.run.metrics
        task = getattr(self.run.model, "task", None)
        return TrainingMetrics(test=dict(m.get("test", {})), validation=dict(m.get("val", {})),
                               training=dict(m.get("train", {})), baselines=self.run.baselines,
                               k=getattr(task, "k", None))

    @property
    def warnings(self) -> list[PQLWarning]:
        return list(self.run.warnings)

    def status(self) -> JobStatus:
        return JobStatus.DONE

    def result(self) -> "TrainingJobResult":
        return self

    def __repr__(self) -> str:
        return f"TrainingJobResult(job_id={self.job_id!r}, ranker={self.run.ranker!r}, model_dir='{self.model_dir}')"


class TrainingJob(Job[TrainingJobResult]):
    """A training job running in the background."""

    def metrics(self) -> TrainingMetrics:
        return self.result().metrics()


@dataclass
class PredictionSummary:
    job_id: str
    anchor_time: dt.datetime | None
    num_entities_predicted: int
    num_rows: dict[str, int]
    outputs: dict[str, str]  # output type -> where it was written

    def __str__(self) -> str:
        rows = ", ".join(f"{k} {v:,} rows" for k, v in self.num_rows.items())
        where = ", ".join(f"{k} -> {v}" for k, v in self.outputs.items()) or "not written (no output_connector)"
        return (f"job {self.job_id}: {self.num_entities_predicted:,} entities at anchor {self.anchor_time}; "
                f"{rows}; {where}")


@dataclass
class BatchPredictionJobResult:
    """A finished prediction job (Kumo's ``BatchPredictionJobResult``)."""

    job_id: str
    tables: dict[str, pa.Table]  # output type -> table
    anchor_time: dt.datetime | None
    outputs: dict[str, str]
    warnings: list[PQLWarning]

    def summary(self) -> PredictionSummary:
        preds = self.tables.get("predictions")
        first = preds if preds is not None else next(iter(self.tables.values()), None)
        entities = len(set(first.column("ENTITY").to_pylist())) if first is not None else 0
        return PredictionSummary(self.job_id, self.anchor_time, entities,
                                 {k: t.num_rows for k, t in self.tables.items()}, dict(self.outputs))

    def predictions_df(self) -> Any:
        return self._df("predictions")

    def embeddings_df(self) -> Any:
        return self._df("embeddings")

    def _df(self, kind: str) -> Any:
        if kind not in self.tables:
            raise PQLRunError(f"this prediction job produced no {kind}", code="E632",
                              hints=[f"pass output_types={{'{kind}'}} to trainer.predict"])
        return self.tables[kind].to_pandas()

    def status(self) -> JobStatus:
        return JobStatus.DONE

    def result(self) -> "BatchPredictionJobResult":
        return self


class BatchPredictionJob(Job[BatchPredictionJobResult]):
    """A prediction job running in the background."""

    def summary(self) -> PredictionSummary:
        return self.result().summary()


def _output_types(value: Any) -> tuple[str, ...]:
    types = ["predictions"] if value is None else ([value] if isinstance(value, str) else list(value))
    for t in types:
        if t not in OUTPUT_TYPES:
            dym, _ = did_you_mean(str(t), OUTPUT_TYPES)
            raise PQLRunError(f"output type '{t}' is unknown{dym}", code="E602",
                              hints=["output_types is a set of 'predictions' and 'embeddings'"])
    return tuple(t for t in OUTPUT_TYPES if t in types)


def output_names(name: str, kinds: list[str]) -> dict[str, str]:
    """Table names per output: predictions go to ``name``, every other output to ``name_<kind>``
    (``name_embeddings``, and for link prediction ``name_item_embeddings``)."""
    return {k: name if k == "predictions" else f"{name}_{k}" for k in kinds}


class Trainer:
    """Fits a model for a model plan and predicts with it (Kumo's ``kumoai.Trainer``)."""

    def __init__(self, model_plan: ModelPlan) -> None:
        if not isinstance(model_plan, ModelPlan):
            raise PQLRunError(f"model_plan must be a ModelPlan, not {type(model_plan).__name__}", code="E602",
                              hints=["use pquery.suggest_model_plan()"])
        self.model_plan = model_plan
        self._job: TrainingJobResult | TrainingJob | None = None
        self._loaded: str | None = None  # the job id of Trainer.load
        self.custom_tags: dict[str, str] = {}

    @classmethod
    def load(cls, job_id: str) -> "Trainer":
        """A trainer for a finished training job in the working directory."""
        from pql.jobs.modeldir import read_model_spec

        _, spec = read_model_spec(_model_dir(job_id))
        plan = ModelPlan(ranker=spec.ranker, ranker_params=dict(spec.ranker_params), seed=spec.seed,
                         query=spec.query_canonical, task_type=spec.task.get("task_type"))
        trainer = cls(plan)
        trainer._loaded = job_id
        return trainer

    @property
    def is_trained(self) -> bool:
        return self._job is not None or self._loaded is not None

    # -- fit ------------------------------------------------------------------------------------------------------
    def fit(self, graph: Any, train_table: TrainingTable | Job[TrainingTable], non_blocking: bool = False,
            custom_tags: dict[str, str] | None = None) -> TrainingJobResult | TrainingJob:
        """Train on ``train_table`` (a TrainingTable or its non-blocking job) over ``graph``."""
        graph = check_graph(graph)
        plan = dataclasses.replace(self.model_plan, training_table=dataclasses.replace(self.model_plan.training_table))
        job_id = new_job_id("trainingjob")

        def work() -> TrainingJobResult:
            table = resolve(train_table, TrainingTable, "train_table", "pass pquery.generate_training_table()")
            _check_training_table(table, graph, plan)
            return _fit(job_id, graph, table, plan)

        result: Any = TrainingJob("trainingjob", work, job_id=job_id) if non_blocking else work()
        self.custom_tags = dict(custom_tags or {})  # accepted as Kumo does; kept for the caller
        self._job = result
        return result

    # -- predict --------------------------------------------------------------------------------------------------
    def predict(self, graph: Any, prediction_table: PredictionTable | Job[PredictionTable],
                output_types: Any = None, output_connector: Connector | None = None,
                output_table_name: str | None = None, training_job_id: str | None = None,
                non_blocking: bool = False) -> BatchPredictionJobResult | BatchPredictionJob:
        """Score ``prediction_table`` with the model of ``training_job_id`` (default: this trainer's
        last fit); with ``output_connector``, write each output type as a table named after
        ``output_table_name`` (see :func:`output_names`)."""
        graph = check_graph(graph)
        kinds = list(_output_types(output_types))
        if output_connector is not None and not isinstance(output_connector, Connector):
            raise PQLRunError(f"output_connector must be a connector, not {type(output_connector).__name__}",
                              code="E602", hints=["e.g. pql.LocalConnector('out/')"])
        if output_connector is not None and not output_table_name:
            raise PQLRunError("output_table_name is required with output_connector", code="E602")
        if training_job_id is None and self._loaded is None and self._job is None:
            raise PQLRunError("this Trainer has not been fit, so it has no model to predict with", code="E632",
                              hints=["call trainer.fit(graph=..., train_table=...) first, or pass "
                                     "training_job_id= of a finished training job"])
        job_id = new_job_id("bp-job")

        def work() -> BatchPredictionJobResult:
            model_dir = self._model_dir(training_job_id)  # waits for this trainer's running fit
            table = resolve(prediction_table, PredictionTable, "prediction_table",
                            "pass pquery.generate_prediction_table()")
            return _predict(job_id, graph, table, model_dir, kinds, output_connector, output_table_name)

        return BatchPredictionJob("bp-job", work, job_id=job_id) if non_blocking else work()

    def _model_dir(self, training_job_id: str | None) -> Path:
        job = self._job
        if job is not None and training_job_id in (None, job.job_id):
            return _model_dir(job.result().job_id)  # waits for a non-blocking fit; raises its error
        return _model_dir(training_job_id if training_job_id is not None else self._loaded)


def _model_dir(job_id: str) -> Path:
    root = working_dir()
    path = root / str(job_id)
    if not (path / "model" / "model.json").is_file():
        jobs = sorted(p.name for p in root.iterdir() if (p / "model" / "model.json").is_file()) if root.is_dir() else []
        dym, hints = did_you_mean(str(job_id), jobs)
        raise PQLRunError(f"no finished training job '{job_id}' in the working directory '{root}'{dym}", code="E633",
                          hints=hints + ["use training_job.job_id of a finished fit; jobs of another process are "
                                         "found when pql.init(working_dir=...) names the folder they ran in"])
    return path / "model"


def _check_training_table(table: TrainingTable, graph: Any, plan: ModelPlan) -> None:
    from pql.jobs.modeldir import graph_fingerprint

    if plan.query is not None and table.query != plan.query:
        raise PQLRunError("the training table was generated for another query than the model plan's",
                          code="E631", hints=[f"training table: {table.query}", f"model plan: {plan.query}",
                                              "generate it with the PredictiveQuery the plan came from, or use that "
                                              "query's suggest_model_plan()"])
    if table.graph is not graph and graph_fingerprint(table.graph) != graph_fingerprint(graph):
        raise PQLRunError("the training table was generated on another graph than the one passed to fit",
                          code="E631", hints=["pass the graph of the PredictiveQuery that generated the table"])
    if table.plan != plan.training_table:
        raise PQLRunError("the training table was generated with another plan than model_plan.training_table",
                          code="E634", hints=[f"table: {_plan_text(table.plan)}",
                                              f"model plan: {_plan_text(plan.training_table)}",
                                              "generate it with pquery.generate_training_table("
                                              "plan=model_plan.training_table)"])


def _plan_text(plan: TrainingTablePlan) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in plan.options().items())


def _fit(job_id: str, graph: Any, table: TrainingTable, plan: ModelPlan) -> TrainingJobResult:
    from pql.jobs import run

    options = {k: v for k, v in table.options.items() if k != "seed"}
    options.update(plan.run_options())
    out_dir = working_dir() / job_id
    db, lock = database_for(graph)
    with lock:
        result = run(table.pquery.query, graph, out_dir=out_dir, ranker=plan.ranker, seed=plan.seed,
                     candidates=plan.candidates, ranker_params=plan.ranker_params, database=db,
                     training_table=table.table, train_metrics=True, progress=settings().progress, **options)
    return TrainingJobResult(job_id, result, table, plan, out_dir / "model")


def _predict(job_id: str, graph: Any, table: PredictionTable, model_dir: Path, kinds: list[str],
             connector: Connector | None, name: str | None) -> BatchPredictionJobResult:
    from pql.jobs import predict
    from pql.jobs.modeldir import read_model_spec
    from pql.jobs.predict import check_outputs
    from pql.rankers import get_ranker_class

    _, spec = read_model_spec(model_dir)
    if table.query != spec.query_canonical:
        raise PQLRunError("the prediction table was generated for another query than the trained model's",
                          code="E631", hints=[f"prediction table: {table.query}", f"model: {spec.query_canonical}",
                                              "generate it with the PredictiveQuery the model was trained for"])
    check_outputs(get_ranker_class(spec.ranker), kinds)  # E611 before any work
    db, lock = database_for(graph)
    with lock:
        res = predict(model_dir, anchor_time=table.anchor_time, graph=graph, query=spec.query, database=db,
                      progress=settings().progress)
    tables: dict[str, pa.Table] = {}
    if "predictions" in kinds:
        tables["predictions"] = res.predictions
    if "embeddings" in kinds:
        if res.embeddings is not None:
            tables["embeddings"] = res.embeddings
        if res.item_embeddings is not None:
            tables["item_embeddings"] = res.item_embeddings
    written: dict[str, str] = {}
    if connector is not None and name:
        for kind, target in output_names(name, list(tables)).items():
            written[kind] = connector.write_table(target, tables[kind])
    return BatchPredictionJobResult(job_id, tables, res.anchor, written, list(res.warnings))
