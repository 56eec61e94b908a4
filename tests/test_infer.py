"""Dtype normalisation (§6.2), stype rules (§6.3) and directory inference (§6.5)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pql.datasource import normalise_dtype
from pql.errors import PQLDataError
from pql.graph import Dtype, Edge, Graph, Stype
from pql.infer import ColumnStats, infer_stype, is_id_name, pk_candidates, singular


def write(dir: Path, name: str, cols: dict) -> Path:
    p = dir / f"{name}.parquet"
    pq.write_table(pa.table(cols), p)
    return p


def stype_of(values, name="col", type=None) -> Stype:
    g = Graph.from_tables({"t": pa.table({name: pa.array(values, type=type)})})
    return g.column("t", name).stype


# -- §6.2 dtypes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("duck,dtype", [
    ("TINYINT", Dtype.INT), ("BIGINT", Dtype.INT), ("UBIGINT", Dtype.INT), ("HUGEINT", Dtype.INT),
    ("FLOAT", Dtype.FLOAT), ("DOUBLE", Dtype.FLOAT), ("DECIMAL(10,2)", Dtype.FLOAT),
    ("BOOLEAN", Dtype.BOOL), ("VARCHAR", Dtype.STRING), ("ENUM('a', 'b')", Dtype.STRING),
    ("DATE", Dtype.TIMESTAMP), ("TIMESTAMP", Dtype.TIMESTAMP), ("TIMESTAMP WITH TIME ZONE", Dtype.TIMESTAMP),
    ("TIMESTAMP_NS", Dtype.TIMESTAMP), ("VARCHAR[]", Dtype.LIST_STRING), ("INTEGER[]", Dtype.LIST_INT),
    ("BIGINT[]", Dtype.LIST_INT), ("DOUBLE[]", Dtype.OTHER), ("BLOB", Dtype.OTHER), ("INTERVAL", Dtype.OTHER),
    ("STRUCT(a INTEGER)", Dtype.OTHER), ("TIME", Dtype.OTHER), ("VARCHAR[][]", Dtype.OTHER),
])
def test_normalise_dtype(duck, dtype):
    assert normalise_dtype(duck) is dtype


def test_dtypes_from_arrow_and_stype_unsupported():
    t = pa.table({
        "i8": pa.array([1, 2], pa.int8()), "u32": pa.array([1, 2], pa.uint32()), "f32": pa.array([1.0, 2.0], pa.float32()),
        "dec": pa.array([1, 2], pa.decimal128(10, 2)), "b": [True, False], "s": ["a", "b"],
        "d": [date(2024, 1, 1), date(2024, 1, 2)],
        "tz": pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * 2, pa.timestamp("us", tz="UTC")),
        "ls": [["a"], ["b", "c"]], "li": [[1], []], "blob": pa.array([b"x", b"y"], pa.binary()),
    })
    g = Graph.from_tables({"t": t})
    got = {c.name: (c.dtype, c.stype) for c in g.table("t").columns.values()}
    assert got == {
        "i8": (Dtype.INT, Stype.NUMERICAL), "u32": (Dtype.INT, Stype.NUMERICAL), "f32": (Dtype.FLOAT, Stype.NUMERICAL),
        "dec": (Dtype.FLOAT, Stype.NUMERICAL), "b": (Dtype.BOOL, Stype.CATEGORICAL), "s": (Dtype.STRING, Stype.CATEGORICAL),
        "d": (Dtype.TIMESTAMP, Stype.TIMESTAMP), "tz": (Dtype.TIMESTAMP, Stype.TIMESTAMP),
        "ls": (Dtype.LIST_STRING, Stype.MULTICATEGORICAL), "li": (Dtype.LIST_INT, Stype.MULTICATEGORICAL),
        "blob": (Dtype.OTHER, Stype.UNSUPPORTED),
    }


# -- §6.3 stype rules -----------------------------------------------------------------------------
@pytest.mark.parametrize("name,expected", [
    ("id", True), ("ID", True), ("user_id", True), ("USER_ID", True), ("userId", True), ("userID", True),
    ("paid", False), ("idea", False), ("ID_card", False), ("UID", False), ("valid", False), ("_Id", True),
])
def test_id_names(name, expected):
    assert is_id_name(name) is expected


def test_rule_order_keys_before_everything():
    assert infer_stype("price", Dtype.FLOAT, is_key=True) is Stype.ID
    assert infer_stype("flag_id", Dtype.BOOL) is Stype.CATEGORICAL  # fixed dtype beats the ID name
    assert infer_stype("x", Dtype.TIMESTAMP) is Stype.TIMESTAMP
    assert infer_stype("x", Dtype.LIST_INT) is Stype.MULTICATEGORICAL
    assert infer_stype("x", Dtype.OTHER) is Stype.UNSUPPORTED
    assert infer_stype("score_id", Dtype.FLOAT) is Stype.NUMERICAL  # ID names need int or string
    assert infer_stype("shopId", Dtype.STRING, stats=ColumnStats(10, 10, 50.0, 1.0)) is Stype.ID


def test_int_categorical_boundaries():
    assert stype_of([i % 10 for i in range(100)]) is Stype.CATEGORICAL  # 10 distinct, 100 rows
    assert stype_of([i % 11 for i in range(100)]) is Stype.NUMERICAL  # 11 distinct
    assert stype_of([i % 10 for i in range(99)]) is Stype.NUMERICAL  # 99 rows
    assert stype_of([i % 10 for i in range(99)] + [None] * 5) is Stype.NUMERICAL  # NULLs do not count
    assert stype_of([1.5] * 200) is Stype.NUMERICAL  # float always numerical


def test_string_text_by_mean_length():
    assert stype_of(["x" * 40] * 5) is Stype.TEXT
    assert stype_of(["x" * 39] * 5) is Stype.CATEGORICAL
    assert stype_of(["x" * 30, "y" * 50]) is Stype.TEXT  # mean 40
    assert stype_of(["é" * 40] * 3) is Stype.TEXT  # characters, not bytes


def test_string_distinct_and_spaces():
    assert stype_of([f"v{i}" for i in range(1000)]) is Stype.CATEGORICAL
    assert stype_of([f"v{i}" for i in range(1001)]) is Stype.ID
    half = [f"a {i}" if i % 2 == 0 else f"b{i}" for i in range(1002)]
    assert stype_of(half) is Stype.TEXT  # exactly half contain a space
    under = [f"a {i}" if i % 2 == 0 else f"b{i}" for i in range(1001)] + [f"c{i}" for i in range(2)]
    assert stype_of(under) is Stype.ID


def test_stats_use_first_100k_non_null_values():
    # The first 100 000 values have 5 distinct; later values would push past 1000 distinct.
    values = [f"k{i % 5}" for i in range(100_000)] + [f"late{i}" for i in range(2000)]
    assert stype_of(values) is Stype.CATEGORICAL
    assert stype_of([None] * 50_000 + values) is Stype.CATEGORICAL


def _reference_stats(values: list) -> ColumnStats:
    """§6.3 statistics in plain Python: over the first 100 000 non-null values."""
    first = [v for v in values if v is not None][:100_000]
    if not first or not isinstance(first[0], str):
        return ColumnStats(len(first), len(set(first)), None, None)
    mean = sum(len(v) for v in first) / len(first)
    return ColumnStats(len(first), len(set(first)), mean, sum(" " in v for v in first) / len(first))


@pytest.mark.parametrize("n_rows", [0, 7, 100_000, 100_001, 130_000])
def test_column_stats_match_plain_python(n_rows):
    import duckdb

    from pql.datasource import RawColumn
    from pql.infer import column_stats

    words = ["a b", "cc", None, "dé e", "", "long text value here", None, "x"]
    cols = {"s": [words[(i * 7) % 8] if i % 50_001 else f"late {i}" for i in range(n_rows)],
            "n": [None if i % 3 == 0 else (i * 13) % 1000 for i in range(n_rows)],
            "e": [None] * n_rows}
    table = pa.table({"s": pa.array(cols["s"], pa.string()), "n": pa.array(cols["n"], pa.int64()),
                      "e": pa.array(cols["e"], pa.string())})
    con = duckdb.connect()
    con.register("src", table)
    raws = [RawColumn("s", "VARCHAR", Dtype.STRING), RawColumn("n", "BIGINT", Dtype.INT),
            RawColumn("e", "VARCHAR", Dtype.STRING)]
    from sqlglot import exp

    got = column_stats(con, exp.Table(this=exp.to_identifier("src")), raws)
    for name, values in cols.items():
        want = _reference_stats(values)
        have = got[name]
        assert (have.count, have.distinct) == (want.count, want.distinct), name
        for a, b in ((have.mean_length, want.mean_length), (have.space_share, want.space_share)):
            assert (a is None and b is None) or a == pytest.approx(b, rel=1e-12), name


def test_keys_and_id_names_get_id_without_stats():
    g = Graph.from_tables({"a": pa.table({"a_id": [1, 2], "code": ["x", "y"]}),
                           "b": pa.table({"b_id": [1, 2], "ref": [1, 2], "userId": ["p", "q"]})},
                          primary_keys={"a": "a_id"}, edges=[Edge("b", "ref", "a")])
    assert g.column("b", "ref").stype is Stype.ID
    assert g.column("b", "userId").stype is Stype.ID
    assert g.column("b", "b_id").stype is Stype.ID  # name rule, though not declared as a key
    assert g.column("a", "code").stype is Stype.CATEGORICAL


# -- §6.5 directory inference ---------------------------------------------------------------------
@pytest.mark.parametrize("stem,single", [
    ("users", "user"), ("categories", "category"), ("boxes", "box"), ("addresses", "address"),
    ("matches", "match"), ("dishes", "dish"), ("status", "statu"), ("data", "data"), ("shoes", "shoe"),
    ("Cities", "City"),
])
def test_singular(stem, single):
    assert singular(stem) == single


def test_pk_candidates_order():
    assert pk_candidates("users") == ["user_id", "users_id", "id"]
    assert pk_candidates("data") == ["data_id", "id"]


def test_directory_inference_keys_edges_time(tmp_path):
    ts = [datetime(2024, 1, d) for d in (1, 2, 3)]
    write(tmp_path, "categories", {"category_id": [1, 2, 3], "name": ["a", "b", "c"]})
    write(tmp_path, "boxes", {"box_id": [10, 11, 12], "category_id": [1, 2, 9], "made_at": ts})
    write(tmp_path, "users", {"users_id": [1, 2, 3], "box_id": [10, 10, 11]})
    write(tmp_path, "events", {"id": [1, 2, 3], "users_id": [1, 2, 3], "at": ts, "seen": ts})
    g = Graph.from_directory(tmp_path)
    assert {t.name: t.primary_key for t in g} == {"boxes": "box_id", "categories": "category_id",
                                                  "events": "id", "users": "users_id"}
    assert set(g.edges) == {Edge("boxes", "category_id", "categories"), Edge("users", "box_id", "boxes"),
                            Edge("events", "users_id", "users")}
    assert g.table("boxes").time_column == "made_at"
    assert g.table("events").time_column is None
    assert [w.code for w in g.warnings] == ["W703"]
    assert "made_at" not in g.warnings[0].message and "at, seen" in g.warnings[0].message
    assert g.column("boxes", "category_id").stype is Stype.ID


def test_directory_pk_first_unique_candidate_and_w704(tmp_path):
    write(tmp_path, "orders", {"order_id": [1, 1, 2], "id": [1, 2, 3]})
    write(tmp_path, "carts", {"cart_id": [1, None, 2]})
    g = Graph.from_directory(tmp_path)
    assert g.table("orders").primary_key == "id"
    assert g.table("carts").primary_key is None
    assert [(w.code, w.table_name) for w in g.warnings] == [("W704", "carts")]


def test_directory_never_links_on_id_and_w705(tmp_path):
    write(tmp_path, "a", {"id": [1, 2]})
    write(tmp_path, "b", {"id": [1, 2], "a_ref": [1, 2]})
    write(tmp_path, "shops", {"shop_id": [1, 2]})
    write(tmp_path, "shop", {"shop_id": [1, 2]})
    write(tmp_path, "sales", {"sale_id": [1, 2], "shop_id": [1, 2]})
    g = Graph.from_directory(tmp_path)
    # 'id' never links; a table's own key links to another table holding the same key name (1:1).
    assert set(g.edges) == {Edge("shop", "shop_id", "shops"), Edge("shops", "shop_id", "shop")}
    w705 = [w for w in g.warnings if w.code == "W705"]
    assert [(w.table_name, w.column_name) for w in w705] == [("sales", "shop_id")]
    assert "shop, shops" in w705[0].message


def test_directory_fk_needs_matching_dtype(tmp_path):
    write(tmp_path, "users", {"user_id": [1, 2]})
    write(tmp_path, "visits", {"visit_id": [1, 2], "user_id": ["1", "2"]})
    g = Graph.from_directory(tmp_path)
    assert g.edges == []


def test_directory_reads_csv_with_dates(tmp_path):
    (tmp_path / "logs.csv").write_text("log_id,msg,at\n1,hello,2024-01-01 10:00:00\n2,bye,2024-01-02 11:00:00\n")
    g = Graph.from_directory(tmp_path)
    t = g.table("logs")
    assert (t.primary_key, t.time_column, t.format) == ("log_id", "at", "csv")
    assert g.column("logs", "at").dtype is Dtype.TIMESTAMP


def test_directory_errors(tmp_path):
    with pytest.raises(PQLDataError) as e:
        Graph.from_directory(tmp_path)
    assert e.value.code == "E713" and str(tmp_path) in e.value.message
    write(tmp_path, "users", {"user_id": [1]})
    (tmp_path / "users.csv").write_text("user_id\n1\n")
    with pytest.raises(PQLDataError) as e:
        Graph.from_directory(tmp_path)
    assert e.value.code == "E714"
    assert e.value.message == "two files define table 'users': users.csv, users.parquet"
    with pytest.raises(PQLDataError) as e:
        Graph.from_directory(tmp_path / "nope")
    assert e.value.code == "E701"


def test_directory_reserved_name(tmp_path):
    write(tmp_path, "metrics", {"x": [1]})
    with pytest.raises(PQLDataError) as e:
        Graph.from_directory(tmp_path)
    assert e.value.code == "E712" and "'metrics'" in e.value.message


def test_graph_load_prefers_graph_toml(tmp_path):
    from tests.datagen_ref import write_reference_dataset

    write_reference_dataset(tmp_path)
    assert Graph.load(tmp_path).table("users").time_column == "join_timestamp"
    (tmp_path / "graph.toml").unlink()
    assert Graph.load(tmp_path).table("users").time_column is None  # two timestamp columns: W703
