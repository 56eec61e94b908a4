"""Candidates for pair tasks on the hand-written shop graph (tests/feature_graphs.py, anchor A).

u1 bought items 1 and 2 by A (item 2 again a second after A, item 3 after A); u2 bought 1, 4 and 5.
Item 4 retired before A and item 3 is created after A, so neither is ever a candidate at A; item
2 retires after A and is valid. With one popular item (item 1, two orders in the 30 days), u1's
co-purchase neighbours through u2's profile are items 4 and 5, of which only 5 is valid.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

import pql
from pql.data import Database
from pql.features import candidate_recall, candidates
from pql.features.candidates import DEFAULTS
from tests.feature_graphs import A, D, build, hand_rows

LP_Q = "PREDICT LIST_DISTINCT(orders.item_id, 0, 30, days) RANK TOP 5 FOR EACH users.user_id"


@pytest.fixture(scope="module")
def db():
    database = Database(build(hand_rows()))
    yield database
    database.close()


@pytest.fixture(scope="module")
def vq(db):
    return pql.validate(LP_Q, db.graph)


def _pairs(rows):
    return pa.table({"ENTITY": pa.array([r[0] for r in rows], pa.int64()),
                     "ANCHOR_TIMESTAMP": pa.array([r[1] for r in rows], pa.timestamp("us"))})


def _sets(table):
    out: dict = {}
    for r in table.to_pylist():
        out.setdefault((r["ENTITY"], r["ANCHOR_TIMESTAMP"]), set()).add(r["CLASS"])
    return out


def test_history_popular_and_neighbours(db, vq):
    got = _sets(candidates(db, vq, _pairs([(1, A), (2, A)]), options={"num_popular": 1}))
    assert got[(1, A)] == {1, 2, 5}  # history 1, 2; popular 1; neighbour 5 (4 is retired)
    assert got[(2, A)] == {1, 2, 5}  # history 1, 5 (4 retired); neighbour 2 through u1


def test_each_source_alone(db, vq):
    none = {"num_popular": 0, "num_neighbours": 0}
    assert _sets(candidates(db, vq, _pairs([(1, A)]), options=none))[(1, A)] == {1, 2}
    pop = _sets(candidates(db, vq, _pairs([(3, A)]), options={"num_popular": 2}))
    assert pop[(3, A)] == {1, 2}  # u3 has no history: the two most popular valid items of the 30 days
    co = _sets(candidates(db, vq, _pairs([(1, A)]), options={"num_popular": 0}))
    assert co[(1, A)] == {1, 2, 5}


def test_only_valid_destinations(db, vq):
    anchors = [D(2024, 1, 13), A, D(2024, 2, 12), D(2024, 3, 2)]
    got = _sets(candidates(db, vq, _pairs([(u, a) for u in (1, 2) for a in anchors]), options={"num_popular": 50}))
    items = {r["item_id"]: r for r in hand_rows()["items"]}
    for (_, anchor), classes in got.items():
        for c in classes:
            item = items[c]
            assert item["created"] <= anchor and (item["retired"] is None or item["retired"] > anchor)
    assert 4 in got[(2, D(2024, 1, 13))]  # bought 01-12, retires 01-25
    assert 3 in got[(1, D(2024, 2, 12))]  # bought at the anchor, created before it
    assert 2 not in got[(1, D(2024, 3, 2))]  # retired


def test_history_mode(db, vq):
    got = _sets(candidates(db, vq, _pairs([(1, A), (2, A), (3, A)]), options={"candidates": "history"}))
    assert got == {(1, A): {1, 2}, (2, A): {1, 5}}  # u3 has no history; item 4 is retired


def test_order_and_schema(db, vq):
    out = candidates(db, vq, _pairs([(2, A), (1, A), (1, A)]))
    assert out.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "CLASS"]
    rows = [(r["ANCHOR_TIMESTAMP"], r["ENTITY"], r["CLASS"]) for r in out.to_pylist()]
    assert rows == sorted(set(rows))
    assert DEFAULTS["num_popular"] == 100


def test_multilabel_vocabulary(db):
    vq = pql.validate("PREDICT LIST_DISTINCT(orders.channel, 0, 30, days) RANK TOP 2 FOR EACH users.user_id",
                      db.graph)
    got = _sets(candidates(db, vq, _pairs([(3, D(2024, 1, 11)), (3, A), (3, D(2024, 3, 1))])))
    assert got[(3, D(2024, 1, 11))] == {"app", "web"}  # o1 web (01-02), o5 app (01-10)
    assert got[(3, D(2024, 3, 1))] == {"app", "web", "phone"}


def test_recall():
    cands = pa.table({"ENTITY": [1, 1, 2], "ANCHOR_TIMESTAMP": pa.array([A, A, A], pa.timestamp("us")),
                      "CLASS": [10, 11, 10]})
    labels = pa.table({"ENTITY": [1, 2, 3], "ANCHOR_TIMESTAMP": pa.array([A, A, A], pa.timestamp("us")),
                       "TARGET": [[10, 12], [10], [11]]})
    assert candidate_recall(cands, labels) == pytest.approx(2 / 4)
    empty = labels.slice(0, 0)
    assert math.isnan(candidate_recall(cands, empty))
    other_anchor = labels.set_column(1, "ANCHOR_TIMESTAMP", pa.array([D(2024, 1, 1)] * 3, pa.timestamp("us")))
    assert candidate_recall(cands, other_anchor) == 0


def test_recall_of_real_labels(db, vq):
    cq = pql.compile(LP_Q, db.graph, database=db)
    labels = cq.labels([A])
    cands = candidates(db, vq, labels.select(["ENTITY", "ANCHOR_TIMESTAMP"]))
    truth = [(r["ENTITY"], c) for r in labels.to_pylist() for c in r["TARGET"]]
    got = _sets(cands)
    expected = sum(c in got.get((e, A), set()) for e, c in truth) / len(truth)
    assert candidate_recall(cands, labels) == pytest.approx(expected)


def test_candidate_filter(db, vq):
    pairs = _pairs([(1, A), (2, A)])
    got = _sets(candidates(db, vq, pairs, options={"num_popular": 1, "candidate_filter": "items.dept = 'food'"}))
    assert got == {(1, A): {1, 5}, (2, A): {1, 5}}  # item 2 is toys
    hist = _sets(candidates(db, vq, pairs, options={"candidates": "history", "candidate_filter": "items.price >= 10"}))
    assert hist == {(1, A): {1, 2}, (2, A): {1}}
    # an end time later than the anchor reads as NULL: item 2 retires 03-01, after A
    ended = _sets(candidates(db, vq, pairs, options={"candidates": "history",
                                                      "candidate_filter": "items.retired IS NULL"}))
    assert ended == {(1, A): {1, 2}, (2, A): {1, 5}}


def test_candidate_filter_errors(db, vq):
    with pytest.raises(pql.PQLRunError) as e:
        candidates(db, vq, _pairs([(1, A)]), options={"candidate_filter": "users.age > 3"})
    assert e.value.code == "E608" and "users.age" in str(e.value)
    with pytest.raises(pql.PQLError) as e:
        candidates(db, vq, _pairs([(1, A)]), options={"candidate_filter": "items.dept > 3"})
    assert e.value.code.startswith("E2")
    with pytest.raises(pql.PQLError):
        candidates(db, vq, _pairs([(1, A)]), options={"candidate_filter": "items.nope = 1"})


def test_history_passes_the_target_filter(db):
    """§13: H(u, p) holds only the target rows that pass its inline filter (here a one-hop column)."""
    vq = pql.validate("PREDICT LIST_DISTINCT(orders.item_id WHERE items.dept = 'food' AND orders.amount > 4, "
                      "0, 30, days) RANK TOP 5 FOR EACH users.user_id", db.graph)
    got = _sets(candidates(db, vq, _pairs([(1, A), (2, A)]), options={"candidates": "history"}))
    assert got == {(1, A): {1}}  # u1: o1, o2 (food, 5 and 7); o3 is toys; u2: o5 (4.0) and o8 (2.0) fail
    everything = _sets(candidates(db, vq, _pairs([(1, A)]), options={"num_popular": 0, "num_neighbours": 0}))
    assert everything[(1, A)] == {1, 2}  # "all" keeps the whole history
