"""The reference evaluator on hand-computed cases (PQL-SPEC §7, §10).

Queries are built as ASTs so these tests depend on nothing but ``pql.ast`` and ``pql.graph``.
"""

from __future__ import annotations

import datetime as dt

import pytest

from pql import ast as A
from tests.reference import (
    add_months,
    combined_window,
    reference_anchors,
    reference_labels,
    reference_prediction,
    reference_split,
)
from tests.schemas import reference_graph

D = dt.datetime
DAYS, MONTHS, HOURS, WEEKS = A.TimeUnit.DAYS, A.TimeUnit.MONTHS, A.TimeUnit.HOURS, A.TimeUnit.WEEKS


# -- tiny AST builders --------------------------------------------------------------------------

def col(ref: str) -> A.Column:
    t, c = ref.split(".")
    return A.Column(t, c)


def agg(func: str, ref: str, start, end, unit=DAYS, where=None) -> A.Aggregation:
    t, c = ref.split(".")
    column = A.Wildcard(t) if c == "*" else A.Column(t, c)
    return A.Aggregation(A.AggFunc[func], column, where, A.Window(start, end, unit))


def lit(v):
    if v is None:
        return A.NullLit()
    if isinstance(v, bool):
        return A.BoolLit(v)
    if isinstance(v, int):
        return A.IntLit(v)
    if isinstance(v, float):
        return A.FloatLit(v)
    if isinstance(v, dt.datetime):
        return A.DateTimeLit(v)
    if isinstance(v, tuple):
        return A.ArrayLit(tuple(lit(x) for x in v))
    return A.StrLit(v)


def cmp(left, op: str, right) -> A.Comparison:
    return A.Comparison(left, A.CmpOp(op), lit(right))


def AND(a, b):
    return A.BoolOp(A.BoolOperator.AND, a, b)


def OR(a, b):
    return A.BoolOp(A.BoolOperator.OR, a, b)


def query(target, where=None, assuming=None, problem=None, entity="users.user_id") -> A.Query:
    return A.Query(target, problem, A.EntitySpec(col(entity), where),
                   A.Assuming(assuming) if assuming is not None else None)


# -- a tiny dataset on the reference schema ----------------------------------------------------

def user(uid, joined=D(2020, 1, 1), **kw):
    row = dict(user_id=uid, name=f"u{uid}", age=30, country="US", is_vip=False, tags=["a"],
               birth_date=D(1990, 1, 1), region_id=1, join_timestamp=joined)
    row.update(kw)
    return row


def tx(tid, uid, when, price=1.0, item=1, status="paid", **kw):
    row = dict(transaction_id=tid, user_id=uid, item_id=item, price=price, quantity=1, status=status,
               is_gift=False, timestamp=when)
    row.update(kw)
    return row


def item(iid, start=D(2019, 1, 1), end=None, category="shoes"):
    return dict(item_id=iid, category=category, brand="b", price=1.0, description="d",
                start_timestamp=start, end_timestamp=end)


def rows(users=(), txs=(), items=(item(1),), notes=(), regions=None):
    return {
        "regions": list(regions or [dict(region_id=1, name="r1", country="DE", population=10),
                                    dict(region_id=2, name="r2", country="US", population=2_000_000)]),
        "users": list(users), "items": list(items), "transactions": list(txs), "notifications": list(notes),
    }


G = reference_graph()
A0 = D(2020, 1, 1)


def labels(q, data, anchors=(A0,)):
    return reference_labels(q, G, data, list(anchors))


# -- time arithmetic ---------------------------------------------------------------------------

@pytest.mark.parametrize("t, n, expected", [
    (D(2024, 1, 31), 1, D(2024, 2, 29)),
    (D(2023, 1, 31), 1, D(2023, 2, 28)),
    (D(2024, 3, 31), -1, D(2024, 2, 29)),
    (D(2024, 12, 15, 8, 30), 1, D(2025, 1, 15, 8, 30)),
    (D(2024, 1, 31), -13, D(2022, 12, 31)),
    (D(2024, 5, 31), -3, D(2024, 2, 29)),
])
def test_add_months_clamps_to_month_end(t, n, expected):
    assert add_months(t, n) == expected


