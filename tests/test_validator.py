"""The validator (PQL-SPEC §7-§9): corpus queries, bindings, windows, warnings, stage ordering."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

import pql.validator
from pql import ast as A
from pql.ast import AggFunc, CmpOp, QueryKind, TaskType, TimeUnit
from pql.catalog import AGGREGATIONS, OPERATORS
from pql.errors import PQLError, PQLSyntaxError, PQLValidationError
from pql.graph import ColumnSchema, Dtype, Edge, Graph, Stype, TableSchema
from pql.parser import parse
from pql.validated import CombinedWindow
from tests.corpus_loader import graph_for, invalid_queries, valid_queries
from tests.schemas import marketplace_graph, reference_graph

REF = reference_graph()
MKT = marketplace_graph()
VALID = valid_queries()
INVALID = invalid_queries()


def validate(text: str, graph: Graph = REF):
    return pql.validator.validate(text, graph)


def errors(text: str, graph: Graph = REF) -> list[tuple[str, int, int]]:
    with pytest.raises(PQLValidationError) as info:
        validate(text, graph)
    return [(e.code, e.line, e.column) for e in info.value.errors]


def codes(text: str, graph: Graph = REF) -> list[str]:
    return [c for c, _, _ in errors(text, graph)]


def warnings(text: str, graph: Graph = REF) -> list[str]:
    return [w.code for w in validate(text, graph).warnings]


# ---------------------------------------------------------------------------------------------
# Corpus


@pytest.mark.parametrize("q", VALID, ids=[q.id for q in VALID])
def test_valid_corpus(q) -> None:
    vq = pql.validator.validate(q.text, graph_for(q))
    assert vq.task_type.value == q.task_type
    for node in A.walk(vq.query):  # every Column and Aggregation is bound
        if isinstance(node, (A.Column, A.Aggregation)):
            assert vq.info(node).table == (node.table if isinstance(node, A.Column) else node.column.table)


@pytest.mark.parametrize("q", INVALID, ids=[q.id for q in INVALID])
def test_invalid_corpus(q) -> None:
    with pytest.raises(PQLValidationError) as info:
        pql.validator.validate(q.text, graph_for(q))
    assert tuple((e.code, e.line, e.column) for e in info.value.errors) == q.errors


V_STAGE_CODES = {
    "E101", "E102", "E103", "E104", "E105", "E106", "E107", "E108", "E109", "E110",
    "E201", "E202", "E203", "E204", "E205", "E206", "E207", "E210", "E211", "E212", "E213",
    "E301", "E302", "E303", "E304", "E305", "E306", "E307", "E308", "E309", "E310", "E311",
    "E401", "E402", "E407", "E408", "E409", "E411", "E412", "E413", "E414",
}  # E410 needs a graph without time columns: see test_static_link_prediction


def test_corpus_size_and_coverage() -> None:
    assert len(VALID) >= 80 and len(INVALID) >= 60
    assert {q.schema for q in VALID} == {q.schema for q in INVALID} == {"reference", "marketplace"}
    assert V_STAGE_CODES <= {code for q in INVALID for code, _, _ in q.errors}
    assert {t.value for t in TaskType} - {q.task_type for q in VALID} == {"static_link_prediction"}
    nodes = [n for q in VALID for n in A.walk(parse(q.text))]
    assert {n.func for n in nodes if isinstance(n, A.Aggregation)} == set(AggFunc)
    assert {n.op for n in nodes if isinstance(n, A.Comparison)} == set(CmpOp)
    assert {n.window.unit for n in nodes if isinstance(n, A.Aggregation) and n.window} == set(TimeUnit)
    windows = [n for n in nodes if isinstance(n, A.Window)]
    assert any(w.start is None for w in windows)
    assert any(isinstance(n, A.Aggregation) and n.filter and any(isinstance(m, A.Aggregation) for m in A.walk(n.filter))
               for n in nodes)  # nested
    entities = [n for n in nodes if isinstance(n, A.EntitySpec)]
    assert any(e.ids and len(e.ids) == 1 for e in entities) and any(e.ids and len(e.ids) > 1 for e in entities)
    queries = [n for n in nodes if isinstance(n, A.Query)]
    assert any(q.assuming for q in queries)
    assert {type(q.problem) for q in queries} == {A.Rank, A.Classify, A.Forecast, type(None)}
    assert any("`" in q.text for q in VALID) and any("\n" in q.text and "#" in q.text for q in VALID)


# ---------------------------------------------------------------------------------------------
# The validated query


def test_hand_built_ast() -> None:
    count = A.Aggregation(AggFunc.COUNT, A.Wildcard("transactions"), None, A.Window(0, 30))
    query = A.Query(A.Comparison(count, CmpOp.GT, A.IntLit(0)), None, A.EntitySpec(A.Column("users", "user_id")))
    vq = pql.validator.validate(query, REF)
    assert vq.task_type is TaskType.BINARY_CLASSIFICATION and vq.source is None and vq.query is query
    assert vq.info(count).edge == Edge("transactions", "user_id", "users")


def test_hand_built_ast_error_has_no_span() -> None:
    query = A.Query(A.Column("users", "agee"), None, A.EntitySpec(A.Column("users", "user_id")))
    with pytest.raises(PQLValidationError) as info:
        pql.validator.validate(query, REF)
    assert info.value.code == "E102" and info.value.span is None


def test_bindings() -> None:
    vq = validate("PREDICT users.country FOR EACH users.user_id WHERE regions.population > 1000000")
    target, pop = vq.query.target, vq.query.entity.filter.left
    assert vq.info(target) == pql.validated.NodeInfo(Dtype.STRING, Stype.CATEGORICAL, "users", None)
    assert vq.info(pop).edge == Edge("users", "region_id", "regions")
    assert vq.info(vq.query.entity.key).stype is Stype.ID
    assert (vq.entity_table, vq.entity_pk, vq.target_tables) == ("users", "user_id", ())
    assert (vq.target_dtype, vq.target_stype) == (Dtype.STRING, Stype.CATEGORICAL)

    vq = validate("PREDICT COUNT(transactions.* WHERE items.category = 'shoes', 0, 14) > 0 FOR EACH users.user_id")
    agg = vq.query.target.left
    assert vq.info(agg) == pql.validated.NodeInfo(Dtype.INT, Stype.NUMERICAL, "transactions",
                                                  Edge("transactions", "user_id", "users"))
    assert vq.info(agg.filter.left).edge == Edge("transactions", "item_id", "items")
    assert (vq.target_dtype, vq.target_stype) == (Dtype.BOOL, Stype.CATEGORICAL)


def test_nested_binding() -> None:
    vq = validate("PREDICT COUNT(users.* WHERE COUNT(transactions.*, 0, 30, days) > 0, 0, 30, days) "
                  "FOR EACH regions.region_id")
    outer = vq.query.target
    inner = outer.filter.left
    assert vq.info(outer).edge == Edge("users", "region_id", "regions")
    assert vq.info(inner).edge == Edge("transactions", "user_id", "users")
    assert vq.target_tables == ("users",)
    assert vq.window == CombinedWindow(TimeUnit.DAYS, 0, 30, 0)


@pytest.mark.parametrize("text,dtype", [
    ("PREDICT SUM(transactions.price, 0, 30) FOR EACH users.user_id", Dtype.FLOAT),
    ("PREDICT SUM(transactions.quantity, 0, 30) FOR EACH users.user_id", Dtype.INT),
    ("PREDICT AVG(transactions.quantity, 0, 30) FOR EACH users.user_id", Dtype.FLOAT),
    ("PREDICT COUNT_DISTINCT(transactions.status, 0, 30) FOR EACH users.user_id", Dtype.INT),
    ("PREDICT MIN(transactions.quantity, 0, 30) FOR EACH users.user_id", Dtype.INT),
])
def test_aggregation_result_types(text: str, dtype: Dtype) -> None:
    vq = validate(text)
    assert (vq.target_dtype, vq.target_stype) == (dtype, Stype.NUMERICAL)
    assert vq.task_type is TaskType.REGRESSION


def test_link_prediction_fields() -> None:
    vq = validate("PREDICT LIST_DISTINCT(transactions.item_id, 0, 30) RANK TOP 12 FOR EACH users.user_id")
    assert vq.dst_table == "items" and vq.target_tables == ("transactions",)
    assert (vq.target_dtype, vq.target_stype) == (Dtype.LIST_INT, Stype.MULTICATEGORICAL)
    vq = validate("PREDICT LIST_DISTINCT(orders.customer_id, 0, 30) RANK TOP 5 FOR EACH products.product_id", MKT)
    assert vq.dst_table == "customers" and vq.target_dtype is Dtype.LIST_STRING
    vq = validate("PREDICT LIST_DISTINCT(transactions.status, 0, 30) RANK TOP 3 FOR EACH users.user_id")
    assert vq.dst_table is None and vq.target_dtype is Dtype.LIST_STRING


# ---------------------------------------------------------------------------------------------
# Combined window (§10.1)


@pytest.mark.parametrize("text,window", [
    ("PREDICT SUM(transactions.price, 10, 30) FOR EACH users.user_id", (TimeUnit.DAYS, 10, 30, None)),
    ("PREDICT COUNT(transactions.*, 0, 30, days) = 0 FOR EACH users.user_id WHERE "
     "COUNT(transactions.*, -90, 0, days) > 0", (TimeUnit.DAYS, 0, 30, -90)),
    ("PREDICT SUM(transactions.price, 0, 3, months) FOR EACH users.user_id WHERE "
     "SUM(transactions.price, -2, 0, months) > 0.05", (TimeUnit.MONTHS, 0, 3, -2)),
    ("PREDICT COUNT(transactions.*, 0, 24, hours) > 0 OR COUNT(notifications.* WHERE notifications.opened = true, "
     "0, 1, days) > 0 FOR EACH users.user_id", (TimeUnit.HOURS, 0, 24, None)),
    ("PREDICT COUNT(transactions.*, 2, 3, days) > 0 AND COUNT(notifications.*, 0, 1, weeks) > 0 "
     "FOR EACH users.user_id", (TimeUnit.DAYS, 0, 7, None)),
    ("PREDICT MIN(transactions.price, 0, 30) <= 5 FOR EACH users.user_id WHERE "
     "COUNT(transactions.*, -INF, 0) > 0", (TimeUnit.DAYS, 0, 30, None)),
    ("PREDICT SUM(transactions.price, 0, 7) FOR EACH users.user_id WHERE "
     "COUNT(transactions.*, -36, 0, hours) > 0", (TimeUnit.DAYS, 0, 7, -2)),  # floor: 1.5 days -> 2
    ("PREDICT SUM(transactions.price, 0, 7) FOR EACH users.user_id ASSUMING "
     "COUNT(notifications.*, 0, 30) > 0", (TimeUnit.DAYS, 0, 7, None)),  # ASSUMING is not in F
])
def test_combined_window(text: str, window: tuple) -> None:
    vq = validate(text)
    assert vq.kind is QueryKind.TEMPORAL
    assert vq.window == CombinedWindow(*window)


def test_months_mixed_with_days_warns() -> None:
    vq = validate("PREDICT COUNT(transactions.*, 0, 1, months) > 0 OR COUNT(notifications.*, 0, 10) > 0 "
                  "FOR EACH users.user_id")
    assert vq.window == CombinedWindow(TimeUnit.DAYS, 0, 30, None)
    assert [w.code for w in vq.warnings] == ["W110"]


def test_static_query_has_no_window() -> None:
    vq = validate("PREDICT users.age FOR EACH users.user_id")
    assert vq.kind is QueryKind.STATIC and vq.window is None and vq.warnings == []


# ---------------------------------------------------------------------------------------------
# Warnings


@pytest.mark.parametrize("text,graph,expected", [
    ("PREDICT users.age FOR EACH users.user_id WHERE users.country IS IN ('US', 'CA')", REF, ["W101"]),
    ("PREDICT users.tags CLASSIFY TOP 3 FOR EACH users.user_id", REF, ["W102"]),
    ("PREDICT users.age CLASSIFY FOR EACH users.user_id", REF, ["W103"]),
    ("PREDICT COUNT(transactions.*, 0, 7) > 0 CLASSIFY FOR EACH users.user_id", REF, ["W103"]),
    ("PREDICT SUM(transactions.price WHERE users.is_vip = true, 0, 30) FOR EACH users.user_id", REF, ["W104"]),
    ("PREDICT users.age FOR EACH users.user_id WHERE users.country > 'M'", REF, ["W105"]),
    ("PREDICT users.age FOR EACH users.user_id WHERE users.region_id >= 3", REF, ["W105"]),
    ("PREDICT customers.score FOR EACH customers.customer_id WHERE customers.customer_id ENDS WITH '7'", MKT,
     ["W106"]),
    ("PREDICT MAX(notifications.opened, 0, 7) FOR EACH users.user_id", REF, ["W107"]),
    ("PREDICT MIN(transactions.status, 0, 7) FOR EACH users.user_id", REF, ["W107"]),
    ("PREDICT LIST_DISTINCT(transactions.price, 0, 30) RANK TOP 3 FOR EACH users.user_id", REF, ["W109"]),
    ("PREDICT users.age FOR EACH users.user_id WHERE users.name LIKE '%a%b'", REF, ["W111"]),
    ("PREDICT regions.population FOR EACH regions.region_id", REF, ["W112"]),
    ("PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id", REF, []),
    ("PREDICT users.tags CONTAINS 'a' FOR EACH users.user_id WHERE users.name CONTAINS 'x'", REF, []),
])
def test_warnings(text: str, graph: Graph, expected: list[str]) -> None:
    vq = validate(text, graph)
    assert [w.code for w in vq.warnings] == expected
    assert all(w.span is not None and w.severity == "warning" for w in vq.warnings)


def test_w108_sum_on_categorical_int() -> None:
    graph = copy.deepcopy(REF)
    graph.tables["transactions"].columns["quantity"].stype = Stype.CATEGORICAL
    assert warnings("PREDICT SUM(transactions.quantity, 0, 30) FOR EACH users.user_id", graph) == ["W108"]


def test_warning_points_at_operand() -> None:
    text = "PREDICT users.age FOR EACH users.user_id WHERE users.country > 'M'"
    (w,) = validate(text).warnings
    assert (w.line, w.column) == (1, text.index("users.country") + 1)


# ---------------------------------------------------------------------------------------------
# Graphs beyond the two shared schemas


def _graph(tables: list[TableSchema], edges: list[Edge]) -> Graph:
    return Graph({t.name: t for t in tables}, edges)


def _table(name, cols, pk=None, time=None) -> TableSchema:
    return TableSchema(name, {c: ColumnSchema(c, d, s) for c, d, s in cols}, primary_key=pk, time_column=time)


def untimed_marketplace() -> Graph:
    graph = copy.deepcopy(MKT)
    for table in graph.tables.values():
        table.time_column = None
    return graph


def test_static_link_prediction() -> None:
    graph = untimed_marketplace()
    vq = validate("PREDICT LIST_DISTINCT(orders.product_id) RANK TOP 5 FOR EACH customers.customer_id", graph)
    assert vq.task_type is TaskType.STATIC_LINK_PREDICTION
    assert (vq.kind, vq.window, vq.dst_table, vq.warnings) == (QueryKind.STATIC, None, "products", [])
    assert codes("PREDICT LIST_DISTINCT(orders.product_id) CLASSIFY FOR EACH customers.customer_id",
                 graph) == ["E410"]
    assert codes("PREDICT LIST_DISTINCT(orders.product_id) FOR EACH customers.customer_id", graph) == ["E401"]
    assert codes("PREDICT LIST_DISTINCT(orders.channel) RANK TOP 5 FOR EACH customers.customer_id",
                 graph) == ["E302"]
    assert codes("PREDICT LIST_DISTINCT(orders.product_id, 0, 30) RANK TOP 5 FOR EACH customers.customer_id",
                 graph) == ["E301"]
    assert codes("PREDICT LIST_DISTINCT(orders.product_id) RANK TOP 5 FOR EACH customers.customer_id "
                 "ASSUMING COUNT(reviews.*, 0, 7) > 0", graph) == ["E307", "E301"]


def test_parallel_edges_to_a_parent() -> None:
    graph = _graph(
        [_table("teams", [("team_id", Dtype.INT, Stype.ID), ("name", Dtype.STRING, Stype.CATEGORICAL)], pk="team_id"),
         _table("matches", [("match_id", Dtype.INT, Stype.ID), ("home_id", Dtype.INT, Stype.ID),
                            ("away_id", Dtype.INT, Stype.ID), ("goals", Dtype.INT, Stype.NUMERICAL),
                            ("played_at", Dtype.TIMESTAMP, Stype.TIMESTAMP)], pk="match_id", time="played_at")],
        [Edge("matches", "home_id", "teams"), Edge("matches", "away_id", "teams")],
    )
    text = "PREDICT teams.name FOR EACH matches.match_id"
    with pytest.raises(PQLValidationError) as info:
        validate(text, graph)
    assert info.value.code == "E106"
    assert info.value.message == "'matches' links to 'teams' through home_id and away_id; keep exactly one edge"
    assert codes("PREDICT SUM(matches.goals, 0, 7) FOR EACH teams.team_id", graph) == ["E106"]
    assert validate("PREDICT matches.goals FOR EACH matches.match_id", graph).task_type is TaskType.REGRESSION


def test_unsupported_and_list_int_columns() -> None:
    graph = copy.deepcopy(REF)
    graph.tables["users"].columns["blob"] = ColumnSchema("blob", Dtype.OTHER, Stype.UNSUPPORTED)
    graph.tables["users"].columns["codes"] = ColumnSchema("codes", Dtype.LIST_INT, Stype.MULTICATEGORICAL)
    assert codes("PREDICT users.blob FOR EACH users.user_id", graph) == ["E413"]
    assert codes("PREDICT users.age FOR EACH users.user_id WHERE users.blob = 1", graph) == ["E205"]
    assert codes("PREDICT COUNT(users.blob, 0, 30) FOR EACH regions.region_id", graph) == ["E205"]
    assert validate("PREDICT users.codes CONTAINS 3 FOR EACH users.user_id", graph).warnings == []
    assert codes("PREDICT users.codes CONTAINS '3' FOR EACH users.user_id", graph) == ["E205"]
    assert codes("PREDICT users.codes STARTS WITH '3' FOR EACH users.user_id", graph) == ["E213"]
    assert validate("PREDICT users.codes RANK TOP 2 FOR EACH users.user_id", graph).task_type \
        is TaskType.MULTILABEL_RANKING


def test_entity_without_primary_key() -> None:
    with pytest.raises(PQLValidationError) as info:
        validate("PREDICT COUNT(orders.*, 0, 30) FOR EACH referrals.referrer_id", MKT)
    assert info.value.message == ("'referrals.referrer_id' is not the primary key of 'referrals'; "
                                  "declare primary_key for 'referrals'")


# ---------------------------------------------------------------------------------------------
# Error reporting: several errors, stage order, messages


def test_several_errors_reported_together() -> None:
    text = "PREDICT SUM(transactions.prce, 0, 30) FOR EACH user.user_id WHERE users.agee > 3 AND Users.age > 1"
    with pytest.raises(PQLValidationError) as info:
        validate(text)
    err = info.value
    assert [e.code for e in err.errors] == ["E102", "E101", "E102", "E101"]
    assert [e.column for e in err.errors] == sorted(e.column for e in err.errors)
    assert err.code == "E102" and err.message.endswith("(and 3 more)")
    assert all(isinstance(e, PQLError) and e.span is not None for e in err.errors)


def test_ids_all_checked() -> None:
    text = "PREDICT COUNT(transactions.*, 0, 30) > 0 FOR users.user_id IN ('a', 2, 3.5)"
    assert errors(text) == [("E205", 1, text.index("'a'") + 1), ("E205", 1, text.index("3.5") + 1)]
    assert codes("PREDICT SUM(orders.amount, 0, 30) FOR customers.customer_id IN ('a', 2)", MKT) == ["E205"]


@pytest.mark.parametrize("text,expected", [
    # names stop reachability (E107/E108 would follow)
    ("PREDICT transactions.prce FOR EACH users.user_id WHERE transactions.status = 'x'", ["E102"]),
    # reachability stops types (E201 would follow)
    ("PREDICT SUM(transactions.status, 0, 30) FOR EACH items.item_id WHERE notifications.channel = 5", ["E109"]),
    # types stop windows (E302 would follow)
    ("PREDICT SUM(transactions.status) FOR EACH users.user_id", ["E201"]),
    # windows stop target and problem (E402 would follow)
    ("PREDICT SUM(transactions.price, -5, 30) RANK TOP 3 FOR EACH users.user_id", ["E303"]),
    # ... but a stage reports all of its own errors
    ("PREDICT SUM(transactions.price, -5, 30) FOR EACH users.user_id WHERE COUNT(transactions.*, -3, 3) > 0 "
     "ASSUMING users.age > 3", ["E303", "E304", "E306"]),
    ("PREDICT users.age = 'x' FOR EACH users.user_id WHERE users.tags = 'a' AND users.is_vip < TRUE AND "
     "users.country IN ('a', NULL) AND users.age STARTS WITH 'x'", ["E205", "E213", "E207", "E210", "E211"]),
])
def test_stage_order(text: str, expected: list[str]) -> None:
    assert codes(text) == expected


def test_syntax_errors_propagate() -> None:
    with pytest.raises(PQLSyntaxError):
        validate("PREDICT users.age")


@pytest.mark.parametrize("text,message,hints", [
    ("PREDICT SUM(transactions.price, 0, 30) FOR EACH Users.user_id",
     "unknown table 'Users'; did you mean 'users'?; table names are case-sensitive",
     ("available: regions, users, items, transactions, notifications",)),
    ("PREDICT SUM(transactions.price, 0, 30) FOR EACH payments.payment_id",
     "unknown table 'payments'; table names are case-sensitive",
     ("available: regions, users, items, transactions, notifications",)),
    ("PREDICT users.age FOR EACH users.user_id WHERE users.age = 'x'", "'users.age' is int but 'x' is string", ()),
    ("PREDICT users.age FOR EACH users.user_id WHERE users.age = '3.5'", "'users.age' is int but '3.5' is string",
     ("remove the quotes",)),
    ("PREDICT users.age FOR EACH users.user_id WHERE users.birth_date < '2020/1/1'",
     "'users.birth_date' is timestamp but '2020/1/1' is string", ("write dates unquoted: 2024-01-31",)),
    ("PREDICT users.age FOR EACH users.user_id WHERE users.country IN ('a', NULL)",
     "list value NULL is NULL, expected string", ("use OR users.country IS NULL",)),
    ("PREDICT COUNT(`transactions`.* WHERE `transactions`.`status` = 'x', 0, 7) FOR EACH `items`.`item_id` "
     "WHERE items.price > 'cheap'", "'items.price' is float but 'cheap' is string", ()),
])
def test_messages(text: str, message: str, hints: tuple) -> None:
    with pytest.raises(PQLValidationError) as info:
        validate(text)
    assert (info.value.message, info.value.hints) == (message, hints)


def test_error_json_form() -> None:
    with pytest.raises(PQLValidationError) as info:
        validate("PREDICT SUM(transactions.prce, 0, 30) FOR EACH users.user_id")
    d = info.value.errors[0].to_dict()
    assert {k: d[k] for k in ("code", "severity", "line", "column", "end_line", "end_column")} == {
        "code": "E102", "severity": "error", "line": 1, "column": 13, "end_line": 1, "end_column": 30}


# ---------------------------------------------------------------------------------------------
# Catalog


def test_catalog_is_complete() -> None:
    assert set(AGGREGATIONS) == set(AggFunc) and set(OPERATORS) == set(CmpOp)
    assert {f for f, s in AGGREGATIONS.items() if not s.needs_input} == {AggFunc.COUNT, AggFunc.COUNT_DISTINCT,
                                                                         AggFunc.SUM}
    assert {f for f, s in AGGREGATIONS.items() if s.forecastable} == {AggFunc.COUNT, AggFunc.COUNT_DISTINCT,
                                                                      AggFunc.SUM}
    assert [f for f, s in AGGREGATIONS.items() if s.accepts_wildcard] == [AggFunc.COUNT]


# ---------------------------------------------------------------------------------------------
# Rendered errors, compared with snapshots under tests/snapshots/validation/

SNAPSHOT_DIR = Path(__file__).parent / "snapshots" / "validation"
SNAPSHOTS = {
    "e101_unknown_table": "PREDICT SUM(transactions.price, 0, 30) FOR EACH user.user_id",
    "e102_unknown_column": "PREDICT SUM(transactions.prce, 0, 30) FOR EACH users.user_id",
    "e105_no_link": "PREDICT COUNT(notifications.*, 0, 30) FOR EACH items.item_id",
    "e108_child_column_in_filter":
        "PREDICT SUM(transactions.price, 0, 30)\nFOR EACH users.user_id\nWHERE transactions.status = 'paid'",
    "e205_quoted_date": "PREDICT users.age FOR EACH users.user_id WHERE users.birth_date > '1990-01-01'",
    "e303_past_target_window": "PREDICT COUNT(transactions.*, -7, 30) FOR EACH users.user_id",
    "e306_static_assuming":
        "PREDICT SUM(transactions.price, 0, 30) FOR EACH users.user_id ASSUMING users.country = 'US'",
    "e309_mixed_target": "PREDICT COUNT(transactions.*, 0, 30) > 0 OR users.age > 30 FOR EACH users.user_id",
    "e402_rank_on_scalar": "PREDICT SUM(transactions.price, 0, 30) RANK TOP 5 FOR EACH users.user_id",
    "e411_link_points_back": "PREDICT LIST_DISTINCT(transactions.user_id, 0, 30) RANK TOP 5 FOR EACH users.user_id",
    "several_names": "PREDICT SUM(transactions.prce, 0, 30)\n  FOR EACH user.user_id  -- typo\n"
                     "  WHERE users.agee > 3",
}


@pytest.mark.parametrize("name", sorted(SNAPSHOTS))
def test_rendered_snapshot(name: str) -> None:
    source = SNAPSHOTS[name]
    with pytest.raises(PQLValidationError) as info:
        validate(source)
    rendered = info.value.render(source) + "\n"
    path = SNAPSHOT_DIR / f"{name}.txt"
    if os.environ.get("PQL_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.is_file(), f"missing snapshot {path}; run with PQL_UPDATE_SNAPSHOTS=1 to create it"
    assert rendered == path.read_text(encoding="utf-8")
