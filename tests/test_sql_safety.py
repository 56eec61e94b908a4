"""SQL safety (PQL-SPEC §11.2): user text reaches SQL only as sqlglot literals and quoted identifiers.

Queries whose strings hold SQL run as plain string comparisons, and afterwards every table still
exists with its rows unchanged.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
import sqlglot

from pql.compiler import compile_query
from pql.data import Database
from pql.errors import PQLSyntaxError
from pql.graph import ColumnSchema, Dtype, Edge, Graph, Stype, TableSchema
from tests.test_compiler import A, DAY, make_graph, tx, user

INJECTIONS = [  # (condition, the users it selects: user 1 is named "x'; DROP TABLE users; --", from the US)
    (r"users.name = 'x\'; DROP TABLE users; --'", [1]),
    ("users.name = \"x'; DROP TABLE users; --\"", [1]),
    (r"users.name CONTAINS '\'); DELETE FROM transactions; --'", []),
    ("users.name STARTS WITH \"'||(SELECT 1)||'\"", []),
    ("users.country IN ('US', 'x\\'); DROP VIEW users; --')", [1]),
]


def snapshot(db: Database) -> dict[str, list]:
    return {t: db.con.sql(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall() for t in db.graph.tables}


@pytest.fixture
def setup():
    g = make_graph(users=[user(1, name="x'; DROP TABLE users; --", country="US"), user(2, name="plain")],
                   transactions=[tx(1, 1, A + DAY), tx(2, 2, A + DAY)])
    return g, Database(g)


@pytest.mark.parametrize("condition, selected", INJECTIONS)
def test_string_literals_holding_sql_are_only_compared(setup, condition, selected):
    g, db = setup
    before = snapshot(db)
    cq = compile_query(f"PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id WHERE {condition}", g,
                       database=db)
    rows = cq.labels([A]).to_pylist()
    assert [r["ENTITY"] for r in rows] == selected
    for stage, kwargs in (("labels", {"anchors": [A]}), ("prediction", {"anchor_time": A})):
        assert len(sqlglot.parse(cq.sql(stage, **kwargs), read="duckdb")) == 1
    cq.prediction_table(anchor_time=A)
    assert snapshot(db) == before


def test_doubled_quote_never_reaches_sql(setup):
    g, _ = setup
    with pytest.raises(PQLSyntaxError) as e:
        compile_query("PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id WHERE users.name = 'x''; DROP'", g)
    assert e.value.code == "E001"


def test_literal_is_rendered_as_an_escaped_string(setup):
    g, db = setup
    cq = compile_query(INJECTIONS[0][0].join(["PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id WHERE ", ""]),
                       g, database=db)
    assert "\"name\" = 'x''; DROP TABLE users; --'" in cq.sql("labels", anchors=[A])


def test_hostile_table_and_column_names_are_quoted_identifiers():
    """Names from the graph (and backticked names in queries) may hold quotes, semicolons and spaces."""
    people, orders = 'pe"ople; DROP', "or'ders"
    tables = {
        people: TableSchema(people, {"id": ColumnSchema("id", Dtype.INT, Stype.ID),
                                     'we"ird col': ColumnSchema('we"ird col', Dtype.STRING, Stype.CATEGORICAL)},
                            primary_key="id"),
        orders: TableSchema(orders, {"oid": ColumnSchema("oid", Dtype.INT, Stype.ID),
                                     "pid": ColumnSchema("pid", Dtype.INT, Stype.ID),
                                     "amount; --": ColumnSchema("amount; --", Dtype.FLOAT, Stype.NUMERICAL),
                                     "at": ColumnSchema("at", Dtype.TIMESTAMP, Stype.TIMESTAMP)},
                            primary_key="oid", time_column="at"),
    }
    tables[people].data = pa.table({"id": [1, 2], 'we"ird col': ["a'b", "c"]})
    tables[orders].data = pa.table({"oid": [1, 2, 3], "pid": [1, 1, 2], "amount; --": [1.5, 2.5, 4.0],
                                    "at": pa.array([A + DAY, A + 2 * DAY, A + 40 * DAY], pa.timestamp("us"))})
    g = Graph(tables, [Edge(orders, "pid", people)])
    db = Database(g)
    before = {t: db.con.sql(f'SELECT count(*) FROM "{t.replace(chr(34), chr(34) * 2)}"').fetchall() for t in tables}
    q = (f"PREDICT SUM(`{orders}`.`amount; --`, 0, 30) FOR EACH `{people}`.id "
         f"WHERE `{people}`.`we\"ird col` = 'a\\'b'")
    cq = compile_query(q, g, database=db)
    assert cq.labels([A]).to_pylist() == [{"ENTITY": 1, "ANCHOR_TIMESTAMP": A, "TARGET": 4.0}]
    assert {t: db.con.sql(f'SELECT count(*) FROM "{t.replace(chr(34), chr(34) * 2)}"').fetchall()
            for t in tables} == before


def test_backslashes_newlines_and_unicode_survive_as_literal_values():
    value = "a\\b\n'c'\t\u00e9\u4e2d"
    g = make_graph(users=[user(1, name=value), user(2, name="a\\\\b")], transactions=[tx(1, 1, A + DAY)])
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace("'", "\\'").replace("\t", "\\t")
    cq = compile_query(f"PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id WHERE users.name = '{escaped}'",
                       g, database=Database(g))
    assert [r["ENTITY"] for r in cq.labels([A]).to_pylist()] == [1]
