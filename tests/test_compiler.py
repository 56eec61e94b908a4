"""The compiler on small hand-made data whose events sit exactly on window edges (PQL-SPEC §7, §10-§12).

Every expected label below is worked out by hand from the spec, not read back from the engine.
The graph is the reference schema (tests/schemas.py) with tiny in-memory tables.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

import pql
from pql.compiler import compile_query
from pql.data import Database
from pql.errors import PQLError, PQLRunError, PQLValidationError
from tests.schemas import reference_graph

D = dt.datetime
A = D(2024, 3, 1)  # the anchor most tests use
DAY = dt.timedelta(days=1)
SEC = dt.timedelta(seconds=1)

TS = pa.timestamp("us")
SCHEMAS = {
    "regions": [("region_id", pa.int64()), ("name", pa.string()), ("country", pa.string()), ("population", pa.int64())],
    "users": [("user_id", pa.int64()), ("name", pa.string()), ("age", pa.int64()), ("country", pa.string()),
              ("is_vip", pa.bool_()), ("tags", pa.list_(pa.string())), ("birth_date", TS), ("region_id", pa.int64()),
              ("join_timestamp", TS)],
    "items": [("item_id", pa.int64()), ("category", pa.string()), ("brand", pa.string()), ("price", pa.float64()),
              ("description", pa.string()), ("start_timestamp", TS), ("end_timestamp", TS)],
    "transactions": [("transaction_id", pa.int64()), ("user_id", pa.int64()), ("item_id", pa.int64()),
                     ("price", pa.float64()), ("quantity", pa.int64()), ("status", pa.string()),
                     ("is_gift", pa.bool_()), ("timestamp", TS)],
    "notifications": [("notification_id", pa.int64()), ("user_id", pa.int64()), ("channel", pa.string()),
                      ("opened", pa.bool_()), ("sent_at", TS)],
}


def _table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    fields = SCHEMAS[name]
    return pa.table({c: pa.array([r.get(c) for r in rows], type=t) for c, t in fields})


def make_graph(**rows: list[dict[str, Any]]):
    """The reference schema with the given rows (missing tables get one harmless row)."""
    defaults = {
        "regions": [{"region_id": 1, "name": "north", "country": "DE", "population": 2_000_000}],
        "users": [{"user_id": 1, "join_timestamp": D(2023, 1, 1)}],
        "items": [{"item_id": 1, "category": "shoes", "start_timestamp": D(2023, 1, 1)}],
        "transactions": [{"transaction_id": 1, "user_id": 1, "item_id": 1, "price": 1.0, "timestamp": D(2023, 6, 1)}],
        "notifications": [{"notification_id": 1, "user_id": 1, "sent_at": D(2023, 6, 1)}],
    }
    g = reference_graph()
    for name in SCHEMAS:
        g.table(name).data = _table(name, rows.get(name, defaults[name]))
    return g


def tx(tid: int, user: int, ts: D, price: float | None = 1.0, item: int | None = 1, status: str | None = "paid",
       quantity: int | None = 1) -> dict[str, Any]:
    return {"transaction_id": tid, "user_id": user, "item_id": item, "price": price, "quantity": quantity,
            "status": status, "timestamp": ts}


def user(uid: int, joined: D = D(2023, 1, 1), **cols: Any) -> dict[str, Any]:
    return {"user_id": uid, "join_timestamp": joined, "region_id": 1, **cols}


def labels(query: str, graph, anchors=(A,), **options) -> dict[tuple[Any, D], Any]:
    cq = compile_query(query, graph, database=Database(graph), **options)
    table = cq.labels(list(anchors))
    assert table.column_names == ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET"]
    return {(r["ENTITY"], r["ANCHOR_TIMESTAMP"]): r["TARGET"] for r in table.to_pylist()}


# Transactions of user 1 around A, exactly on the edges of (A, A+30d] and (A-90d, A].
EDGE_TX = [
    tx(1, 1, A - 90 * DAY, price=1.0),          # not in (A-90d, A]: left-open
    tx(2, 1, A - 90 * DAY + SEC, price=2.0),    # in the look-back
    tx(3, 1, A, price=4.0),                      # in the look-back (right-closed), not in the target
    tx(4, 1, A + SEC, price=8.0),                # in the target
    tx(5, 1, A + 30 * DAY, price=16.0),          # in the target (right-closed)
    tx(6, 1, A + 30 * DAY + SEC, price=32.0),    # after the target window
]


@pytest.fixture(scope="module")
def edge_graph():
    return make_graph(users=[user(1), user(2)], transactions=EDGE_TX)


# -- windows ------------------------------------------------------------------------------------------


def test_target_window_is_left_open_right_closed(edge_graph):
    got = labels("PREDICT SUM(transactions.price, 0, 30, days) FOR EACH users.user_id", edge_graph)
    assert got == {(1, A): 24.0, (2, A): 0.0}


def test_lookback_window_edges_in_entity_filter(edge_graph):
    got = labels("PREDICT SUM(transactions.price, 0, 30) FOR EACH users.user_id "
                 "WHERE SUM(transactions.price, -90, 0) = 6", edge_graph)
    assert got == {(1, A): 24.0}


def test_window_with_positive_start(edge_graph):
    # (A+1s, A+30d]: tx 4 at A+1s is not in a window starting 1 second after A
    got = labels("PREDICT SUM(transactions.price, 1, 30, seconds) FOR EACH users.user_id", edge_graph)
    assert got == {(1, A): 0.0, (2, A): 0.0}
    got = labels("PREDICT SUM(transactions.price, 0, 1, seconds) FOR EACH users.user_id", edge_graph)
    assert got[(1, A)] == 8.0


def test_minus_infinity_window(edge_graph):
    got = labels("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id "
                 "WHERE COUNT(transactions.*, -INF, 0) = 3", edge_graph)
    assert got == {(1, A): True}


def test_all_anchors_in_one_statement(edge_graph):
    anchors = [A - 30 * DAY, A, A + 30 * DAY]
    got = labels("PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id", edge_graph, anchors)
    assert got == {(1, anchors[0]): 1.0, (2, anchors[0]): 0.0, (1, A): 2.0, (2, A): 0.0,
                   (1, anchors[2]): 1.0, (2, anchors[2]): 0.0}


def test_months_clamp_at_end_of_month():
    a = D(2024, 1, 31)
    g = make_graph(users=[user(1)], transactions=[
        tx(1, 1, D(2024, 2, 29), price=1.0),            # = a + 1 month (clamped): inside
        tx(2, 1, D(2024, 2, 29, 0, 0, 1), price=2.0),   # just after: outside
        tx(3, 1, D(2024, 1, 31), price=4.0),            # = a: outside (left-open)
    ])
    got = labels("PREDICT SUM(transactions.price, 0, 1, months) FOR EACH users.user_id", g, [a])
    assert got == {(1, a): 1.0}


def test_weeks_and_hours_are_exact_durations(edge_graph):
    got = labels("PREDICT COUNT(transactions.*, 0, 720, hours) FOR EACH users.user_id", edge_graph)
    assert got[(1, A)] == 2.0
    got = labels("PREDICT COUNT(transactions.*, 0, 1) FOR EACH users.user_id "
                 "WHERE COUNT(transactions.*, -13, 0, weeks) = 3", edge_graph)
    assert list(got) == [(1, A)]  # (A-91d, A] holds tx 1, 2 and 3


# -- aggregations -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agg_graph():
    return make_graph(
        users=[user(1), user(2), user(3)],
        items=[{"item_id": i, "category": c, "start_timestamp": D(2023, 1, 1)} for i, c in
               [(1, "shoes"), (2, "hats"), (3, "shoes")]],
        transactions=[
            tx(1, 1, A + DAY, price=5.0, item=2, status="paid"),
            tx(2, 1, A + 2 * DAY, price=None, item=1, status=None),
            tx(3, 1, A + 2 * DAY, price=1.0, item=3, status="refunded"),   # same time as tx 2: pk breaks ties
            tx(4, 1, A + 3 * DAY, price=5.0, item=2, status="cancelled"),
            tx(5, 2, A + 3 * DAY, price=None, item=1, status=None),        # user 2: only NULL values
        ])


@pytest.mark.parametrize("query, expected", [
    ("SUM(transactions.price, 0, 30)", {1: 11.0, 2: 0.0, 3: 0.0}),
    ("COUNT(transactions.*, 0, 30)", {1: 4.0, 2: 1.0, 3: 0.0}),
    ("COUNT(transactions.price, 0, 30)", {1: 3.0, 2: 0.0, 3: 0.0}),
    ("COUNT_DISTINCT(transactions.status, 0, 30)", {1: 3.0, 2: 0.0, 3: 0.0}),
    ("AVG(transactions.price, 0, 30)", {1: 11.0 / 3}),      # undefined without input: dropped
    ("MIN(transactions.price, 0, 30)", {1: 1.0}),
    ("MAX(transactions.price, 0, 30)", {1: 5.0}),
    ("SUM(transactions.quantity, 0, 30)", {1: 4.0, 2: 1.0, 3: 0.0}),
])
def test_numeric_aggregations(agg_graph, query, expected):
    got = labels(f"PREDICT {query} FOR EACH users.user_id", agg_graph)
    assert {e: v for (e, _), v in got.items()} == pytest.approx(expected)


def test_first_last_order_by_time_then_primary_key_skipping_nulls(agg_graph):
    first = labels("PREDICT FIRST(transactions.status, 0, 30) FOR EACH users.user_id", agg_graph)
    last = labels("PREDICT LAST(transactions.status, 0, 30) FOR EACH users.user_id", agg_graph)
    assert first == {(1, A): "paid"}
    assert last == {(1, A): "cancelled"}
    # at A + 1.5 days only tx 2 (NULL status) and tx 3 ('refunded') share the newest time
    got = labels("PREDICT LAST(transactions.status, 0, 2) FOR EACH users.user_id", agg_graph)
    assert got == {(1, A): "refunded"}


def test_list_distinct_is_sorted_and_defined_only_with_input(agg_graph):
    got = labels("PREDICT LIST_DISTINCT(transactions.status, 0, 30) RANK TOP 3 FOR EACH users.user_id", agg_graph)
    assert got == {(1, A): ["cancelled", "paid", "refunded"]}


def test_list_distinct_flattens_list_inputs():
    g = make_graph(regions=[{"region_id": 1}], users=[
        user(1, A + DAY, tags=["b", "a"]), user(2, A + 2 * DAY, tags=["a", "c"]), user(3, A + 3 * DAY, tags=[]),
        user(4, A + 100 * DAY, tags=["z"])])
    got = labels("PREDICT LIST_DISTINCT(users.tags, 0, 30) RANK TOP 5 FOR EACH regions.region_id", g)
    assert got == {(1, A): ["a", "b", "c"]}


def test_inline_filter_with_parent_column(agg_graph):
    got = labels("PREDICT COUNT(transactions.* WHERE items.category = 'shoes', 0, 30) FOR EACH users.user_id",
                 agg_graph)
    assert {e: v for (e, _), v in got.items()} == {1: 2.0, 2: 1.0, 3: 0.0}


def test_nested_aggregation_uses_the_example_anchor():
    g = make_graph(
        regions=[{"region_id": 1}, {"region_id": 2}],
        users=[user(1, A + DAY), user(2, A + 2 * DAY), user(3, A - 300 * DAY, region_id=2)],
        transactions=[tx(1, 1, A + 40 * DAY),   # user 1 buys after (A, A+30d]: does not count
                      tx(2, 2, A + 10 * DAY),   # user 2 buys inside it
                      tx(3, 3, A + 5 * DAY)])   # user 3 joined long before: outside the outer window
    got = labels("PREDICT COUNT(users.* WHERE COUNT(transactions.*, 0, 30, days) > 0, 0, 30, days) "
                 "FOR EACH regions.region_id", g)
    assert got == {(1, A): 1.0, (2, A): 0.0}


def test_undefined_inside_inline_filter_drops_the_row():
    g = make_graph(
        regions=[{"region_id": 1}],
        users=[user(1, A + DAY), user(2, A + 2 * DAY)],
        transactions=[tx(1, 1, A + 3 * DAY, price=1.0)])
    # user 2 has no transactions: its MIN is undefined, so its row is dropped rather than the example
    got = labels("PREDICT COUNT(users.* WHERE NOT MIN(transactions.price, 0, 30) > 5, 0, 30) "
                 "FOR EACH regions.region_id", g)
    assert got == {(1, A): 1.0}


# -- conditions: undefined values and NULL (§7.4) --------------------------------------------------------


def test_undefined_aggregation_drops_the_example_even_under_or(agg_graph):
    got = labels("PREDICT MIN(transactions.price, 0, 30) <= 5 OR COUNT(transactions.*, 0, 30) >= 0 "
                 "FOR EACH users.user_id", agg_graph)
    assert got == {(1, A): True}


def test_null_comparisons_are_false_and_not_is_plain():
    g = make_graph(users=[user(1, country="US"), user(2, country=None), user(3, country="DE")],
                   transactions=[tx(1, 1, A + DAY)])
    q = "PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id WHERE {}"
    ids = lambda cond: sorted(e for e, _ in labels(q.format(cond), g))  # noqa: E731
    assert ids("users.country != 'US'") == [3]
    assert ids("NOT users.country = 'US'") == [2, 3]
    assert ids("users.country NOT IN ('US', 'FR')") == [3]
    assert ids("users.country IS NULL") == [2]
    assert ids("users.country IS NOT NULL") == [1, 3]
    assert ids("NOT users.country STARTS WITH 'D'") == [1, 2]


def test_string_and_list_operators():
    g = make_graph(users=[user(1, name="anna test", tags=["x", "y"]), user(2, name="bob", tags=["y"]),
                          user(3, name=None, tags=None)])
    q = "PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id WHERE {}"
    ids = lambda cond: sorted(e for e, _ in labels(q.format(cond), g))  # noqa: E731
    assert ids("users.name CONTAINS 'test'") == [1]
    assert ids("users.name NOT LIKE '%test%'") == [2]
    assert ids("users.name ENDS WITH 'ob'") == [2]
    assert ids("users.tags CONTAINS 'x'") == [1]
    assert ids("users.tags NOT CONTAINS 'x'") == [2]


def test_static_condition_target_with_null_operand_is_unlabelled():
    g = make_graph(users=[user(1, age=50, country="FR", is_vip=False), user(2, age=None, country="US", is_vip=False),
                          user(3, age=20, country="FR", is_vip=True), user(4, age=30, country="FR", is_vip=None)])
    q = "PREDICT (users.age > 40 OR users.country = 'US') AND NOT users.is_vip = true FOR EACH users.user_id"
    cq = compile_query(q, g, database=Database(g))
    (p,) = cq.anchors()
    assert {r["ENTITY"]: r["TARGET"] for r in cq.labels([p]).to_pylist()} == {1: True, 3: False}
    assert [r["ENTITY"] for r in cq.prediction_table().to_pylist()] == [2, 4]


# -- existence and visibility (§7.5) ------------------------------------------------------------------


def test_entity_exists_from_its_time_on():
    g = make_graph(users=[user(1, A), user(2, A + SEC), user(3, None)], transactions=[tx(1, 1, A + DAY)])
    got = labels("PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id", g)
    assert sorted(e for e, _ in got) == [1]


def test_end_time_column_ends_existence_and_reads_null_until_then():
    g = make_graph(items=[
        {"item_id": 1, "start_timestamp": D(2023, 1, 1), "end_timestamp": A},           # ended at A: gone
        {"item_id": 2, "start_timestamp": D(2023, 1, 1), "end_timestamp": A + SEC},     # still there at A
        {"item_id": 3, "start_timestamp": D(2023, 1, 1), "end_timestamp": None}],
        transactions=[tx(1, 1, A + DAY, item=2)])
    got = labels("PREDICT COUNT(transactions.*, 0, 30) FOR EACH items.item_id", g)
    assert sorted(e for e, _ in got) == [2, 3]
    # the future end time of item 2 is not visible at A: it reads as NULL
    got = labels("PREDICT COUNT(transactions.*, 0, 30) FOR EACH items.item_id WHERE items.end_timestamp IS NULL", g)
    assert sorted(e for e, _ in got) == [2, 3]


def test_link_prediction_keeps_only_destinations_valid_at_the_anchor():
    g = make_graph(
        users=[user(1), user(2)],
        items=[{"item_id": 1, "start_timestamp": D(2023, 1, 1)},
               {"item_id": 2, "start_timestamp": A + SEC},                                     # not yet listed
               {"item_id": 3, "start_timestamp": D(2023, 1, 1), "end_timestamp": A},          # delisted
               {"item_id": 4, "start_timestamp": D(2023, 1, 1), "end_timestamp": A + DAY}],   # still listed at A
        transactions=[tx(1, 1, A + DAY, item=4), tx(2, 1, A + DAY, item=2), tx(3, 1, A + DAY, item=1),
                      tx(4, 1, A + DAY, item=99), tx(5, 1, A + 2 * DAY, item=1),   # orphan key 99, repeat of 1
                      tx(6, 2, A + DAY, item=2), tx(7, 2, A + DAY, item=3)])      # user 2: nothing valid
    got = labels("PREDICT LIST_DISTINCT(transactions.item_id, 0, 30) RANK TOP 5 FOR EACH users.user_id", g)
    assert got == {(1, A): [1, 4]}


# -- ASSUMING, training table, prediction table ---------------------------------------------------------


@pytest.fixture(scope="module")
def notif_graph():
    return make_graph(
        users=[user(1), user(2), user(3, A + 5 * DAY)],
        transactions=[tx(1, 1, A + DAY, price=3.0), tx(2, 2, A + DAY, price=4.0)],
        notifications=[{"notification_id": 1, "user_id": 1, "sent_at": A + DAY, "opened": True},
                       {"notification_id": 2, "user_id": 2, "sent_at": A + 8 * DAY, "opened": False}])


def test_assuming_applies_to_labels_not_prediction(notif_graph):
    q = "PREDICT SUM(transactions.price, 0, 30) FOR EACH users.user_id ASSUMING COUNT(notifications.*, 0, 7) > 0"
    assert labels(q, notif_graph) == {(1, A): 3.0}
    cq = compile_query(q, notif_graph, database=Database(notif_graph), anchor_time=A)
    assert [r["ENTITY"] for r in cq.prediction_table().to_pylist()] == [1, 2]
    assert "notifications" in cq.sql("labels", anchors=[A]) and "notifications" not in cq.sql("prediction")


def daily_graph():
    """Three users buying every third day of 2024's first 100 days."""
    users = [user(i) for i in range(1, 4)]
    txs = [tx(10 * d + u, u, D(2024, 1, 1) + d * DAY, price=float(d)) for d in range(0, 100, 3) for u in (1, 2, 3)]
    return make_graph(users=users, transactions=txs)


