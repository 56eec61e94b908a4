"""No SQL by string formatting in the feature modules that have been moved to sqlglot expressions.

The scan reads each module's source (AST, docstrings skipped) and flags SQL text: an f-string, a
``%`` template, a ``.format`` template or any plain string literal whose text reads like SQL (an
uppercase keyword such as SELECT, FROM, JOIN, WHERE, GROUP BY, CAST, COALESCE, OVER ...). Feature
names built with f-strings (``f"{p}.count_{tag}"``) are fine. The detector itself is tested on
samples, so the guard cannot silently pass. The built statements are also checked to render and to
parse back as DuckDB SQL.
"""

from __future__ import annotations

import ast
import contextlib
import re
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

import pql
import pql.features.windows as windows
from pql.features.columns import exclusions
from tests import feature_graphs as G

ROOT = Path(__file__).resolve().parents[1]
CLEAN = [  # modules whose SQL is built only from sqlglot expressions
    "pql/features/windows.py",
    "pql/features/rows.py",
    "pql/features/sql.py",
    "pql/features/candidates.py",
    "pql/features/pairs.py",
    "pql/features/entity.py",
    "pql/features/events.py",
    "pql/features/affinity.py",
]

SQL_WORDS = re.compile(
    r"\b(?:SELECT|FROM|JOIN|WHERE|GROUP BY|ORDER BY|PARTITION BY|HAVING|WITH|UNION|AS|CAST|COALESCE|NULLIF|CASE|"
    r"WHEN|THEN|OVER|FILTER|INTERVAL|EPOCH|DISTINCT|IS NULL|IS NOT NULL)\b|\b(?:COUNT|SUM|MIN|MAX|AVG|LAG)\(")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                ids.add(id(first.value))
    return ids


def _text(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return " ".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return ""


def sql_templates(source: str) -> list[tuple[int, str, str]]:
    """(line, kind, text) of every SQL-looking string template in ``source``."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    inside_fstring = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or id(node) in inside_fstring:
            continue
        if isinstance(node, ast.JoinedStr) and SQL_WORDS.search(_text(node)):
            found.append((node.lineno, "f-string", _text(node)))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _text(node.left):
            found.append((node.lineno, "% template", _text(node.left)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
              and _text(node.func.value)):
            found.append((node.lineno, ".format template", _text(node.func.value)))
        elif isinstance(node, ast.Constant) and SQL_WORDS.search(_text(node)):
            found.append((node.lineno, "SQL string", _text(node)))
    return found


@pytest.mark.parametrize("path", CLEAN)
def test_module_builds_no_sql_from_strings(path):
    found = sql_templates((ROOT / path).read_text())
    assert not found, f"{path} builds SQL from strings (use sqlglot expressions): {found}"


@pytest.mark.parametrize("sample", [
    'sql = f"SELECT {x} FROM t"',
    'sql = f"SUM(g.{c}) AS f{i}"',
    'sql = "SELECT %s FROM t" % x',
    'sql = "SUM(g.f{j})".format(j=j)',
    'tpl("SELECT k FROM __pairs")',
    'parts = [f"LEFT JOIN fs{j} ON fs{j}.k = g.k" for j in range(3)]',
])
def test_detector_flags_sql_templates(sample):
    assert sql_templates(sample)


@pytest.mark.parametrize("sample", [
    'name = f"{p}.count_{tag}"',
    'name = f"{c.prefix}.{d}.distinct_{w}d"',
    'def f():\n    """Counts per window: SELECT-free docstring mentioning COUNT(DISTINCT) and MIN/MAX."""\n',
    'e = exp.Count(this=exp.Star())',
])
def test_detector_passes_expression_code(sample):
    assert not sql_templates(sample)


def _statements(graph, entity, query):
    made = []

    @contextlib.contextmanager
    def fake_temp_table(con, select, kind="t"):
        made.append(select)
        yield f"__pql_{kind}_{len(made)}"

    mp = pytest.MonkeyPatch()
    mp.setattr(windows, "temp_table", fake_temp_table)
    try:
        blocks = windows.child_blocks(None, graph, entity, "__pql_pairs_0", exclusions(pql.validate(query, graph)),
                                      ExitStack())
    finally:
        mp.undo()
    return made + [b.statement(0, 10) for b in blocks], blocks


def test_statements_are_expressions_with_quoted_graph_names():
    graph = G.build(G.hand_rows())
    statements, blocks = _statements(graph, "users", "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH users.user_id")
    assert len(blocks) == 3  # orders: history + distinct windows; reviews (untimed): static
    for st in statements:
        assert isinstance(st, exp.Expression)
        text = st.sql(dialect="duckdb")
        assert sqlglot.parse_one(text, read="duckdb").sql(dialect="duckdb") == text
        # every graph name reaches SQL as a quoted identifier, never as bare text
        for name in ("orders", "user_id", "ts", "amount", "item_id", "channel", "reviews", "stars"):
            assert re.search(rf'(?<!")\b{name}\b(?!")', text) is None, (name, text)
