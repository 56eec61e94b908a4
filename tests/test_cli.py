"""The CLI as a user meets it: exit codes, stdout vs stderr, carets, JSON forms, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.synthetic import PURCHASE_EDGES_TOML
from pql.cli import main

REF_TOML = """
[tables.users]
path = "users.csv"
primary_key = "user_id"
time_column = "join_timestamp"

[tables.items]
path = "items.csv"
primary_key = "item_id"

[tables.transactions]
path = "transactions.csv"
primary_key = "transaction_id"
time_column = "timestamp"

""" + PURCHASE_EDGES_TOML

USERS = "user_id,name,age,country,join_timestamp\n1,ann,31,US,2024-01-01\n2,bob,45,DE,2024-01-05\n3,cy,22,US,2024-02-01\n"
ITEMS = "item_id,category,price\n10,shoes,9.5\n11,hats,3.0\n12,shoes,20.0\n"
TX_ROWS = [
    (1, 1, 10, 9.5, "2024-01-10"), (2, 1, 11, 3.0, "2024-02-11"), (3, 2, 10, 9.5, "2024-02-12"),
    (4, 3, 12, 20.0, "2024-03-01"), (5, 1, 10, 9.5, "2024-03-15"), (6, 2, 12, 20.0, "2024-04-01"),
    (7, 3, 11, 3.0, "2024-04-20"), (8, 1, 12, 20.0, "2024-05-02"), (9, 2, 11, 3.0, "2024-05-30"),
]

FLAGSHIP = ("PREDICT LIST_DISTINCT(transactions.item_id, 0, 30, days) RANK TOP 50\n"
            "FOR EACH users.user_id\nWHERE COUNT(transactions.*, -90, 0, days) >= 1\n")


@pytest.fixture()
def shop(tmp_path: Path) -> Path:
    (tmp_path / "graph.toml").write_text(REF_TOML)
    (tmp_path / "users.csv").write_text(USERS)
    (tmp_path / "items.csv").write_text(ITEMS)
    tx = "transaction_id,user_id,item_id,price,timestamp\n" + "".join(
        f"{a},{b},{c},{d},{e}\n" for a, b, c, d, e in TX_ROWS)
    (tmp_path / "transactions.csv").write_text(tx)
    (tmp_path / "flagship.pql").write_text(FLAGSHIP)
    return tmp_path


def run(*args: str, input: str | bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_check_valid_prints_task_type_and_windows(shop: Path) -> None:
    r = run("check", str(shop / "flagship.pql"), "--graph", str(shop / "graph.toml"))
    assert r.exit_code == 0, r.output
    assert "temporal_link_prediction" in r.stdout
    assert "the next 30 days (anchor < t <= anchor + 30 days)" in r.stdout
    assert "the last 90 days (anchor - 90 days < t <= anchor)" in r.stdout


def test_check_finds_graph_next_to_query(shop: Path) -> None:
    r = run("check", str(shop / "flagship.pql"))
    assert r.exit_code == 0, r.output


def test_check_invalid_reports_code_and_caret_on_stderr(shop: Path) -> None:
    r = run("check", "--query", "PREDICT SUM(transactions.prce, 0, 30) FOR EACH users.user_id",
            "--graph", str(shop / "graph.toml"))
    assert r.exit_code == 1
    assert r.stdout == ""
    assert "error[E102]" in r.stderr
    assert "did you mean 'price'" in r.stderr or "did you mean 'transactions.price'" in r.stderr
    lines = r.stderr.splitlines()
    src = next(i for i, l in enumerate(lines) if l.startswith("1 | PREDICT"))
    caret = lines[src + 1]
    assert caret.index("^") == lines[src].index("transactions.prce")


def test_check_json(shop: Path) -> None:
    ok = run("check", str(shop / "flagship.pql"), "--graph", str(shop / "graph.toml"), "--format", "json")
    assert ok.exit_code == 0
    doc = json.loads(ok.stdout)
    assert doc["valid"] is True and doc["task_type"] == "temporal_link_prediction" and doc["errors"] == []
    bad = run("check", "--query", "PREDICT SUM(transactions.status, 0, 30) FOR EACH users.nope",
              "--graph", str(shop / "graph.toml"), "--format", "json")
    assert bad.exit_code == 1
    doc = json.loads(bad.stdout)
    assert doc["valid"] is False and doc["task_type"] is None
    assert {e["code"] for e in doc["errors"]} >= {"E102"}
    assert all({"code", "line", "column", "message"} <= set(e) for e in doc["errors"])


def test_check_stdin(shop: Path) -> None:
    r = run("check", "-", "--graph", str(shop / "graph.toml"), input=FLAGSHIP)
    assert r.exit_code == 0 and "temporal_link_prediction" in r.stdout


@pytest.mark.parametrize("payload,code", [
    (b"", "E002"),
    (b"   \n\t ", "E002"),
    (b"PREDICT \xff\xfe COUNT", "E005"),
])
def test_bad_query_bytes_give_one_clear_error(shop: Path, payload: bytes, code: str) -> None:
    (shop / "bad.pql").write_bytes(payload)
    r = run("check", str(shop / "bad.pql"), "--graph", str(shop / "graph.toml"))
    assert r.exit_code == 1
    assert f"error[{code}]" in r.stderr
    assert "Traceback" not in r.stderr


def test_huge_and_deep_queries_do_not_crash(shop: Path) -> None:
    big = "PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id WHERE " + " OR ".join(
        ["users.age > 1"] * 60000)
    assert len(big) > 1_000_000
    r = run("check", "--query", big, "--graph", str(shop / "graph.toml"))
    assert r.exit_code in (0, 1) and "Traceback" not in r.stderr
    deep = "PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id WHERE " + "(" * 1000 + \
        "users.age > 1" + ")" * 1000
    r = run("check", "--query", deep, "--graph", str(shop / "graph.toml"))
    assert r.exit_code in (0, 1) and "Traceback" not in r.stderr
    if r.exit_code == 1:
        assert "error[E" in r.stderr


def test_missing_query_file_and_missing_graph(shop: Path, tmp_path_factory) -> None:
    r = run("check", str(shop / "nope.pql"), "--graph", str(shop / "graph.toml"))
    assert r.exit_code == 1 and "not found" in r.stderr
    empty = tmp_path_factory.mktemp("empty")
    r = run("check", "--query", FLAGSHIP, "--graph", str(empty / "graph.toml"))
    assert r.exit_code == 1 and "E701" in r.stderr and "Traceback" not in r.stderr


def test_fmt_and_check_flag(shop: Path) -> None:
    r = run("fmt", str(shop / "flagship.pql"))
    assert r.exit_code == 0
    canonical = r.stdout.strip()
    assert canonical == ("PREDICT LIST_DISTINCT(transactions.item_id, 0, 30, days) RANK TOP 50 FOR EACH "
                         "users.user_id WHERE COUNT(transactions.*, -90, 0, days) >= 1")
    assert run("fmt", "--check", str(shop / "flagship.pql")).exit_code == 1
    (shop / "canon.pql").write_text(canonical + "\n")
    assert run("fmt", "--check", str(shop / "canon.pql")).exit_code == 0


def test_parse_json_roundtrips(shop: Path) -> None:
    import pql
    from pql.ast import from_dict

    r = run("parse", str(shop / "flagship.pql"), "--format", "json")
    assert r.exit_code == 0
    assert from_dict(json.loads(r.stdout)) == pql.parse(FLAGSHIP)


def test_syntax_error_json_error_format(shop: Path) -> None:
    r = run("--error-format", "json", "fmt", "--query", "Predict COUNT(transactions.*, 0, 30) > 0 FOR EACH u.id")
    assert r.exit_code == 1
    doc = json.loads(r.stderr)
    (err,) = doc["errors"]
    assert err["code"] == "E004" and err["line"] == 1 and err["column"] == 1
    assert set(err) >= {"code", "severity", "message", "line", "column", "end_line", "end_column", "hints"}


def test_usage_error_exit_2() -> None:
    r = CliRunner().invoke(main, ["check", "--format", "yaml"])
    assert r.exit_code == 2


def test_version_and_console_script() -> None:
    import pql

    r = run("--version")
    assert r.exit_code == 0 and pql.__version__ in r.stdout
    exe = Path(sys.executable).parent / "pql"
    if exe.exists():
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
        assert pql.__version__ in out.stdout


def test_init_writes_graph_toml_and_refuses_to_overwrite(tmp_path: Path) -> None:
    import shutil

    root = Path(__file__).resolve().parents[1] / "examples" / "synthetic"
    for f in root.glob("*.parquet"):
        shutil.copy(f, tmp_path / f.name)
    r = run("init", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "primary key user_id" in r.stderr and "transactions.user_id -> users" in r.stderr
    import pql

    g = pql.Graph.from_toml(tmp_path / "graph.toml")
    assert g.table("transactions").time_column == "timestamp"
    assert {str(e) for e in g.edges} == {"transactions.user_id -> users", "transactions.item_id -> items"}
    before = (tmp_path / "graph.toml").read_text()
    again = run("init", str(tmp_path))
    assert again.exit_code == 1 and "E715" in again.stderr
    assert (tmp_path / "graph.toml").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_completion_script() -> None:
    r = run("completion", "bash")
    assert r.exit_code == 0 and "_PQL_COMPLETE" in r.stdout