# -- windows (§7.1) ----------------------------------------------------------------------------

def test_window_is_left_open_right_closed():
    data = rows([user(1)], [
        tx(1, 1, D(2020, 1, 11), price=1.0),             # on the open start edge: out
        tx(2, 1, D(2020, 1, 11, 0, 0, 1), price=2.0),    # just inside
        tx(3, 1, D(2020, 1, 31), price=4.0),             # on the closed end edge: in
        tx(4, 1, D(2020, 1, 31, 0, 0, 1), price=8.0),    # just outside
        tx(5, 1, None, price=16.0),                      # NULL time: in no window
    ])
    assert labels(query(agg("SUM", "transactions.price", 10, 30)), data) == [(1, A0, 6.0)]


def test_month_window_clamps_at_month_end():
    a = D(2024, 1, 31)
    data = rows([user(1)], [tx(1, 1, D(2024, 2, 29)), tx(2, 1, D(2024, 3, 1)), tx(3, 1, a)])
    q = query(agg("COUNT", "transactions.*", 0, 1, MONTHS))
    assert labels(q, data, [a]) == [(1, a, 1)]


def test_minus_inf_window_reads_all_history():
    data = rows([user(1), user(2)], [tx(1, 1, D(1990, 1, 1)), tx(2, 2, D(2020, 1, 2)), tx(3, 1, D(2020, 1, 5))])
    q = query(cmp(agg("COUNT", "transactions.*", 0, 30), ">", 0),
              where=cmp(agg("COUNT", "transactions.*", None, 0), ">", 0))
    assert labels(q, data) == [(1, A0, True)]


# -- aggregations (§7.3) -----------------------------------------------------------------------

def test_empty_window_values():
    data = rows([user(1)], [])
    assert labels(query(agg("SUM", "transactions.price", 0, 30)), data) == [(1, A0, 0)]
    assert labels(query(agg("COUNT", "transactions.*", 0, 30)), data) == [(1, A0, 0)]
    for func in ("AVG", "MIN", "MAX"):
        assert labels(query(agg(func, "transactions.price", 0, 30)), data) == []
    for func in ("FIRST", "LAST"):
        assert labels(query(agg(func, "transactions.status", 0, 30)), data) == []


def test_aggregations_skip_null_inputs():
    data = rows([user(1)], [tx(1, 1, D(2020, 1, 2), price=None), tx(2, 1, D(2020, 1, 3), price=3.0),
                            tx(3, 1, D(2020, 1, 4), price=None, status=None)])
    assert labels(query(agg("COUNT", "transactions.price", 0, 30)), data) == [(1, A0, 1)]
    assert labels(query(agg("COUNT", "transactions.*", 0, 30)), data) == [(1, A0, 3)]
    assert labels(query(agg("AVG", "transactions.price", 0, 30)), data) == [(1, A0, 3.0)]
    assert labels(query(agg("LAST", "transactions.status", 0, 30)), data) == [(1, A0, "paid")]
    only_nulls = rows([user(1)], [tx(1, 1, D(2020, 1, 2), price=None)])
    assert labels(query(agg("AVG", "transactions.price", 0, 30)), only_nulls) == []


def test_first_last_order_by_time_then_primary_key():
    same = D(2020, 1, 5)
    data = rows([user(1)], [tx(9, 1, same, status="b"), tx(3, 1, same, status="a"),
                            tx(1, 1, D(2020, 1, 9), status=None), tx(7, 1, D(2020, 1, 2), status="z")])
    assert labels(query(agg("FIRST", "transactions.status", 0, 30)), data) == [(1, A0, "z")]
    assert labels(query(agg("LAST", "transactions.status", 0, 30)), data) == [(1, A0, "b")]


