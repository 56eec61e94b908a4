"""The training and prediction jobs end to end on the committed synthetic example and tiny data:
outputs and schemas per task type, determinism, purge, automatic step, model folders, bad input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import pql
from pql.compiler.timeunits import add_units
from pql.errors import PQLError
from pql.jobs import predict, run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "synthetic"
QUERIES = {name: (EXAMPLES / f"{name}.pql").read_text() for name in ("buy_it_again", "churn", "ltv", "forecast")}
KEY_TYPES = {"ENTITY": pa.int64(), "ANCHOR_TIMESTAMP": pa.timestamp("us")}


@pytest.fixture(autouse=True)
def _one_thread():
    """OpenMP threads spin under a loaded CI machine; one thread keeps the fits fast and steady."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def graph() -> pql.Graph:
    return pql.Graph.from_toml(EXAMPLES / "graph.toml")


def tiny_graph(days: int = 270, users: int = 40, seed: int = 0, rate: float = 0.08) -> pql.Graph:
    """Users buying at random over ``days`` days from 2023-01-01 (in memory)."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2023, 1, 1)
    rows = []
    for u in range(1, users + 1):
        n = rng.poisson(rate * days * (0.3 + rng.random()))
        for d in np.sort(rng.random(n) * days):
            rows.append((u, start + dt.timedelta(days=float(d)), float(np.round(rng.gamma(2.0, 10.0), 2))))
    tx = pa.table({"tx_id": list(range(1, len(rows) + 1)), "user_id": [r[0] for r in rows],
                   "ts": [r[1] for r in rows], "amount": [r[2] for r in rows]})
    us = pa.table({"user_id": list(range(1, users + 1)), "age": rng.integers(18, 70, users).tolist()})
    return pql.Graph.from_tables({"users": us, "transactions": tx},
                                 primary_keys={"users": "user_id", "transactions": "tx_id"},
                                 time_columns={"transactions": "ts"},
                                 edges=[pql.Edge("transactions", "user_id", "users")])


@pytest.fixture(scope="module")
def churn_run(graph, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "churn"
    return run(QUERIES["churn"], graph, out_dir=out, ranker_params={}), out


# -- outputs per task type ------------------------------------------------------------------------------

NODE_SCHEMAS = {
    "churn": {**KEY_TYPES, "TARGET_PRED": pa.bool_(), "True_PROB": pa.float64(), "False_PROB": pa.float64()},
    "ltv": {**KEY_TYPES, "TARGET_PRED": pa.float64()},
    "forecast": {**KEY_TYPES, "TARGET_PRED": pa.float64()},
}


def _schema(table: pa.Table) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in table.schema}


def _check_run_folder(out: Path, task_type: str, ranker: str) -> dict:
    names = sorted(p.name for p in out.iterdir())
    assert {"predictions.parquet", "metrics.json", "training_table.parquet", "metrics.parquet", "model"} <= set(names)
    assert not [n for n in names if n.startswith(".")], "no temporaries are left behind"
    meta = json.loads((out / "metrics.json").read_text())
    assert list(meta)[:5] == ["task_type", "ranker", "metrics", "baselines", "seed"]
    assert meta["task_type"] == task_type and meta["ranker"] == ranker
    assert set(meta["metrics"]) == {"val", "test"}
    for per in meta["baselines"].values():
        assert set(per) == {"val", "test"}
    tt = pq.read_table(out / "training_table.parquet")
    assert tt.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET", "SPLIT"]
    assert (out / "model" / "model.json").is_file() and (out / "model" / "ranker" / "ranker.json").is_file()
    return meta


@pytest.mark.parametrize("name", ["ltv", "forecast"])
def test_node_examples_write_every_output(graph, tmp_path, name):
    out = tmp_path / name
    res = run(QUERIES[name], graph, out_dir=out, ranker_params={})
    meta = _check_run_folder(out, res.task_type.value, "gbdt")
    preds = pq.read_table(out / "predictions.parquet")
    assert _schema(preds) == NODE_SCHEMAS[name]
    assert set(meta["baselines"]) == {"mean", "last"}
    assert list(meta["metrics"]["test"]) == ["mae", "mse", "rmse", "r2"]
    if name == "forecast":
        # n = 4 rows per entity at p, p + 7d, p + 14d, p + 21d
        per_entity = pc.value_counts(preds.column("ENTITY")).field("counts").to_numpy()
        assert set(per_entity.tolist()) == {4}
        first = preds.filter(pc.equal(preds.column("ENTITY"), preds.column("ENTITY")[0]))
        stamps = first.column("ANCHOR_TIMESTAMP").to_pylist()
        assert [(s - stamps[0]).days for s in stamps] == [0, 7, 14, 21]
        held = res.held_out["test"]  # forecasts from the split's oldest anchor a*, row h at a* + h·7d
        a_star = min(held.column("ANCHOR_TIMESTAMP").to_pylist())
        assert {(s - a_star).days for s in held.column("ANCHOR_TIMESTAMP").to_pylist()} == {0, 7, 14, 21}
    # ordering of §12: ANCHOR_TIMESTAMP, ENTITY
    keys = list(zip(preds.column("ANCHOR_TIMESTAMP").to_pylist(), preds.column("ENTITY").to_pylist()))
    assert keys == sorted(keys)


def test_binary_run_outputs_and_baselines(churn_run):
    res, out = churn_run
    meta = _check_run_folder(out, "binary_classification", "gbdt")
    preds = pq.read_table(out / "predictions.parquet")
    assert _schema(preds) == NODE_SCHEMAS["churn"]
    p = preds.column("True_PROB").to_numpy()
    assert np.allclose(p + preds.column("False_PROB").to_numpy(), 1.0)
    assert (preds.column("TARGET_PRED").to_numpy(zero_copy_only=False) == (p >= 0.5)).all()
    assert list(meta["metrics"]["val"]) == ["auroc", "ap", "acc"]
    assert set(meta["baselines"]) == {"majority", "last"}
    assert meta["baselines"]["majority"]["test"]["auroc"] == 0.5  # a constant score ties everywhere
    assert meta["metrics"]["test"]["auroc"] > meta["baselines"]["majority"]["test"]["auroc"]
    assert meta["timeframe_step"]["automatic"] is False and meta["timeframe_step"]["step"] == 30
    assert meta["tune_metric"] == "auroc"
    assert meta["peak_memory_mb"] > 0 and meta["timings"]["total"] > 0
    metrics = pq.read_table(out / "metrics.parquet")
    assert metrics.column_names == ["SPLIT", "METRIC", "VALUE", "N"]


def test_held_out_scores_match_the_metrics(churn_run):
    from pql.metrics import auroc

    res, _ = churn_run
    test = res.held_out["test"]
    assert test.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET_PRED", "True_PROB", "False_PROB"]
    rows = res.training_table.filter(pc.equal(res.training_table.column("SPLIT"), "test"))
    truth = {(r["ENTITY"], r["ANCHOR_TIMESTAMP"]): r["TARGET"] for r in rows.to_pylist()}
    y = [truth[(r["ENTITY"], r["ANCHOR_TIMESTAMP"])] for r in test.to_pylist()]
    assert len(y) == rows.num_rows
    assert auroc(y, test.column("True_PROB").to_numpy()) == pytest.approx(res.metrics["test"]["auroc"])


def test_tuning_picks_the_best_setting_on_val(graph):
    res = run(QUERIES["churn"], graph, ranker="gbdt", max_anchors=5)
    tried = res.info["tried"]
    assert len(tried) == 3
    best = max(tried, key=lambda t: t["auroc"])
    assert res.info["selected_params"] == best["params"]
    assert res.metrics["val"]["auroc"] == best["auroc"]


# -- determinism, purge, automatic step ---------------------------------------------------------------


def test_same_seed_gives_identical_predictions_and_metrics(graph, churn_run, tmp_path):
    res, out = churn_run
    again = run(QUERIES["churn"], graph, out_dir=tmp_path / "again", ranker_params={})
    assert pq.read_table(tmp_path / "again" / "predictions.parquet").equals(pq.read_table(out / "predictions.parquet"))
    assert again.metrics == res.metrics and again.baselines == res.baselines


def test_purge_drops_training_rows_whose_labels_reach_into_val(graph):
    res = run(QUERIES["ltv"], graph, ranker="popularity", timeframe_step=10)
    table = res.training_table
    first_val = pc.min(pc.filter(table.column("ANCHOR_TIMESTAMP"), pc.equal(table.column("SPLIT"), "val"))).as_py()
    train = table.filter(pc.equal(table.column("SPLIT"), "train"))
    ends = [add_units(a, 30, pql.ast.TimeUnit.DAYS) for a in pc.unique(train.column("ANCHOR_TIMESTAMP")).to_pylist()]
    assert ends and max(ends) <= first_val
    assert res.info["purged_rows"] > 0
    untouched = run(QUERIES["ltv"], graph, ranker="popularity", max_anchors=4)
    assert untouched.info["purged_rows"] == 0  # step = window: the last train window ends at the first val anchor


def test_automatic_step_for_a_long_window_over_short_data():
    g = tiny_graph(days=270)
    q = ("PREDICT SUM(transactions.amount, 0, 90, days) FOR EACH users.user_id "
         "WHERE COUNT(transactions.*, -INF, 0, days) > 0")
    res = run(q, g, ranker="popularity")
    step = res.info["timeframe_step"]
    assert step["automatic"] is True and step["default"] == 90 and 1 <= step["step"] < 90
    assert len(sum(res.info["anchors"].values(), [])) >= 8
    assert any(w.code == "W116" for w in res.warnings)
    # the largest such step: one more day gives fewer than 8 anchors
    assert len(pql.compile(q, g, timeframe_step=step["step"] + 1).anchors()) < 8


# -- prediction job and model folders -------------------------------------------------------------------


def test_predict_from_model_folder_reproduces_the_run(churn_run, tmp_path):
    res, out = churn_run
    again = predict(out)
    assert again.predictions.equals(res.predictions)
    earlier = predict(out / "model", anchor_time="2023-10-01", out_dir=tmp_path / "p")
    assert earlier.anchor == dt.datetime(2023, 10, 1)
    written = pq.read_table(tmp_path / "p" / "predictions.parquet")
    assert set(written.column("ANCHOR_TIMESTAMP").to_pylist()) == {dt.datetime(2023, 10, 1)}


def test_model_folder_from_another_query_or_graph(churn_run, graph):
    _, out = churn_run
    with pytest.raises(PQLError) as e:
        predict(out, query=QUERIES["ltv"])
    assert e.value.code == "E618" and "another query" in e.value.message
    with pytest.raises(PQLError) as e:
        predict(out, graph=tiny_graph())
    assert e.value.code == "E618" and "another graph" in e.value.message
    with pytest.raises(PQLError) as e:
        predict(out.parent)
    assert e.value.code == "E618"
    predict(out, query="-- same query, other layout\n" + pql.format(QUERIES["churn"]))  # canonical text matches


# -- bad input -------------------------------------------------------------------------------------------


def test_unsupported_ranker_lists_those_that_do(graph, tmp_path):
    with pytest.raises(PQLError) as e:
        run(QUERIES["churn"], graph, ranker="history", out_dir=tmp_path / "x")
    assert e.value.code == "E614" and "gbdt" in e.value.message and "popularity" in e.value.message
    assert not (tmp_path / "x").exists()


def test_unknown_ranker_and_options(graph):
    with pytest.raises(PQLError) as e:
        run(QUERIES["churn"], graph, ranker="gdbt")
    assert e.value.code == "E610" and "gbdt" in e.value.message
    with pytest.raises(PQLError) as e:
        run(QUERIES["churn"], graph, timeframe_stp=3)
    assert e.value.code == "E601"
    with pytest.raises(PQLError) as e:
        run(QUERIES["churn"], graph, candidates="history")
    assert e.value.code == "E607"
    with pytest.raises(PQLError) as e:
        run(QUERIES["churn"], graph, ranker="gbdt", outputs="embeddings")
    assert e.value.code == "E611"


def test_too_little_history_says_how_much_is_needed(tmp_path):
    g = tiny_graph(days=100, users=10)
    q = "PREDICT SUM(transactions.amount, 0, 60, days) > 10 FOR EACH users.user_id"
    with pytest.raises(PQLError) as e:
        run(q, g, ranker="popularity", out_dir=tmp_path / "x")
    assert e.value.code in ("E603", "E604")
    text = e.value.message + " ".join(e.value.hints)
    assert "days" in text
    assert not (tmp_path / "x").exists()


def test_single_class_training_table(tmp_path):
    g = tiny_graph(days=200, users=10)
    q = "PREDICT COUNT(transactions.*, 0, 10, days) >= 0 FOR EACH users.user_id"
    with pytest.raises(PQLError) as e:
        run(q, g, ranker="gbdt", out_dir=tmp_path / "x")
    assert e.value.code == "E616" and "single class" in e.value.message
    assert not (tmp_path / "x").exists()


def test_existing_output_folder_needs_overwrite(churn_run, graph):
    res, out = churn_run
    before = (out / "predictions.parquet").read_bytes()
    with pytest.raises(PQLError) as e:
        run(QUERIES["churn"], graph, out_dir=out, ranker="popularity")
    assert e.value.code == "E617" and "--overwrite" in " ".join(e.value.hints)
    assert (out / "predictions.parquet").read_bytes() == before


def test_embeddings_output_from_a_ranker_that_makes_them(graph, tmp_path):
    out = tmp_path / "torch"
    res = run(QUERIES["churn"], graph, ranker="torch", out_dir=out, max_anchors=4,
              ranker_params={"epochs": 1, "min_steps": 5, "hidden": 8, "layers": 1}, outputs="predictions,embeddings")
    emb = pq.read_table(out / "embeddings.parquet")
    assert emb.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "EMBEDDING"]
    assert emb.schema.field("EMBEDDING").type == pa.list_(pa.float32())
    assert emb.num_rows == res.predictions.num_rows  # one per prediction row
    assert res.info["embeddings"] is True and res.embeddings.equals(emb)


# -- pair tasks: buy it again ---------------------------------------------------------------------------

BIA_OPTIONS = {"ranker_params": {"max_iter": 40}, "max_anchors": 5}

POST_FILTER = """
SELECT p.* FROM PREDICTIONS AS p
WHERE EXISTS (SELECT 1 FROM transactions AS t
              WHERE t.user_id = p.ENTITY AND t.item_id = p.CLASS AND t."timestamp" <= p.ANCHOR_TIMESTAMP)
