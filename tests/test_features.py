"""Entity and pair features on a hand-written shop graph (tests/feature_graphs.py), values computed
by hand: windows are left-open and right-closed (an event exactly at the anchor is visible, one a
second later is not), end times later than the anchor read as NULL, static tables are always
visible, static tasks (NULL anchor) see everything, and a static target is never a feature."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

import pql
from pql.data import Database
from pql.features import PAIR_FEATURES, candidates, entity_features, pair_features
from tests import feature_graphs as G
from tests.feature_graphs import A, D, build, hand_rows

NODE_Q = "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH users.user_id"
LP_Q = "PREDICT LIST_DISTINCT(orders.item_id, 0, 30, days) RANK TOP 5 FOR EACH users.user_id"


@pytest.fixture(scope="module")
def db():
    database = Database(build(hand_rows()))
    yield database
    database.close()


def _pairs(rows):
    return pa.table({"ENTITY": pa.array([r[0] for r in rows], pa.int64()),
                     "ANCHOR_TIMESTAMP": pa.array([r[1] for r in rows], pa.timestamp("us"))})


def _features(db, query, rows):
    vq = pql.validate(query, db.graph)
    fs = entity_features(db, vq, _pairs(rows))
    return fs, [dict(zip(fs.names, map(float, x))) for x in fs.X]


def test_child_windows_left_open_right_closed(db):
    _, (u1,) = _features(db, NODE_Q, [(1, A)])
    assert u1["orders.count_all"] == 3  # o1, o2, o3 (at A); o4 one second later is invisible
    assert u1["orders.count_7d"] == 1  # o3
    assert u1["orders.count_30d"] == 2  # o1 is exactly 30 days before A: outside (A-30d, A]
    assert u1["orders.count_90d"] == 3 and u1["orders.count_365d"] == 3
    assert u1["orders.times_all"] == 3
    assert u1["orders.amount.sum_all"] == 15 and u1["orders.amount.avg_all"] == 5
    assert u1["orders.amount.sum_30d"] == 10 and u1["orders.amount.avg_30d"] == 5
    assert u1["orders.amount.min_all"] == 3 and u1["orders.amount.max_all"] == 7
    assert u1["orders.amount.max_30d"] == 7 and u1["orders.amount.min_30d"] == 3
    assert u1["orders.qty.sum_all"] == 4
    assert u1["orders.item_id.distinct_all"] == 2
    assert u1["orders.item_id.distinct_7d"] == 1 and u1["orders.item_id.distinct_30d"] == 2
    assert u1["orders.channel.distinct_all"] == 2 and u1["orders.channel.distinct_7d"] == 1
    assert u1["orders.days_since_last"] == 0
    assert u1["orders.days_since_first"] == 30


def test_own_and_parent_columns(db):
    _, (u1, u2, u3) = _features(db, NODE_Q, [(1, A), (2, A), (3, A)])
    assert u1["users.age"] == 30 and u1["users.vip"] == 1 and u1["users.age_days"] == 31
    assert u1["users.segment.freq"] == 0.5  # u1 'a', u2 'b' visible; u3 joins after A
    assert u1["users.tags.n_values"] == 2
    assert math.isnan(u1["users.days_since_end"]) and u1["users.ended"] == 0
    assert u2["users.days_since_end"] == 12 and u2["users.ended"] == 1
    assert u1["regions.population"] == 1000 and u2["regions.population"] == 500
    assert u1["regions.zone.freq"] == 0.5
    code = u1["regions.zone.code"]
    assert code == int(code) and 0 <= code < 2 ** 24 and code != u2["regions.zone.code"]
    assert u1["reviews.count_all"] == 2 and u1["reviews.stars.avg_all"] == 3  # static child
    # u3's row is after A: invisible, like its region through it; its static reviews stay visible
    assert math.isnan(u3["users.age"]) and math.isnan(u3["regions.population"]) and u3["orders.count_all"] == 0


def test_end_time_after_anchor_reads_null(db):
    _, (u2,) = _features(db, NODE_Q, [(2, D(2024, 1, 15))])
    assert math.isnan(u2["users.days_since_end"]) and u2["users.ended"] == 0
    assert u2["orders.count_all"] == 3  # o5 (01-10), o7 (01-12) and o8, exactly at the anchor
    _, (u2b,) = _features(db, NODE_Q, [(2, D(2024, 1, 14, 23, 59, 59))])
    assert u2b["orders.count_all"] == 2 and u2b["orders.amount.sum_all"] == 10


def test_row_order_duplicates_and_null_anchor(db):
    fs, (a, b, c, d) = _features(db, NODE_Q, [(2, A), (1, A), (2, A), (1, None)])
    assert fs.keys.column("ENTITY").to_pylist() == [2, 1, 2, 1]
    np.testing.assert_array_equal(fs.X[0], fs.X[2])
    assert b["orders.count_all"] == 3
    assert d["orders.count_all"] == 5 and d["orders.count_30d"] == 5  # NULL anchor: everything visible
    assert d["users.age"] == 30 and math.isnan(d["orders.days_since_last"])


def test_static_target_is_not_a_feature(db):
    fs, _ = _features(db, "PREDICT users.segment FOR EACH users.user_id", [(1, A)])
    assert not [n for n in fs.names if n.startswith("users.segment")]
    assert "users.age" in fs.names
    fs, _ = _features(db, NODE_Q, [(1, A)])
    assert "users.segment.freq" in fs.names


def test_feature_set_shape_and_types(db):
    fs, _ = _features(db, NODE_Q, [(1, A), (2, A)])
    assert fs.X.dtype == np.float32 and fs.X.shape == (2, len(fs.names)) and len(set(fs.names)) == len(fs.names)
    assert fs.y is None and fs.group is None


# -- pair features --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lp(db):
    vq = pql.validate(LP_Q, db.graph)
    pairs = _pairs([(1, A), (2, A)])
    cands = candidates(db, vq, pairs, options={"num_popular": 1})
    return vq, cands, pair_features(db, vq, cands)


def _row(fs, entity, cls):
    keys = fs.keys.to_pylist()
    i = next(i for i, k in enumerate(keys) if k["ENTITY"] == entity and k["CLASS"] == cls)
    return dict(zip(fs.names, map(float, fs.X[i])))


def test_pair_history_features(lp):
    _, _, fs = lp
    r = _row(fs, 1, 1)
    assert r["pair_count"] == 2 and r["pair_times"] == 2
    assert r["pair_days_since_last"] == 12 and r["pair_days_since_first"] == 30
    assert r["pair_mean_gap"] == 18 and r["pair_recency_ratio"] == pytest.approx(12 / 18)
    assert r["pair_decay_count"] == pytest.approx(0.5 ** 1 + 0.5 ** (12 / 30), rel=1e-6)
    assert r["pair_count_30d"] == 1 and r["pair_count_7d"] == 0 and r["pair_count_90d"] == 2
    assert r["class_pop_30d"] == 2  # o2, o5 (o1 is exactly 30 days back)
    assert r["class_pop_all"] == 3 and r["class_entities_all"] == 2
    assert r["class_pop_decay"] == pytest.approx(0.5 + 0.5 ** (12 / 30) + 0.5 ** (22 / 30), rel=1e-6)
    assert r["entity_events"] == 3 and r["entity_classes"] == 2 and r["entity_days_since_last"] == 0
    assert r["affinity.dept"] == pytest.approx(2 / 3)  # two of u1's three events are food
    assert r["items.price"] == 10
    assert r["pair_share"] == pytest.approx(2 / 3)
    never = _row(fs, 1, 5)  # a co-purchase neighbour u1 never bought
    assert never["pair_count"] == 0 and math.isnan(never["pair_days_since_last"])
    assert never["class_pop_30d"] == 1 and never["items.price"] == 3


def test_pair_feature_contract(lp):
    _, cands, fs = lp
    for name in ("pair_count", "pair_decay_count", "pair_days_since_last", "class_pop_30d", "class_pop_decay"):
        assert name in fs.names and name in PAIR_FEATURES
    keys = fs.keys.to_pylist()
    assert [(k["ANCHOR_TIMESTAMP"], k["ENTITY"], k["CLASS"]) for k in keys] == \
        sorted((k["ANCHOR_TIMESTAMP"], k["ENTITY"], k["CLASS"]) for k in keys)
    assert len(fs) == cands.num_rows
    groups = [(k["ENTITY"], k["ANCHOR_TIMESTAMP"]) for k in keys]
    assert list(fs.group) == [sorted(set(groups), key=groups.index).index(g) for g in groups]
    assert fs.extra["entity_code"].tolist() == [k["ENTITY"] - 1 for k in keys]  # users 1..3 -> 0..2
    assert fs.extra["class_code"].tolist() == [k["CLASS"] - 1 for k in keys]  # items 1..5 -> 0..4
    assert fs.extra["n_entity_codes"].tolist() == [3] and fs.extra["n_class_codes"].tolist() == [5]


def test_pair_features_of_unsorted_duplicated_candidates(db, lp):
    vq, cands, fs = lp
    shuffled = cands.take(pa.array(list(reversed(range(cands.num_rows))) + [0]))
    again = pair_features(db, vq, shuffled)
    assert again.keys.equals(fs.keys)
    np.testing.assert_array_equal(again.X, fs.X)


def test_multilabel_pair_features(db):
    vq = pql.validate("PREDICT LIST_DISTINCT(orders.channel, 0, 30, days) RANK TOP 2 FOR EACH users.user_id",
                      db.graph)
    cands = candidates(db, vq, _pairs([(1, A)]))
    assert cands.column("CLASS").to_pylist() == ["app", "web"]  # 'phone' is only used after A
    fs = pair_features(db, vq, cands)
    web = _row(fs, 1, "web")
    assert web["pair_count"] == 2 and web["class_pop_all"] == 3 and web["pair_days_since_last"] == 0  # o1, o3 (+ o8)
    assert not [n for n in fs.names if n.startswith("items.") or n.startswith("affinity.")]


def test_static_pair_task_has_no_own_history(db):
    rows = hand_rows()  # the same rows in a graph without time columns
    g = pql.Graph.from_tables({n: pa.Table.from_pylist(rows[n], schema=pa.schema(G.SCHEMA[n])) for n in G.SCHEMA},
                              primary_keys=G.KEYS, edges=G.EDGES, stypes=G.STYPES)
    with Database(g) as sdb:
        vq = pql.validate("PREDICT LIST_DISTINCT(orders.item_id) RANK TOP 3 FOR EACH users.user_id", g)
        cands = candidates(sdb, vq, _pairs([(1, None)]), options={"num_popular": 10})
        fs = pair_features(sdb, vq, cands)
        r = _row(fs, 1, 1)
        assert r["pair_count"] == 0 and r["entity_events"] == 0
        assert r["class_pop_all"] == 1  # o5 of u2; u1's own two orders of item 1 are its label
        hist = candidates(sdb, vq, _pairs([(1, None)]), options={"candidates": "history"})
        assert sorted(hist.column("CLASS").to_pylist()) == [1, 2, 3]

