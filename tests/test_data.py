"""The DuckDB session over a graph (views, normalised time) and the load checks of §6.6."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pql.data import Database, clear_check_cache
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


# -- primary-key distinct counts: bitmap over a compact integer range, else COUNT(DISTINCT) -----------
def _recording(monkeypatch) -> list[str]:
    """Every SQL statement the load checks run from now on."""
    import pql.data as data_mod
    import pql.datasource as source_mod

    seen: list[str] = []
    real = source_mod.run

    def run(con, expression):
        text = expression.sql(dialect="duckdb")
        if not text.startswith(("DESCRIBE", "CREATE")):  # registering views is not checking
            seen.append(text)
        return real(con, expression)

    monkeypatch.setattr(data_mod, "run", run)
    monkeypatch.setattr(source_mod, "run", run)
    return seen


def _expected_key_errors(values: list) -> list[tuple[str, str]]:
    """E706 and E705 for a key column, straight from the spec (plain Python)."""
    out = []
    nulls = sum(v is None for v in values)
    if nulls:
        out.append(("E706", f"table 'u': primary key 'uid' is NULL in {nulls} rows"))
    counts: dict = {}
    for v in values:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    dups = sorted(v for v, n in counts.items() if n > 1)
    if dups:
        examples = ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in dups[:3])
        out.append(("E705", f"table 'u': primary key 'uid' has {len(dups)} duplicate values, e.g. {examples}"))
    return out


@pytest.mark.parametrize("values, arrow_type, method", [
    (list(range(1000)), pa.int64(), "BITSTRING_AGG"),
    (list(range(1000)) + [17, 17, 999, 0, None], pa.int64(), "BITSTRING_AGG"),
    ([-128, 127, 0, 127, -128, None, None], pa.int8(), "BITSTRING_AGG"),
    ([2**64 - 1, 2**64 - 2, 2**64 - 1], pa.uint64(), "BITSTRING_AGG"),
    ([i * 10**6 for i in range(500)] + [7 * 10**6], pa.int64(), "COUNT(DISTINCT"),  # sparse: no bitmap
    ([2**63 - 1, -2**63, 5, 5], pa.int64(), "COUNT(DISTINCT"),
    ([None, None], pa.int64(), None),
    (["b", "a", "b", None, "c", "a", "d", "d"], pa.string(), "COUNT(DISTINCT"),
])
def test_primary_key_checks_match_a_plain_count(values, arrow_type, method, monkeypatch):
    g = Graph.from_tables({"u": pa.table({"uid": pa.array(values, arrow_type)})}, primary_keys={"u": "uid"})
    db = Database(g)
    seen = _recording(monkeypatch)
    expected = _expected_key_errors(values)
    if expected:
        assert check_errors(db) == expected
    else:
        assert db.check() == []
    used = [m for m in ("BITSTRING_AGG", "COUNT(DISTINCT") if any(m in q for q in seen)]
    assert used == ([method] if method else [])


def test_csv_keys_are_checked_in_one_pass(tmp_path, monkeypatch):
    (tmp_path / "u.csv").write_text("uid,x\n1,a\n2,b\n2,c\n,d\n")
    g = Graph.from_tables({"u": tmp_path / "u.csv"}, primary_keys={"u": "uid"})
    seen = _recording(monkeypatch)
    assert check_errors(Database(g)) == _expected_key_errors([1, 2, 2, None])
    assert len([q for q in seen if q.startswith("SELECT COUNT(*)")]) == 1 and "COUNT(DISTINCT" in seen[0]


def test_orphans_ignore_null_and_duplicate_parent_keys():
    users = pa.table({"user_id": pa.array([1, 1, None, 4], pa.int64())})
    orders = pa.table({"order_id": [1, 2, 3, 4, 5, 6], "user_id": pa.array([1, 2, None, 2, 3, 4], pa.int64())})
    g = Graph.from_tables({"users": users, "orders": orders}, primary_keys={"users": "user_id", "orders": "order_id"},
                          edges=[Edge("orders", "user_id", "users")])
    (w,) = Database(g).check(["orders"])  # users is not used, so its own key problems are not reported
    assert (w.code, w.message) == ("W701", "table 'orders': 3 rows have a 'user_id' without a parent in 'users'; "
                                           "they are treated as unlinked")


# -- remembered check results ------------------------------------------------------------------
def _old_file(path, table: pa.Table, age: float = 3600) -> None:
    """Write a Parquet file whose mtime lies in the past (older than the racy window)."""
    import os
    import time

    pq.write_table(table, path)
    then = time.time() - age
    os.utime(path, (then, then))


def _orders_graph(tmp_path, orphan: bool = False, dup: bool = False) -> Graph:
    _old_file(tmp_path / "users.parquet", pa.table({"user_id": [1, 2, 3] + ([3] if dup else [])}))
    _old_file(tmp_path / "orders.parquet", pa.table({"order_id": [1, 2], "user_id": [1, 9 if orphan else 2],
                                                     "at": [T0, None]}), age=3600 + orphan + 2 * dup)
    return Graph.from_tables({"users": tmp_path / "users.parquet", "orders": tmp_path / "orders.parquet"},
                             primary_keys={"users": "user_id", "orders": "order_id"}, time_columns={"orders": "at"},
                             edges=[Edge("orders", "user_id", "users")])


def test_unchanged_files_are_checked_once_per_process(tmp_path, monkeypatch):
    g = _orders_graph(tmp_path)
    seen = _recording(monkeypatch)
    first = Database(g).check()
    n = len(seen)
    assert [w.code for w in first] == ["W702"] and n >= 3
    first.clear()  # what a caller does with the list does not touch the remembered result
    again = Database(g).check()  # another Database over the same unchanged files
    assert [w.code for w in again] == ["W702"] and len(seen) == n
    g2 = _orders_graph(tmp_path, orphan=True)  # orders rewritten: its checks and its edge run again
    assert [w.code for w in Database(g2).check()] == ["W702", "W701"] and len(seen) > n
    n = len(seen)
    _orders_graph(tmp_path, orphan=True, dup=True)  # users rewritten with a duplicate key
    assert check_errors(Database(g2)) == [("E705", "table 'users': primary key 'user_id' has 1 duplicate values, "
                                                   "e.g. 3")]
    m = len(seen)
    assert m > n
    assert check_errors(Database(g2)) == [("E705", "table 'users': primary key 'user_id' has 1 duplicate values, "
                                                   "e.g. 3")]  # errors are remembered too
    assert len(seen) == m
    clear_check_cache()
    check_errors(Database(g2))
    assert len(seen) > m


def test_recently_written_files_and_dataframes_are_always_rechecked(tmp_path, monkeypatch):
    pq.write_table(pa.table({"a_id": [1, 2]}), tmp_path / "a.parquet")  # mtime: now
    frame = pd.DataFrame({"b_id": [1, 2]})
    g = Graph.from_tables({"a": tmp_path / "a.parquet", "b": frame}, primary_keys={"a": "a_id", "b": "b_id"})
    db = Database(g)
    seen = _recording(monkeypatch)
    assert db.check() == []
    n = len(seen)
    assert db.check() == [] and len(seen) == 2 * n
    assert {q.split(" FROM ")[-1] for q in seen[n:]} == {'"a"', '"b"'}  # both tables were read again


def test_arrow_tables_are_remembered_per_database(monkeypatch):
    g = Graph.from_tables({"a": pa.table({"a_id": [1, 2, 2]})}, primary_keys={"a": "a_id"})
    db = Database(g)
    seen = _recording(monkeypatch)
    expected = [("E705", "table 'a': primary key 'a_id' has 1 duplicate values, e.g. 2")]
    assert check_errors(db) == expected
    n = len(seen)
    assert check_errors(db) == expected and len(seen) == n
    assert check_errors(Database(g)) == expected and len(seen) == 2 * n  # a new Database checks again


def test_a_failing_bitmap_falls_back_to_count_distinct(monkeypatch):
    import pql.data as data_mod

    g = Graph.from_tables({"u": pa.table({"uid": [1, 2, 2, 3]})}, primary_keys={"u": "uid"})
    db = Database(g)
    real, seen = data_mod.run, []

    def run(con, expression):
        text = expression.sql(dialect="duckdb")
        seen.append(text)
        if "BITSTRING_AGG" in text:
            raise duckdb.BinderException("no bitstring_agg for this type")
        return real(con, expression)

    monkeypatch.setattr(data_mod, "run", run)
    assert check_errors(db) == _expected_key_errors([1, 2, 2, 3])
    assert any("BITSTRING_AGG" in q for q in seen) and any("COUNT(DISTINCT" in q for q in seen)


def test_a_database_takes_over_the_connection_a_graph_build_left(monkeypatch):
    import pql.datasource as source_mod

    opened = []
    real = duckdb.connect
    monkeypatch.setattr(source_mod, "_idle", [])
    monkeypatch.setattr(source_mod.duckdb, "connect", lambda *a, **k: opened.append(real(*a, **k)) or opened[-1])
    g = Graph.from_tables({"a": pa.table({"a_id": [1, 2]})}, primary_keys={"a": "a_id"})
    idle = lambda: [con for _, con in source_mod._idle]  # noqa: E731
    assert len(opened) == 1 and idle() == opened
    with pytest.raises(duckdb.Error):  # what the build registered is gone
        opened[0].execute("SELECT * FROM __pql_load_0")
    db = Database(g)
    assert db.con is opened[0] and idle() == [] and db.check() == []
    db2 = Database(g)  # nothing idle: a new one
    assert len(opened) == 2 and db2.con is opened[1]
    db.close()
    Graph.from_tables({"a": pa.table({"a_id": [1]})}, primary_keys={"a": "a_id"})
    Graph.from_tables({"b": pa.table({"b_id": [1]})}, primary_keys={"b": "b_id"})
    assert len(opened) == 3 and idle() == [opened[2]]  # the second build reused the first's
    with pytest.raises(PQLDataError):  # a failed build hands its connection back too
        Graph.from_tables({"a": pa.table({"x": [1]})}, primary_keys={"a": "a_id"})
    assert len(opened) == 3 and idle() == [opened[2]]
    extra = real()
    source_mod.release(extra)  # at most one waits: another is closed
    assert idle() == [opened[2]]
    with pytest.raises(duckdb.ConnectionException):
        extra.execute("SELECT 1")
    monkeypatch.setattr(source_mod.os, "getpid", lambda: -1)  # as in a forked child
    assert source_mod.connect() is opened[3] and idle() == [opened[2]]  # the parent's stays untouched
