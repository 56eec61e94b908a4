"""The training job: query -> training table -> features -> ranker (tuned on val) -> metrics next to
baselines -> predictions -> outputs (PQL-SPEC §10, §12-§14).

``run()`` only chains the stages; each lives in its own module (``schedule`` for the automatic step
and the purge, ``featurize`` for feature sets, ``evaluate`` for metrics, ``predict`` for the
prediction job, ``outputs`` / ``modeldir`` for writing). Progress is reported through a callback;
nothing here prints.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pql import metrics as M
from pql.ast import QueryKind, TaskType
from pql.compiler.timeunits import add_units
from pql.errors import PQLRunError, PQLWarning
from pql.rankers import create_ranker, get_ranker_class
from pql.tasks import FeatureSet, TaskInfo

from .common import Progress, StageProgress
from .evaluate import (EvalContext, candidate_recall, history_sets, last_targets, node_baseline_scores,
                       node_metrics, pair_metrics)
from .featurize import HORIZON, Labelled, forecast_n, forecast_rows, node_rows, pair_rows, task_info
from .outputs import node_predictions, pair_predictions
from .predict import Prediction, check_candidates, check_outputs, predict_rows
from .schedule import StepChoice, choose_step, label_end, purge

__all__ = ["run", "RunResult", "PARAM_GRIDS", "PAIR_BASELINES"]

SPLITS = ("val", "test")
TUNE_MAX_ROWS = 80_000  # grid settings are compared on a sample of at most about this many rows
# Pair tasks train on every relevant candidate plus this many others per (entity, anchor), drawn with
# the seed (None: all); only those get pair features. Validation, test and prediction use all.
TRAIN_NEGATIVES = 100
PAIR_BASELINES = ("popularity", "history")
WEIGHTS = {"compile": 1, "labels": 2, "features": 6, "fit": 8, "evaluate": 3, "predict": 3, "write": 1}

# Model selection: each ranker's settings tried on the validation split (the first is the default).
PARAM_GRIDS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "gbdt": {
        "node": [{}, {"learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 80},
                 {"max_leaf_nodes": 63, "min_samples_leaf": 20}],
        "pair": [{}, {"max_leaf_nodes": 63, "min_samples_leaf": 20}],
    },
}


@dataclass
class RunResult:
    """Everything a run produced; ``metrics_json()`` is the content of DIR/metrics.json."""

    task_type: TaskType
    ranker: str
    metrics: dict[str, dict[str, float | None]]
    baselines: dict[str, dict[str, dict[str, float | None]]]
    predictions: pa.Table
    training_table: pa.Table
    metrics_table: pa.Table
    info: dict[str, Any]
    warnings: list[PQLWarning]
    model: Any
    embeddings: pa.Table | None = None
    item_embeddings: pa.Table | None = None
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    graph: Any = None
    database: Any = None
    held_out: dict[str, pa.Table] = field(default_factory=dict)  # the model's val/test scores (§12 format)
    _session: Any = None

    def metrics_json(self) -> dict[str, Any]:
        return {"task_type": self.task_type.value, "ranker": self.ranker, "metrics": self.metrics,
                "baselines": self.baselines, **self.info}

    @property
    def session(self) -> Any:
        """A :class:`pql.session.Session` over the graph and this run's tables."""
        if self._session is None:
            from pql.session import Session

            self._session = Session.from_result(self)
        return self._session


def _values(v: M.Values) -> dict[str, float | None]:
    return {k: r.value for k, r in v.items()}


def _graph(graph: Any) -> Any:
    import pql

    return pql.Graph.load(graph) if isinstance(graph, (str, Path)) else graph


def _single_class_check(table: pa.Table, task_type: TaskType) -> None:
    if task_type not in (TaskType.BINARY_CLASSIFICATION, TaskType.MULTICLASS_CLASSIFICATION):
        return
    train = pc.drop_null(pc.filter(table.column("TARGET"), pc.equal(table.column("SPLIT"), "train")))
    values = pc.unique(train).to_pylist()
    if len(values) < 2:
        shown = values[0] if values else "none"
        raise PQLRunError(f"the training table has a single class (every train TARGET is {shown!s}); "
                          "a classifier needs at least two", code="E616",
                          hints=["widen the entity filter or the time range, or predict another target"])


