"""Train/val/test splits (PQL-SPEC §10.4): defaults per query, each kind, E604 and E605."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

import pql
from pql.compiler import compile_query
from pql.compiler.options import SplitSpec, parse_options
from pql.compiler.splits import anchor_splits, default_split, round_half_up
from pql.data import Database
from pql.errors import PQLRunError
from tests.schemas import reference_graph
from tests.test_compiler import D, DAY, daily_graph, make_graph, user

WEEK = [D(2024, 1, 1) + i * 7 * DAY for i in range(10)]


def vq(query: str):
    return pql.validate(query, reference_graph())


@pytest.mark.parametrize("query, expected", [
    ("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id", SplitSpec("chronological", (0.1, 0.1))),
    ("PREDICT SUM(transactions.price, 10, 30) FOR EACH users.user_id", SplitSpec("last_span", (20,))),
    ("PREDICT LIST_DISTINCT(transactions.item_id, 0, 30) RANK TOP 5 FOR EACH users.user_id",
     SplitSpec("last_span", (30,))),
    ("PREDICT SUM(transactions.price, 0, 7) FORECAST 4 TIMEFRAMES FOR EACH items.item_id", SplitSpec("last_span", (28,))),
    ("PREDICT users.age FOR EACH users.user_id", SplitSpec("entity_time", (0.1, 0.1))),
    ("PREDICT regions.population FOR EACH regions.region_id", SplitSpec("random", (0.1, 0.1))),
])
def test_default_split(query, expected):
    assert default_split(vq(query)) == expected


def test_round_half_up():
    assert [round_half_up(0.1, n) for n in (4, 5, 14, 15, 25, 35)] == [0, 1, 1, 2, 3, 4]


def test_chronological_newest_anchors_are_test_then_val():
    q = vq("PREDICT COUNT(transactions.*, 0, 7) > 0 FOR EACH users.user_id")
    got = anchor_splits(SplitSpec("chronological", (0.1, 0.1)), WEEK, q)
    assert [got[a] for a in WEEK] == ["train"] * 8 + ["val", "test"]
    got = anchor_splits(SplitSpec("chronological", (0.2, 0.3)), WEEK, q)
    assert [got[a] for a in WEEK] == ["train"] * 5 + ["val"] * 2 + ["test"] * 3


def test_last_span_uses_half_open_spans_back_from_the_newest_anchor():
    q = vq("PREDICT COUNT(transactions.*, 0, 14) > 0 FOR EACH users.user_id")
    got = anchor_splits(SplitSpec("last_span", (14,)), WEEK, q)
    # test: (a0 - 14d, a0] holds the newest two weekly anchors; val the two before
    assert [got[a] for a in WEEK] == ["train"] * 6 + ["val"] * 2 + ["test"] * 2


def test_time_range_thresholds_are_inclusive():
    q = vq("PREDICT COUNT(transactions.*, 0, 7) > 0 FOR EACH users.user_id")
    got = anchor_splits(SplitSpec("time_range", (WEEK[6], WEEK[8])), WEEK, q)
    assert [got[a] for a in WEEK] == ["train"] * 6 + ["val"] * 2 + ["test"] * 2


def test_too_few_anchors_is_e604():
    q = vq("PREDICT COUNT(transactions.*, 0, 7) > 0 FOR EACH users.user_id")
    with pytest.raises(PQLRunError) as e:
        anchor_splits(SplitSpec("chronological", (0.1, 0.1)), WEEK[:2], q)
    assert e.value.code == "E604" and e.value.message.startswith("2 anchors") and "(need 3)" in e.value.message
    with pytest.raises(PQLRunError) as e:
        anchor_splits(SplitSpec("last_span", (7,)), WEEK[:2], q)
    assert e.value.code == "E604"
    with pytest.raises(PQLRunError) as e:
        anchor_splits(SplitSpec("time_range", (D(2030, 1, 1), D(2031, 1, 1))), WEEK, q)
    assert e.value.code == "E604"


def test_split_option_in_the_training_table():
    g = daily_graph()
    q = "PREDICT SUM(transactions.price, 0, 10) FOR EACH users.user_id"
    cq = compile_query(q, g, database=Database(g), split="time_range(2024-02-20, 2024-03-01)")
    splits = {r["ANCHOR_TIMESTAMP"]: r["SPLIT"] for r in cq.training_table().to_pylist()}
    assert all(s == ("test" if a >= D(2024, 3, 1) else "val" if a >= D(2024, 2, 20) else "train")
               for a, s in splits.items())
    assert set(splits.values()) == {"train", "val", "test"}


def test_empty_split_after_label_rules_is_e605():
    g = daily_graph()
    # only the oldest anchors have transactions 0-1 days ahead priced below 5: val and test are empty
    q = "PREDICT SUM(transactions.price, 0, 10) FOR EACH users.user_id WHERE SUM(transactions.price, -10, 0) < 5"
    cq = compile_query(q, g, database=Database(g), max_anchors=5, split="chronological(0.2, 0.2)")
    with pytest.raises(PQLRunError) as e:
        cq.training_table()
    assert e.value.code == "E605"


def test_entity_time_split_orders_entities_by_time_and_keeps_null_times_in_train():
    users = [user(i, D(2023, 1, 1) + i * DAY, age=20 + i) for i in range(1, 21)] + [user(99, None, age=50)]
    g = make_graph(users=users)
    cq = compile_query("PREDICT users.age FOR EACH users.user_id", g, database=Database(g))
    rows = {r["ENTITY"]: r["SPLIT"] for r in cq.training_table().to_pylist()}
    assert 99 not in rows  # a NULL time: the entity does not exist at the anchor
    # 20 timed entities: newest 2 are test, next 2 val
    assert [rows[i] for i in range(1, 21)] == ["train"] * 16 + ["val"] * 2 + ["test"] * 2


def test_random_split_orders_by_md5_of_seed_and_entity():
    regions = [{"region_id": i, "population": 1000 * i} for i in range(1, 31)]
    g = make_graph(regions=regions)
    for seed in (0, 7):
        cq = compile_query("PREDICT regions.population FOR EACH regions.region_id", g, database=Database(g), seed=seed)
        rows = {r["ENTITY"]: r["SPLIT"] for r in cq.training_table().to_pylist()}
        order = sorted(rows, key=lambda e: (hashlib.md5(f"{seed}:{e}".encode()).hexdigest(), e))
        assert [rows[e] for e in order] == ["train"] * 24 + ["val"] * 3 + ["test"] * 3
        assert any(w.code == "W112" for w in cq.warnings)


def test_split_kind_must_suit_the_query():
    g = make_graph()
    with pytest.raises(PQLRunError) as e:
        compile_query("PREDICT users.age FOR EACH users.user_id", g, split="last_span(7)")
    assert e.value.code == "E602"
    with pytest.raises(PQLRunError) as e:
        compile_query("PREDICT regions.population FOR EACH regions.region_id", g, split="entity_time(0.1, 0.1)")
    assert e.value.code == "E602"


def test_split_values_parse_from_text_and_tuples():
    assert parse_options({"split": "last_span(14)"}).get("split") == SplitSpec("last_span", (14,))
    assert parse_options({"split": ("random", 0.2, 0.1)}).get("split") == SplitSpec("random", (0.2, 0.1))
    got = parse_options({"split": "time_range(2024/1/5, '2024-02-01 08:00:00')"}).get("split")
    assert got == SplitSpec("time_range", (D(2024, 1, 5), dt.datetime(2024, 2, 1, 8)))
