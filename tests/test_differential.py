"""The SQL compiler against the plain-Python reference evaluator (PQL-SPEC §7, §10).

Hypothesis draws small random graphs with data and valid queries (``tests.gen_graphs``); for each,
``pql.compile(query, graph).labels(anchors)`` must equal ``tests.reference.reference_labels`` row
for row, and ``.anchors()`` must equal ``reference_anchors``. Runs are derandomized so CI is
reproducible. Mismatches found while building this are pinned below as explicit regressions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pql
from pql.data import Database
from pql.errors import PQLError, PQLValidationError
from tests.gen_graphs import COARSE_UNITS, Case, case_text, cases
from pql.ast import QueryKind
from tests.reference import reference_anchors, reference_labels, reference_prediction, reference_split

_CON = duckdb.connect()  # one connection for every case; each case re-creates its views in it

SETTINGS = dict(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


def compiled(case: Case, **options: Any):
    try:
        pql.validate(case.query, case.graph)
    except PQLValidationError:
        assume(False)  # rare: the generator builds valid queries by construction
    return pql.compile(case.query, case.graph, database=Database(case.graph, con=_CON), **options)


# ---------------------------------------------------------------------------------------------
# Comparison


def same_value(a: Any, b: Any) -> bool:
    """Exact equality, except floats (relative 1e-9) and bools, which must stay bools."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def assert_same_labels(got: list[tuple], expected: list[tuple], context: str) -> None:
    got_keys = [(r[1], r[0]) for r in got]
    exp_keys = [(r[1], r[0]) for r in expected]
    if sorted(got_keys, key=repr) != sorted(exp_keys, key=repr):
        extra = sorted(set(got_keys) - set(exp_keys), key=repr)
        missing = sorted(set(exp_keys) - set(got_keys), key=repr)
        raise AssertionError(f"rows differ\n  only in SQL: {extra}\n  only in reference: {missing}\n{context}")
    exp_by_key = {(r[1], r[0]): r[2] for r in expected}
    bad = [(k, r[2], exp_by_key[k]) for r, k in zip(got, got_keys) if not same_value(r[2], exp_by_key[k])]
    if bad:
        lines = "\n".join(f"  {k}: SQL {g!r} != reference {e!r}" for k, g, e in bad[:10])
        raise AssertionError(f"targets differ\n{lines}\n{context}")


def sql_labels(cq, anchors) -> list[tuple]:
    table = cq.labels(anchors).to_pylist()
    return [(r["ENTITY"], r["ANCHOR_TIMESTAMP"], r["TARGET"]) for r in table]


def check_labels(case: Case) -> None:
    cq = compiled(case)
    expected = reference_labels(case.query, case.graph, case.rows, case.anchors)
    got = sql_labels(cq, case.anchors)
    assert_same_labels(got, expected, case_text(case))


# ---------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=550, **SETTINGS)
@given(cases())
def test_labels_match_reference(case: Case) -> None:
    check_labels(case)


# The plans for evenly spaced anchors (compiler/running.py, compiler/buckets.py), forced by their
# thresholds: running counts for COUNTs and expanded rows for the rest; expanded rows for every
# aggregation; per-bucket partials for COUNT/SUM/MIN/MAX and the range join for the rest; or the
# range join for all (the buckets, the default up to NESTED_LOOP_MAX anchors, switched off).
GRID_PLANS = {"running": {"MIN_PAIRS_PER_ROW": 0, "NESTED_LOOP_MAX": 0},
              "expanded": {"MIN_PAIRS_PER_ROW": 10**9, "NESTED_LOOP_MAX": 0},
              "bucketed": {"MIN_PAIRS_PER_ROW": 10**9, "NESTED_LOOP_MAX": 10**9},
              "join": {"MIN_PAIRS_PER_ROW": 10**9, "NESTED_LOOP_MAX": 10**9, "buckets": False}}


@contextlib.contextmanager
def grid_plan(name: str):
    """Force the plan ``name`` of GRID_PLANS on every CTE that can take it."""
    from unittest import mock

    from pql.compiler import plan, running

    thresholds = dict(GRID_PLANS[name])
    buckets = thresholds.pop("buckets", True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.multiple(running, **thresholds))
        if not buckets:
            stack.enter_context(mock.patch.object(plan, "bucket_eligible", return_value=False))
        yield


@settings(max_examples=150, **SETTINGS)
@given(cases(), st.sampled_from([dt.timedelta(days=1), dt.timedelta(hours=36), dt.timedelta(days=7)]),
       st.integers(min_value=3, max_value=12), st.sampled_from(sorted(GRID_PLANS)))
