"""Laws of §4.4 and §5 on random ASTs: parse(format(q)) == q, format is idempotent, and the
JSON form round-trips."""

from __future__ import annotations

import json
import os

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
def test_format_parse_laws(q: A.Query) -> None:
    text = format_query(q)
    parsed = parse(text)
    assert parsed == q, text  # parse(format(q)) == q
    assert format_query(parsed) == text  # idempotent
    multi = format_query(q, multiline=True)
    assert "\n" in multi and parse(multi) == q
    for node in A.walk(parsed):  # every parsed node carries a non-empty span
        assert node.span is not None, node
        assert (node.span.line, node.span.column) < (node.span.end_line, node.span.end_column)


@SETTINGS
@given(S.queries)
def test_json_form_round_trips(q: A.Query) -> None:
    parsed = parse(format_query(q))
    back = A.from_dict(json.loads(json.dumps(A.to_dict(parsed))))
    assert back == parsed
    assert [n.span for n in A.walk(back)] == [n.span for n in A.walk(parsed)]  # spans survive too