def test_training_table_schema_order_and_splits():
    g = daily_graph()
    cq = compile_query("PREDICT SUM(transactions.price, 0, 10) FOR EACH users.user_id", g, database=Database(g))
    anchors = cq.anchors()
    table = cq.training_table()
    assert table.schema.names == ["ENTITY", "ANCHOR_TIMESTAMP", "TARGET", "SPLIT"]
    assert table.schema.field("TARGET").type == pa.float64()
    assert table.schema.field("ANCHOR_TIMESTAMP").type == pa.timestamp("us")
    rows = table.to_pylist()
    assert [(r["ANCHOR_TIMESTAMP"], r["ENTITY"]) for r in rows] == sorted((r["ANCHOR_TIMESTAMP"], r["ENTITY"]) for r in rows)
    assert sorted({r["ANCHOR_TIMESTAMP"] for r in rows}) == anchors
    by_anchor = {r["ANCHOR_TIMESTAMP"]: r["SPLIT"] for r in rows}
    assert [by_anchor[a] for a in anchors[-2:]] == ["val", "test"]
    assert set(by_anchor[a] for a in anchors[:-2]) == {"train"}
    labelled = {(r["ENTITY"], r["ANCHOR_TIMESTAMP"]): r["TARGET"] for r in cq.labels(anchors).to_pylist()}
    assert labelled == {(r["ENTITY"], r["ANCHOR_TIMESTAMP"]): r["TARGET"] for r in rows}


