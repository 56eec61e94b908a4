"""Parser: text -> AST (PQL-SPEC §3, §4, §5, §9.2, §16)."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from pql import ast as A
from pql.astbuilder import MAX_DEPTH
from pql.lexer import MAX_TOKENS
from pql.errors import PQLError, PQLSyntaxError
from pql.formatter import format_query
from pql.parser import lark_parser, parse, parse_with_warnings
from tests.spec_queries import SPEC_V

VALID = SPEC_V  # PQL-SPEC §16.1 V1-V26

BASE = "PREDICT COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id"


def col(t: str, c: str) -> A.Column:
    return A.Column(t, c)


def cmp(left, op: A.CmpOp, right) -> A.Comparison:
    return A.Comparison(left, op, right)


def entity_filter(text: str):
    return parse(text).entity.filter


def error(text) -> PQLSyntaxError:
    with pytest.raises(PQLSyntaxError) as info:
        parse(text)
    return info.value


# --- valid examples ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALID))
def test_valid_examples_parse_and_round_trip(name: str) -> None:
    q = parse(VALID[name])
    assert isinstance(q, A.Query)
    text = format_query(q)
    assert parse(text) == q
    assert format_query(parse(text)) == text


def test_v1_structure() -> None:
    q = parse(VALID["V1"])
    count = A.Aggregation(A.AggFunc.COUNT, A.Wildcard("transactions"), None, A.Window(0, 30, A.TimeUnit.DAYS))
    assert q.target == cmp(count, A.CmpOp.EQ, A.IntLit(0))
    assert q.problem is None and q.assuming is None
    assert q.entity.key == col("users", "user_id") and q.entity.ids is None
    past = A.Aggregation(A.AggFunc.COUNT, A.Wildcard("transactions"), None, A.Window(-90, 0, A.TimeUnit.DAYS))
    assert q.entity.filter == cmp(past, A.CmpOp.GT, A.IntLit(0))


def test_window_unit_defaults_to_days() -> None:
    assert parse(VALID["V2"]).target.window == A.Window(10, 30, A.TimeUnit.DAYS)


@pytest.mark.parametrize("word,unit", [("seconds", A.TimeUnit.SECONDS), ("MINUTES", A.TimeUnit.MINUTES),
                                       ("hours", A.TimeUnit.HOURS), ("days", A.TimeUnit.DAYS),
                                       ("WEEKS", A.TimeUnit.WEEKS), ("months", A.TimeUnit.MONTHS)])
def test_every_unit(word: str, unit: A.TimeUnit) -> None:
    q = parse(f"PREDICT SUM(transactions.price, 0, 3, {word}) FOR EACH users.user_id")
    assert q.target.window.unit is unit


def test_problems() -> None:
    assert parse(VALID["V5"]).problem == A.Rank(12)
    assert parse(VALID["V6"]).problem == A.Classify()
    assert parse(VALID["V12"]).problem == A.Forecast(4)
    assert parse(VALID["V8"]).problem is None


def test_neg_inf_window_start_is_none() -> None:
    q = parse(VALID["V17"])
    assert q.entity.filter.right.left.window == A.Window(None, 0, A.TimeUnit.DAYS)
    for spelling in ("-inf", "-INFINITY", "-infinity"):
        q = parse(f"PREDICT COUNT(transactions.*, {spelling}, 0) FOR EACH users.user_id")
        assert q.target.window.start is None


def test_precedence_not_and_or() -> None:
    q = parse(VALID["V15"])
    assert isinstance(q.target, A.BoolOp) and q.target.op is A.BoolOperator.AND
    assert isinstance(q.target.left, A.BoolOp) and q.target.left.op is A.BoolOperator.OR
    assert q.target.right == A.Not(cmp(col("users", "is_vip"), A.CmpOp.EQ, A.BoolLit(True)))
    f = entity_filter(BASE + " WHERE users.a = 1 OR users.b = 2 AND users.c = 3")
    assert f.op is A.BoolOperator.OR and f.right.op is A.BoolOperator.AND


def test_boolean_operators_are_left_associative() -> None:
    f = entity_filter(BASE + " WHERE users.a = 1 AND users.b = 2 AND users.c = 3")
    assert isinstance(f.left, A.BoolOp) and f.right == cmp(col("users", "c"), A.CmpOp.EQ, A.IntLit(3))


def test_entity_ids_x1() -> None:
    q = parse(VALID["V19"])
    assert q.entity.ids == (A.IntLit(1), A.IntLit(2), A.IntLit(3))
    assert parse("PREDICT users.age FOR users.user_id = 42").entity.ids == (A.IntLit(42),)
    q = parse("PREDICT users.age FOR users.user_id IN (3, 1, 3, 2, 1) WHERE users.age > 3")
    assert q.entity.ids == (A.IntLit(3), A.IntLit(1), A.IntLit(2))
    assert q.entity.filter is not None


def test_literals() -> None:
    f = entity_filter(BASE + " WHERE users.x IN (1, -2, 2.5, 1e3, 'a', \"b\", TRUE, False, NULL, 2024/1/31)")
    assert f.right.values == (A.IntLit(1), A.IntLit(-2), A.FloatLit(2.5), A.FloatLit(1000.0), A.StrLit("a"),
                              A.StrLit("b"), A.BoolLit(True), A.BoolLit(False), A.NullLit(),
                              A.DateTimeLit(dt.datetime(2024, 1, 31)))
    assert parse(VALID["V25"]).entity.filter.right == A.DateTimeLit(dt.datetime(2024, 1, 1, 12))
    f = entity_filter(BASE + " WHERE users.t = 2024.02.29\t08:09:10")
    assert f.right == A.DateTimeLit(dt.datetime(2024, 2, 29, 8, 9, 10))
    f = entity_filter(BASE + " WHERE users.n = '2024-01-31'")
    assert f.right == A.StrLit("2024-01-31")


def test_string_escapes() -> None:
    f = entity_filter(BASE + r""" WHERE users.n = 'a\"b\'c\\d\/e\bf\fg\nh\ri\tj\u00e9\ud83d\ude00'""")
    assert f.right == A.StrLit("a\"b'c\\d/e\bf\fg\nh\ri\tj\u00e9\U0001F600")
    f = entity_filter(BASE + " WHERE users.n = 'two\nlines # not a comment -- nor this'")
    assert f.right == A.StrLit("two\nlines # not a comment -- nor this")


def test_names() -> None:
    q = parse(VALID["V25"])
    assert q.target.column == col("transactions", "price")
    q = parse("PREDICT `count`.`Customer ID` FOR EACH `count`.count")
    assert q.target == col("count", "Customer ID") and q.entity.key == col("count", "count")
    assert parse("PREDICT users.COUNT FOR EACH users.user_id").target == col("users", "COUNT")
    assert parse("PREDICT USERS.USER_ID FOR EACH users.user_id").target == col("USERS", "USER_ID")


# --- desugaring and warnings (§4.3) ----------------------------------------------------------


@pytest.mark.parametrize("written,op,right", [
    ("IS NULL", A.CmpOp.EQ, A.NullLit()),
    ("IS NOT NULL", A.CmpOp.NE, A.NullLit()),
    ("= NULL", A.CmpOp.EQ, A.NullLit()),
    ("IS 5", A.CmpOp.EQ, A.IntLit(5)),
    ("is not 'x'", A.CmpOp.NE, A.StrLit("x")),
    ("LIKE '%ab%'", A.CmpOp.CONTAINS, A.StrLit("ab")),
    ("LIKE 'ab%'", A.CmpOp.STARTS_WITH, A.StrLit("ab")),
    ("LIKE '%ab'", A.CmpOp.ENDS_WITH, A.StrLit("ab")),
    ("LIKE '%a_b%'", A.CmpOp.CONTAINS, A.StrLit("a_b")),
    ("NOT LIKE '%ab%'", A.CmpOp.NOT_CONTAINS, A.StrLit("ab")),
    ("STARTS WITH 'x'", A.CmpOp.STARTS_WITH, A.StrLit("x")),
    ("ends\n  with 'x'", A.CmpOp.ENDS_WITH, A.StrLit("x")),
    ("NOT CONTAINS 'x'", A.CmpOp.NOT_CONTAINS, A.StrLit("x")),
    ("CONTAINS 7", A.CmpOp.CONTAINS, A.IntLit(7)),
    ("NOT IN (1, 2)", A.CmpOp.NOT_IN, A.ArrayLit((A.IntLit(1), A.IntLit(2)))),
])
def test_desugaring(written: str, op: A.CmpOp, right: A.Node) -> None:
    q, warnings = parse_with_warnings(f"{BASE} WHERE users.x {written}")
    assert q.entity.filter == cmp(col("users", "x"), op, right)
    assert warnings == []


def test_is_in_warns_w101() -> None:
    q, warnings = parse_with_warnings(f"{BASE} WHERE users.x IS IN (1, 2)")
    assert q.entity.filter.op is A.CmpOp.IN
    assert [w.code for w in warnings] == ["W101"]
    assert warnings[0].span.column == len(BASE) + 16


def test_classify_top_warns_w102() -> None:
    q, warnings = parse_with_warnings("PREDICT users.tags CLASSIFY TOP 5 FOR EACH users.user_id")
    assert q.problem == A.Classify()
    assert [w.code for w in warnings] == ["W102"]


def test_interior_percent_warns_w111() -> None:
    q, warnings = parse_with_warnings(f"{BASE} WHERE users.x LIKE 'a%b%'")
    assert q.entity.filter == cmp(col("users", "x"), A.CmpOp.STARTS_WITH, A.StrLit("ab"))
    assert [w.code for w in warnings] == ["W111"]


# --- lexical rules (§3) -----------------------------------------------------------------------


def test_keywords_all_lower_case_parse_the_same() -> None:
    assert parse(VALID["V22"]) == parse(VALID["V22"].upper().replace("'%TEST%'", "'%test%'").replace(
        "TRANSACTIONS.*", "transactions.*").replace("USERS.USER_ID", "users.user_id").replace(
        "USERS.NAME", "users.name"))


def test_booleans_may_be_capitalised() -> None:
    assert entity_filter(BASE + " WHERE users.v = True").right == A.BoolLit(True)
    assert entity_filter(BASE + " WHERE users.v = False").right == A.BoolLit(False)


def test_comments_and_multiword_whitespace() -> None:
    text = ("-- weekly re-engagement\nPREDICT COUNT(transactions.*, 0, 7) > 0   # any purchase next week\n"
            "FOR\n  EACH users.user_id WHERE COUNT(notifications.*, -7, 0) > 0")
    assert format_query(parse(text)) == ("PREDICT COUNT(transactions.*, 0, 7, days) > 0 FOR EACH users.user_id "
                                         "WHERE COUNT(notifications.*, -7, 0, days) > 0")


def test_no_whitespace_needed_between_distinct_tokens() -> None:
    q = parse("PREDICT SUM(transactions.price,0,30,days)FOR EACH users.user_id WHERE users.age>3")
    assert q.target.window == A.Window(0, 30, A.TimeUnit.DAYS)


def test_unicode_whitespace_separates_tokens() -> None:
    assert parse("PREDICT\u00a0users.age\u2003FOR EACH\u3000users.user_id") == parse(VALID["V8"])


def test_bytes_input_is_utf8() -> None:
    assert parse(VALID["V8"].encode()) == parse(VALID["V8"])
    assert parse("\ufeff" + VALID["V8"]) == parse(VALID["V8"])
    err = error(b"PREDICT users.age\nFOR \xff EACH users.user_id")
    assert err.code == "E005" and "UTF-8" in err.message and (err.line, err.column) == (2, 5)


# --- spans ------------------------------------------------------------------------------------


def test_spans_are_one_based_and_end_exclusive() -> None:
    text = "PREDICT users.age\n  FOR EACH users.user_id WHERE users.age > 3"
    q = parse(text)
    assert q.target.span == A.Span(1, 9, 1, 18)
    assert q.entity.span == A.Span(2, 3, 2, 45)
    assert q.entity.filter.span == A.Span(2, 32, 2, 45)
    assert q.entity.filter.right.span == A.Span(2, 44, 2, 45)
    assert q.span == A.Span(1, 1, 2, 45)
    agg = parse(VALID["V13"]).target.left
    assert VALID["V13"][agg.span.column - 1:agg.span.end_column - 1] == \
        "COUNT(transactions.* WHERE items.category = 'shoes', 0, 14)"


# --- robustness -----------------------------------------------------------------------------


def test_deep_parentheses_do_not_recurse() -> None:
    q = parse(BASE + " WHERE " + "(" * 1000 + "users.age > 1" + ")" * 1000)
    assert q.entity.filter == cmp(col("users", "age"), A.CmpOp.GT, A.IntLit(1))


def test_nesting_limit() -> None:
    ok = parse(BASE + " WHERE " + "NOT " * (MAX_DEPTH - 1) + "users.age > 1")
    text = format_query(ok)
    assert parse(text) == ok  # the formatter and equality survive the deepest accepted AST
    chain = parse(BASE + " WHERE " + " OR ".join(["users.age > 1"] * MAX_DEPTH))
    assert parse(format_query(chain, multiline=True)) == chain
    for deep in ("NOT " * MAX_DEPTH + "users.age > 1", "NOT " * 1000 + "users.age > 1",
                 " AND ".join(["users.age > 1"] * 5000)):
        err = error(BASE + " WHERE " + deep)
        assert err.code == "E001" and f"more than {MAX_DEPTH} levels" in err.message
    nested = "PREDICT " + "COUNT(t.* WHERE " * 300 + "t.x > 1" + ", 0, 1) > 0" * 300 + " FOR EACH users.user_id"
    assert error(nested).code == "E001"


def test_large_input_is_fast() -> None:
    big_string = BASE + " WHERE users.name = '" + "x" * 1_000_000 + "'"
    big_list = BASE + " WHERE users.age IN (" + ", ".join(str(i) for i in range(20_000)) + ")"
    start = time.perf_counter()
    assert len(parse(big_string).entity.filter.right.value) == 1_000_000
    assert len(parse(big_list).entity.filter.right.values) == 20_000
    for bad in (BASE + " WHERE users.name = '" + "x" * 1_000_000, BASE + " WHERE users.age > " + "9" * 1_000_000):
        with pytest.raises(PQLSyntaxError):
            parse(bad)
    for dense in ("PREDICT " + "(" * (MAX_TOKENS + 10), BASE + " WHERE users.age IN (" + "1," * MAX_TOKENS + "1)"):
        err = error(dense)
        assert err.code == "E001" and f"more than {MAX_TOKENS} tokens" in err.message
    assert time.perf_counter() - start < 30  # generous: guards against quadratic behaviour only


def test_parser_is_built_once() -> None:
    assert lark_parser() is lark_parser()


def test_grammar_has_no_conflicts() -> None:
    from lark.common import ParserConf
    from lark.parsers.lalr_analysis import LALR_Analyzer

    lp = lark_parser()
    assert lp.options.parser == "lalr" and lp.options.lexer == "contextual" and lp.options.propagate_positions
    analyzer = LALR_Analyzer(ParserConf(lp.rules, {}, ["query"]), strict=True)
    analyzer.compute_lalr()  # raises GrammarError on any shift/reduce conflict


def test_no_lark_objects_in_the_ast() -> None:
    from lark import Token, Tree

    for text in VALID.values():
        for node in A.walk(parse(text)):
            for value in vars_of(node):
                assert not isinstance(value, (Token, Tree)), (node, value)
                assert type(value) in (str, int, float, bool, type(None), tuple, dt.datetime) or \
                    isinstance(value, (A.Node, A.Span, A.TimeUnit, A.AggFunc, A.CmpOp, A.BoolOperator)), value


def vars_of(node: A.Node) -> list:
    import dataclasses

    return [getattr(node, f.name) for f in dataclasses.fields(node)]


def test_errors_are_pql_errors() -> None:
    assert issubclass(PQLSyntaxError, PQLError)


# --- syntax errors: §16.2 (syntax-stage rows) ----------------------------------------------

B = BASE  # the "…" of §16.2
INVALID_EXAMPLES = [
    # (id, query, code, column of the span start, hint fragment or None)
    ("I1", "Predict COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id", "E004", 1, None),
    ("I2", "PREDICT SUM(transactions.price, 0, 30, day) FOR EACH users.user_id", "E008", 40, None),
    ("I3", "PREDICT COUNT(transactions.*, 30, 0) FOR EACH users.user_id", "E012", 31, None),
    ("I4", "PREDICT COUNT(transactions.*, 0, 7.5) FOR EACH users.user_id", "E010", 34, None),
    ("I6", B + " WHERE users.country IN ('US')", "E009", 88, None),
    ("I7a", B + " WHERE users.country LIKE 'US'", "E014", 90, None),
    ("I7b", B + " WHERE users.country NOT LIKE 'U%'", "E015", 94, None),
    ("I8", B + " WHERE users.country = US", "E001", 87, "quote text: 'US'"),
    ("I14", "PREDICT LIST_DISTINCT(transactions.item_id, 0, 30) RANK TOP 0 FOR EACH users.user_id", "E404", 57, None),
    ("I15", "PREDICT SUM(transactions.price, 0, 30) TOP 5 FOR EACH users.user_id", "E405", 40, None),
    ("I21", "PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id, items.item_id", "E016", 60, None),
    ("I25a", "PREDICT COUNT(transactions.*, 0, 30) > 0 FOR users.user_id > 5", "E502", 60, None),
    ("I25b", B + " = 5", "E503", 42, None),
    ("I30", "PREDICT COUNT(transactions.*, 0, 30) > 0", "E003", 41, None),
    ("I33a", "PREDICT COUNT(transactions.*, 0, 30) <> 0 FOR EACH users.user_id", "E001", 38, "use !="),
    ("I33b", B + " /* all */", "E005", 65, "comments start with # or --"),
]


@pytest.mark.parametrize("name,text,code,column,hint", INVALID_EXAMPLES, ids=[c[0] for c in INVALID_EXAMPLES])
def test_invalid_examples(name: str, text: str, code: str, column: int, hint: str | None) -> None:
    err = error(text)
    assert (err.code, err.line, err.column) == (code, 1, column), err
    if hint is not None:
        assert any(hint in h for h in err.hints), err.hints


def test_i1_suggests_upper_case() -> None:
    err = error(INVALID_EXAMPLES[0][1])
    assert err.message == "keyword 'Predict' must be all upper- or lower-case: write 'PREDICT'"


# --- every parse-stage code, with its message template (§9.2, §9.4, §9.6) -------------------

CODES = [
    # E001: unexpected token, expected list and hints
    ("E001", B + " WHERE users.country == 'x'", "unexpected '=='; expected", "use ="),
    ("E001", "PREDICT a.b.c FOR EACH users.user_id", "unexpected '.'; expected an operator", None),
    ("E001", "PREDICT users.is_vip AND users.age > 3 FOR EACH users.user_id", "unexpected 'AND'", None),
    ("E001", "PREDICT SUM(transactions.price, 0, 30) * 2 FOR EACH users.user_id", "unexpected '*'",
     "arithmetic is not supported"),
    ("E001", "PREDICT SUM(transactions.price, 0, 30) WHERE users.age > 3 FOR EACH users.user_id",
     "unexpected 'WHERE'", "filter inside the aggregation: SUM(t.c WHERE …, 0, 30)"),
    ("E001", B + " WHERE users.name = 'it''s'", "unexpected ''s''", "escape as \\' or use double quotes"),
    ("E001", "PREDICT count.x FOR EACH users.user_id", "unexpected '.'; expected '('",
     "for a table named count write `count`"),
    ("E001", "PREDICT users.x FOR EACH users.user_id WHERE users.a IN (1, 2", "unexpected end of input; expected",
     None),
    ("E001", "PREDICT users.x FOR # comment\n EACH users.user_id", "unexpected 'EACH'",
     "no comment may separate the words of FOR EACH"),
    ("E001", "PREDICT users.age = .5 FOR EACH users.user_id", "unexpected '.'", None),
    ("E001", "PREDICT users.* FOR EACH users.user_id", "unexpected '*'; expected a name",
     "'users.*' is only valid inside COUNT; write COUNT(users.*, …) or name a column"),
    ("E001", "PREDICT users.x = 5. FOR EACH users.user_id", "unexpected '.'", None),
    ("E001", "PREDICT users.x RANK TOP 2.5 FOR EACH users.user_id", "unexpected '2.5'; expected an integer", None),
    ("E001", "PREDICT users.x = 5 FOR EACH users.user_id ASSUMING users.y = 1 OR", "unexpected end of input",
     None),
    # E002
    ("E002", "", "a query starts with PREDICT, found ''", "the query is empty"),
    ("E002", "  \n\t # only a comment\n", "a query starts with PREDICT, found ''", None),
    ("E002", "EVALUATE PREDICT users.age FOR EACH users.user_id", "a query starts with PREDICT, found 'EVALUATE'",
     None),
    ("E002", "SELECT * FROM users", "a query starts with PREDICT, found 'SELECT'", None),
    # E003
    ("E003", "PREDICT users.age", "missing FOR EACH after the target; add 'FOR EACH <table>.<primary key>'", None),
    ("E003", "PREDICT users.age > 3 ASSUMING COUNT(transactions.*, 0, 7) > 0", "missing FOR EACH", None),
    # E004
    ("E004", "PREDICT users.age For Each users.user_id", "keyword 'For Each' must be all upper- or lower-case: "
     "write 'FOR EACH'", None),
    ("E004", "PREDICT users.age FOR each users.user_id", "write 'FOR EACH'", None),
    ("E004", "PREDICT Sum(transactions.price, 0, 3) FOR EACH users.user_id", "keyword 'Sum'", None),
    ("E004", "PREDICT SUM(transactions.price, 0, 3, Days) FOR EACH users.user_id", "write 'DAYS'", None),
    ("E004", B + " WHERE users.x IS Null", "keyword 'Null'", None),
    ("E004", B + " WHERE users.x = tRUE", "keyword 'tRUE'", None),
    ("E004", "PREDICT COUNT(transactions.*, -Inf, 0) FOR EACH users.user_id", "write '-INF'", None),
    ("E004", B + " WHERE users.x Not In (1, 2)", "write 'NOT IN'", None),
    ("E004", "PREDICT users.age FOR EACH Count.x", "keyword 'Count'", "for a table named Count write `Count`"),
    # E005
    ("E005", "PREDICT users.age FOR EACH users.user_id;", "unexpected character ';'", "remove ';'"),
    ("E005", "PREDICT users.age + 1 FOR EACH users.user_id", "unexpected character '+'",
     "arithmetic is not supported"),
    ("E005", "PREDICT users.age = - 5 FOR EACH users.user_id", "unexpected character '-'", None),
    ("E005", "PREDICT users.age\x00 FOR EACH users.user_id", "unexpected character '\\u0000'", None),
    ("E005", "PREDICT users.age = '\ud800' FOR EACH users.user_id", "unexpected character", None),
    # E006
    ("E006", B + " WHERE users.n = 'a\\qb'",
     "'\\q' is not a valid escape; use \\\" \\' \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX", None),
    ("E006", B + " WHERE users.n = 'a\\u12x4'", "'\\u12x4' is not a valid escape", None),
    # E007
    ("E007", B + " WHERE users.n = 'abc", "string opened at 1:81 is not closed; add '", None),
    ("E007", B + ' WHERE users.n = "abc\\"', 'string opened at 1:81 is not closed; add "', None),
    ("E007", "PREDICT users.`Customer ID FOR EACH users.user_id", "quoted name opened at 1:15 is not closed; add `",
     None),
    ("E007", "PREDICT users.`a\nb` FOR EACH users.user_id", "quoted name opened at 1:15 is not closed", None),
    ("E007", "PREDICT users.`` FOR EACH users.user_id", "quoted name opened at 1:15 is empty", None),
    # E008
    ("E008", "PREDICT SUM(transactions.price, 0, 3, hour) FOR EACH users.user_id",
     "unknown time unit 'hour'; did you mean 'hours'?; use seconds, minutes, hours, days, weeks or months", None),
    ("E008", "PREDICT SUM(transactions.price, 0, 3, fortnights) FOR EACH users.user_id",
     "unknown time unit 'fortnights'; use seconds", None),
    # E009
    ("E009", B + " WHERE users.age IN (30)", "a list needs at least two values; for one value write '= 30'", None),
    ("E009", B + " WHERE users.age = ('x')", "for one value write '= 'x''", None),
    ("E009", "PREDICT users.age FOR users.user_id IN (5)", "a list needs at least two values", None),
    # E010
    ("E010", "PREDICT SUM(transactions.price, 0.5, 3, weeks) FOR EACH users.user_id",
     "window bound 0.5 must be a whole number of weeks", None),
    # E011
    ("E011", B + " WHERE users.age = 9223372036854775808",
     "9223372036854775808 is out of range (-9223372036854775808 … 9223372036854775807)", None),
    ("E011", "PREDICT SUM(transactions.price, 0, 2147483648) FOR EACH users.user_id",
     "2147483648 is out of range (-2147483648 … 2147483647)", None),
    ("E011", "PREDICT users.tags RANK TOP 99999999999 FOR EACH users.user_id", "99999999999 is out of range", None),
    ("E011", "PREDICT SUM(transactions.price, 0, 7) FORECAST 3000000000 TIMEFRAMES FOR EACH items.item_id",
     "3000000000 is out of range", None),
    ("E011", B + " WHERE users.x = 1e400", "1e400 is out of range", None),
    # E012
    ("E012", "PREDICT SUM(transactions.price, 5, 5) FOR EACH users.user_id",
     "window start 5 must be below end 5; did you mean (5, 5)?", None),
    # E013
    ("E013", B + " WHERE users.x = -INF", "-INF can only be a window start, e.g. COUNT(t.*, -INF, 0)", None),
    ("E013", "PREDICT COUNT(transactions.*, 0, -infinity) FOR EACH users.user_id", "-INF can only be a window start",
     None),
    ("E013", B + " WHERE users.x IN (1, -inf)", "-INF can only be a window start", None),
    # E014, E015
    ("E014", B + " WHERE users.c LIKE 'a%b'",
     "LIKE 'a%b' needs % at the start and/or end ('a%b%', '%a%b', '%a%b%'); for equality use = 'a%b'", None),
    ("E015", B + " WHERE users.c NOT LIKE '%US'",
     "NOT LIKE supports only '%x%'; write NOT (users.c LIKE '%US')", None),
    # E016
    ("E016", "PREDICT users.age FOR EACH users.user_id FOR EACH items.item_id",
     "unexpected 'FOR EACH' after the query; a query has one entity — model pairs as a table of pairs", None),
    ("E016", "PREDICT users.age FOR EACH users.user_id WHERE users.age > 3 users.x", "after the query", None),
    # E017
    ("E017", "PREDICT users.age, users.country FOR EACH users.user_id",
     "unexpected ',' in PREDICT; a query has exactly one target", None),
    ("E017", "PREDICT users.age users.country FOR EACH users.user_id", "unexpected 'users' in PREDICT", None),
    # E018
    ("E018", "PREDICT FOR EACH users.user_id",
     "the PREDICT clause is empty; expected a column, an aggregation or a condition", None),
    ("E018", "PREDICT users.age FOR EACH", "the FOR EACH clause is empty; expected <table>.<primary key>", None),
    ("E018", "PREDICT users.age FOR EACH WHERE users.age > 3", "the FOR EACH clause is empty", None),
    ("E018", "PREDICT users.age FOR EACH users.user_id WHERE", "the WHERE clause is empty; expected a condition",
     None),
    ("E018", "PREDICT users.age FOR EACH users.user_id WHERE ASSUMING users.x = 1", "the WHERE clause is empty",
     None),
    ("E018", "PREDICT users.age FOR EACH users.user_id ASSUMING", "the ASSUMING clause is empty", None),
    ("E018", "PREDICT COUNT(transactions.* WHERE, 0, 7) FOR EACH users.user_id", "the WHERE clause is empty", None),
    # E019
    ("E019", B + " WHERE users.b = 2023-02-29",
     "'2023-02-29' is not a valid date/time (YYYY-MM-DD [HH:MM:SS])", None),
    ("E019", B + " WHERE users.b = 2024-01-01T10:00:00", "'2024-01-01T10:00:00' is not a valid date/time", None),
    ("E019", B + " WHERE users.b = 2024-01-01 25:00:00", "is not a valid date/time", None),
    ("E019", B + " WHERE users.b = 2024-01-01 10:00", "is not a valid date/time", None),
    ("E019", B + " WHERE users.b = 2024-01-01 10:00:00.5", "is not a valid date/time", None),
    ("E019", B + " WHERE users.b = 2024-13-01", "is not a valid date/time", None),
    # E208, E209
    ("E208", B + " WHERE users.age = (1, 2)", "'=' takes one value; for a list use IN (…)", None),
    ("E208", B + " WHERE users.name CONTAINS ('a', 'b')", "'CONTAINS' takes one value", None),
    ("E208", B + " WHERE users.age is not (1, 2)", "'IS NOT' takes one value", None),
    ("E208", "PREDICT users.age FOR users.user_id = (1, 2)", "'=' takes one value", None),
    ("E209", B + " WHERE users.age IN 5", "IN needs a list of at least two values; for one value use '= 5'", None),
    ("E209", B + " WHERE users.age NOT IN 'x'", "NOT IN needs a list of at least two values; for one value use "
     "'!= 'x''", None),
    ("E209", "PREDICT users.age FOR users.user_id IN 5", "IN needs a list", None),
    # E403-E406
    ("E403", "PREDICT users.tags RANK FOR EACH users.user_id", "RANK needs TOP k, e.g. RANK TOP 10", None),
    ("E403", "PREDICT users.tags RANK 5 FOR EACH users.user_id", "RANK needs TOP k", None),
    ("E404", "PREDICT users.tags RANK TOP 1001 FOR EACH users.user_id", "TOP 1001 is out of range; use 1 <= k <= 1000",
     None),
    ("E404", "PREDICT users.tags RANK TOP -3 FOR EACH users.user_id", "TOP -3 is out of range", None),
    ("E405", "PREDICT users.tags TOP 5 FOR EACH users.user_id", "TOP k requires RANK: write RANK TOP 5", None),
    ("E406", "PREDICT SUM(transactions.price, 0, 7) FORECAST 10001 TIMEFRAMES FOR EACH items.item_id",
     "FORECAST 10001 TIMEFRAMES is out of range (1 … 10000)", None),
    ("E406", "PREDICT SUM(transactions.price, 0, 7) FORECAST 0 TIMEFRAMES FOR EACH items.item_id",
     "FORECAST 0 TIMEFRAMES is out of range", None),
    # E501-E503
    ("E501", "PREDICT users.age FOR users.user_id",
     "FOR needs ids: FOR users.user_id = <id> or IN (<id>, <id>); or use FOR EACH", None),
    ("E501", "PREDICT users.age FOR users.user_id WHERE users.age > 3", "FOR needs ids", None),
    ("E502", "PREDICT users.age FOR users.user_id != 5", "entity ids take = or IN, not '!='; filter with WHERE", None),
    ("E502", "PREDICT users.age FOR users.user_id NOT IN (1, 2)", "not 'NOT IN'", None),
    ("E502", "PREDICT users.age FOR users.user_id LIKE '%1'", "not 'LIKE'", None),
    ("E503", "PREDICT users.age FOR EACH users.user_id IN (1, 2)",
     "FOR EACH takes no ids; write FOR users.user_id IN …", None),
]


@pytest.mark.parametrize("code,text,message,hint", CODES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CODES)])
def test_error_codes(code: str, text: str, message: str, hint: str | None) -> None:
    err = error(text)
    assert err.code == code, err
    assert message in err.message, err.message
    if hint is not None:
        assert any(hint in h for h in err.hints), err.hints
    assert err.span is not None and err.line >= 1 and err.column >= 1
    assert (err.end_line, err.end_column) > (err.line, err.column)


def test_every_parse_stage_code_is_covered() -> None:
    covered = {c[0] for c in CODES}
    expected = {f"E0{n:02d}" for n in range(1, 20)} | {"E208", "E209", "E403", "E404", "E405", "E406", "E501",
                                                        "E502", "E503"}
    assert expected <= covered


def test_error_positions_on_later_lines() -> None:
    err = error("PREDICT users.age\nFOR EACH users.user_id\nWHERE users.age = US")
    assert (err.code, err.line, err.column, err.end_line, err.end_column) == ("E001", 3, 19, 3, 21)
    err = error("PREDICT users.age FOR EACH users.user_id WHERE users.n = 'line one\nline \\x'")
    assert (err.code, err.line, err.column) == ("E006", 2, 6)


def test_first_error_wins() -> None:
    # the builder stops at the first problem in source order
    assert error("PREDICT SUM(transactions.price, 0, 7.5, day) FOR EACH users.user_id").code == "E010"
    assert error("PREDICT users.x = 'a\\q' FOR EACH users.user_id WHERE users.y IN (1)").code == "E006"


def test_reserved_words_in_table_position_need_backticks() -> None:
    for word in ("count", "days", "each", "null", "rank", "true"):
        with pytest.raises(PQLSyntaxError):
            parse(f"PREDICT {word}.x FOR EACH users.user_id")
        assert parse(f"PREDICT `{word}`.x FOR EACH users.user_id").target == col(word, "x")
        assert parse(f"PREDICT users.{word} FOR EACH users.user_id").target == col("users", word)


# --- snapshots of rendered errors -------------------------------------------------------------

SNAPSHOT_DIR = Path(__file__).parent / "snapshots" / "syntax"
SNAPSHOTS = {
    "e001_bare_word": B + " WHERE users.country = US",
    "e001_sql_not_equal": "PREDICT COUNT(transactions.*, 0, 30) <> 0 FOR EACH users.user_id",
    "e001_doubled_quote": B + " WHERE users.name = 'it''s'",
    "e001_reserved_table": "PREDICT count.x FOR EACH users.user_id",
    "e002_empty": "",
    "e003_missing_entity": "PREDICT COUNT(transactions.*, 0, 30) > 0",
    "e004_mixed_case": "Predict COUNT(transactions.*, 0, 30) > 0 FOR EACH users.user_id",
    "e005_block_comment": B + " /* all */",
    "e006_bad_escape_second_line": "PREDICT users.age FOR EACH users.user_id\nWHERE users.name = 'a\\qb'",
    "e007_unterminated_string": B + " WHERE users.name = 'abc\nmore",
    "e008_unknown_unit": "PREDICT SUM(transactions.price, 0, 30, day) FOR EACH users.user_id",
    "e009_one_element_list": B + " WHERE users.country IN ('US')",
    "e012_window_order": "PREDICT COUNT(transactions.*, 30, 0) FOR EACH users.user_id",
    "e016_second_entity": "PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.user_id, items.item_id",
    "e017_two_targets": "PREDICT users.age, users.country FOR EACH users.user_id",
    "e018_empty_where": "PREDICT users.age\nFOR EACH users.user_id\nWHERE\n",
    "e503_for_each_ids": B + " = 5",
    "nesting_limit": B + " WHERE " + "NOT " * 250 + "users.age > 1",
}


def assert_snapshot(name: str, text: str) -> None:
    """Compare with tests/snapshots/syntax/<name>.txt; PQL_UPDATE_SNAPSHOTS=1 writes it instead."""
    path = SNAPSHOT_DIR / f"{name}.txt"
    if os.environ.get("PQL_UPDATE_SNAPSHOTS") == "1":
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"missing snapshot {path}; run with PQL_UPDATE_SNAPSHOTS=1 to create it")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", list(SNAPSHOTS))
def test_rendered_error_snapshots(name: str) -> None:
    source = SNAPSHOTS[name]
    err = error(source)
    assert_snapshot(name, f"--- query\n{source}\n--- error\n{err.render(source)}\n")


# §16.2 rows whose code belongs to the validator must parse, so that the validator can see them.
VALIDATION_STAGE = [
    "PREDICT COUNT(transactions.*, -7, 30) FOR EACH users.user_id",  # I3 E303
    B + " WHERE COUNT(transactions.*, -30, 10) > 0",  # I5 E304
    B + " WHERE users.age < NULL",  # I6 E206
    B + " WHERE users.age = '30'",  # I9 E205
    B + " WHERE users.birth_date > '1990-01-01'",  # I9 E205
    "PREDICT COUNT(transactions.*, 0, 30) FOR EACH users.age",  # I10 E104
    "PREDICT SUM(transactions.status, 0, 30) FOR EACH users.user_id",  # I11 E201
    "PREDICT SUM(notifications.*, 0, 7) FOR EACH users.user_id",  # I12 E103
    "PREDICT SUM(transactions.price) FOR EACH users.user_id",  # I13 E302
    "PREDICT LIST_DISTINCT(transactions.item_id, 0, 30) FOR EACH users.user_id",  # I14 E401
    "PREDICT SUM(transactions.price, 0, 30) RANK TOP 5 FOR EACH users.user_id",  # I15 E402
    "PREDICT SUM(transactions.price, 0, 30) FOR EACH users.user_id ASSUMING users.country = 'US'",  # I16 E306
    "PREDICT users.age FOR EACH users.user_id ASSUMING COUNT(transactions.*, 0, 7) > 0",  # I17 E307
    "PREDICT COUNT(transactions.*, 0, 30) > 0 OR users.age > 30 FOR EACH users.user_id",  # I18 E309
    "PREDICT transactions.price FOR EACH users.user_id",  # I19 E107
    "PREDICT LIST_DISTINCT(transactions.user_id, 0, 30) RANK TOP 5 FOR EACH users.user_id",  # I20 E411
    "PREDICT SUM(transactions.price, 0, 30) FOR EACH user.user_id",  # I22 E101
    "PREDICT SUM(transactions.prce, 0, 30) FOR EACH users.user_id",  # I22 E102
    "PREDICT AVG(transactions.price, 0, 7) FORECAST 4 TIMEFRAMES FOR EACH items.item_id",  # I23 E409
    "PREDICT SUM(transactions.price, 0, 30) FOR EACH users.user_id WHERE transactions.status = 'paid'",  # I24 E108
    "PREDICT COUNT_DISTINCT(transactions.item_id, 0, 30) FOR EACH users.user_id",  # I26 E202
    "PREDICT LAST(transactions.item_id, 0, 30) FOR EACH users.user_id",  # I26 E203
    "PREDICT users.name FOR EACH users.user_id",  # I27 E413
    "PREDICT users.user_id FOR EACH users.user_id",  # I27 E414
    "PREDICT users.age FOR EACH users.user_id WHERE COUNT(transactions.*, -30, 0) > 0",  # I28 E308
    "PREDICT LIST_DISTINCT(transactions.item_id WHERE users.country = 'US', 0, 30) RANK TOP 5 "
    "FOR EACH users.user_id",  # I29 E412
    "PREDICT regions.population FOR EACH items.item_id",  # I31 E109
    "PREDICT LIST_DISTINCT(transactions.item_id) RANK TOP 5 FOR EACH users.user_id",  # I32 E310
]


@pytest.mark.parametrize("text", VALIDATION_STAGE)
def test_validation_stage_examples_parse(text: str) -> None:
    q = parse(text)
    assert parse(format_query(q)) == q