class _Job:
    """State shared by the stages of one run."""

    def __init__(self, cq: Any, db: Any, table: pa.Table, task: TaskInfo, sp: StageProgress, seed: int) -> None:
        self.cq, self.db, self.table, self.task, self.sp, self.seed = cq, db, table, task, sp, seed
        self.vq = cq.validated
        opts = cq.options
        names = M.select_metrics(task.task_type, opts.get("metrics"), task.k, opts.get("k_values"))
        self.ctx = EvalContext(task, names, task.k, M.k_values_for(opts.get("k_values")),
                               float(opts.get("threshold", 0.5)))
        self.sets: dict[str, Labelled] = {}
        self.split_tables: dict[str, pa.Table] = {}  # pair tasks: each split's label rows
        self.train_negatives: int | None = TRAIN_NEGATIVES
        self.last_scores: np.ndarray | None = None  # of the latest evaluate()
        self.held_out: dict[str, pa.Table] = {}  # the model's scores of val and test, as output tables
        self.history: dict[str, list[frozenset[Any]]] = {}
        self.info: dict[str, Any] = {}

    # -- features ---------------------------------------------------------------------------------
    def build_features(self) -> None:
        if self.task.is_pair:
            # one feature call per split: no full matrix is ever copied into parts
            for i, s in enumerate(("train", *SPLITS)):
                self.sp.sub(f"features: candidates and pair features ({s})", 0.05 + 0.3 * i)
                rows = self.table.filter(pc.equal(self.table.column("SPLIT"), s))
                self.split_tables[s] = rows
                self.sets[s] = pair_rows(self.db, self.vq, rows, self.cq.options, "all",
                                         negatives=self.train_negatives if s == "train" else None, seed=self.seed)
            if self.task.task_type is TaskType.TEMPORAL_LINK_PREDICTION:
                self.sp.sub("features: purchase histories", 0.95)
                self.history = {s: history_sets(self.db, self.vq, self.split_tables[s], s, self.cq.options)
                                for s in SPLITS}
            return
        self.sp.sub("features: entity features", 0.05)
        lab = node_rows(self.db, self.vq, self.table, self.task)
        n = forecast_n(self.vq)
        if n is None:
            for s in ("train", *SPLITS):
                self.sets[s] = Labelled(lab.part(s), np.full(int(np.sum(lab.split == s)), s, dtype=object))
            return
        train, offsets = forecast_rows(lab, self.table, self.vq, n, splits=("train",))
        keep = self._forecast_purge(train.fs, offsets)
        self.info["purged_rows"] = self.info.get("purged_rows", 0) + int((~keep).sum())
        rows = np.flatnonzero(keep)
        self.sets["train"] = Labelled(train.fs.take(rows), train.split[rows])
        for s in SPLITS:
            oldest = pc.min(pc.filter(self.table.column("ANCHOR_TIMESTAMP"),
                                      pc.equal(self.table.column("SPLIT"), s))).as_py()
            self.sets[s], _ = forecast_rows(lab, self.table, self.vq, n, splits=(s,), same_split=True,
                                            anchors={s: oldest})

    def _forecast_purge(self, fs: FeatureSet, offsets: np.ndarray) -> np.ndarray:
        val = pc.filter(self.table.column("ANCHOR_TIMESTAMP"), pc.equal(self.table.column("SPLIT"), "val"))
        first_val = pc.min(val).as_py()
        stamps = fs.keys.column("ANCHOR_TIMESTAMP").to_pylist()
        cache: dict[Any, bool] = {}
        keep = np.ones(len(fs), dtype=bool)
        for i, (a, off) in enumerate(zip(stamps, offsets.tolist())):
            if (a, off) not in cache:
                cache[(a, off)] = label_end(a, self.vq, off) <= first_val
            keep[i] = cache[(a, off)]
        return keep

    def part(self, split: str) -> FeatureSet:
        return self.sets[split].fs

    def keep_scores(self, split: str, scores: np.ndarray) -> None:
        """The model's scores of a held-out split as an output table (§12 format; pair tasks: the
        top K per row), so reports need not score again."""
        fs = self.part(split)
        if self.task.is_pair:
            self.held_out[split] = pair_predictions(fs, scores, self.cq.options.get("num_predictions") or self.task.k)
            return
        keys = fs.keys
        if HORIZON in fs.names:  # forecasting: row h predicts the window at a* + h·L
            w = self.vq.window
            hs = fs.column(HORIZON).astype(np.int64).tolist()
            stamps = [add_units(a, h * w.length, w.unit)
                      for a, h in zip(keys.column("ANCHOR_TIMESTAMP").to_pylist(), hs)]
            keys = pa.table({"ENTITY": keys.column("ENTITY"),
                             "ANCHOR_TIMESTAMP": pa.array(stamps, type=pa.timestamp("us"))})
        self.held_out[split] = node_predictions(self.task, keys, scores, threshold=self.ctx.threshold,
                                                num_classes=self.cq.options.get("num_classes"))

    # -- evaluation -------------------------------------------------------------------------------
    def evaluate(self, scores_of: Any, split: str, fs: FeatureSet | None = None) -> M.Values:
        fs = self.part(split) if fs is None else fs
        scores = scores_of(fs)
        self.last_scores = scores
        if self.task.is_pair:
            return pair_metrics(self.ctx, fs, scores, self.split_tables[split], split, self.sets[split].group_rows,
                                self.history.get(split))
        return node_metrics(self.ctx, np.asarray(fs.y), scores)


