"""The prediction job: the prediction table at the anchor, its features, scores and output tables.

Used at the end of a training run and by ``pql predict --model DIR`` on a saved model folder
(§10.6, §12, §13 ``candidates = "history"``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pql.ast import TaskType
from pql.errors import PQLRunError, PQLWarning
from pql.tasks import FeatureSet, TaskInfo

from .common import KEYS, Progress, StageProgress
from .featurize import forecast_n, forecast_prediction_rows, pair_rows
from .outputs import embeddings_table, item_embeddings_table, node_predictions, pair_predictions

PREDICTION_OPTIONS = ("num_predictions", "num_classes", "threshold", "entity_filter", "candidate_filter")

__all__ = ["PREDICTION_OPTIONS", "Prediction", "predict_rows", "predict", "PredictResult", "check_candidates",
           "check_outputs"]


@dataclasses.dataclass
class Prediction:
    predictions: pa.Table
    anchor: dt.datetime | None
    embeddings: pa.Table | None = None
    item_embeddings: pa.Table | None = None


def check_candidates(task_type: TaskType, candidates: str | None) -> None:
    """E607: ``candidates = "history"`` needs LIST_DISTINCT(fk, …) RANK TOP k."""
    if candidates == "history" and task_type not in (TaskType.TEMPORAL_LINK_PREDICTION,
                                                     TaskType.STATIC_LINK_PREDICTION):
        raise PQLRunError(f'candidates = "history" needs LIST_DISTINCT(fk, …) RANK TOP k; this query is '
                          f"{task_type.value}", code="E607")


def check_outputs(ranker_cls: Any, outputs: Any) -> tuple[bool, bool]:
    """(write predictions, write embeddings); E611 when embeddings are asked of a ranker without."""
    wanted = tuple(outputs) if outputs else ("predictions",)
    if "embeddings" in wanted and not getattr(ranker_cls, "produces_embeddings", False):
        raise PQLRunError(f"ranker '{ranker_cls.name}' produces no embeddings", code="E611")
    return "predictions" in wanted, bool(getattr(ranker_cls, "produces_embeddings", False))


def _check_names(fs: FeatureSet, names: list[str] | None) -> None:
    if names is not None and list(fs.names) != list(names):
        missing = [n for n in names if n not in fs.names]
        raise PQLRunError("the features differ from those the model was trained on"
                          + (f" (missing: {', '.join(missing[:5])})" if missing else ""), code="E618",
                          hints=["the graph's data or columns changed; train again with `pql run`"])


def _embeddings(model: Any, fs: FeatureSet, make: bool) -> tuple[pa.Table | None, pa.Table | None]:
    if not make or len(fs) == 0:
        return None, None
    emb = model.entity_embeddings(fs)
    ent = embeddings_table(fs.keys, emb) if emb is not None else None
    cls = model.class_embeddings()
    items = item_embeddings_table(cls[0], cls[1]) if cls is not None else None
    return ent, items


def predict_rows(cq: Any, db: Any, model: Any, task: TaskInfo, *, anchor_time: Any = None,
                 candidates: str = "all", feature_names: list[str] | None = None,
                 embeddings: bool = False, progress: Progress | None = None) -> Prediction:
    """Score the prediction table of ``cq`` at ``anchor_time`` (default: the latest target timestamp)."""
    from pql import features

    vq = cq.validated
    table = cq.prediction_table(anchor_time)
    anchor = cq.prediction_anchor(anchor_time)
    opts = cq.options
    threshold = float(opts.get("threshold", 0.5))
    if progress:
        progress(f"predict: features for {table.num_rows:,} rows", 0.1)
    if task.is_pair:
        lab = pair_rows(db, vq, table.select(list(KEYS)), opts, candidates)
        _check_names(lab.fs, feature_names)
        scores = model.predict(lab.fs) if len(lab.fs) else np.zeros(0)
        K = opts.get("num_predictions") or task.k
        preds = pair_predictions(lab.fs, scores, K)
        ent, items = _embeddings(model, lab.fs, embeddings)
        return Prediction(preds, anchor, ent, items)
    n = forecast_n(vq)
    if n is not None:
        fs = _forecast_features(db, vq, table, anchor)
    else:
        fs = features.entity_features(db, vq, table.select(list(KEYS)))
    _check_names(fs, feature_names)
    width = len(task.classes or ()) if task.task_type is TaskType.MULTICLASS_CLASSIFICATION else 0
    scores = model.predict(fs) if len(fs) else (np.zeros((0, width)) if width else np.zeros(0))
    preds = node_predictions(task, fs.keys, scores, threshold=threshold, num_classes=opts.get("num_classes"))
    ent, items = _embeddings(model, fs, embeddings)
    return Prediction(preds, anchor, ent, items)


def _forecast_features(db: Any, vq: Any, table: pa.Table, anchor: dt.datetime) -> FeatureSet:
    """Features at p for each entity, one row per output horizon (rows of the prediction table)."""
    from pql import features

    entities = table.column("ENTITY")
    distinct: dict[Any, int] = {}
    for e in entities.to_pylist():
        distinct.setdefault(e, len(distinct))
    at_p = pa.table({"ENTITY": pa.array(list(distinct), type=entities.type),
                     "ANCHOR_TIMESTAMP": pa.array([anchor] * len(distinct), type=pa.timestamp("us"))})
    fs_p = features.entity_features(db, vq, at_p)
    stamps = table.column("ANCHOR_TIMESTAMP").to_pylist()
    ents = entities.to_pylist()
    # horizon h = position of the row's timestamp among the entity's rows (p, p + L, …)
    order = sorted(range(len(ents)), key=lambda i: (distinct[ents[i]], stamps[i]))
    horizon = np.zeros(len(ents), dtype=np.int64)
    last_e, h = None, 0
    for i in order:
        h = h + 1 if ents[i] == last_e else 0
        last_e = ents[i]
        horizon[i] = h
    p_rows = np.asarray([distinct[e] for e in ents], dtype=np.int64)
    return forecast_prediction_rows(fs_p, table, p_rows, horizon)


@dataclasses.dataclass
class PredictResult:
    predictions: pa.Table
    anchor: dt.datetime | None
    embeddings: pa.Table | None
    item_embeddings: pa.Table | None
    warnings: list[PQLWarning]
    out_dir: Path | None
    files: list[Path]


def predict(model_dir: str | Path, *, anchor_time: Any = None, out_dir: str | Path | None = None,
            overwrite: bool = False, graph: Any = None, query: Any = None, candidates: str | None = None,
            output_format: str = "parquet", database: Any = None,
            progress: Progress | None = None, **options: Any) -> PredictResult:
    """Score again with a saved model folder (a run's ``--out`` folder or its ``model/``), no retraining.

    ``graph`` / ``query`` are optional; when given they must be those the model was trained on (E618).
    ``options`` override prediction options of the run (``num_predictions``, ``num_classes``,
    ``threshold``, ``entity_filter``, ``candidate_filter``); others are E602.
    """
    import pql
    from pql.data import Database

    from .modeldir import load_model_dir
    from .outputs import check_out_dir, write_run_dir

    sp = StageProgress(progress, {"load": 1, "predict": 6, "write": 1})
    if out_dir is not None:
        check_out_dir(Path(out_dir), overwrite, output_format)
    sp.stage("load", "loading the model")
    if isinstance(graph, (str, Path)):
        graph = pql.Graph.load(graph)
    spec, model, graph = load_model_dir(Path(model_dir), query=query, graph=graph)
    task = spec.task_info()
    cand = candidates or spec.options.get("candidates", "all")
    check_candidates(task.task_type, cand)
    bad = sorted(set(options) - set(PREDICTION_OPTIONS))
    if bad:
        raise PQLRunError(f"{bad[0]} = {options[bad[0]]} is invalid: a saved model predicts with the options it was "
                          f"trained with; only {', '.join(PREDICTION_OPTIONS)} may change", code="E602")
    options = {**{k: v for k, v in spec.options.items() if k not in ("anchor_time", "candidates")}, **options}
    db = database if database is not None else Database(graph)
    cq = pql.compile(spec.query, graph, database=db, **options)
    sp.stage("predict", "predicting")
    out = predict_rows(cq, db, model, task, anchor_time=anchor_time, candidates=cand,
                       feature_names=spec.feature_names, embeddings=bool(getattr(model, "produces_embeddings", False)),
                       progress=sp.sub)
    files: list[Path] = []
    if out_dir is not None:
        sp.stage("write", "writing outputs")
        tables = {"PREDICTIONS": out.predictions}
        if out.embeddings is not None:
            tables["EMBEDDINGS"] = out.embeddings
        if out.item_embeddings is not None:
            tables["ITEM_EMBEDDINGS"] = out.item_embeddings
        files = write_run_dir(Path(out_dir), tables, fmt=output_format, overwrite=overwrite)
    sp.done()
    return PredictResult(out.predictions, out.anchor, out.embeddings, out.item_embeddings, list(cq.warnings),
                         Path(out_dir) if out_dir is not None else None, files)

