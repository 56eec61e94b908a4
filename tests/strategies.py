"""Hypothesis strategies: random ASTs that ``parse`` could return (valid by construction).

Every node kind is covered: all literal kinds (strings with quotes, backslashes, control
characters and unicode; datetimes; floats), names that need backticks, reserved words as table
names, -INF window starts, every unit, operator and aggregation, nested NOT / AND / OR and
inline filters. Invariants of §5 hold: start < end, windows and TOP / FORECAST within range,
lists only after IN / NOT IN with at least two values, entity ids deduplicated.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from pql import ast as A

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

RESERVED_WORDS = ["count", "SUM", "Predict", "days", "each", "null", "True", "inf", "for", "with", "Weeks",
                  "list_distinct", "timeframes", "assuming"]

ident = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
quoted = st.text(st.characters(blacklist_characters="`\n", blacklist_categories=("Cs",)), min_size=1, max_size=6)
names = st.one_of(ident, ident, quoted, st.sampled_from(RESERVED_WORDS))

ints = st.integers(*INT64)
floats = st.floats(allow_nan=False, allow_infinity=False)
texts = st.one_of(
    st.text(max_size=12),
    st.lists(st.sampled_from(["'", '"', "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x7f", "\x85", "%", "é",
                              "\u2028", "😀", "#", "--", "/", "\\u0041", "a"]), max_size=8).map("".join),
)
datetimes = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)).map(
    lambda d: d.replace(microsecond=0))
midnights = st.dates().map(lambda d: dt.datetime(d.year, d.month, d.day))

scalars = st.one_of(
    st.builds(A.IntLit, ints),
    st.builds(A.FloatLit, floats),
    st.builds(A.StrLit, texts),
    st.builds(A.BoolLit, st.booleans()),
    st.just(A.NullLit()),
    st.builds(A.DateTimeLit, st.one_of(datetimes, midnights)),
)
arrays = st.lists(scalars, min_size=2, max_size=4).map(lambda vs: A.ArrayLit(tuple(vs)))

columns = st.builds(A.Column, names, names)
wildcards = st.builds(A.Wildcard, names)


@st.composite
def windows(draw) -> A.Window:
    end = draw(st.integers(INT32[0] + 1, INT32[1]))
    start = draw(st.one_of(st.none(), st.integers(INT32[0], end - 1), st.integers(max(INT32[0], end - 40), end - 1)))
    return A.Window(start, end, draw(st.sampled_from(list(A.TimeUnit))))


SCALAR_OPS = [op for op in A.CmpOp if not op.is_membership]
LIST_OPS = [A.CmpOp.IN, A.CmpOp.NOT_IN]


def _aggregations(filters) -> st.SearchStrategy[A.Aggregation]:
    return st.builds(A.Aggregation, st.sampled_from(list(A.AggFunc)), st.one_of(columns, wildcards),
                     filters, st.one_of(st.none(), windows()))


def _comparisons(operands) -> st.SearchStrategy[A.Comparison]:
    return st.one_of(
        st.builds(A.Comparison, operands, st.sampled_from(SCALAR_OPS), scalars),
        st.builds(A.Comparison, operands, st.sampled_from(LIST_OPS), arrays),
    )


def _extend(children):
    return st.one_of(
        st.builds(A.BoolOp, st.sampled_from(list(A.BoolOperator)), children, children),
        st.builds(A.Not, children),
        _comparisons(_aggregations(st.one_of(st.none(), children))),
    )


conditions = st.recursive(_comparisons(st.one_of(columns, _aggregations(st.none()))), _extend, max_leaves=8)
aggregations = _aggregations(st.one_of(st.none(), conditions))
targets = st.one_of(columns, aggregations, conditions)
problems = st.one_of(
    st.none(),
    st.builds(A.Rank, st.integers(1, 1000)),
    st.just(A.Classify()),
    st.builds(A.Forecast, st.integers(1, 10000)),
)
entity_ids = st.one_of(
    st.none(),
    st.lists(scalars, min_size=1, max_size=4).map(lambda vs: tuple(dict.fromkeys(vs))),
)
entities = st.builds(A.EntitySpec, columns, st.one_of(st.none(), conditions), entity_ids)
assumings = st.one_of(st.none(), st.builds(A.Assuming, conditions))
queries = st.builds(A.Query, targets, problems, entities, assumings)
