"""Output tables in the §12 formats, atomic run folders, and the SQL session."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pql.ast import TaskType
from pql.errors import PQLError
from pql.jobs.common import match_rows
from pql.jobs.outputs import (embeddings_table, item_embeddings_table, node_predictions, pair_predictions,
                              write_run_dir)
from pql.session import Session
from pql.tasks import FeatureSet, TaskInfo

A1, A2 = dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1)


def keys(entities, anchors) -> pa.Table:
    return pa.table({"ENTITY": pa.array(entities, pa.int64()),
                     "ANCHOR_TIMESTAMP": pa.array(anchors, pa.timestamp("us"))})


def test_binary_output_threshold_and_order():
    t = node_predictions(TaskInfo(TaskType.BINARY_CLASSIFICATION), keys([2, 1, 3], [A1, A1, A1]),
                         np.array([0.7, 0.2, 0.5]), threshold=0.6)
    assert t.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET_PRED", "True_PROB", "False_PROB"]
    assert t.column("ENTITY").to_pylist() == [1, 2, 3]
    assert t.column("TARGET_PRED").to_pylist() == [False, True, False]
    assert t.column("False_PROB").to_pylist() == pytest.approx([0.8, 0.3, 0.5])


def test_multiclass_output_one_predicted_row_ties_to_smaller_class():
    task = TaskInfo(TaskType.MULTICLASS_CLASSIFICATION, classes=["a", "b", "c"])
    probs = np.array([[0.4, 0.2, 0.4], [0.1, 0.6, 0.3]])
    t = node_predictions(task, keys([7, 5], [A1, A1]), probs)
    assert t.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "CLASS", "SCORE", "PREDICTED"]
    rows = [(r["ENTITY"], r["CLASS"], r["PREDICTED"]) for r in t.to_pylist()]
    assert rows == [(5, "b", True), (5, "c", False), (5, "a", False),
                    (7, "a", True), (7, "c", False), (7, "b", False)]
    top = node_predictions(task, keys([7, 5], [A1, A1]), probs, num_classes=1)
    assert top.column("CLASS").to_pylist() == ["b", "a"] and all(top.column("PREDICTED").to_pylist())


def _pairs(rows) -> FeatureSet:
    ent, anc, cls = zip(*rows)
    k = keys(list(ent), list(anc)).append_column("CLASS", pa.array(cls, pa.int64()))
    group, seen = [], {}
    for e, a in zip(ent, anc):
        group.append(seen.setdefault((e, a), len(seen)))
    return FeatureSet(keys=k, X=np.zeros((len(rows), 0), np.float32), names=[], group=np.array(group))


def test_long_format_rank_ties_and_k():
    fs = _pairs([(1, A2, 30), (1, A2, 10), (1, A2, 20), (2, A1, 5), (2, A1, 6)])
    t = pair_predictions(fs, np.array([0.5, 0.5, 0.9, 0.1, np.nan]), K=2)
    assert t.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "CLASS", "SCORE", "RANK"]
    assert t.schema.field("RANK").type == pa.int32()
    got = [(r["ENTITY"], r["CLASS"], r["RANK"]) for r in t.to_pylist()]
    # anchor order first (A1 < A2); within a row SCORE desc, ties to the smaller CLASS; NaN scores last
    assert got == [(2, 5, 1), (2, 6, 2), (1, 20, 1), (1, 10, 2)]


def test_embedding_tables():
    k = keys([2, 2, 1], [A1, A1, A1])
    t = embeddings_table(k, np.array([[1, 2], [1, 2], [3, 4]], dtype=np.float32))
    assert t.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "EMBEDDING"]
    assert t.column("ENTITY").to_pylist() == [1, 2] and t.column("EMBEDDING").to_pylist() == [[3, 4], [1, 2]]
    items = item_embeddings_table([20, 10], np.array([[0.5], [1.5]]))
    assert items.column("CLASS").to_pylist() == [10, 20]
    assert items.schema.field("EMBEDDING").type == pa.list_(pa.float32())


def test_match_rows_handles_null_anchors():
    left = keys([1, 2, 3], [None, None, A1])
    right = keys([3, 1], [A1, None])
    assert match_rows(left, right, ["ENTITY", "ANCHOR_TIMESTAMP"]).tolist() == [1, -1, 0]


# -- writing -----------------------------------------------------------------------------------------------

TABLE = pa.table({"ENTITY": [1, 2], "TARGET": [[1, 2], None]})


@pytest.mark.parametrize("fmt", ["parquet", "csv", "duckdb"])
def test_write_run_dir_formats_and_session(tmp_path, fmt):
    out = tmp_path / "run"
    write_run_dir(out, {"PREDICTIONS": TABLE, "METRICS": pa.table({"SPLIT": ["val"], "VALUE": [0.5]})}, fmt=fmt,
                  json_files={"metrics.json": {"a": 1}})
    assert json.loads((out / "metrics.json").read_text()) == {"a": 1}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    with Session.from_run_dir(out) as s:
        assert s.sql("SELECT count(*) AS n FROM predictions").column("n").to_pylist() == [2]
        assert s.sql("select VALUE from Metrics").column("VALUE").to_pylist() == [0.5]


def test_failed_write_leaves_nothing_and_keeps_old_outputs(tmp_path):
    out = tmp_path / "run"

    def broken(path: Path) -> None:
        path.mkdir()
        (path / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_run_dir(out, {"PREDICTIONS": TABLE}, folders={"model": broken})
    assert not out.exists()  # created by the call, removed again
    write_run_dir(out, {"PREDICTIONS": TABLE, "EMBEDDINGS": TABLE})
    before = (out / "predictions.parquet").read_bytes()
    with pytest.raises(RuntimeError):
        write_run_dir(out, {"PREDICTIONS": TABLE.slice(0, 1)}, folders={"model": broken}, overwrite=True)
    assert (out / "predictions.parquet").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.parquet", "predictions.parquet"]
    # a successful overwrite replaces the outputs and drops the stale ones of the earlier run
    write_run_dir(out, {"PREDICTIONS": TABLE.slice(0, 1)}, overwrite=True)
    assert pq.read_table(out / "predictions.parquet").num_rows == 1
    assert sorted(p.name for p in out.iterdir()) == ["predictions.parquet"]


def test_existing_folder_refused_without_overwrite(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "mine.txt").write_text("keep")
    with pytest.raises(PQLError) as e:
        write_run_dir(tmp_path / "run", {"PREDICTIONS": TABLE})
    assert e.value.code == "E617"
    write_run_dir(tmp_path / "run", {"PREDICTIONS": TABLE}, overwrite=True)
    assert (tmp_path / "run" / "mine.txt").read_text() == "keep"  # not a pql output: untouched


def test_session_sql_errors_and_multiple_statements():
    s = Session(tables={"PREDICTIONS": TABLE})
    out = s.sql("CREATE TEMP VIEW v AS SELECT ENTITY * 2 AS e FROM predictions; SELECT e FROM v ORDER BY e")
    assert out.column("e").to_pylist() == [2, 4]
    with pytest.raises(PQLError) as e:
        s.sql("SELECT nope FROM predictions")
    assert e.value.code == "E619" and "PREDICTIONS" in " ".join(e.value.hints)
    with pytest.raises(PQLError):
        Session.from_run_dir(Path("/nonexistent/run"))