def test_labels_on_an_even_grid_of_anchors_match_reference(case: Case, step: dt.timedelta, n: int,
                                                           plan: str) -> None:
    """Evenly spaced anchors, whose window edges fall on the generated events (they sit at whole
    units from the case's anchors), under each plan."""
    first = case.anchors[0] - (n // 2) * step
    with grid_plan(plan):
        check_labels(Case(case.graph, case.rows, case.query, [first + k * step for k in range(n)], case.units))


COUNT_QUERIES = [
    "PREDICT COUNT(fact.*, 0, {e}, {u}) FOR EACH ent.ent_id",
    "PREDICT COUNT(fact.*, 0, {e}, {u}) = 0 FOR EACH ent.ent_id WHERE COUNT(fact.*, -{s}, 0, {u}) > 0",
    "PREDICT COUNT(fact.ts, -{s}, {e}, {u}) FOR EACH ent.ent_id WHERE COUNT(fact.*, -INF, 0, {u}) >= 2",
    "PREDICT COUNT(fact.*, {e}, {e2}, {u}) > 1 FOR EACH ent.ent_id WHERE NOT COUNT(fact.*, -{s2}, -1, {u}) = 1",
]


@settings(max_examples=80, **SETTINGS)
@given(cases(units=[pql.ast.TimeUnit.HOURS, pql.ast.TimeUnit.DAYS, pql.ast.TimeUnit.WEEKS]),
       st.sampled_from(COUNT_QUERIES), st.sampled_from([1, 2, 3, 7]), st.sampled_from([1, 2, 5]),
       st.integers(min_value=1, max_value=3), st.integers(min_value=2, max_value=9))
def test_running_counts_on_an_even_grid_match_reference(case: Case, template: str, s: int, e: int,
                                                        every: int, n: int) -> None:
    """COUNT windows at evenly spaced anchors, all as running counts: the steps are whole units,
    so window edges fall on the generated events, which sit at whole units from the anchors."""
    unit = case.units[0]
    step = dt.timedelta(seconds=every * unit.exact_seconds)
    anchors = [case.anchors[0] + (k - n // 2) * step for k in range(n)]
    query = pql.parse(template.format(s=s, s2=s + 1, e=e, e2=e + 2, u=unit.word))
    with grid_plan("running"):
        check_labels(Case(case.graph, case.rows, query, anchors, case.units))


# Shared groups of COUNT/SUM/MIN/MAX windows (several windows in one CTE, -INF, gaps between
# windows, inline filters, NULL values) for the bucketed plan.
BUCKET_QUERIES = [
    "PREDICT SUM(fact.amount, 0, {e}, {u}) FOR EACH ent.ent_id WHERE COUNT(fact.*, -{s}, 0, {u}) > 0",
    "PREDICT SUM(fact.qty, -{s}, {e}, {u}) > 2 FOR EACH ent.ent_id WHERE MAX(fact.qty, -{s2}, 0, {u}) >= 1",
    "PREDICT MIN(fact.amount, 0, {e}, {u}) FOR EACH ent.ent_id WHERE COUNT(fact.amount, -INF, 0, {u}) >= 2",
    "PREDICT MAX(fact.amount, {e}, {e2}, {u}) FOR EACH ent.ent_id WHERE SUM(fact.qty, -{s2}, -{s}, {u}) > 0",
    "PREDICT COUNT(fact.* WHERE fact.status = 'a', 0, {e}, {u}) FOR EACH ent.ent_id "
    "WHERE MIN(fact.qty WHERE fact.status = 'a', -{s}, 0, {u}) < 3 OR COUNT(fact.qty, -INF, -{s}, {u}) = 0",
    "PREDICT SUM(fact.amount WHERE fact.flag = true, -{s}, {e}, {u}) FOR EACH ent.ent_id",
]


def _with_copies(case: Case, table: str, shift: dt.timedelta, halves: list[int]) -> tuple[Any, dict[str, list]]:
    """The case's graph and rows plus, for each row of ``table`` with a time, copies moved by
    ``h * shift / 2`` for each h in ``halves`` (new primary keys): several rows per key and
    bucket, some on its edges."""
    import copy as copying

    import pyarrow as pa

    rows = case.rows
    original = rows[table]
    ids = [r["fact_id"] for r in original if r.get("fact_id") is not None]
    next_id = max(ids, default=0) + 1
    copies = []
    for row in original:
        for h in halves:
            if row["ts"] is None:
                continue
            copy = dict(row, ts=row["ts"] + h * shift / 2)
            if "fact_id" in row:
                copy["fact_id"], next_id = next_id, next_id + 1
            copies.append(copy)
    graph = copying.deepcopy(case.graph)
    t = graph.table(table)
    t.data = pa.Table.from_pylist(original + copies, schema=t.data.schema)
    return graph, {**rows, table: original + copies}


@settings(max_examples=80, **SETTINGS)
@given(cases(units=[pql.ast.TimeUnit.HOURS, pql.ast.TimeUnit.DAYS, pql.ast.TimeUnit.WEEKS]),
       st.sampled_from(BUCKET_QUERIES), st.sampled_from([1, 2, 3, 7]), st.sampled_from([1, 2, 5]),
       st.integers(min_value=1, max_value=3), st.integers(min_value=1, max_value=9),
       st.lists(st.sampled_from([-3, -2, -1, 1, 2, 4]), max_size=3, unique=True))
def test_bucketed_windows_on_an_even_grid_match_reference(case: Case, template: str, s: int, e: int,
                                                          every: int, n: int, halves: list[int]) -> None:
    """COUNT/SUM/MIN/MAX windows at evenly spaced anchors from per-bucket partials; the steps
    are whole units, so window edges (bucket edges) fall on the generated events, and copies of
    the events half a unit and whole units away put several rows of a key in one bucket."""
    unit = case.units[0]
    step = dt.timedelta(seconds=every * unit.exact_seconds)
    anchors = [case.anchors[0] + (k - n // 2) * step for k in range(n)]
    query = pql.parse(template.format(s=s, s2=s + 1, e=e, e2=e + 2, u=unit.word))
    graph, rows = _with_copies(case, "fact", dt.timedelta(seconds=unit.exact_seconds), halves)
    with grid_plan("bucketed"):
        check_labels(Case(graph, rows, query, anchors, case.units))


OPTION_SETS = st.sampled_from([
    {},
    {"timeframe_step": 1},
    {"timeframe_step": 2, "max_anchors": 3},
    {"start_time": dt.datetime(2024, 1, 31)},
    {"end_time": dt.datetime(2024, 3, 15, 12)},
    {"timeframe_step": 3, "start_time": dt.datetime(2023, 12, 31), "end_time": dt.datetime(2024, 4, 30)},
])


@settings(max_examples=120, **SETTINGS)
@given(cases(units=COARSE_UNITS), OPTION_SETS)
def test_anchors_splits_and_prediction_rows_match_reference(case: Case, options: dict) -> None:
    try:
        expected = reference_anchors(case.query, case.graph, case.rows, **options)
    except ValueError:  # a target table without any time value: no anchor can fit
        expected = []
    cq = compiled(case, **options)
    if not expected:
        with pytest.raises(PQLError) as err:
            cq.anchors()
        assert err.value.code == "E603", case_text(case)
        return
    assert cq.anchors() == expected, f"options {options}\n{case_text(case)}"
    if len(expected) <= MAX_TABLE_ANCHORS:  # hourly steps over months of data: anchors only
        check_training_table(case, cq, expected)
    check_prediction_rows(case, cq)


MAX_TABLE_ANCHORS = 40


def check_training_table(case: Case, cq, anchors: list) -> None:
    """The training table is the label table over the anchors plus SPLIT per §10.4 (default split).
    Its SQL runs directly so SPLIT is checked even when a split is empty; ``training_table()``
    must then raise E605. E604 (§9.7) only when the reference also leaves an anchor-level split empty."""
    labels = reference_labels(case.query, case.graph, case.rows, anchors)
    temporal = cq.kind is QueryKind.TEMPORAL
    splits = reference_split(case.query, case.graph, anchors) if temporal else None
    try:
        text = cq.sql("training")
    except PQLError as e:
        assert e.code == "E604", f"{e}\n{case_text(case)}"
        assert splits is not None and set(splits.values()) != {"train", "val", "test"}, \
            f"E604 although the anchors {splits} form every split\n{case_text(case)}"
        return
    table = _CON.sql(text).to_arrow_table().to_pylist()
    got = [(r["ENTITY"], r["ANCHOR_TIMESTAMP"], r["TARGET"]) for r in table]
    assert_same_labels(got, labels, case_text(case))
    if splits is not None:
        wrong = [(r["ANCHOR_TIMESTAMP"], r["SPLIT"], splits[r["ANCHOR_TIMESTAMP"]]) for r in table
                 if r["SPLIT"] != splits[r["ANCHOR_TIMESTAMP"]]]
        assert not wrong, f"splits differ (anchor, SQL, reference): {wrong[:5]}\n{case_text(case)}"
    if {r["SPLIT"] for r in table} != {"train", "val", "test"}:
        with pytest.raises(PQLError) as err:
            cq.training_table()
        assert err.value.code == "E605"


def check_prediction_rows(case: Case, cq) -> None:
    """Prediction rows at the default anchor p (§10.5, §10.6); forecasting repeats them per horizon."""
    got = [(r["ENTITY"], r["ANCHOR_TIMESTAMP"]) for r in cq.prediction_table().to_pylist()]
    p = cq.prediction_anchor()
    if isinstance(case.query.problem, pql.ast.Forecast):
        got = [(e, a) for e, a in got if a == p]
    expected = reference_prediction(case.query, case.graph, case.rows, p)
    assert sorted(got, key=repr) == sorted(expected, key=repr), case_text(case)


# ---------------------------------------------------------------------------------------------
# Pinned cases: semantics that random cases reach only rarely, on the reference schema (§2) with
# hand-made rows. Each compares the compiler with the reference and with a hand-computed answer.

from tests.schemas import reference_graph  # noqa: E402
from tests.test_reference import item, rows, tx, user  # noqa: E402  (the hand-made row builders)

D = dt.datetime
A0 = D(2024, 1, 31)


def graph_with(data: dict[str, list[dict]], *, no_pk: tuple[str, ...] = ()) -> Any:
    """The reference schema with ``data`` attached as in-memory pyarrow tables."""
    import pyarrow as pa

    from tests.gen_graphs import ARROW

    graph = reference_graph()
    for t in graph:
        if t.name in no_pk:
            t.primary_key = None
        schema = pa.schema([(c.name, ARROW[c.dtype]) for c in t.columns.values()])
        t.data = pa.Table.from_pylist(data[t.name], schema=schema)
    return graph


def pinned(text: str, data: dict[str, list[dict]], anchors: list[D], expected: list[tuple], **kw: Any) -> None:
    graph = graph_with(data, **kw)
    query = pql.parse(text)
    ref = reference_labels(query, graph, data, anchors)
    assert_same_labels(ref, expected, f"reference vs hand-computed: {text}")
    cq = pql.compile(query, graph, database=Database(graph, con=_CON))
    assert_same_labels(sql_labels(cq, anchors), expected, f"SQL vs hand-computed: {text}")


def test_pinned_first_last_ties_break_on_primary_key_then_row_order():
    same = D(2024, 2, 5)
    txs = [tx(9, 1, same, status="b"), tx(3, 1, same, status="a"), tx(5, 1, same, status=None),
           tx(7, 1, D(2024, 2, 2), status="z"), tx(8, 1, D(2024, 2, 9), status=None)]
    data = rows([user(1)], txs)
    pinned("PREDICT FIRST(transactions.status, 0, 30) FOR EACH users.user_id", data, [A0], [(1, A0, "z")])
    pinned("PREDICT LAST(transactions.status, 0, 30) FOR EACH users.user_id", data, [A0], [(1, A0, "b")])
    # without a primary key the source row order breaks the tie: "b" comes before "a"
    pinned("PREDICT LAST(transactions.status, 0, 30) FOR EACH users.user_id", data, [A0], [(1, A0, "a")],
           no_pk=("transactions",))


def test_pinned_month_windows_clamp_at_month_end():
    txs = [tx(1, 1, D(2024, 2, 29)), tx(2, 1, D(2024, 3, 1)), tx(3, 1, A0), tx(4, 1, D(2023, 12, 31)),
           tx(5, 1, D(2024, 1, 1))]
    data = rows([user(1)], txs)
    pinned("PREDICT COUNT(transactions.*, 0, 1, months) FOR EACH users.user_id", data, [A0], [(1, A0, 1)])
    pinned("PREDICT COUNT(transactions.*, 0, 1, months) FOR EACH users.user_id "
           "WHERE COUNT(transactions.*, -1, 0, months) = 2", data, [A0], [(1, A0, 1)])


def test_pinned_existence_and_link_destinations_at_end_time_edges():
    items = [item(1), item(2, start=D(2024, 2, 1)), item(3, end=A0), item(4, end=D(2024, 3, 1)), item(5, start=A0)]
    txs = [tx(i, 1, D(2024, 2, 1 + i), item=i) for i in range(1, 6)] + [tx(9, 1, D(2024, 2, 9), item=77)]
    users = [user(1), user(2, joined=A0), user(3, joined=D(2024, 2, 1))]
    data = rows(users, txs, items)
    pinned("PREDICT LIST_DISTINCT(transactions.item_id, 0, 30) RANK TOP 5 FOR EACH users.user_id",
           data, [A0], [(1, A0, [1, 4, 5])])
    pinned("PREDICT COUNT(transactions.*, 0, 30) FOR EACH items.item_id", data, [A0],
           [(1, A0, 1), (4, A0, 1), (5, A0, 1)])
    pinned("PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id", data, [A0],
           [(1, A0, 6), (2, A0, 0)])


def test_pinned_undefined_inside_an_inline_filter_drops_only_that_row():
    users = [user(1, joined=D(2024, 2, 1), region_id=1), user(2, joined=D(2024, 2, 2), region_id=1),
             user(3, joined=D(2024, 2, 3), region_id=1)]
    txs = [tx(1, 1, D(2024, 2, 5), price=5.0), tx(2, 3, D(2024, 2, 5), price=1.0)]
    text = ("PREDICT COUNT(users.* WHERE AVG(transactions.price, 0, 30) > 2 OR users.age > 0, 0, 30) "
            "FOR EACH regions.region_id")
    pinned(text, rows(users, txs), [A0], [(1, A0, 2), (2, A0, 0)])


def test_pinned_static_condition_target_null_operand_is_unlabelled():
    users = [user(1, age=None, country="US"), user(2, age=50, country=None), user(3, age=20, country="DE"),
             user(4, age=None, country=None, is_vip=None)]
    p = D(2024, 6, 1)
    data = rows(users, [tx(1, 1, p)])
    pinned("PREDICT users.age > 40 OR users.country = 'US' FOR EACH users.user_id", data, [p], [(3, p, False)])
    pinned("PREDICT users.age IS NULL FOR EACH users.user_id", data, [p],
           [(1, p, True), (2, p, False), (3, p, False), (4, p, True)])


def test_pinned_aggregations_sharing_one_cte_keep_their_own_windows_and_nulls():
    """The final query's aggregations of one table share a CTE over the union of their windows
    (with a gap here, and -INF); each must still see exactly its own rows, edges and NULLs."""
    day = dt.timedelta(days=1)
    txs = [tx(1, 1, A0 - 10 * day, price=2.0),  # on the lower edge of (-10, -5]: out of it
           tx(2, 1, A0 - 7 * day, price=4.0),
           tx(3, 1, A0, price=None),  # on the anchor: past, but no price
           tx(4, 1, A0 + 30 * day, price=5.0),  # on the upper edge of (0, 30]: in it
           tx(5, 1, A0 + 31 * day, price=7.0),
           tx(6, 2, A0 - day, price=1.0)]
    data = rows([user(1), user(2)], txs)
    where = ("WHERE COUNT(transactions.*, -INF, 0) >= 2 AND AVG(transactions.price, -10, -5) = 4 "
             "AND LAST(transactions.price, -INF, 0) = 4")
    pinned(f"PREDICT SUM(transactions.price, 0, 30) FOR EACH users.user_id {where}", data, [A0], [(1, A0, 5.0)])
    pinned("PREDICT COUNT(transactions.price, 0, 30) FOR EACH users.user_id "
           "WHERE COUNT(transactions.price, -INF, 0) >= 1", data, [A0], [(1, A0, 1), (2, A0, 0)])


@pytest.mark.parametrize("plan", sorted(GRID_PLANS))
def test_pinned_link_destinations_alive_at_each_anchor_of_a_grid(plan):
    """Link targets at evenly spaced anchors: a destination counts at an anchor only from its start
    (inclusive) until its end (exclusive); a NULL start never. Compared with the reference."""
    day = dt.timedelta(days=1)
    anchors = [A0 + k * day for k in range(-3, 4)]
    items = [item(1), item(2, start=A0 - day), item(3, end=A0), item(4, end=A0 + 2 * day), item(5, start=A0 + day),
             item(6, start=None), item(7, start=A0 - 2 * day, end=A0 + day),
             item(8, start=A0 + dt.timedelta(microseconds=1))]
    txs = [tx(10 * i + k, 1 + k % 2, A0 + (k - 2) * day + (dt.timedelta(hours=5) if k % 3 else dt.timedelta()),
              item=i) for i in range(1, 9) for k in range(6)]
    data = rows([user(1), user(2)], txs, items)
    graph = graph_with(data)
    query = pql.parse("PREDICT LIST_DISTINCT(transactions.item_id, 0, 3) RANK TOP 5 FOR EACH users.user_id")
    expected = reference_labels(query, graph, data, anchors)
    assert len({tuple(r[2]) for r in expected}) >= 4  # the lists do change across the anchors
    with grid_plan(plan):
        cq = pql.compile(query, graph, database=Database(graph, con=_CON))
        assert_same_labels(sql_labels(cq, anchors), expected, f"plan {plan}")