def test_prediction_table_default_anchor_and_existence(notif_graph):
    cq = compile_query("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id", notif_graph,
                       database=Database(notif_graph))
    table = cq.prediction_table()
    assert table.schema.names == ["ENTITY", "ANCHOR_TIMESTAMP"]
    assert table.to_pylist() == [{"ENTITY": u, "ANCHOR_TIMESTAMP": A + DAY} for u in (1, 2)]  # user 3 joins later
    later = cq.prediction_table(anchor_time="2024-03-10")
    assert [r["ENTITY"] for r in later.to_pylist()] == [1, 2, 3]


def test_prediction_table_for_listed_ids_warns_about_missing_ones(notif_graph):
    cq = compile_query("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR users.user_id IN (3, 1, 42)", notif_graph,
                       database=Database(notif_graph))
    rows = cq.prediction_table().to_pylist()
    assert [r["ENTITY"] for r in rows] == [1, 3]  # no existence test under X1
    assert any(w.code == "W114" and "42" in w.message for w in cq.warnings)
    assert {e for e, _ in labels("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR users.user_id = 1",
                                 notif_graph)} == {1, 2}  # X1 ids do not restrict training


def test_forecasting_prediction_rows_step_by_the_window(notif_graph):
    cq = compile_query("PREDICT SUM(transactions.price, 0, 7, days) FORECAST 3 TIMEFRAMES FOR EACH users.user_id",
                       notif_graph, database=Database(notif_graph), anchor_time=A)
    rows = cq.prediction_table().to_pylist()
    assert [(r["ANCHOR_TIMESTAMP"], r["ENTITY"]) for r in rows] == [
        (A + h * 7 * DAY, u) for h in range(3) for u in (1, 2)]