def _subsample(fs: FeatureSet, max_rows: int, seed: int) -> FeatureSet:
    """About ``max_rows`` rows of ``fs`` drawn with ``seed``: whole groups for pair tasks."""
    if len(fs) <= max_rows:
        return fs
    rng = np.random.default_rng(seed)
    share = max_rows / len(fs)
    if fs.group is not None:
        groups = np.unique(fs.group)
        keep = np.isin(fs.group, groups[rng.random(len(groups)) < share])
    else:
        keep = rng.random(len(fs)) < share
    return fs.take(np.flatnonzero(keep))


def _fit_and_select(job: _Job, ranker: str,
                    ranker_params: dict[str, Any] | None) -> tuple[Any, dict[str, M.Values], dict]:
    """Fit each setting of the grid on train, keep the best on val by the tune metric.

    On a large training set the settings are compared on a sample of it (``TUNE_MAX_ROWS``) and
    the chosen one is then fitted on all of it. Test is never looked at.
    """
    train, valid = job.part("train"), job.part("val")
    kind = "pair" if job.task.is_pair else "node"
    grid = [ranker_params] if ranker_params is not None else PARAM_GRIDS.get(ranker, {}).get(kind, [{}])
    tune = M.tune_metric(job.ctx.names)
    job.ctx.train_y = np.asarray(train.y) if train.y is not None else np.zeros(0)  # nmae's scale
    sample = _subsample(train, TUNE_MAX_ROWS, job.seed) if len(grid) > 1 else train
    refit = sample is not train
    steps = len(grid) + (1 if refit else 0)
    best: tuple[Any, M.Values, dict[str, Any]] | None = None
    tried = []
    for i, params in enumerate(grid):
        model = _fit(job, ranker, params, sample, valid, i, steps)
        val = job.evaluate(model.predict, "val")
        tried.append({"params": params, tune: val[tune].value})
        if best is None or _better(val[tune].value, best[1][tune].value, tune):
            best = (model, val, params, job.last_scores)
    model, val, params, scores = best
    if refit:
        model = _fit(job, ranker, params, train, valid, steps - 1, steps)
        val = job.evaluate(model.predict, "val")
        scores = job.last_scores
    job.keep_scores("val", scores)
    info = {"tune_metric": tune, "selected_params": params, "tried": tried}
    if refit:
        info["tuned_on_rows"] = len(sample)
    return model, {"val": val}, info