def test_min_max_by_code_point_and_false_before_true():
    data = rows([user(1)], [tx(1, 1, D(2020, 1, 2), status="a", is_gift=True),
                            tx(2, 1, D(2020, 1, 3), status="Z", is_gift=False),
                            tx(3, 1, D(2020, 1, 4), status="é", is_gift=True)])
    assert labels(query(agg("MIN", "transactions.status", 0, 30)), data) == [(1, A0, "Z")]
    assert labels(query(agg("MAX", "transactions.status", 0, 30)), data) == [(1, A0, "é")]
    assert labels(query(agg("MIN", "transactions.is_gift", 0, 30)), data) == [(1, A0, False)]
    assert labels(query(agg("MAX", "transactions.is_gift", 0, 30)), data) == [(1, A0, True)]


def test_list_distinct_sorted_and_count_distinct():
    data = rows([user(1)], [tx(1, 1, D(2020, 1, 2), status="c"), tx(2, 1, D(2020, 1, 3), status="a"),
                            tx(3, 1, D(2020, 1, 4), status="c"), tx(4, 1, D(2020, 1, 5), status=None)])
    q = query(agg("LIST_DISTINCT", "transactions.status", 0, 30), problem=A.Rank(3))
    assert labels(q, data) == [(1, A0, ["a", "c"])]
    assert labels(query(agg("COUNT_DISTINCT", "transactions.status", 0, 30)), data) == [(1, A0, 2)]


def test_list_distinct_flattens_list_inputs():
    users = [user(1, joined=D(2020, 1, 2), tags=["x", "b"]), user(2, joined=D(2020, 1, 3), tags=["b", "a"]),
             user(3, joined=D(2020, 1, 3), tags=None)]
    q = query(agg("LIST_DISTINCT", "users.tags", 0, 30), problem=A.Rank(3), entity="regions.region_id")
    assert labels(q, rows(users)) == [(1, A0, ["a", "b", "x"])]


# -- undefined values and two-valued logic (§7.4) -----------------------------------------------

def test_undefined_aggregation_drops_the_example_under_not_and_or():
    data = rows([user(1), user(2)], [tx(1, 1, D(2020, 1, 2), price=9.0)])
    mn = agg("MIN", "transactions.price", 0, 30)
    cnt = agg("COUNT", "transactions.*", 0, 30)
    assert labels(query(cmp(mn, "<=", 5)), data) == [(1, A0, False)]
    assert labels(query(A.Not(cmp(mn, "<=", 5))), data) == [(1, A0, True)]
    assert labels(query(OR(cmp(cnt, "=", 0), cmp(mn, "<=", 5))), data) == [(1, A0, False)]


def test_undefined_in_inline_filter_drops_only_the_row():
    # users with no transactions in the nested window have an undefined AVG, so only user 1 counts
    users = [user(1, joined=D(2020, 1, 2)), user(2, joined=D(2020, 1, 3)), user(3, joined=D(2020, 1, 4))]
    txs = [tx(1, 1, D(2020, 1, 5), price=5.0), tx(2, 3, D(2020, 1, 5), price=1.0)]
    inner = cmp(agg("AVG", "transactions.price", 0, 30), ">", 2)
    q = query(agg("COUNT", "users.*", 0, 30, where=inner), entity="regions.region_id")
    assert labels(q, rows(users, txs)) == [(1, A0, 1), (2, A0, 0)]


def test_null_column_comparisons_are_false_and_not_flips_them():
    data = rows([user(1, country=None), user(2, country="US"), user(3, country="DE")],
                [tx(1, u, D(2020, 1, 2)) for u in (1, 2, 3)])
    target = agg("COUNT", "transactions.*", 0, 30)
    ne = query(target, where=cmp(col("users.country"), "!=", "US"))
    assert [r[0] for r in labels(ne, data)] == [3]
    not_eq = query(target, where=A.Not(cmp(col("users.country"), "=", "US")))
    assert [r[0] for r in labels(not_eq, data)] == [1, 3]
    not_in = query(target, where=cmp(col("users.country"), "NOT IN", ("US", "FR")))
    assert [r[0] for r in labels(not_in, data)] == [3]
    is_null = query(target, where=cmp(col("users.country"), "=", None))
    assert [r[0] for r in labels(is_null, data)] == [1]