def test_entity_filter_option_replaces_where_at_prediction(notif_graph):
    q = "PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id WHERE users.user_id = 1"
    cq = compile_query(q, notif_graph, database=Database(notif_graph), anchor_time=A + 10 * DAY,
                       entity_filter="users.user_id >= 2")
    assert [r["ENTITY"] for r in cq.prediction_table().to_pylist()] == [2, 3]
    with pytest.raises(PQLValidationError) as e:
        compile_query(q, notif_graph, entity_filter="COUNT(transactions.*, 0, 7) > 0")
    assert e.value.code == "E304"
    with pytest.raises(PQLError) as e:
        compile_query(q, notif_graph, entity_filter="users.nme = 'x'")
    assert e.value.code == "E102" and e.value.span.line == 1


def test_anchor_time_before_the_data_is_e609(notif_graph):
    cq = compile_query("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id", notif_graph,
                       database=Database(notif_graph))
    for bad in ("2000-01-01", "not a date"):
        with pytest.raises(PQLRunError) as e:
            cq.prediction_table(anchor_time=bad)
        assert e.value.code == "E609"


def test_static_anchor_is_the_latest_timestamp_of_all_tables():
    g = make_graph(users=[user(1, age=30), user(2, age=None)],
                   notifications=[{"notification_id": 1, "user_id": 1, "sent_at": D(2025, 5, 5)}])
    cq = compile_query("PREDICT users.age FOR EACH users.user_id", g, database=Database(g))
    assert cq.anchors() == [D(2025, 5, 5)]
    assert cq.labels(cq.anchors()).to_pylist() == [{"ENTITY": 1, "ANCHOR_TIMESTAMP": D(2025, 5, 5), "TARGET": 30.0}]
    assert cq.prediction_table().to_pylist() == [{"ENTITY": 2, "ANCHOR_TIMESTAMP": D(2025, 5, 5)}]