def _fit(job: _Job, ranker: str, params: dict[str, Any], train: FeatureSet, valid: FeatureSet, i: int,
         steps: int) -> Any:
    def sub(msg: str, frac: float) -> None:
        job.sp.sub(msg, (i + frac) / steps)

    model = create_ranker(ranker, job.task.task_type, seed=job.seed, **params)
    model.fit(train, job.task, valid=valid, progress=sub)
    return model


def _better(new: float | None, old: float | None, metric: str) -> bool:
    if new is None:
        return False
    if old is None:
        return True
    return new > old if M.higher_is_better(metric) else new < old


def _baselines(job: _Job) -> dict[str, dict[str, M.Values]]:
    out: dict[str, dict[str, M.Values]] = {}
    train = job.part("train")
    if job.task.is_pair:
        for name in PAIR_BASELINES:
            cls = get_ranker_class(name)
            if not cls.supports(job.task.task_type):
                continue
            model = create_ranker(name, job.task.task_type, seed=job.seed)
            model.fit(train, job.task)
            out[name] = {s: job.evaluate(model.predict, s) for s in SPLITS}
        return out
    train_y = np.asarray(train.y, dtype=np.float64 if job.task.task_type is not TaskType.MULTICLASS_CLASSIFICATION
                         else np.int64)
    static = job.cq.kind is QueryKind.STATIC
    for s in SPLITS:
        fs = job.part(s)
        last = last_targets(job.cq, fs.keys) if not static else [None] * len(fs)
        for name, scores in node_baseline_scores(job.task, train_y, last, len(fs), static=static).items():
            out.setdefault(name, {})[s] = node_metrics(job.ctx, np.asarray(fs.y), scores)
    return out


def _counts(table: pa.Table, labelled: pa.Table) -> dict[str, Any]:
    """Rows per split (after the purge) and the anchors per split (of the whole training table)."""
    anchors = {}
    rows = {}
    for s in ("train", "val", "test"):
        mask = pc.equal(labelled.column("SPLIT"), s)
        stamps = pc.unique(pc.filter(labelled.column("ANCHOR_TIMESTAMP"), mask)).to_pylist()
        anchors[s] = sorted(str(a) for a in stamps if a is not None)
        rows[s] = int(pc.sum(pc.equal(table.column("SPLIT"), s).cast(pa.int64())).as_py() or 0)
    return {"rows": rows, "anchors": anchors}


