"""Golden label tables for the spec's example queries V1-V26 (PQL-SPEC §16.1) on the fixed reference
dataset (``tests.datagen_ref``).

Each query's label table over its own anchors (ENTITY, ANCHOR_TIMESTAMP, TARGET) is a CSV snapshot
under ``tests/golden/``, reviewed as a diff when it changes. Snapshots are written only with
``PQL_UPDATE_SNAPSHOTS=1``; otherwise they are compared exactly. Independently of the snapshot, the
same rows must come out of the plain-Python reference evaluator (``tests.reference``): anchors,
labels, splits and prediction rows; and the training table must be the label table plus SPLIT.

Every query runs with ``max_anchors = 6`` so the tables stay small enough to read (V14's hourly
window would otherwise give one anchor per day).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

import pql
from pql.ast import QueryKind
from pql.data import Database
from pql.graph import Graph
from tests.datagen_ref import write_reference_dataset
from tests.reference import (
    reference_anchors,
    reference_labels,
    reference_prediction,
    reference_split,
    rows_from_graph,
)
from tests.test_differential import assert_same_labels
from tests.spec_queries import SPEC_V

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PQL_UPDATE_SNAPSHOTS") == "1"
OPTIONS = {"max_anchors": 6}

EXAMPLES = SPEC_V  # PQL-SPEC §16.1 V1-V26


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Graph, dict[str, list[dict]]]:
    graph = Graph.load(write_reference_dataset(tmp_path_factory.mktemp("reference")))
    return graph, rows_from_graph(graph)


@pytest.fixture(scope="module")
def compiled(dataset):
    """One compiled query per example, all sharing one database session."""
    graph, _ = dataset
    db = Database(graph)
    cache: dict[str, Any] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = pql.compile(EXAMPLES[name], graph, database=db, **OPTIONS)
        return cache[name]

    yield get
    db.close()


def _cell(v: Any) -> str:
    """Stable text for a CSV cell: floats to 10 significant digits (float sums may differ in the last
    bits between runs), lists and bools as JSON, timestamps ISO."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, list):
        return json.dumps([float(f"{x:.10g}") if isinstance(x, float) else x for x in v], ensure_ascii=False)
    if hasattr(v, "isoformat"):
        return v.isoformat(sep=" ")
    return str(v)


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r[c]) for c in columns])
    return buf.getvalue()


def label_rows(cq, anchors) -> list[dict[str, Any]]:
    table = cq.labels(anchors)
    assert table.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET"]
    return table.to_pylist()


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_golden_labels(name: str, dataset, compiled) -> None:
    """The label table over the query's own anchors: snapshot, then the reference evaluator."""
    graph, data = dataset
    text = EXAMPLES[name]
    cq = compiled(name)
    anchors = cq.anchors()
    rows = label_rows(cq, anchors)
    snapshot = to_csv(rows, ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET"])
    path = GOLDEN / f"{name}.csv"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(snapshot, encoding="utf-8")
    assert path.is_file(), f"no snapshot {path.name}; run with PQL_UPDATE_SNAPSHOTS=1 and review the diff"
    assert snapshot == path.read_text(encoding="utf-8"), f"{name} differs from its snapshot {path.name}"

    query = pql.parse(text)
    assert anchors == reference_anchors(query, graph, data, **OPTIONS)
    expected = reference_labels(query, graph, data, anchors)
    got = [(r["ENTITY"], r["ANCHOR_TIMESTAMP"], r["TARGET"]) for r in rows]
    assert_same_labels(got, expected, f"{name}: {text}")


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_golden_training_table(name: str, dataset, compiled) -> None:
    """The training table is the label table plus SPLIT (§10.4), or E604/E605 when a split is empty."""
    graph, data = dataset
    text = EXAMPLES[name]
    cq = compiled(name)
    anchors = cq.anchors()
    labels = label_rows(cq, anchors)
    query = pql.parse(text)
    splits = reference_split(query, graph, anchors) if cq.kind is QueryKind.TEMPORAL else None
    try:
        table = cq.training_table()
    except pql.PQLRunError as e:  # allowed only when the reference agrees that a split is empty
        assert e.code in ("E604", "E605"), e
        if splits is not None:
            present = set(splits.values()) if e.code == "E604" else {splits[r["ANCHOR_TIMESTAMP"]] for r in labels}
            assert present != {"train", "val", "test"}, f"{name}: {e.code} although every split has rows"
        return
    rows = table.to_pylist()
    assert table.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET", "SPLIT"]
    assert [{k: r[k] for k in ("ENTITY", "ANCHOR_TIMESTAMP", "TARGET")} for r in rows] == labels
    if splits is not None:
        assert [r["SPLIT"] for r in rows] == [splits[r["ANCHOR_TIMESTAMP"]] for r in rows]


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_golden_prediction_rows(name: str, dataset, compiled) -> None:
    graph, data = dataset
    cq = compiled(name)
    got = [(r["ENTITY"], r["ANCHOR_TIMESTAMP"]) for r in cq.prediction_table().to_pylist()]
    if isinstance(pql.parse(EXAMPLES[name]).problem, pql.ast.Forecast):
        got = sorted({(e, a) for e, a in got if a == cq.prediction_anchor()}, key=lambda r: r[0])
    assert got == reference_prediction(EXAMPLES[name], graph, data)


def test_snapshots_have_no_strays() -> None:
    """Every snapshot file belongs to an example (a renamed example must not leave its old file)."""
    names = {p.stem for p in GOLDEN.glob("*.csv")}
    assert names <= set(EXAMPLES), sorted(names - set(EXAMPLES))
