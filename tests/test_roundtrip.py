"""Laws of §4.4 and §5 on random ASTs: parse(format(q)) == q, format is idempotent, and the
JSON form round-trips."""

from __future__ import annotations

import os
import json

from hypothesis import HealthCheck, given, settings

from pql import ast as A
from pql.formatter import format_query
from pql.parser import parse
from tests import strategies as S

# PQL_FUZZ_EXAMPLES=5000 pytest ... for a deeper local run.
SETTINGS = settings(max_examples=int(os.environ.get("PQL_FUZZ_EXAMPLES", "300")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(S.queries)
def test_parse_of_format_is_identity(q: A.Query) -> None:
    text = format_query(q)
    assert parse(text) == q, text


@SETTINGS
@given(S.queries)
def test_multiline_format_parses_to_the_same_query(q: A.Query) -> None:
    text = format_query(q, multiline=True)
    assert parse(text) == q, text
    assert "\n" in text


@SETTINGS
@given(S.queries)
def test_format_is_idempotent(q: A.Query) -> None:
    once = format_query(q)
    assert format_query(parse(once)) == once


@SETTINGS
@given(S.queries)
def test_json_form_round_trips(q: A.Query) -> None:
    parsed = parse(format_query(q))
    data = json.loads(json.dumps(A.to_dict(parsed)))
    back = A.from_dict(data)
    assert back == parsed
    # spans survive the JSON form too
    assert [n.span for n in A.walk(back)] == [n.span for n in A.walk(parsed)]


@SETTINGS
@given(S.queries)
def test_parsed_nodes_all_carry_spans(q: A.Query) -> None:
    parsed = parse(format_query(q))
    for node in A.walk(parsed):
        assert node.span is not None, node
        assert (node.span.line, node.span.column) < (node.span.end_line, node.span.end_column)