def run(query: Any, graph: Any, *, out_dir: str | Path | None = None, ranker: str = "gbdt", seed: int = 0,
        anchor_time: Any = None, candidates: str = "all", overwrite: bool = False,
        progress: Progress | None = None, ranker_params: dict[str, Any] | None = None,
        output_format: str = "parquet", post_sql: str | None = None, database: Any = None,
        training_table: pa.Table | None = None, train_metrics: bool = False,
        train_negatives: int | None = TRAIN_NEGATIVES, **options: Any) -> RunResult:
    """Train, evaluate against baselines, predict and (with ``out_dir``) write the run folder.

    ``options`` are the runtime options of §15 (E601 unknown, E602 invalid). ``ranker_params`` fixes
    the ranker's parameters (no tuning); otherwise the ranker's grid is tried on the val split.
    ``post_sql`` is SQL whose final SELECT replaces PREDICTIONS (run in the session).
    ``training_table`` is this query's training table already built with these options (the SDK's
    ``generate_training_table``), used instead of building it again; ``train_metrics`` also scores
    the train split (``metrics["train"]``). ``train_negatives``: pair tasks train on the relevant
    candidates plus this many others per (entity, anchor) (None, or with ``train_metrics``: all).
    """
    import pql
    from pql.data import Database

    from .outputs import check_out_dir

    t_start = time.perf_counter()
    sp = StageProgress(progress, WEIGHTS)
    out_path = Path(out_dir) if out_dir is not None else None
    if out_path is not None:
        check_out_dir(out_path, overwrite, output_format)
    sp.stage("compile", "compiling the query")
    graph = _graph(graph)
    ranker_cls = get_ranker_class(ranker)
    db = database if database is not None else Database(graph)
    opts = {**options, "seed": seed, "anchor_time": anchor_time, "candidates": candidates}
    cq = pql.compile(query, graph, database=db, **opts)
    vq = cq.validated
    check_candidates(vq.task_type, cq.options.get("candidates", "all"))
    create_ranker(ranker, vq.task_type, seed=seed)  # E614 before any heavy work
    M.select_metrics(vq.task_type, cq.options.get("metrics"), getattr(vq.query.problem, "k", None),
                     cq.options.get("k_values"))  # E602 on a metric the task has not
    want_preds, want_emb = check_outputs(ranker_cls, cq.options.get("outputs"))
    step: StepChoice = choose_step(vq, db, cq.options.values)
    if step.step is not None:
        cq = pql.compile(vq, graph, database=db, **{**opts, "timeframe_step": step.step})

    sp.stage("labels", "building the training table")
    labelled = table = training_table if training_table is not None else cq.training_table()
    purged = 0
    if forecast_n(vq) is None:
        table, purged = purge(labelled, vq)
    if purged and not pc.any(pc.equal(table.column("SPLIT"), "train")).as_py():
        raise PQLRunError("the train split (or the training table) is empty after WHERE, ASSUMING and label rules",
                          code="E605", hints=[f"all {purged} training rows were purged: their label windows reach "
                                              "past the first validation anchor; give more history or lower "
                                              "timeframe_step"])
    _single_class_check(table, vq.task_type)
    train_rows = table.filter(pc.equal(table.column("SPLIT"), "train"))
    task = task_info(vq, train_rows, seed)
    job = _Job(cq, db, table, task, sp, seed)
    job.info["purged_rows"] = purged
    job.train_negatives = None if train_metrics else train_negatives
    job.info["counts"] = _counts(table, labelled)

    sp.stage("features", "computing features")
    job.build_features()

    sp.stage("fit", f"training {ranker}")
    model, model_values, selection = _fit_and_select(job, ranker, ranker_params)

    sp.stage("evaluate", "evaluating against baselines")
    model_values["test"] = job.evaluate(model.predict, "test")
    job.keep_scores("test", job.last_scores)
    if train_metrics:
        model_values["train"] = job.evaluate(model.predict, "train")
    baselines = _baselines(job)
    warnings = list(cq.warnings) + ([step.warning] if step.warning else [])
    warnings += M.undefined_warnings(model_values)

    sp.stage("predict", "predicting")
    pred = predict_rows(cq, db, model, task, anchor_time=anchor_time, candidates=cq.options.get("candidates", "all"),
                        embeddings=want_emb, progress=sp.sub)

    info = _info(job, cq, step, selection, pred, seed, want_emb)
    train_fs = job.part("train")
    result = RunResult(
        task_type=vq.task_type, ranker=ranker, metrics={s: _values(v) for s, v in model_values.items()},
        baselines={b: {s: _values(v) for s, v in per.items()} for b, per in baselines.items()},
        predictions=pred.predictions, training_table=table, metrics_table=M.metrics_table(model_values),
        info=info, warnings=_dedup(warnings), model=model, embeddings=pred.embeddings,
        item_embeddings=pred.item_embeddings, graph=graph, database=db, held_out=job.held_out)
    result.info["scored_rows"] = {s: _scored(v, selection["tune_metric"]) for s, v in model_values.items()}
    if post_sql is not None:
        result.predictions = result.session.sql(post_sql)
        result.session.register("PREDICTIONS", result.predictions)
    if out_path is not None:
        sp.stage("write", "writing outputs")
        result.info["timings"] = {**sp.timings, "total": round(time.perf_counter() - t_start, 3)}
        result.info["peak_memory_mb"] = _peak_mb()
        result.files = _write(result, out_path, cq, vq, graph, train_fs.names, ranker, ranker_params,
                              selection, step, seed, output_format, overwrite, want_preds)
        result.out_dir = out_path
    sp.done()
    result.info["timings"] = {**sp.timings, "total": round(time.perf_counter() - t_start, 3)}
    result.info["peak_memory_mb"] = _peak_mb()
    return result