def test_static_condition_target_with_null_operand_is_unlabelled():
    data = rows([user(1, age=None, country="US"), user(2, age=50, country="DE"), user(3, age=20, country="DE")])
    q = query(OR(cmp(col("users.age"), ">", 40), cmp(col("users.country"), "=", "US")))
    assert labels(q, data, [D(2024, 1, 1)]) == [(2, D(2024, 1, 1), True), (3, D(2024, 1, 1), False)]
    q_null = query(cmp(col("users.age"), "=", None))
    assert labels(q_null, data, [D(2024, 1, 1)])[0] == (1, D(2024, 1, 1), True)


def test_string_and_list_operators():
    users = [user(1, name="alice test", tags=["x", "y"]), user(2, name="bob", tags=["y"]),
             user(3, name="test carol", tags=None)]
    data = rows(users, [tx(i, i, D(2020, 1, 2)) for i in (1, 2, 3)])
    t = agg("COUNT", "transactions.*", 0, 30)
    cases = {
        ("users.name", "CONTAINS", "test"): [1, 3],
        ("users.name", "NOT CONTAINS", "test"): [2],
        ("users.name", "STARTS WITH", "test"): [3],
        ("users.name", "ENDS WITH", "test"): [1],
        ("users.tags", "CONTAINS", "x"): [1],
        ("users.tags", "NOT CONTAINS", "x"): [2],
    }
    for (c, op, v), expected in cases.items():
        assert [r[0] for r in labels(query(t, where=cmp(col(c), op, v)), data)] == expected, (c, op)


# -- existence, visibility and link prediction (§7.5) --------------------------------------------

def test_existence_uses_time_and_end_time_columns():
    users = [user(1, joined=A0), user(2, joined=D(2020, 1, 1, 0, 0, 1)), user(3, joined=None)]
    assert [r[0] for r in labels(query(agg("COUNT", "transactions.*", 0, 30)), rows(users))] == [1]
    items = [item(1, start=D(2019, 1, 1), end=A0), item(2, end=D(2020, 1, 2)), item(3, end=None),
             item(4, start=D(2020, 2, 1))]
    q = query(agg("COUNT", "transactions.*", 0, 30), entity="items.item_id")
    assert [r[0] for r in labels(q, rows(items=items))] == [2, 3]


def test_link_prediction_keeps_only_destinations_valid_at_the_anchor():
    items = [item(1), item(2, start=D(2020, 1, 5)), item(3, end=A0), item(4, end=D(2020, 3, 1))]
    txs = [tx(1, 1, D(2020, 1, 2), item=2), tx(2, 1, D(2020, 1, 3), item=4), tx(3, 1, D(2020, 1, 4), item=1),
           tx(4, 1, D(2020, 1, 5), item=99), tx(5, 2, D(2020, 1, 6), item=3), tx(6, 2, D(2020, 1, 6), item=2)]
    q = query(agg("LIST_DISTINCT", "transactions.item_id", 0, 30), problem=A.Rank(5))
    assert labels(q, rows([user(1), user(2)], txs, items)) == [(1, A0, [1, 4])]
    # without RANK it is multilabel classification: no destination validity
    q2 = query(agg("LIST_DISTINCT", "transactions.item_id", 0, 30), problem=A.Classify())
    assert labels(q2, rows([user(1), user(2)], txs, items)) == [(1, A0, [1, 2, 4, 99]), (2, A0, [2, 3])]


def test_inline_filter_on_parent_column_and_assuming():
    items = [item(1, category="shoes"), item(2, category="hats")]
    txs = [tx(1, 1, D(2020, 1, 2), item=2), tx(2, 2, D(2020, 1, 3), item=1), tx(3, 3, D(2020, 1, 3), item=None)]
    notes = [dict(notification_id=i, user_id=1 + (i % 3), channel="mail", opened=True,
                  sent_at=D(2020, 1, 2)) for i in range(5)]
    target = cmp(agg("COUNT", "transactions.*", 0, 14, where=cmp(col("items.category"), "=", "shoes")), ">", 0)
    data = rows([user(1), user(2), user(3)], txs, items, notes)
    assert labels(query(target), data) == [(1, A0, False), (2, A0, True), (3, A0, False)]
    assuming = cmp(agg("COUNT", "notifications.*", 0, 7), ">", 1)
    assert labels(query(target, assuming=assuming), data) == [(1, A0, False), (2, A0, True)]