# -- options, SQL text, explain ---------------------------------------------------------------------------


def test_unknown_option_is_e601_with_did_you_mean(edge_graph):
    with pytest.raises(PQLRunError) as e:
        compile_query("PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id", edge_graph, timeframe_stpe=7)
    assert e.value.code == "E601" and "did you mean 'timeframe_step'" in e.value.message


@pytest.mark.parametrize("name, value", [
    ("timeframe_step", 0), ("timeframe_step", "x"), ("max_anchors", -1), ("start_time", "yesterday"),
    ("split", "chronological(0.5, 0.6)"), ("split", "chronologic(0.1, 0.1)"), ("split", "random(0.1, 0.1)"),
    ("threshold", 1.5), ("candidates", "some"),
])
def test_invalid_option_value_is_e602(edge_graph, name, value):
    with pytest.raises(PQLRunError) as e:
        compile_query("PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id", edge_graph, **{name: value})
    assert e.value.code == "E602" and e.value.message.startswith(f"{name} = ")


def test_sql_header_single_statement_and_explain():
    g = daily_graph()
    cq = compile_query("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id "
                       "WHERE COUNT(transactions.*, -30, 0) > 0", g, database=Database(g),
                       timeframe_step=7, max_anchors=3)
    text = cq.sql("training")
    assert text.startswith(f"-- generated by pql {pql.__version__}\n")
    import sqlglot

    assert len(sqlglot.parse(text, read="duckdb")) == 1
    # 3 anchors a week apart: both windows of transactions share one CTE of per-bucket counts
    # (each row read once, one bucket number, no join to the anchors), each with its FILTER
    assert "INNER JOIN \"anchors\"" not in text and text.count("EPOCH_US(") == 1 and "FILTER(WHERE" in text
    from unittest import mock

    from pql.compiler import plan, running

    with mock.patch.object(plan, "bucket_eligible", return_value=False):
        # or one range join on the union of the windows, none per anchor
        joined = cq.sql("training")
    assert joined.count("INNER JOIN \"anchors\"") == 1 and "FILTER(WHERE" in joined and "EPOCH_US" not in joined
    with mock.patch.object(running, "MIN_PAIRS_PER_ROW", 0):  # as with many anchors per row
        fast = cq.sql("training")
        spark = cq.sql("training", dialect="spark")
    # running counts: both COUNTs in one CTE, with no join to the anchors
    assert "INNER JOIN \"anchors\"" not in fast and fast.count("EPOCH_US(") == 1
    # other dialects always get the portable plan
    assert spark.count("INNER JOIN `anchors`") == 1 and "FILTER(WHERE" in spark and "EPOCH_US" not in spark
    out = cq.explain()
    assert "binary_classification" in out and "-- training SQL" in out
    newest = cq.anchors()[-1]
    assert len(cq.anchors()) == 3 and any(w.code == "W115" for w in cq.warnings)
    assert f"{newest - 30 * DAY} < transactions.timestamp <= {newest}" in out


