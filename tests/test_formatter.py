"""Canonical format (PQL-SPEC §4.4)."""

from __future__ import annotations

import datetime as dt

import pytest

from pql import ast as A
from pql.formatter import format_literal, format_name, format_node, format_query
from pql.parser import parse

ENTITY = " FOR EACH users.user_id"


def fmt(text: str, **kw) -> str:
    return format_query(parse(text), **kw)


def fmt_filter(cond: str) -> str:
    """The canonical text of an entity filter."""
    out = fmt("PREDICT users.age" + ENTITY + " WHERE " + cond)
    return out.split(" WHERE ", 1)[1]


def test_spec_multiline_example_formats_to_one_line() -> None:
    text = ("-- weekly re-engagement\n"
            "PREDICT COUNT(transactions.*, 0, 7) > 0   # any purchase next week\n"
            "FOR\n"
            "  EACH users.user_id WHERE COUNT(notifications.*, -7, 0) > 0\n")
    assert fmt(text) == ("PREDICT COUNT(transactions.*, 0, 7, days) > 0 FOR EACH users.user_id "
                         "WHERE COUNT(notifications.*, -7, 0, days) > 0")


def test_multiline_puts_for_where_assuming_on_new_lines() -> None:
    text = ("predict sum(transactions.price where transactions.price > 1, 0, 30) for each users.user_id "
            "where users.age > 3 assuming count(notifications.*, 0, 7) > 0")
    assert fmt(text, multiline=True) == (
        "PREDICT SUM(transactions.price WHERE transactions.price > 1, 0, 30, days)\n"
        "FOR EACH users.user_id\n"
        "WHERE users.age > 3\n"
        "ASSUMING COUNT(notifications.*, 0, 7, days) > 0")
    assert fmt("PREDICT users.age FOR users.user_id = 1", multiline=True) == \
        "PREDICT users.age\nFOR users.user_id = 1"


def test_keywords_upper_units_lower_and_always_printed() -> None:
    assert fmt("predict sum(transactions.price, 0, 3, MONTHS) for each users.user_id") == \
        "PREDICT SUM(transactions.price, 0, 3, months) FOR EACH users.user_id"
    assert fmt("PREDICT COUNT(transactions.*,-INFINITY,0)FOR EACH users.user_id") == \
        "PREDICT COUNT(transactions.*, -INF, 0, days) FOR EACH users.user_id"
    assert fmt("PREDICT LIST_DISTINCT(transactions.item_id) RANK TOP 5" + ENTITY) == \
        "PREDICT LIST_DISTINCT(transactions.item_id) RANK TOP 5" + ENTITY


@pytest.mark.parametrize("written,canonical", [
    ("(users.a = 1 OR users.b = 2) AND users.c = 3", "(users.a = 1 OR users.b = 2) AND users.c = 3"),
    ("users.a = 1 OR users.b = 2 AND users.c = 3", "users.a = 1 OR users.b = 2 AND users.c = 3"),
    ("users.a = 1 OR (users.b = 2 AND users.c = 3)", "users.a = 1 OR users.b = 2 AND users.c = 3"),
    ("((users.a = 1 AND users.b = 2)) AND users.c = 3", "users.a = 1 AND users.b = 2 AND users.c = 3"),
    ("users.a = 1 AND (users.b = 2 AND users.c = 3)", "users.a = 1 AND (users.b = 2 AND users.c = 3)"),
    ("users.a = 1 OR (users.b = 2 OR users.c = 3)", "users.a = 1 OR (users.b = 2 OR users.c = 3)"),
    ("NOT (users.a = 1 AND users.b = 2)", "NOT (users.a = 1 AND users.b = 2)"),
    ("NOT (users.a = 1)", "NOT users.a = 1"),
    ("not not users.a = 1", "NOT NOT users.a = 1"),
    ("users.a = 1 AND NOT users.b = 2", "users.a = 1 AND NOT users.b = 2"),
    ("NOT (NOT (users.a = 1 OR users.b = 2))", "NOT NOT (users.a = 1 OR users.b = 2)"),
])
def test_parenthesisation(written: str, canonical: str) -> None:
    assert fmt_filter(written) == canonical


@pytest.mark.parametrize("written,canonical", [
    ("users.x IS NULL", "users.x IS NULL"),
    ("users.x = NULL", "users.x IS NULL"),
    ("users.x != NULL", "users.x IS NOT NULL"),
    ("users.x < NULL", "users.x < NULL"),
    ("users.x IS 5", "users.x = 5"),
    ("users.x is not 'a'", "users.x != 'a'"),
    ("users.x IS IN (1, 2)", "users.x IN (1, 2)"),
    ("users.x not  in (1,2)", "users.x NOT IN (1, 2)"),
    ("users.x LIKE '%a%'", "users.x CONTAINS 'a'"),
    ("users.x LIKE 'a%'", "users.x STARTS WITH 'a'"),
    ("users.x LIKE '%a'", "users.x ENDS WITH 'a'"),
    ("users.x NOT LIKE '%a%'", "users.x NOT CONTAINS 'a'"),
    ("users.x starts   with 'a'", "users.x STARTS WITH 'a'"),
])
def test_sugar_prints_desugared(written: str, canonical: str) -> None:
    assert fmt_filter(written) == canonical


