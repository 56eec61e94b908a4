"""The DuckDB session over a graph (views, normalised time) and the load checks of §6.6."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pql.data import Database
from pql.errors import PQLDataError
from pql.graph import Dtype, Edge, Graph
from tests.datagen_ref import write_reference_dataset

T0 = datetime(2024, 1, 1)


def days(n: int) -> list[datetime]:
    return [T0 + timedelta(days=i) for i in range(n)]


def _errors(db: Database, tables=None):
    with pytest.raises(PQLDataError) as e:
        db.check(tables)
    return e.value.errors


def check_errors(db: Database, tables=None) -> list[tuple[str, str]]:
    with pytest.raises(PQLDataError) as e:
        db.check(tables)
    return [(x.code, x.message) for x in e.value.errors]


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Graph:
    return Graph.from_toml(write_reference_dataset(tmp_path_factory.mktemp("ref")))


def test_reference_views(ref):
    db = Database(ref)
    assert db.check() == []
    names = {r[0] for r in db.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert names == set(ref.tables)
    assert db.con.execute('SELECT COUNT(*) FROM "transactions"').fetchone() == (400,)
    types = dict(db.con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = 'items'").fetchall())
    assert types["end_timestamp"] == "TIMESTAMP" and types["price"] == "DOUBLE"
    # Some users have no region; NULL foreign keys are not orphans.
    assert db.con.execute('SELECT COUNT(*) FROM users WHERE region_id IS NULL').fetchone()[0] > 0


def test_shared_connection(ref):
    con = duckdb.connect()
    db = Database(ref, con)
    assert db.con is con
    assert con.execute("SELECT COUNT(*) FROM notifications").fetchone() == (150,)


def test_time_columns_are_naive_utc_timestamps():
    aware = pa.array([datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))] * 2, pa.timestamp("us", tz="+02:00"))
    g = Graph.from_tables(
        {"a": pa.table({"a_id": [1, 2], "t": aware}),
         "b": pd.DataFrame({"b_id": [1, 2], "t": ["2024-01-01T12:00:00+02:00", "2024-01-02 08:30:00Z"]}),
         "c": pa.table({"c_id": [1, 2], "t": [date(2024, 1, 1), date(2024, 1, 2)]}),
         "d": pd.DataFrame({"d_id": [1, 2], "t": ["2024-01-01", "2024-01-02 08:30"]})},
        primary_keys={"a": "a_id", "b": "b_id", "c": "c_id", "d": "d_id"},
        time_columns={"a": "t", "b": "t", "c": "t", "d": "t"})
    assert g.column("b", "t").dtype is Dtype.TIMESTAMP
    db = Database(g)
    rows = {t: db.con.execute(f'SELECT t, typeof(t) FROM "{t}" ORDER BY 1').fetchall() for t in "abcd"}
    assert rows["a"][0] == (datetime(2024, 1, 1, 10), "TIMESTAMP")
    assert rows["b"] == [(datetime(2024, 1, 1, 10), "TIMESTAMP"), (datetime(2024, 1, 2, 8, 30), "TIMESTAMP")]
    assert rows["c"] == [(datetime(2024, 1, 1), "TIMESTAMP"), (datetime(2024, 1, 2), "TIMESTAMP")]
    assert rows["d"] == [(datetime(2024, 1, 1), "TIMESTAMP"), (datetime(2024, 1, 2, 8, 30), "TIMESTAMP")]
    assert db.check(["a", "b", "c"]) == []  # zoned text in b, like a; dates are neither aware nor naive
    assert db.check(["c", "d"]) == []
    assert check_errors(db, ["b", "d"]) == [("E708", "table 'b': column 't' mixes zone-aware and naive timestamps")]
    assert [(c, x.table_name) for x in _errors(db) for c in [x.code]] == [("E708", "a"), ("E708", "b")]


def test_e705_duplicate_and_e706_null_primary_keys():
    g = Graph.from_tables({"u": pd.DataFrame({"uid": pd.array([3, 3, 1, 1, 2, 2, 9, 9, 5, None], "Int64")})},
                          primary_keys={"u": "uid"})
    assert check_errors(Database(g)) == [
        ("E706", "table 'u': primary key 'uid' is NULL in 1 rows"),
        ("E705", "table 'u': primary key 'uid' has 4 duplicate values, e.g. 1, 2, 3"),
    ]
    g = Graph.from_tables({"s": pa.table({"k": ["b", "a", "b", "a"]})}, primary_keys={"s": "k"})
    assert check_errors(Database(g)) == [("E705", "table 's': primary key 'k' has 2 duplicate values, e.g. 'a', 'b'")]


def test_e707_unparsable_timestamps_after_load(tmp_path):
    pq.write_table(pa.table({"e_id": [1, 2, 3], "at": ["2024-01-01", "2024-01-02", "2024-01-03"]}), tmp_path / "e.parquet")
    g = Graph.from_tables({"e": tmp_path / "e.parquet"}, primary_keys={"e": "e_id"}, time_columns={"e": "at"})
    pq.write_table(pa.table({"e_id": [1, 2, 3, 4], "at": ["2024-01-01", "01/02/2024", None, "later"]}),
                   tmp_path / "e.parquet")
    db = Database(g)
    assert check_errors(db) == [("E707", "table 'e': column 'at' has 2 non-timestamp values, e.g. '01/02/2024'")]
    assert db.con.execute('SELECT COUNT("at") FROM e').fetchone() == (1,)  # unparsable text is NULL in the view


def test_e707_and_e708_in_one_column_are_load_errors():
    with pytest.raises(PQLDataError) as e:
        Graph.from_tables({"e": pd.DataFrame({"e_id": [1, 2, 3], "at": ["2024-01-01 10:00+01:00", "2024-01-01", "x"]})},
                          time_columns={"e": "at"})
    assert [(x.code, x.message) for x in e.value.errors] == [
        ("E707", "table 'e': column 'at' has 1 non-timestamp values, e.g. 'x'"),
        ("E708", "table 'e': column 'at' mixes zone-aware and naive timestamps"),
    ]


def test_e709_empty_used_table_and_w706_unused():
    empty = pa.table({"x_id": pa.array([], pa.int64())})
    g = Graph.from_tables({"x": empty, "y": pa.table({"y_id": [1]})}, primary_keys={"x": "x_id", "y": "y_id"})
    db = Database(g)
    assert check_errors(db, ["x"]) == [("E709", "table 'x' is empty but the query uses it")]
    assert [(w.code, w.table_name) for w in db.check(["y"])] == [("W706", "x")]
    assert [(w.code, w.message) for w in db.check()] == [("W706", "table 'x' is empty; no query uses it")]


def test_w701_orphans_and_w702_null_times():
    users = pa.table({"user_id": [1, 2, 3], "joined": days(3)})
    orders = pa.table({"order_id": [1, 2, 3, 4, 5], "user_id": [1, 7, 8, None, 3],
                       "at": days(2) + [None, None, T0]})
    g = Graph.from_tables({"users": users, "orders": orders}, primary_keys={"users": "user_id", "orders": "order_id"},
                          time_columns={"users": "joined", "orders": "at"}, edges=[Edge("orders", "user_id", "users")])
    warnings = Database(g).check()
    assert [(w.code, w.table_name, w.column_name) for w in warnings] == [
        ("W702", "orders", "at"), ("W701", "orders", "user_id")]
    assert warnings[0].message.startswith("table 'orders': time column 'at' is NULL in 2 rows")
    assert warnings[1].message.startswith("table 'orders': 2 rows have a 'user_id' without a parent in 'users'")
    assert Database(g).check(["users"]) == []  # edges are checked from their source table


def test_errors_of_several_tables_are_raised_together():
    g = Graph.from_tables({"a": pa.table({"a_id": [1, 1]}), "b": pa.table({"b_id": pa.array([None, 1], pa.int64())})},
                          primary_keys={"a": "a_id", "b": "b_id"})
    assert [c for c, _ in check_errors(Database(g))] == ["E705", "E706"]


def test_malformed_csv_row_beyond_the_sniff_sample(tmp_path):
    rows = ["a_id,b"] + [f"{i},x{i}" for i in range(30_000)]
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    g = Graph.from_tables({"a": tmp_path / "a.csv"}, primary_keys={"a": "a_id"})
    rows[25_001] = "oops,y"
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    codes = check_errors(Database(g))
    assert codes[0][0] == "E702" and codes[0][1].startswith("table 'a': cannot read ") and "as csv: " in codes[0][1]
    rows[25_001] = "1,y,extra"
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    (code, msg), = check_errors(Database(g))
    assert code == "E702" and "Expected Number of Columns: 2 Found: 3" in msg and "table 'a'" in msg


def test_files_broken_after_load(tmp_path):
    for name in ("p", "q"):
        pq.write_table(pa.table({f"{name}_id": [1, 2]}), tmp_path / f"{name}.parquet")
    g = Graph.from_tables({"p": tmp_path / "p.parquet", "q": tmp_path / "q.parquet"})
    (tmp_path / "p.parquet").write_bytes(b"\x00garbage" * 50)
    (tmp_path / "q.parquet").unlink()
    with pytest.raises(PQLDataError) as e:
        Database(g)
    assert [(x.code, x.table_name) for x in e.value.errors] == [("E702", "p"), ("E701", "q")]
    assert e.value.errors[0].message.startswith(f"table 'p': cannot read '{tmp_path / 'p.parquet'}' as parquet")


def test_names_and_paths_reach_sql_only_quoted(tmp_path):
    odd_dir = tmp_path / "it's here"
    odd_dir.mkdir()
    pq.write_table(pa.table({'we"ird': [1, 2], "x; DROP TABLE t": ["a", "b"]}), odd_dir / "d'ata.parquet")
    g = Graph.from_tables({'t"ab le': odd_dir / "d'ata.parquet", "t": pa.table({"t_id": [1]})},
                          primary_keys={'t"ab le': 'we"ird'})
    db = Database(g)
    assert db.check() == []
    assert db.con.execute('SELECT "x; DROP TABLE t" FROM "t""ab le" ORDER BY 1').fetchall() == [("a",), ("b",)]
    assert db.con.execute("SELECT COUNT(*) FROM t").fetchone() == (1,)


def test_from_tables_validation_errors():
    with pytest.raises(PQLDataError) as e:
        Graph.from_tables({"a": pa.table({"a_id": [1]})}, primary_keys={"a": "id", "b": "x"})
    assert [(x.code, x.message) for x in e.value.errors] == [
        ("E704", "primary_keys names unknown table 'b'")]
    with pytest.raises(PQLDataError) as e:
        Graph.from_tables({"a": pa.table({"a_id": [1]})}, primary_keys={"a": "id"})
    assert e.value.message == "table 'a' has no column 'id' (named by primary_keys['a']); did you mean 'a_id'?"


def test_from_tables_infer(ref):
    frames = {"users": pd.DataFrame({"user_id": [1, 2], "at": days(2)}),
              "orders": pd.DataFrame({"order_id": [1, 2], "user_id": [1, 2], "at": days(2)})}
    g = Graph.from_tables(frames, infer=True)
    assert g.edges == [Edge("orders", "user_id", "users")]
    assert g.table("orders").time_column == "at" and g.table("users").primary_key == "user_id"
    plain = Graph.from_tables(frames)
    assert plain.edges == [] and plain.table("users").primary_key is None and plain.table("users").time_column is None


def test_bad_csv_value_met_while_sampling_is_a_load_error(tmp_path):
    rows = ["n,b"] + [f"{i},x" for i in range(30_000)]
    rows[25_001] = "oops,x"
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(PQLDataError) as e:
        Graph.from_tables({"a": tmp_path / "a.csv"})
    assert e.value.code == "E702" and e.value.table_name == "a" and 'Could not convert string "oops"' in e.value.message


def test_unscannable_in_memory_object():
    with pytest.raises(PQLDataError) as e:
        Graph.from_tables({"a": [1, 2, 3]})
    assert e.value.code == "E702" and e.value.message.startswith("table 'a': cannot read list as a table")