def test_pql_compile_is_the_public_entry_point(edge_graph):
    cq = pql.compile("PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id", edge_graph,
                     database=Database(edge_graph))
    assert cq.task_type is pql.TaskType.REGRESSION and cq.validated.entity_table == "users"


def test_static_link_prediction_on_an_untimed_graph():
    from pql.graph import ColumnSchema, Dtype, Edge, Graph, Stype, TableSchema

    def table(name, cols, pk=None, rows=()):
        t = TableSchema(name, {c: ColumnSchema(c, d, s) for c, d, s in cols}, primary_key=pk)
        t.data = pa.table({c: [r[i] for r in rows] for i, (c, _, _) in enumerate(cols)})
        return t

    I, ID = Dtype.INT, Stype.ID
    g = Graph({"people": table("people", [("pid", I, ID)], "pid", [(1,), (2,), (3,)]),
               "things": table("things", [("tid", I, ID)], "tid", [(10,), (20,)]),
               "likes": table("likes", [("lid", I, ID), ("pid", I, ID), ("tid", I, ID)], "lid",
                              [(1, 1, 20), (2, 1, 10), (3, 1, 20), (4, 2, 99)])},
              [Edge("likes", "pid", "people"), Edge("likes", "tid", "things")])
    cq = compile_query("PREDICT LIST_DISTINCT(likes.tid) RANK TOP 2 FOR EACH people.pid", g, database=Database(g))
    assert cq.task_type is pql.TaskType.STATIC_LINK_PREDICTION and cq.anchors() == [None]
    assert cq.labels([None]).to_pylist() == [{"ENTITY": 1, "ANCHOR_TIMESTAMP": None, "TARGET": [10, 20]}]
    # person 2 only likes an unknown thing (an empty link set) and person 3 nothing: both are predicted
    assert [r["ENTITY"] for r in cq.prediction_table().to_pylist()] == [2, 3]
    with pytest.raises(PQLRunError) as e:  # one labelled entity cannot fill train, val and test
        cq.training_table()
    assert e.value.code == "E605"


def test_data_problems_surface_as_data_errors_before_anchors():
    g = make_graph(transactions=[])
    cq = compile_query("PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id", g, database=Database(g))
    with pytest.raises(PQLError) as e:
        cq.anchors()
    assert e.value.code == "E709" or "E709" in [x.code for x in e.value.errors]