# -- anchors and splits (§10.1, §10.2, §10.4) ------------------------------------------------------

def _tx_span(first: D, last: D):
    return rows([user(1)], [tx(1, 1, first), tx(2, 1, last), tx(3, 1, None)])


def test_anchors_without_buffer_drop_the_first_step():
    data = _tx_span(D(2024, 1, 1), D(2024, 4, 30))
    q = query(agg("COUNT", "transactions.*", 0, 30))
    # a_i = 2024-04-30 - 30 - 30 i >= 2024-01-01 + 30 days = 2024-01-31 (2024 is a leap year)
    assert reference_anchors(q, G, data) == [D(2024, 1, 31), D(2024, 3, 1), D(2024, 3, 31)]
    assert reference_anchors(q, G, data, timeframe_step=20, max_anchors=2) == [D(2024, 3, 11), D(2024, 3, 31)]
    assert reference_anchors(q, G, data, start_time=D(2024, 1, 1), end_time=D(2024, 3, 10)) == \
        [D(2024, 1, 1), D(2024, 1, 31), D(2024, 3, 1)]


def test_anchors_with_look_back_buffer():
    data = _tx_span(D(2024, 1, 1), D(2024, 6, 29))
    q = query(cmp(agg("COUNT", "transactions.*", 0, 30), "=", 0),
              where=cmp(agg("COUNT", "transactions.*", -90, 0), ">", 0))
    assert combined_window(q) == (DAYS, 0, 30, -90)
    # range_start = 2024-01-01 + 90 days = 2024-03-31; a_i = 2024-06-29 - 30 - 30 i
    assert reference_anchors(q, G, data) == [D(2024, 3, 31), D(2024, 4, 30), D(2024, 5, 30)]


def test_month_anchors_are_computed_from_range_end():
    data = _tx_span(D(2023, 10, 31), D(2024, 5, 31))
    q = query(agg("SUM", "transactions.price", 0, 1, MONTHS))
    # lower = 2023-10-31 + 1 month = 2023-11-30; a_i = 2024-05-31 - (1 + i) months
    assert reference_anchors(q, G, data) == [D(2023, 11, 30), D(2023, 12, 31), D(2024, 1, 31), D(2024, 2, 29),
                                             D(2024, 3, 31), D(2024, 4, 30)]


def test_mixed_units_use_the_finest():
    q = query(OR(cmp(agg("COUNT", "transactions.*", 0, 24, HOURS), ">", 0),
                 cmp(agg("COUNT", "notifications.*", 0, 1, WEEKS), ">", 0)))
    assert combined_window(q) == (HOURS, 0, 168, None)


def test_chronological_and_last_span_splits():
    anchors = [D(2024, 1, 1) + dt.timedelta(days=i) for i in range(25)]
    q = query(agg("COUNT", "transactions.*", 0, 1))
    s = reference_split(q, G, anchors)
    assert [s[a] for a in anchors[-7:]] == ["train"] * 1 + ["val"] * 3 + ["test"] * 3
    q2 = query(agg("SUM", "transactions.price", 2, 4))
    s2 = reference_split(q2, G, anchors)
    assert [s2[a] for a in anchors[-6:]] == ["train", "train", "val", "val", "test", "test"]


def test_prediction_rows_ignore_assuming_and_honour_ids():
    users = [user(1), user(2, joined=D(2024, 6, 1)), user(3, country="DE")]
    data = rows(users, [tx(1, 1, D(2024, 1, 5))])
    q = query(agg("COUNT", "transactions.*", 0, 7), where=cmp(col("users.country"), "=", "US"),
              assuming=cmp(agg("COUNT", "notifications.*", 0, 7), ">", 100))
    assert reference_prediction(q, G, data) == [(1, D(2024, 1, 5))]
    ids = A.Query(q.target, None, A.EntitySpec(col("users.user_id"), None, (A.IntLit(3), A.IntLit(2), A.IntLit(7))))
    assert reference_prediction(ids, G, data) == [(2, D(2024, 1, 5)), (3, D(2024, 1, 5))]