@pytest.mark.parametrize("node,text", [
    (A.IntLit(-42), "-42"),
    (A.IntLit(2**63 - 1), "9223372036854775807"),
    (A.FloatLit(0.05), "0.05"),
    (A.FloatLit(5.0), "5.0"),
    (A.FloatLit(1e-05), "1e-05"),
    (A.FloatLit(1e16), "1e+16"),
    (A.FloatLit(-2.5e-300), "-2.5e-300"),
    (A.StrLit("plain"), "'plain'"),
    (A.StrLit("it's"), "'it\\'s'"),
    (A.StrLit('say "hi"'), "'say \"hi\"'"),
    (A.StrLit("back\\slash"), "'back\\\\slash'"),
    (A.StrLit("a\nb\rc\td\be\ff"), "'a\\nb\\rc\\td\\be\\ff'"),
    (A.StrLit("\x00\x1f\x7f\x85"), "'\\u0000\\u001f\\u007f\\u0085'"),
    (A.StrLit("é😀/#--"), "'é😀/#--'"),
    (A.BoolLit(True), "TRUE"),
    (A.BoolLit(False), "FALSE"),
    (A.NullLit(), "NULL"),
    (A.DateTimeLit(dt.datetime(2024, 1, 31)), "2024-01-31"),
    (A.DateTimeLit(dt.datetime(2024, 1, 31, 8, 0, 5)), "2024-01-31 08:00:05"),
    (A.DateTimeLit(dt.datetime(5, 3, 1)), "0005-03-01"),
    (A.ArrayLit((A.IntLit(1), A.StrLit("a"), A.NullLit())), "(1, 'a', NULL)"),
])
def test_literals(node: A.Node, text: str) -> None:
    assert format_literal(node) == text
    if not isinstance(node, A.ArrayLit):
        assert fmt_filter(f"users.x = {text}") == f"users.x {'IS' if text == 'NULL' else '='} {text}"
        assert parse(f"PREDICT users.age{ENTITY} WHERE users.x != {text}").entity.filter.right == node


def test_datetime_input_forms_normalise() -> None:
    assert fmt_filter("users.t > 2024/1/5") == "users.t > 2024-01-05"
    assert fmt_filter("users.t > 2024.1.5 00:00:00") == "users.t > 2024-01-05"
    assert fmt_filter("users.t > 2024-1-5 \t 07:08:09") == "users.t > 2024-01-05 07:08:09"


def test_decimals_and_strings_normalise() -> None:
    assert fmt_filter("users.x > 1.50") == "users.x > 1.5"
    assert fmt_filter("users.x > 1E3") == "users.x > 1000.0"
    assert fmt_filter('users.x = "a\\/b\\u0041"') == "users.x = 'a/bA'"


@pytest.mark.parametrize("name,table,text", [
    ("users", True, "users"),
    ("_x9", True, "_x9"),
    ("Customer ID", False, "`Customer ID`"),
    ("9lives", False, "`9lives`"),
    ("é", False, "`é`"),
    ("count", True, "`count`"),
    ("Predict", True, "`Predict`"),
    ("count", False, "count"),
    ("DAYS", False, "DAYS"),
])
def test_names(name: str, table: bool, text: str) -> None:
    assert format_name(name, table=table) == text


def test_names_in_queries() -> None:
    assert fmt("PREDICT `count`.`count` FOR EACH `users`.`user_id`") == "PREDICT `count`.count FOR EACH users.user_id"
    assert fmt("PREDICT COUNT(`each`.*, 0, 1) FOR EACH `my users`.`my id`") == \
        "PREDICT COUNT(`each`.*, 0, 1, days) FOR EACH `my users`.`my id`"


def test_entity_ids() -> None:
    assert fmt("PREDICT users.age FOR users.user_id IS 7") == "PREDICT users.age FOR users.user_id = 7"
    assert fmt("PREDICT users.age FOR users.user_id IN ('a','b','a')") == \
        "PREDICT users.age FOR users.user_id IN ('a', 'b')"
    assert fmt("PREDICT users.age FOR users.user_id IN (1, 1)") == "PREDICT users.age FOR users.user_id = 1"


def test_problem_specs() -> None:
    assert fmt("PREDICT users.tags rank top 5" + ENTITY) == "PREDICT users.tags RANK TOP 5" + ENTITY
    assert fmt("PREDICT users.tags classify top 5" + ENTITY) == "PREDICT users.tags CLASSIFY" + ENTITY
    assert fmt("PREDICT SUM(transactions.price, 0, 7) forecast 4 timeframes" + ENTITY) == \
        "PREDICT SUM(transactions.price, 0, 7, days) FORECAST 4 TIMEFRAMES" + ENTITY


def test_format_node_for_messages() -> None:
    q = parse("PREDICT COUNT(transactions.* WHERE transactions.price > 3, -INF, 0, hours) > 0" + ENTITY)
    assert format_node(q.target.left) == "COUNT(transactions.* WHERE transactions.price > 3, -INF, 0, hours)"
    assert format_node(q.target.left.window) == "-INF, 0, hours"
    assert format_node(q.entity) == "FOR EACH users.user_id"
    assert format_node(A.Rank(3)) == "RANK TOP 3"


def test_format_is_idempotent_on_messy_input() -> None:
    messy = ("predict  (users.age>3  or users.country='US')and not users.is_vip=true  # c\n"
             "for\teach users.user_id where users.region_id is not null -- d\n")
    once = fmt(messy)
    assert once == ("PREDICT (users.age > 3 OR users.country = 'US') AND NOT users.is_vip = TRUE "
                    "FOR EACH users.user_id WHERE users.region_id IS NOT NULL")
    assert fmt(once) == once