ORDER BY p.ENTITY, p.RANK;
"""


@pytest.fixture(scope="module")
def bia_run(graph, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "bia"
    return run(QUERIES["buy_it_again"], graph, out_dir=out, **BIA_OPTIONS), out


def _history(graph, anchor) -> dict[int, set[int]]:
    """H(u, p) ∩ items valid at p, straight from the data."""
    from pql.data import Database

    db = Database(graph)
    rows = db.con.sql("SELECT DISTINCT t.user_id, t.item_id FROM transactions t JOIN items i ON i.item_id = t.item_id "
                      "WHERE t.timestamp <= $a AND i.start_timestamp <= $a "
                      "AND (i.end_timestamp IS NULL OR i.end_timestamp > $a)", params={"a": anchor}).fetchall()
    out: dict[int, set[int]] = {}
    for u, i in rows:
        out.setdefault(u, set()).add(i)
    return out


def test_buy_it_again_run_outputs(bia_run):
    res, out = bia_run
    meta = _check_run_folder(out, "temporal_link_prediction", "gbdt")
    preds = pq.read_table(out / "predictions.parquet")
    assert _schema(preds) == {**KEY_TYPES, "CLASS": pa.int64(), "SCORE": pa.float64(), "RANK": pa.int32()}
    ranks: dict[int, list[int]] = {}
    for e, r in zip(preds.column("ENTITY").to_pylist(), preds.column("RANK").to_pylist()):
        ranks.setdefault(e, []).append(r)
    assert all(r == list(range(1, len(r) + 1)) and len(r) <= 50 for r in ranks.values())
    assert set(meta["baselines"]) == {"popularity", "history"}
    test = meta["metrics"]["test"]
    assert list(test)[0] == "map@50" and "mrr" in test
    assert {"repeat/map@50", "explore/map@50", "repeat_share"} <= set(test)
    assert 0 < meta["candidate_recall"]["val"] <= 1
    assert meta["metrics"]["test"]["map@10"] >= meta["baselines"]["popularity"]["test"]["map@10"]
    held = res.held_out["test"]
    assert held.column_names == preds.column_names and held.num_rows > 0
    assert set(held.column("ANCHOR_TIMESTAMP").to_pylist()) == {max(res.training_table.column("ANCHOR_TIMESTAMP")
                                                                    .to_pylist())}


def test_candidates_history_ranks_only_bought_items(bia_run, graph):
    res, out = bia_run
    hist = predict(out, candidates="history").predictions
    anchor = hist.column("ANCHOR_TIMESTAMP")[0].as_py()
    bought = _history(graph, anchor)
    per: dict[int, list[tuple[int, int]]] = {}
    for r in hist.to_pylist():
        per.setdefault(r["ENTITY"], []).append((r["RANK"], r["CLASS"]))
    assert per
    for user, rows in per.items():
        assert {c for _, c in rows} <= bought[user]
        assert len(rows) == min(50, len(bought[user]))
        assert [r for r, _ in rows] == list(range(1, len(rows) + 1))


def test_spec_post_filter_sql_gives_the_history_output(bia_run, graph):
    """§13: the post-filter over predictions of >= all items, cut to 50 per user, equals candidates = "history"."""
    from pql.session import Session

    res, out = bia_run
    everything = predict(out, num_predictions=1000).predictions
    with Session(graph, tables={"PREDICTIONS": everything}) as session:
        filtered = session.sql(POST_FILTER)
    cut: dict[int, list[int]] = {}
    for r in filtered.to_pylist():
        if len(cut.setdefault(r["ENTITY"], [])) < 50:
            cut[r["ENTITY"]].append(r["CLASS"])
    hist = predict(out, candidates="history").predictions
    expected: dict[int, list[int]] = {}
    for r in hist.to_pylist():
        expected.setdefault(r["ENTITY"], []).append(r["CLASS"])
    assert cut == expected
    # on a plain top 50 it returns a subset of it
    subset = res.session.sql(POST_FILTER)
    assert subset.num_rows and all(r["CLASS"] in expected[r["ENTITY"]] for r in subset.to_pylist())


def test_buy_it_again_is_deterministic(bia_run, graph):
    res, _ = bia_run
    again = run(QUERIES["buy_it_again"], graph, **BIA_OPTIONS)
    assert again.predictions.equals(res.predictions) and again.metrics == res.metrics


def test_metrics_option_selects_and_orders_metrics(graph):
    res = run(QUERIES["ltv"], graph, ranker="popularity", max_anchors=4, metrics="nmae,r2")
    assert list(res.metrics["test"]) == ["nmae", "r2"] and res.info["tune_metric"] == "nmae"
    train = np.asarray(res.training_table.filter(pc.equal(res.training_table.column("SPLIT"), "train"))
                       .column("TARGET").to_pylist(), dtype=float)
    mae = run(QUERIES["ltv"], graph, ranker="popularity", max_anchors=4, metrics="mae").metrics["test"]["mae"]
    assert res.metrics["test"]["nmae"] == pytest.approx(mae / np.std(train, ddof=1))
    with pytest.raises(PQLError) as e:
        run(QUERIES["ltv"], graph, ranker="popularity", max_anchors=4, metrics="auroc")
    assert e.value.code == "E602"


def test_training_candidates_are_sampled_per_group():
    from pql.jobs.featurize import sample_training_candidates

    a = dt.datetime(2024, 1, 1)
    cands = pa.table({"ENTITY": [1] * 5 + [2] * 3 + [3] * 4, "ANCHOR_TIMESTAMP": [a] * 12, "CLASS": list(range(12))})
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0], dtype=float)
    kept = sample_training_candidates(cands, y, negatives=2, seed=0)
    groups = {1: [], 2: [], 3: []}
    for i in kept.tolist():
        groups[cands.column("ENTITY")[i].as_py()].append(i)
    assert 0 in groups[1] and len(groups[1]) == 3  # the positive and 2 of the 4 negatives
    assert groups[2] == []  # no relevant candidate: no signal
    assert groups[3] == [8, 9, 10, 11]  # both positives, both negatives
    assert kept.tolist() == sorted(kept.tolist())
    assert sample_training_candidates(cands, y, 2, seed=0).tolist() == kept.tolist()  # seeded
