"""graph.toml (§6.4): loading, equivalent spellings, every E70x/E71x problem, and writing back."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pql.errors import PQLDataError
from pql.graph import Dtype, Edge, Graph, Stype
from tests.datagen_ref import write_reference_dataset
from tests.schemas import reference_graph


def write(dir: Path, name: str, cols: dict) -> None:
    pq.write_table(pa.table(cols), dir / f"{name}.parquet")


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """users(user_id, name, signup) and orders(order_id, user_id, amount, at)."""
    ts = [datetime(2024, 1, d) for d in (1, 2, 3)]
    write(tmp_path, "users", {"user_id": [1, 2, 3], "name": ["a", "b", "c"], "signup": ts})
    write(tmp_path, "orders", {"order_id": [1, 2, 3], "user_id": [1, 1, 2], "amount": [1.0, 2.0, 3.0], "at": ts,
                               "code": ["x", "y", "z"]})
    return tmp_path


SHOP = """\
[tables.users]
path = "users.parquet"
primary_key = "user_id"
time_column = "signup"

[tables.orders]
path = "orders.parquet"
primary_key = "order_id"
time_column = "at"

[[edges]]
src_table = "orders"
fkey = "user_id"
dst_table = "users"
"""


def load(dir: Path, text: str) -> Graph:
    p = dir / "graph.toml"
    p.write_text(text)
    return Graph.from_toml(p)


def error(dir: Path, text: str) -> PQLDataError:
    with pytest.raises(PQLDataError) as e:
        load(dir, text)
    return e.value


def signature(g: Graph):
    return ({t.name: (t.primary_key, t.time_column, t.end_time_column,
                      [(c.name, c.dtype, c.stype) for c in t.columns.values()]) for t in g}, sorted(map(str, g.edges)))


def test_reference_dataset_matches_reference_schema(tmp_path):
    g = Graph.from_toml(write_reference_dataset(tmp_path))
    ref = reference_graph()
    assert signature(g) == signature(ref)
    assert g.edges == ref.edges
    assert g.path == tmp_path / "graph.toml"
    assert g.table("users").source == (tmp_path / "users.parquet").resolve()
    assert g.warnings == []


def test_shop_loads_without_inferring_extra_edges(shop):
    g = load(shop, SHOP.split("[[edges]]")[0])
    assert g.edges == []  # with a graph file no edges are inferred
    g = load(shop, SHOP)
    assert g.edges == [Edge("orders", "user_id", "users")]
    assert g.column("orders", "user_id").stype is Stype.ID


@pytest.mark.parametrize("text", [
    # dotted keys
    'tables.users.path = "users.parquet"\ntables.users.primary_key = "user_id"\ntables.users.time_column = "signup"\n'
    'tables.orders = { path = "orders.parquet", primary_key = "order_id", time_column = "at" }\n'
    'edges = [ { src_table = "orders", fkey = "user_id", dst_table = "users" } ]\n',
    # inline tables under [tables]
    '[tables]\nusers = { path = "users.parquet", primary_key = "user_id", time_column = "signup" }\n'
    'orders = { path = "orders.parquet", primary_key = "order_id", time_column = "at" }\n'
    '[[edges]]\nsrc_table = "orders"\nfkey = "user_id"\ndst_table = "users"\n',
    # quoted keys and a single-quoted literal string
    "[tables.\"users\"]\npath = 'users.parquet'\n\"primary_key\" = \"user_id\"\ntime_column = \"signup\"\n"
    "[tables.orders]\npath = \"orders.parquet\"\nprimary_key = \"order_id\"\ntime_column = \"at\"\n"
    "[[edges]]\nsrc_table = \"orders\"\nfkey = \"user_id\"\ndst_table = \"users\"\n",
])
def test_equivalent_spellings(shop, text):
    assert signature(load(shop, text)) == signature(load(shop, SHOP))


def test_stype_overrides_ignore_case(shop):
    g = load(shop, SHOP + '[tables.orders.columns]\namount = "NUMERICAL"\ncode = "Text"\norder_id = "id"\n'
                          '[tables.users.columns]\nuser_id = "Numerical"\n')
    assert g.column("orders", "code").stype is Stype.TEXT
    assert g.column("orders", "order_id").stype is Stype.ID
    assert g.column("users", "user_id").stype is Stype.NUMERICAL  # the override beats the key rule
    with pytest.raises(PQLDataError) as e:
        load(shop, SHOP + '[tables.orders.columns]\namount = "categorical"\n')
    assert e.value.code == "E711"
    assert e.value.message == "column 'orders.amount': cannot be categorical with dtype float"


def test_e711_not_a_stype(shop):
    e = error(shop, SHOP + '[tables.users.columns]\nname = "txt"\nsignup = "unsupported"\n')
    assert [x.code for x in e.errors] == ["E711", "E711"]
    assert e.errors[0].message == "column 'users.name': 'txt' is not a semantic type; did you mean 'text'?"
    assert e.errors[1].message.startswith("column 'users.signup': 'unsupported' is not a semantic type")


def test_e711_suitability_table(shop):
    write(shop, "kinds", {"k_id": [1, 2], "b": [True, False], "ls": [["a"], ["b"]], "s": ["x|y", "z"],
                          "ts": ["2024-01-01", "2024-01-02 10:00"]})
    ok = load(shop, '[tables.kinds]\npath = "kinds.parquet"\n[tables.kinds.columns]\n'
                    'b = "categorical"\nls = "multicategorical"\ns = "multicategorical"\nts = "timestamp"\n')
    assert ok.column("kinds", "s").stype is Stype.MULTICATEGORICAL and ok.column("kinds", "s").dtype is Dtype.STRING
    assert ok.column("kinds", "ts").dtype is Dtype.TIMESTAMP
    e = error(shop, '[tables.kinds]\npath = "kinds.parquet"\n[tables.kinds.columns]\n'
                    'b = "numerical"\nls = "categorical"\nk_id = "text"\n')
    assert [x.message for x in e.errors] == [
        "column 'kinds.k_id': cannot be text with dtype int",
        "column 'kinds.b': cannot be numerical with dtype bool",
        "column 'kinds.ls': cannot be categorical with dtype list<string>",
    ]


def test_e703_syntax_error_has_line(shop):
    e = error(shop, '[tables.users]\npath = "users.parquet"\nprimary_key = user_id\n')
    assert e.code == "E703" and e.message.startswith("graph file line 3: invalid TOML")


def test_e703_duplicate_table_and_key(shop):
    e = error(shop, SHOP + '[tables.users]\npath = "orders.parquet"\n')
    assert e.code == "E703" and e.message == "graph file line 15: table 'users' is declared twice"
    e = error(shop, '[tables.users]\npath = "users.parquet"\npath = "x.parquet"\n')
    assert e.message == "graph file line 3: key 'path' is set twice"


def test_two_tables_on_one_file_are_fine(shop):
    g = load(shop, SHOP + '[tables.people]\npath = "users.parquet"\nprimary_key = "user_id"\n')
    assert g.table("people").source == g.table("users").source


def test_e703_unknown_keys_with_did_you_mean(shop):
    text = SHOP.replace('time_column = "at"', 'time_colum = "at"') + '\n[options]\nx = 1\n'
    text = text.replace('fkey = "user_id"', 'fk = "user_id"')
    e = error(shop, text)
    msgs = [x.message for x in e.errors]
    assert "graph file line 16: unknown key 'options' in the graph file" in msgs
    assert "graph file line 9: unknown key 'time_colum' in table 'orders'; did you mean 'time_column'?" in msgs
    assert "graph file line 13: unknown key 'fk' in edge 1; did you mean 'fkey'?" in msgs
    assert any(m.startswith("graph file line 11: edge 1 needs string values for fkey") for m in msgs)
    assert all(x.code == "E703" for x in e.errors)


def test_e703_structure_problems(shop):
    e = error(shop, '[tables.users]\nprimary_key = "user_id"\n[tables.orders]\npath = "orders.json"\n'
                    '[tables.items]\npath = "orders.parquet"\nformat = "parket"\n'
                    '[tables.x]\npath = "orders.parquet"\ndelimiter = ";"\n[tables.y]\npath = 3\n')
    msgs = [x.message for x in e.errors]
    assert msgs[0] == "graph file line 1: table 'users' has no 'path'; add path = \"<file>.parquet\" or \"<file>.csv\""
    assert msgs[1].startswith("graph file line 4: table 'orders': cannot tell the format of 'orders.json'")
    assert msgs[2] == "graph file line 7: table 'items': unknown format 'parket'; did you mean 'parquet'?"
    assert msgs[3].startswith("graph file line 10: table 'x': delimiter must be one character and applies only")
    assert msgs[4] == "graph file line 12: table 'y': 'path' must be a string, got 3"
    assert error(shop, "").message == "graph file line 1: no tables: add a [tables.<name>] section with a path"


def test_e701_missing_files(shop):
    with pytest.raises(PQLDataError) as e:
        Graph.from_toml(shop / "nope.toml")
    assert e.value.code == "E701"
    e = error(shop, SHOP.replace('"users.parquet"', '"people.parquet"'))
    assert e.code == "E701"
    assert e.message == f"table 'users': file '{(shop / 'people.parquet').resolve()}' not found"
    assert len(e.errors) == 1  # the edge to the broken table is not reported again


def test_e702_garbage_parquet_and_bad_csv(shop):
    (shop / "junk.parquet").write_bytes(b"this is not parquet at all" * 10)
    (shop / "bad.csv").write_text("a,b\n1,x\n2,y\n3,z,extra\n4,w\n")
    e = error(shop, '[tables.junk]\npath = "junk.parquet"\n[tables.bad]\npath = "bad.csv"\n')
    assert [x.code for x in e.errors] == ["E702", "E702"]
    assert e.errors[0].table_name == "junk"
    assert e.errors[0].message.startswith(f"table 'junk': cannot read '{(shop / 'junk.parquet').resolve()}' as parquet: ")
    assert e.errors[1].message.endswith("as csv: line 4 has 3 fields, expected 2: '3,z,extra'")


def test_csv_delimiter_and_string_time_column(shop):
    (shop / "logs.csv").write_text("log_id;user_id;at\n1;1;2024-01-01T10:00:00\n2;2;2024-01-02 11:00\n3;1;2024-02-01\n")
    g = load(shop, SHOP + '[tables.logs]\npath = "logs.csv"\ndelimiter = ";"\nprimary_key = "log_id"\n'
                          'time_column = "at"\n[[edges]]\nsrc_table = "logs"\nfkey = "user_id"\ndst_table = "users"\n')
    assert [c.name for c in g.table("logs").columns.values()] == ["log_id", "user_id", "at"]
    assert (g.column("logs", "at").dtype, g.column("logs", "at").stype) == (Dtype.TIMESTAMP, Stype.TIMESTAMP)
    assert g.table("logs").options == {"delimiter": ";"}


def test_e704_unknown_columns(shop):
    text = SHOP.replace('primary_key = "user_id"', 'primary_key = "usr_id"').replace('"signup"', '"Signup"')
    e = error(shop, text + '[tables.orders.columns]\namount = "numerical"\nprice = "numerical"\n')
    msgs = [x.message for x in e.errors]
    assert msgs[:3] == [
        "table 'users' has no column 'usr_id' (named by tables.users.primary_key); did you mean 'user_id'?",
        "table 'users' has no column 'Signup' (named by tables.users.time_column); did you mean 'signup'?",
        "table 'orders' has no column 'price' (named by tables.orders.columns.price)",
    ]
    assert [x.code for x in e.errors][:3] == ["E704"] * 3
    assert e.errors[0].hints == ("available: user_id, name, signup",)


def test_e710_edges(shop):
    write(shop, "tags", {"tag": ["a", "b"], "user_id": ["1", "2"]})
    text = SHOP + '[tables.tags]\npath = "tags.parquet"\n' + "".join(
        f'[[edges]]\nsrc_table = "{s}"\nfkey = "{k}"\ndst_table = "{d}"\n' for s, k, d in [
            ("orders", "user_id", "user"), ("orders", "usr_id", "users"), ("orders", "code", "tags"),
            ("tags", "user_id", "users"), ("ghost", "x", "users")])
    e = error(shop, text)
    assert [x.message for x in e.errors] == [
        "edge orders.user_id -> user: unknown table 'user'; did you mean 'users'?",
        "edge orders.usr_id -> users: table 'orders' has no column 'usr_id'; did you mean 'user_id'?",
        "edge orders.code -> tags: table 'tags' has no primary key; set primary_key for 'tags'",
        "edge tags.user_id -> users: dtypes string/int differ ('tags.user_id' is string, 'users.user_id' is int)",
        "edge ghost.x -> users: unknown table 'ghost'",
    ]
    assert {x.code for x in e.errors} == {"E710"}


def test_e712_reserved_names_any_case(shop):
    e = error(shop, '[tables.Predictions]\npath = "users.parquet"\n[tables.metrics]\npath = "users.parquet"\n')
    assert [x.message for x in e.errors] == [
        "table name 'Predictions' is reserved; rename it in graph.toml",
        "table name 'metrics' is reserved; rename it in graph.toml",
    ]
    e = error(shop, '[tables."a`b"]\npath = "users.parquet"\n')
    assert e.code == "E712"


def test_e707_time_column_that_is_not_a_timestamp(shop):
    write(shop, "ev", {"ev_id": [1, 2, 3], "n": [5, 6, 7], "s": ["2024-01-01", "soon", "never"]})
    e = error(shop, '[tables.ev]\npath = "ev.parquet"\ntime_column = "n"\nend_time_column = "s"\n')
    assert [x.message for x in e.errors] == [
        "table 'ev': column 'n' has 3 non-timestamp values, e.g. '5'",
        "table 'ev': column 's' has 2 non-timestamp values, e.g. 'soon'",
    ]


def test_many_problems_reported_together(shop):
    text = SHOP.replace('"orders.parquet"', '"missing.parquet"').replace('time_column = "signup"',
                                                                        'time_column = "sign"')
    e = error(shop, text + '[tables.users.columns]\nname = "texte"\n[tables.METRICS]\npath = "users.parquet"\n')
    assert [x.code for x in e.errors] == ["E704", "E701", "E712", "E711"]
    assert e.message.endswith("(and 3 more)")
    assert "error[E704]" in e.render() and "error[E711]" in e.render()


def test_to_toml_round_trip(tmp_path):
    write_reference_dataset(tmp_path)
    inferred = Graph.from_directory(tmp_path)
    text = inferred.to_toml(tmp_path)
    assert 'path = "users.parquet"' in text
    again = load(tmp_path, text)
    assert signature(again) == signature(inferred)
    ref = Graph.from_toml(tmp_path / "graph.toml")
    out = tmp_path / "sub"
    out.mkdir()
    (out / "g.toml").write_text(ref.to_toml(out))
    assert signature(Graph.from_toml(out / "g.toml")) == signature(ref)


def test_to_toml_quotes_odd_names(tmp_path):
    (tmp_path / "my data.csv").write_text('"a b",c\n1,x\n2,y\n')
    g = Graph.from_toml(_write_toml(tmp_path, '[tables."my table"]\npath = "my data.csv"\n'))
    text = g.to_toml(tmp_path)
    assert '[tables."my table"]' in text and '"a b" = "numerical"' in text
    assert signature(load(tmp_path, text)) == signature(g)


def _write_toml(dir: Path, text: str) -> Path:
    p = dir / "graph.toml"
    p.write_text(text)
    return p
