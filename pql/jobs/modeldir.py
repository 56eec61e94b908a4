"""The saved model folder (``DIR/model/``): everything ``pql predict --model DIR`` needs to score again.

Layout: ``model.json`` (format version, pql version, the query text, the graph's schema
fingerprint, options, task, feature names, ranker name and parameters), ``graph.toml`` (the graph
with absolute data paths, when it came from files) and ``ranker/`` (written by ``Ranker.save``).
Loading checks that the folder is a model folder and, when a query or graph is given, that they are
the ones the model was trained on (E618).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pql.ast import Node, TaskType
from pql.errors import PQLRunError
from pql.graph import Graph
from pql.tasks import TaskInfo

__all__ = ["ModelSpec", "graph_fingerprint", "query_fingerprint", "save_model_dir", "read_model_spec",
           "load_model_dir", "json_options", "MODEL_FORMAT"]

MODEL_FORMAT = 1
MODEL_JSON = "model.json"


def graph_fingerprint(graph: Graph) -> str:
    """A hash of the graph's schema (tables, columns, dtypes, stypes, keys, time columns, edges);
    data paths and contents are not part of it, so fresh data scores with the same model."""
    tables = []
    for t in sorted(graph, key=lambda t: t.name):
        cols = sorted((c.name, str(c.dtype), str(c.stype)) for c in t.columns.values())
        tables.append([t.name, t.primary_key, t.time_column, t.end_time_column, cols])
    edges = sorted((e.src_table, e.fkey, e.dst_table) for e in graph.edges)
    blob = json.dumps({"tables": tables, "edges": edges}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def query_fingerprint(text_or_query: Any) -> str:
    """The canonical text of a query (so whitespace and comments do not matter)."""
    import pql

    return pql.format(text_or_query)


def _json_value(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, Node):
        from pql.formatter import format_condition

        return format_condition(v)
    if isinstance(v, tuple):
        return [_json_value(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)  # SplitSpec renders as kind(args), which parses back


def json_options(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in sorted(values.items()) if v is not None}


@dataclass
class ModelSpec:
    """The contents of ``model.json``."""

    query: str
    query_canonical: str
    graph_fingerprint: str
    graph_file: str | None
    options: dict[str, Any]
    task: dict[str, Any]
    feature_names: list[str]
    ranker: str
    ranker_params: dict[str, Any]
    seed: int
    timeframe_step: int | None
    pql_version: str
    format: int = MODEL_FORMAT

    def task_info(self) -> TaskInfo:
        t = self.task
        return TaskInfo(task_type=TaskType(t["task_type"]), k=t.get("k"), classes=t.get("classes"),
                        entity_table=t.get("entity_table"), dst_table=t.get("dst_table"), seed=self.seed)


def save_model_dir(directory: Path, spec: ModelSpec, ranker: Any, graph: Graph) -> None:
    """Write the folder (called inside the staged run folder, so it appears atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    ranker.save(directory / "ranker")
    if spec.graph_file is not None:
        (directory / "graph.toml").write_text(graph.to_toml())
    payload = dict(spec.__dict__)
    (directory / MODEL_JSON).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _model_root(path: Path) -> Path:
    """Accept the run folder or its ``model/`` sub-folder."""
    if (path / MODEL_JSON).is_file():
        return path
    if (path / "model" / MODEL_JSON).is_file():
        return path / "model"
    raise PQLRunError(f"'{path}' is not a pql model folder (no model.json)", code="E618",
                      hints=["pass the --out folder of a finished `pql run`, or its model/ sub-folder"])


def read_model_spec(path: Path) -> tuple[Path, ModelSpec]:
    root = _model_root(Path(path))
    try:
        raw = json.loads((root / MODEL_JSON).read_text())
        spec = ModelSpec(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise PQLRunError(f"'{root / MODEL_JSON}' is not a valid model description: {exc}", code="E618") from None
    if spec.format != MODEL_FORMAT:
        raise PQLRunError(f"model folder '{root}' has format {spec.format}; this pql reads format {MODEL_FORMAT}",
                          code="E618")
    return root, spec


def load_model_dir(path: Path, *, query: Any = None, graph: Graph | None = None) -> tuple[ModelSpec, Any, Graph]:
    """(spec, fitted ranker, graph). E618 when ``query`` or ``graph`` differ from the trained ones."""
    from pql.rankers import load_ranker

    root, spec = read_model_spec(path)
    if query is not None and query_fingerprint(query) != spec.query_canonical:
        raise PQLRunError(f"model folder '{root}' was trained for another query", code="E618",
                          hints=[f"it was trained for: {spec.query_canonical}"])
    if graph is None:
        gfile = root / "graph.toml"
        if not gfile.is_file():
            raise PQLRunError(f"model folder '{root}' was trained on an in-memory graph; pass the graph",
                              code="E618")
        graph = Graph.from_toml(gfile)
    if graph_fingerprint(graph) != spec.graph_fingerprint:
        raise PQLRunError(f"model folder '{root}' was trained on another graph (its schema differs)",
                          code="E618", hints=[f"it was trained on: {spec.graph_file or 'an in-memory graph'}"])
    ranker = load_ranker(root / "ranker")
    return spec, ranker, graph