def _scored(values: M.Values, tune: str) -> dict[str, int]:
    """Rows each metric family was computed on (N of the METRICS table), by the tuning metric."""
    out = {"all": values[tune].n}
    for prefix in ("repeat", "explore"):
        if f"{prefix}/{tune}" in values:
            out[prefix] = values[f"{prefix}/{tune}"].n
    return out


def _dedup(warnings: list[PQLWarning]) -> list[PQLWarning]:
    out: list[PQLWarning] = []
    for w in warnings:
        if w not in out:
            out.append(w)
    return out


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _info(job: _Job, cq: Any, step: StepChoice, selection: dict, pred: Prediction, seed: int,
          want_emb: bool) -> dict[str, Any]:
    info: dict[str, Any] = {"seed": seed, "query": cq.validated.source or None}
    w = cq.validated.window
    if w is not None:
        used = step.step if step.step is not None else cq.options.get("timeframe_step", w.length)
        info["timeframe_step"] = {"step": used,
                                  "unit": w.unit.word, "default": w.length, "automatic": step.step is not None,
                                  "default_anchors": step.default_anchors}
    info["split"] = str(cq.split)
    info.update(job.info["counts"])
    info["purged_rows"] = job.info.get("purged_rows", 0)
    if job.task.is_pair:
        info["train_candidates"] = {"negatives_per_group": job.train_negatives, "rows": len(job.part("train"))}
    info.update(selection)
    if job.task.is_pair:
        info["candidate_recall"] = {s: candidate_recall(job.sets[s], np.arange(len(job.sets[s].fs)),
                                                        job.split_tables[s], s) for s in SPLITS}
    info["prediction_anchor"] = str(pred.anchor) if pred.anchor is not None else None
    info["prediction_rows"] = pred.predictions.num_rows
    info["embeddings"] = want_emb
    return info


def _write(result: RunResult, out_path: Path, cq: Any, vq: Any, graph: Any, feature_names: list[str], ranker: str,
           ranker_params: dict[str, Any] | None, selection: dict, step: StepChoice, seed: int, fmt: str,
           overwrite: bool, want_preds: bool) -> list[Path]:
    import pql

    from .modeldir import ModelSpec, graph_fingerprint, json_options, query_fingerprint, save_model_dir
    from .outputs import write_run_dir

    options = json_options(dict(cq.options.values))
    options.pop("anchor_time", None)
    spec = ModelSpec(
        query=vq.source or pql.format(vq.query), query_canonical=query_fingerprint(vq.query),
        graph_fingerprint=graph_fingerprint(graph),
        graph_file=str(graph.path.resolve()) if getattr(graph, "path", None) is not None
        and all(t.data is None for t in graph) else None,
        options=options, task=_task_json(result.model.task or TaskInfo(vq.task_type)),
        feature_names=list(feature_names),
        ranker=ranker, ranker_params=selection.get("selected_params") or dict(ranker_params or {}), seed=seed,
        timeframe_step=step.step, pql_version=pql.__version__)
    tables = {}
    if want_preds:
        tables["PREDICTIONS"] = result.predictions
    tables["TRAINING_TABLE"] = result.training_table
    tables["METRICS"] = result.metrics_table
    if result.embeddings is not None:
        tables["EMBEDDINGS"] = result.embeddings
    if result.item_embeddings is not None:
        tables["ITEM_EMBEDDINGS"] = result.item_embeddings
    return write_run_dir(out_path, tables, fmt=fmt, json_files={"metrics.json": result.metrics_json()},
                         folders={"model": lambda d: save_model_dir(d, spec, result.model, graph)},
                         overwrite=overwrite)


def _task_json(task: TaskInfo) -> dict[str, Any]:
    return {"task_type": task.task_type.value, "k": task.k, "classes": task.classes,
            "entity_table": task.entity_table, "dst_table": task.dst_table}
