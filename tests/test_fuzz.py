"""Fuzz: random and mutated text never raises anything but a coded PQLSyntaxError; whatever
parses also round-trips through the formatter."""

from __future__ import annotations

import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pql.errors import PQLSyntaxError
from pql.formatter import format_query
from pql.parser import parse
from tests import strategies as S
from tests.test_parser import VALID

# PQL_FUZZ_EXAMPLES=5000 pytest ... for a deeper local run.
SETTINGS = settings(max_examples=int(os.environ.get("PQL_FUZZ_EXAMPLES", "250")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

TOKEN_RE = re.compile(r"'[^']*'|`[^`]*`|\w+|\S")
SEEDS = list(VALID.values()) + [
    "PREDICT users.age FOR users.user_id IN (1, 2) WHERE users.name LIKE 'a%' ASSUMING COUNT(t.*, 0, 1) > 0",
    "predict users.tags classify top 3 for each users.user_id where users.x is in ('a', \"b\") # c\n",
    "PREDICT COUNT(`my t`.* WHERE NOT (x.a = 2024/1/2 03:04:05 OR x.b != -1.5e3), -INF, 0, weeks) >= 1 "
    "FOR EACH users.user_id -- d",
]
PIECES = ["PREDICT", "FOR EACH", "FOR", "WHERE", "ASSUMING", "AND", "OR", "NOT", "IS", "IN", "NOT IN", "LIKE",
          "COUNT", "SUM", "LIST_DISTINCT", "RANK", "TOP", "CLASSIFY", "FORECAST", "TIMEFRAMES", "days", "Days",
          "(", ")", ",", ".", "*", "=", "!=", "<>", "<", ">=", "-INF", "-Inf", "NULL", "TRUE", "0", "-7", "30",
          "2.5", "1e9", "99999999999999999999", "2024-01-31", "2024-02-30 10:00:00", "'s'", "'%x%'", "'a\\q'",
          "'open", "`q n`", "``", "users", "user_id", "t", "#", "--", "\n", " ", ";", "/*", "\x00", "é"]


def check(text) -> None:
    try:
        q = parse(text)
    except PQLSyntaxError as e:
        assert e.code != "E900", e
        assert re.fullmatch(r"E\d{3}", e.code)
        assert e.span is not None and e.line >= 1 and e.column >= 1
        source = text if isinstance(text, str) else text.decode("utf-8", "replace")
        e.render(source)  # rendering never fails
        return
    canonical = format_query(q)
    assert parse(canonical) == q, canonical
    assert format_query(parse(canonical)) == canonical


@SETTINGS
@given(st.text(max_size=80))
def test_random_text(text: str) -> None:
    check(text)


@SETTINGS
@given(st.binary(max_size=60))
def test_random_bytes(data: bytes) -> None:
    check(b"PREDICT " + data)


@SETTINGS
@given(st.lists(st.sampled_from(PIECES), max_size=25), st.booleans())
def test_random_token_soup(pieces: list[str], prefix: bool) -> None:
    check(("PREDICT " if prefix else "") + " ".join(pieces))


@st.composite
def mutated(draw) -> str:
    text = draw(st.one_of(st.sampled_from(SEEDS), S.queries.map(format_query)))
    tokens = TOKEN_RE.findall(text)
    for _ in range(draw(st.integers(1, 3))):
        if not tokens:
            break
        i = draw(st.integers(0, len(tokens) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "replace", "case"]))
        if kind == "delete":
            del tokens[i]
        elif kind == "duplicate":
            tokens.insert(i, tokens[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == "insert":
            tokens.insert(i, draw(st.one_of(st.sampled_from(PIECES), st.text(min_size=1, max_size=3))))
        elif kind == "replace":
            tokens[i] = draw(st.sampled_from(PIECES))
        else:
            tokens[i] = tokens[i].swapcase()
    out = " ".join(tokens)
    if draw(st.booleans()):
        out = out[:draw(st.integers(0, len(out)))]
    return out


@SETTINGS
@given(mutated())
def test_mutated_valid_queries(text: str) -> None:
    check(text)


@SETTINGS
@given(st.sampled_from(SEEDS), st.integers(0, 400), st.binary(min_size=1, max_size=4))
def test_random_bytes_inserted(text: str, pos: int, junk: bytes) -> None:
    raw = text.encode()
    pos = min(pos, len(raw))
    check(raw[:pos] + junk + raw[pos:])
