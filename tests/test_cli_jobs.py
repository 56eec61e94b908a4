"""`pql run`, `pql predict` and `pql sql` as a user meets them: stdout vs stderr, exit codes, files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pql.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "synthetic"
GRAPH = str(EXAMPLES / "graph.toml")


@pytest.fixture(autouse=True)
def _one_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def ltv_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "ltv"
    r = invoke("run", str(EXAMPLES / "ltv.pql"), "--graph", GRAPH, "--out", str(out), "--param", "max_iter=30",
               "--set", "max_anchors=5")
    return r, out


def test_run_prints_metrics_table_and_writes_folder(ltv_run):
    r, out = ltv_run
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["metric", "gbdt", "val", "gbdt", "test", "mean", "val", "mean", "test",
                                "last", "val", "last", "test"]
    assert [ln.split()[0] for ln in lines[2:]] == ["mae", "mse", "rmse", "r2"]
    assert "wrote" in r.stderr and "predictions.parquet" in r.stderr
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["selected_params"] == {"max_iter": 30} and len(meta["tried"]) == 1
    mae = float(lines[2].split()[2])
    assert mae == pytest.approx(meta["metrics"]["test"]["mae"], abs=1e-4)


def test_quiet_run_prints_only_data(tmp_path):
    out = tmp_path / "q"
    r = invoke("-q", "run", str(EXAMPLES / "churn.pql"), "--graph", GRAPH, "--out", str(out), "--ranker", "popularity",
               "--set", "max_anchors=4")
    assert r.exit_code == 0 and r.stderr == ""
    assert r.stdout.startswith("metric")


def test_predict_preview_and_out(ltv_run, tmp_path):
    _, out = ltv_run
    r = invoke("predict", "--model", str(out), "--limit", "3")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0].split() == ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET_PRED"]
    r = invoke("predict", "--model", str(out), "--out", str(tmp_path / "p"), "--anchor", "2023-11-15")
    assert r.exit_code == 0
    again = pq.read_table(tmp_path / "p" / "predictions.parquet")
    assert {a.isoformat() for a in again.column("ANCHOR_TIMESTAMP").to_pylist()} == {"2023-11-15T00:00:00"}


def test_predict_reproduces_run_predictions(ltv_run, tmp_path):
    _, out = ltv_run
    r = invoke("predict", "--model", str(out), "--out", str(tmp_path / "same"))
    assert r.exit_code == 0
    assert pq.read_table(tmp_path / "same" / "predictions.parquet").equals(pq.read_table(out / "predictions.parquet"))


def test_sql_over_a_run_folder(ltv_run):
    _, out = ltv_run
    r = invoke("sql", "SELECT count(*) AS n FROM predictions p JOIN users u ON u.user_id = p.ENTITY",
               "--run", str(out), "--format", "json")
    assert r.exit_code == 0
    n = json.loads(r.stdout)[0]["n"]
    assert n == pq.read_table(out / "predictions.parquet").num_rows
    r = invoke("sql", "SELECT METRIC FROM metrics WHERE SPLIT = 'test' ORDER BY METRIC", "--run", str(out),
               "--format", "csv")
    assert r.stdout.splitlines() == ['"METRIC"', '"mae"', '"mse"', '"r2"', '"rmse"']
    r = invoke("sql", "SELECT * FROM nowhere", "--run", str(out))
    assert r.exit_code == 1 and "E619" in r.stderr


def test_post_sql_replaces_predictions(tmp_path):
    sql = tmp_path / "top.sql"
    sql.write_text("SELECT * FROM PREDICTIONS WHERE TARGET_PRED > 20 ORDER BY ENTITY;\n")
    out = tmp_path / "run"
    r = invoke("-q", "run", str(EXAMPLES / "ltv.pql"), "--graph", GRAPH, "--out", str(out), "--ranker", "popularity",
               "--set", "max_anchors=4", "--post-sql", str(sql))
    assert r.exit_code == 0
    preds = pq.read_table(out / "predictions.parquet")
    assert preds.num_rows > 0 and min(preds.column("TARGET_PRED").to_pylist()) > 20


def test_bad_input_exit_codes(ltv_run, tmp_path):
    _, out = ltv_run
    r = invoke("run", str(EXAMPLES / "ltv.pql"), "--graph", GRAPH, "--out", str(out))
    assert r.exit_code == 1 and "E617" in r.stderr and "--overwrite" in r.stderr
    r = invoke("run", str(EXAMPLES / "churn.pql"), "--graph", GRAPH, "--out", str(tmp_path / "h"),
               "--ranker", "history")
    assert r.exit_code == 1 and "E614" in r.stderr and not (tmp_path / "h").exists()
    r = invoke("run", str(EXAMPLES / "churn.pql"), "--graph", GRAPH, "--out", str(tmp_path / "c"), "--candidates",
               "history")
    assert r.exit_code == 1 and "E607" in r.stderr
    r = invoke("predict", "--model", str(tmp_path))
    assert r.exit_code == 1 and "E618" in r.stderr
    r = invoke("run", str(EXAMPLES / "ltv.pql"), "--graph", GRAPH)
    assert r.exit_code == 2  # --out is required
    r = invoke("run", str(EXAMPLES / "ltv.pql"), "--graph", GRAPH, "--out", str(tmp_path / "s"), "--post-sql",
               str(tmp_path / "missing.sql"))
    assert r.exit_code == 1 and "E619" in r.stderr
