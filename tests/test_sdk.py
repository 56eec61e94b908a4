"""The Kumo-style SDK objects: init, Table, Graph (SDK form and methods), PredictiveQuery, plans,
Trainer and background jobs, on the synthetic sample, and the errors for misuse."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import pql
from pql.errors import PQLDataError, PQLRunError, PQLValidationError
from pql.graph import ColumnSchema, Dtype, Edge, Stype, TableSchema
from pql.sdk import config
from pql.sdk.jobs import JobStatus

SYNTHETIC = Path(__file__).resolve().parent.parent / "examples" / "synthetic"
CHURN = ("PREDICT COUNT(transactions.*, 0, 30, days) = 0\n"
         "FOR EACH users.user_id WHERE COUNT(transactions.*, -90, 0, days) > 0")
LTV = "PREDICT SUM(transactions.price, 0, 30, days) FOR EACH users.user_id"
EDGES = [dict(src_table="transactions", fkey="user_id", dst_table="users"),
         dict(src_table="transactions", fkey="item_id", dst_table="items")]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    for name in ("users", "items", "transactions"):
        shutil.copy(SYNTHETIC / f"{name}.parquet", folder / f"{name}.parquet")
    return folder


@pytest.fixture(scope="module", autouse=True)
def workdir(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("work")
    pql.init(working_dir=path)
    yield path
    pql.init(working_dir=None, threads=None)


def tables(folder: Path) -> dict[str, pql.Table]:
    c = pql.LocalConnector(folder)
    return {
        "users": pql.Table.from_source_table(source_table=c.table("users"), primary_key="user_id").infer_metadata(),
        "items": pql.Table.from_source_table(source_table=c.table("items"), primary_key="item_id").infer_metadata(),
        "transactions": pql.Table.from_source_table(source_table=c.table("transactions"),
                                                    time_column="timestamp").infer_metadata(),
    }


@pytest.fixture(scope="module")
def graph(data: Path) -> pql.Graph:
    return pql.Graph(tables=tables(data), edges=EDGES)


# -- init -----------------------------------------------------------------------------------------------
def test_init_checks_settings(tmp_path: Path) -> None:
    with pytest.raises(PQLRunError) as e:
        pql.init(thread=2)
    assert e.value.code == "E601" and "did you mean 'threads'?" in e.value.message
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(PQLRunError) as e:
            pql.init(threads=bad)
        assert e.value.code == "E602"
    (tmp_path / "file").write_text("x")
    with pytest.raises(PQLRunError) as e:
        pql.init(working_dir=tmp_path / "file")
    assert e.value.code == "E602" and "not a folder" in e.value.message
    before = config.working_dir()
    assert pql.init(threads=2).threads == 2 and config.working_dir() == before
    pql.init(threads=None)


# -- Table ------------------------------------------------------------------------------------------------
def test_table_infers_keys_types_and_time(data: Path) -> None:
    t = tables(data)
    users, items, transactions = t["users"], t["items"], t["transactions"]
    assert (users.primary_key, users.time_column) == ("user_id", "join_timestamp")  # the only timestamp
    assert (transactions.primary_key, transactions.time_column) == ("transaction_id", "timestamp")
    assert items.time_column is None and [w.code for w in items.warnings] == ["W703"]
    meta = users.metadata.set_index("name")
    assert list(users.metadata.columns) == ["name", "dtype", "stype", "is_primary", "is_time_column",
                                            "is_end_time_column"]
    assert meta.loc["user_id", "dtype"] == "int" and meta.loc["user_id", "stype"] == "ID"
    assert bool(meta.loc["user_id", "is_primary"]) and bool(meta.loc["join_timestamp", "is_time_column"])
    assert meta.loc["country", "stype"] == "categorical" and meta.loc["is_vip", "dtype"] == "bool"
    assert users["age"].dtype is Dtype.INT and users.column("age").stype is Stype.NUMERICAL


def test_table_before_inference_and_copy(data: Path) -> None:
    c = pql.LocalConnector(data)
    t = pql.Table.from_source_table(source_table=c["users"])
    assert t.primary_key is None and t.metadata["dtype"].isna().all()
    inferred = t.infer_metadata(inplace=False)
    assert inferred is not t and inferred.primary_key == "user_id" and t.primary_key is None


def test_table_stype_override_kept_and_reaches_graph(data: Path) -> None:
    t = tables(data)
    t["users"]["age"].stype = "Categorical"  # stype names ignore case
    t["users"].infer_metadata()
    assert t["users"]["age"].stype is Stype.CATEGORICAL
    g = pql.Graph(tables=t, edges=EDGES)
    assert g.column("users", "age").stype is Stype.CATEGORICAL
    t["users"]["country"].stype = "numerical"  # wrong for a string column: checked with the data
    with pytest.raises(PQLDataError) as e:
        pql.Graph(tables=t, edges=EDGES)
    assert e.value.code == "E711" and "cannot be numerical with dtype string" in e.value.message


def test_table_bad_input(data: Path) -> None:
    c = pql.LocalConnector(data)
    with pytest.raises(PQLDataError) as e:
        pql.Table.from_source_table(source_table=c["users"], time_column="join_time")
    assert e.value.code == "E704" and "did you mean 'join_timestamp'?" in e.value.message
    assert "(named by time_column)" in e.value.message
    t = pql.Table.from_source_table(source_table=c["users"])
    with pytest.raises(PQLDataError) as e:
        t["age"].stype = "numeric"
    assert e.value.code == "E711" and "did you mean 'numerical'?" in e.value.message
    with pytest.raises(PQLDataError) as e:
        t["agee"]
    assert e.value.code == "E704"
    with pytest.raises(PQLRunError) as e:
        pql.Table.from_source_table(source_table="users")
    assert e.value.code == "E602" and "connector.table" in e.value.message


def test_table_column_subset(data: Path) -> None:
    t = pql.Table.from_source_table(source_table=pql.LocalConnector(data)["users"],
                                    column_names=["user_id", "age"]).infer_metadata()
    assert list(t.metadata["name"]) == ["user_id", "age"] and t.time_column is None
    with pytest.raises(PQLDataError) as e:
        pql.Table(pql.LocalConnector(data)["users"], column_names=["user_id", "agee"])
    assert e.value.code == "E704" and "(named by column_names)" in e.value.message


def test_table_validate(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    users = tables(data)["users"]
    assert users.validate(verbose=True) is users
    out = capsys.readouterr().out
    assert "Table 'users' is valid: 300 rows, 5 columns, primary key user_id, time column join_timestamp" in out
    dup = pq.read_table(data / "users.parquet")
    pq.write_table(pa.concat_tables([dup, dup.slice(0, 2)]), tmp_path / "users.parquet")
    t = pql.Table.from_source_table(source_table=pql.LocalConnector(tmp_path)["users"], primary_key="user_id")
    with pytest.raises(PQLDataError) as e:
        t.validate(verbose=False)
    assert e.value.code == "E705" and "2 duplicate values" in e.value.message


# -- Graph ------------------------------------------------------------------------------------------------
def test_graph_from_sdk_tables(graph: pql.Graph) -> None:
    assert isinstance(graph, pql.Graph) and list(graph.tables) == ["users", "items", "transactions"]
    assert graph.edges == [Edge("transactions", "user_id", "users"), Edge("transactions", "item_id", "items")]
    assert all(isinstance(t, TableSchema) for t in graph)
    assert graph.table("transactions").source.name == "transactions.parquet"  # read in place
    assert graph.column("transactions", "item_id").stype is Stype.ID
    assert graph.table("users").time_column == "join_timestamp"


def test_graph_core_form_unchanged() -> None:
    t = TableSchema("users", {"user_id": ColumnSchema("user_id", Dtype.INT, Stype.ID)}, primary_key="user_id")
    g = pql.Graph(tables={"users": t}, edges=[])
    assert g.tables["users"] is t and g.edges == [] and g.warnings == []
    g2 = pql.Graph({"users": t}, [dict(src_table="users", fkey="user_id", dst_table="users")])
    assert g2.edges == [Edge("users", "user_id", "users")]


def test_graph_bad_edges(data: Path) -> None:
    t = tables(data)
    with pytest.raises(PQLDataError) as e:
        pql.Graph(tables=t, edges=[dict(src_table="transactions", foreign_key="user_id", dst_table="users")])
    assert e.value.code == "E710" and "unknown key 'foreign_key'" in e.value.message
    with pytest.raises(PQLDataError) as e:
        pql.Graph(tables=t, edges=[dict(src_table="transactions", fkey="userid", dst_table="users")])
    assert e.value.code == "E710" and "did you mean 'user_id'?" in e.value.message
    with pytest.raises(PQLDataError) as e:
        pql.Graph(tables=t, edges=[dict(src_table="transactions", fkey="user_id", dst_table="user")])
    assert e.value.code == "E710" and "unknown table 'user'" in e.value.message
    with pytest.raises(PQLDataError) as e:
        pql.Graph(tables={"users": "users.parquet"}, edges=[])
    assert e.value.code == "E710" and "expected a pql.Table" in e.value.message


def test_graph_link_unlink_infer(data: Path) -> None:
    g = pql.Graph(tables=tables(data))
    assert g.edges == []
    assert g.link("transactions", "user_id", "users") is g
    assert g.edges == [Edge("transactions", "user_id", "users")]
    with pytest.raises(PQLDataError) as e:
        g.link(dict(src_table="transactions", fkey="user_id", dst_table="users"))
    assert e.value.code == "E710" and "already" in e.value.message
    with pytest.raises(PQLDataError) as e:
        g.link("transactions", "status", "users")
    assert e.value.code == "E710" and "dtypes string/int differ" in e.value.message
    with pytest.raises(PQLDataError) as e:
        g.unlink("transactions", "item_id", "items")
    assert e.value.code == "E710" and e.value.hints == ("edges: transactions.user_id -> users",)
    assert g.infer_links() == [Edge("transactions", "item_id", "items")]
    assert g.column("transactions", "item_id").stype is Stype.ID
    g.unlink(Edge("transactions", "user_id", "users"))
    assert g.edges == [Edge("transactions", "item_id", "items")]


def test_graph_stats_and_validate(graph: pql.Graph, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stats = graph.get_table_stats()
    tx = pq.read_table(data / "transactions.parquet")
    assert stats["users"]["num_rows"] == 300 and stats["transactions"]["num_rows"] == tx.num_rows
    assert stats["transactions"]["min_time"] == pc.min(tx.column("timestamp")).as_py()
    assert stats["transactions"]["max_time"] == pc.max(tx.column("timestamp")).as_py()
    assert stats["items"]["time_column"] is None and stats["items"]["primary_key"] == "item_id"
    assert graph.validate(verbose=True) is graph
    out = capsys.readouterr().out
    assert out.startswith("Graph is valid: 3 tables, 2 edges")
    assert "  transactions: 8,000 rows, 8 columns, primary key transaction_id" in out
    assert "edge transactions.user_id -> users" in out


def test_graph_validate_reports_orphans(data: Path, tmp_path: Path) -> None:
    for name in ("users", "items"):
        shutil.copy(data / f"{name}.parquet", tmp_path / f"{name}.parquet")
    tx = pq.read_table(data / "transactions.parquet")
    user = tx.column("user_id").to_pylist()
    user[0] = 10_000
    pq.write_table(tx.set_column(1, "user_id", pa.array(user)), tmp_path / "transactions.parquet")
    g = pql.Graph(tables=tables(tmp_path), edges=EDGES).validate(verbose=False)
    assert [w.code for w in g.warnings] == ["W701"]


# -- PredictiveQuery ------------------------------------------------------------------------------------------
def test_pquery_validate_and_task_type(graph: pql.Graph, capsys: pytest.CaptureFixture[str]) -> None:
    pq_ = pql.PredictiveQuery(graph=graph, query=CHURN)
    assert pq_.validate(verbose=True) is pq_
    assert "Query is valid: binary_classification" in capsys.readouterr().out
    assert pq_.get_task_type() is pql.TaskType.BINARY_CLASSIFICATION
    lp = pql.PredictiveQuery(graph=graph, query="PREDICT LIST_DISTINCT(transactions.item_id, 0, 30, days) "
                                                "RANK TOP 10 FOR EACH users.user_id")
    assert lp.get_task_type() is pql.TaskType.TEMPORAL_LINK_PREDICTION
    bad = pql.PredictiveQuery(graph=graph, query="PREDICT SUM(transactions.prce, 0, 30) FOR EACH users.user_id")
    with pytest.raises(PQLValidationError) as e:
        bad.validate(verbose=False)
    assert e.value.code == "E102" and "did you mean 'price'?" in e.value.message
    with pytest.raises(PQLRunError):
        pql.PredictiveQuery(graph=graph, query=None)
    with pytest.raises(PQLRunError) as e:
        pql.PredictiveQuery(graph="graph.toml", query=CHURN)
    assert "pql.Graph" in e.value.message


def test_training_table_is_the_compilers(graph: pql.Graph) -> None:
    pquery = pql.PredictiveQuery(graph=graph, query=CHURN)
    plan = pquery.suggest_training_table_plan()
    assert plan.timeframe_step is None and any("default split" in n for n in plan.notes)
    table = pquery.generate_training_table()
    expected = pql.compile(CHURN, graph, **plan.options()).training_table()
    assert table.to_arrow().equals(expected)
    assert table.query == pql.format(CHURN) and pquery.train_table is table
    assert sum(table.split_counts().values()) == table.num_rows > 0
    plan.timeframe_step = 14
    edited = pquery.generate_training_table(plan=plan)
    assert edited.options["timeframe_step"] == 14
    assert edited.to_arrow().equals(pql.compile(CHURN, graph, timeframe_step=14).training_table())


def test_non_blocking_jobs(graph: pql.Graph) -> None:
    pquery = pql.PredictiveQuery(graph=graph, query=CHURN)
    job = pquery.generate_training_table(non_blocking=True)
    assert job.job_id.startswith("td-job-") and job.status() in (JobStatus.RUNNING, JobStatus.DONE)
    table = job.result(timeout=120)
    assert job.status() is JobStatus.DONE and job.done()
    assert table.to_arrow().equals(pquery.generate_training_table().to_arrow())
    pred = pquery.generate_prediction_table(anchor_time="2023-10-01", non_blocking=True).result(timeout=120)
    assert str(pred.anchor_time) == "2023-10-01 00:00:00"
    assert pred.to_arrow().equals(pql.compile(CHURN, graph).prediction_table("2023-10-01"))
    failing = pquery.generate_prediction_table(anchor_time="1999-01-01", non_blocking=True)
    with pytest.raises(PQLRunError) as e:
        failing.result(timeout=120)
    assert e.value.code == "E609" and failing.status() is JobStatus.FAILED


def test_plans_are_editable_and_readable(graph: pql.Graph) -> None:
    plan = pql.PredictiveQuery(graph=graph, query=CHURN).suggest_model_plan()
    assert plan.query == pql.format(CHURN) and plan.task_type == "binary_classification"
    assert plan.ranker == "torch" and plan.ranker_params is None and plan.seed == 0
    text = str(plan)
    assert text.startswith("ModelPlan for binary_classification")
    assert "  ranker: 'torch'" in text and "    timeframe_step: default" in text
    plan.ranker, plan.ranker_params = "gbdt", {"max_iter": 20}
    assert "  ranker_params: {'max_iter': 20}" in str(plan)
    assert dataclasses.replace(plan).training_table == plan.training_table


# -- Trainer ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(graph: pql.Graph):
    pquery = pql.PredictiveQuery(graph=graph, query=CHURN)
    plan = pquery.suggest_model_plan()
    plan.ranker, plan.ranker_params = "gbdt", {"max_iter": 30}
    trainer = pql.Trainer(plan)
    job = trainer.fit(graph=graph, train_table=pquery.generate_training_table(non_blocking=True), non_blocking=True)
    return pquery, trainer, job


def test_fit_non_blocking_and_metrics(fitted, workdir: Path) -> None:
    pquery, trainer, job = fitted
    assert job.job_id.startswith("trainingjob-")
    result = job.result(timeout=300)
    assert job.status() is JobStatus.DONE and result.job_id == job.job_id
    m = job.metrics()
    for split in (m.test, m.validation, m.training):
        assert set(split) == {"auroc", "ap", "acc"} and all(0 <= v <= 1 for v in split.values())
    assert "test: auroc=" in str(m) and "; training: auroc=" in str(m)
    assert m.test == result.run.metrics["test"] and m.validation == result.run.metrics["val"]
    assert result.model_dir == workdir / job.job_id / "model" and (result.model_dir / "model.json").is_file()
    assert result.run.training_table.equals(pquery.train_table.result().to_arrow())  # not built again


def test_predict_writes_outputs(fitted, graph: pql.Graph, tmp_path: Path) -> None:
    pquery, trainer, job = fitted
    out = pql.LocalConnector(tmp_path)
    res = trainer.predict(graph=graph, prediction_table=pquery.generate_prediction_table(non_blocking=True),
                          output_types={"predictions"}, output_connector=out, output_table_name="churn",
                          training_job_id=job.job_id)
    written = pq.read_table(tmp_path / "churn.parquet")
    assert written.equals(res.tables["predictions"])
    assert list(res.predictions_df().columns) == ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET_PRED", "True_PROB",
                                                  "False_PROB"]
    assert written.equals(job.result().run.predictions)  # the same model at the same default anchor
    s = res.summary()
    assert s.num_entities_predicted == written.num_rows and s.outputs == {"predictions": str(tmp_path / "churn.parquet")}
    assert "predictions -> " in str(s)
    with pytest.raises(PQLRunError) as e:
        res.embeddings_df()
    assert e.value.code == "E632"


def test_predict_errors(fitted, graph: pql.Graph, tmp_path: Path) -> None:
    pquery, trainer, job = fitted
    table = pquery.generate_prediction_table()
    with pytest.raises(PQLRunError) as e:
        pql.Trainer(pquery.suggest_model_plan()).predict(graph=graph, prediction_table=table)
    assert e.value.code == "E632" and "has not been fit" in e.value.message
    assert "trainer.fit(" in e.value.hints[0]
    with pytest.raises(PQLRunError) as e:
        trainer.predict(graph=graph, prediction_table=table, training_job_id="trainingjob-nope")
    assert e.value.code == "E633"
    with pytest.raises(PQLRunError) as e:
        trainer.predict(graph=graph, prediction_table=table, output_types={"embeddings"})
    assert e.value.code == "E611"  # gbdt gives no embeddings
    with pytest.raises(PQLRunError) as e:
        trainer.predict(graph=graph, prediction_table=table, output_types={"prediction"})
    assert e.value.code == "E602" and "did you mean 'predictions'?" in e.value.message
    with pytest.raises(PQLRunError) as e:
        trainer.predict(graph=graph, prediction_table=table, output_connector=pql.LocalConnector(tmp_path))
    assert e.value.code == "E602" and "output_table_name" in e.value.message
    other = pql.PredictiveQuery(graph=graph, query=LTV).generate_prediction_table()
    with pytest.raises(PQLRunError) as e:
        trainer.predict(graph=graph, prediction_table=other)
    assert e.value.code == "E631" and "another query" in e.value.message
    with pytest.raises(PQLRunError) as e:
        trainer.predict(graph=graph, prediction_table=pquery.generate_training_table())
    assert e.value.code == "E635"


def test_fit_errors(fitted, graph: pql.Graph, data: Path) -> None:
    pquery, trainer, _ = fitted
    other = pql.PredictiveQuery(graph=graph, query=LTV).generate_training_table()
    with pytest.raises(PQLRunError) as e:
        pql.Trainer(pquery.suggest_model_plan()).fit(graph=graph, train_table=other)
    assert e.value.code == "E631" and "another query" in e.value.message
    assert e.value.hints[0] == f"training table: {pql.format(LTV)}"
    plan = pquery.suggest_model_plan()
    plan.training_table.timeframe_step = 7
    with pytest.raises(PQLRunError) as e:
        pql.Trainer(plan).fit(graph=graph, train_table=pquery.generate_training_table())
    assert e.value.code == "E634" and "plan=model_plan.training_table" in e.value.hints[-1]
    t = tables(data)
    t["users"]["age"].stype = "categorical"
    changed = pql.Graph(tables=t, edges=EDGES)
    with pytest.raises(PQLRunError) as e:
        pql.Trainer(pquery.suggest_model_plan()).fit(graph=changed, train_table=pquery.generate_training_table())
    assert e.value.code == "E631" and "another graph" in e.value.message
    with pytest.raises(PQLRunError) as e:
        pql.Trainer({"ranker": "gbdt"})
    assert e.value.code == "E602"


def test_trainer_load(fitted, graph: pql.Graph) -> None:
    pquery, trainer, job = fitted
    loaded = pql.Trainer.load(job.result().job_id)
    assert loaded.is_trained and loaded.model_plan.ranker == "gbdt" and loaded.model_plan.query == pql.format(CHURN)
    res = loaded.predict(graph=graph, prediction_table=pquery.generate_prediction_table())
    assert res.tables["predictions"].equals(job.result().run.predictions)


def test_duckdb_source_tables_and_output(fitted, graph: pql.Graph, data: Path, tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    for name in ("users", "items", "transactions"):
        con.register("src", pq.read_table(data / f"{name}.parquet"))
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM src")
        con.unregister("src")
    con.close()
    db = pql.DuckDBConnector(path)
    g = pql.Graph(tables=tables_from(db), edges=EDGES)
    assert g.table("users").source is None and g.table("users").data is not None  # loaded through DuckDB
    pquery = pql.PredictiveQuery(graph=g, query=CHURN)
    assert pquery.generate_training_table().to_arrow().equals(
        pql.PredictiveQuery(graph=graph, query=CHURN).generate_training_table().to_arrow())
    _, trainer, job = fitted
    res = trainer.predict(graph=graph, prediction_table=fitted[0].generate_prediction_table(),
                          output_connector=db, output_table_name="churn predictions", training_job_id=job.job_id)
    assert res.outputs == {"predictions": f"{path.resolve()}:churn predictions"}
    assert db["churn predictions"].to_arrow().equals(res.tables["predictions"])


def tables_from(connector) -> dict[str, pql.Table]:
    keys = {"users": "user_id", "items": "item_id", "transactions": None}
    return {name: pql.Table.from_source_table(source_table=connector[name], primary_key=pk,
                                              time_column="timestamp" if name == "transactions" else None)
            .infer_metadata() for name, pk in keys.items()}


def test_init_renders_uncaught_errors(data: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "bad.py"
    script.write_text(
        "import pql as kumo, sys\n"
        "kumo.init()\n"
        "c = kumo.LocalConnector(sys.argv[1])\n"
        "g = kumo.Graph(tables={n: kumo.Table.from_source_table(source_table=c[n]).infer_metadata()\n"
        "                      for n in ('users', 'items', 'transactions')})\n"
        "g.infer_links()\n"
        "kumo.PredictiveQuery(graph=g, query='PREDICT SUM(transactions.prce, 0, 30)\\n"
        "FOR EACH users.user_id').validate()\n")
    proc = subprocess.run([sys.executable, str(script), str(data)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error[E102]: table 'transactions' has no column 'prce'; did you mean 'price'?")
    assert "1 | PREDICT SUM(transactions.prce, 0, 30)\n  |             ^^^^^^^^^^^^^^^^^" in proc.stderr


def test_predict_waits_for_a_running_fit(graph: pql.Graph) -> None:
    pquery = pql.PredictiveQuery(graph=graph, query=CHURN)
    plan = pquery.suggest_model_plan()
    plan.ranker, plan.ranker_params = "gbdt", {"max_iter": 10}
    trainer = pql.Trainer(plan)
    fit = trainer.fit(graph=graph, train_table=pquery.generate_training_table(non_blocking=True), non_blocking=True,
                      custom_tags={"team": "growth"})
    pred = trainer.predict(graph=graph, prediction_table=pquery.generate_prediction_table(non_blocking=True),
                           non_blocking=True)
    result = pred.result(timeout=300)
    assert fit.status() is JobStatus.DONE and trainer.custom_tags == {"team": "growth"}
    assert result.tables["predictions"].equals(fit.result().run.predictions)
    assert pred.summary().num_entities_predicted == result.tables["predictions"].num_rows
