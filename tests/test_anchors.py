"""The anchor algorithm of PQL-SPEC §10.2 (and the prediction anchor of §10.6), as pure date arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest

from pql.ast import TimeUnit
from pql.compiler.anchors import TimeRange, prediction_anchor, read_time_range, training_anchors
from pql.compiler.options import parse_options
from pql.compiler.timeunits import add_units, units_between
from pql.errors import PQLRunError
from pql.validated import CombinedWindow

D = dt.datetime
DAYS, MONTHS, HOURS = TimeUnit.DAYS, TimeUnit.MONTHS, TimeUnit.HOURS


def anchors(window: CombinedWindow, start: D, end: D, **options):
    got, warnings = training_anchors(window, TimeRange(start, end, start), parse_options(options))
    return got, [w.code for w in warnings]


def test_add_units_clamps_months_like_duckdb():
    assert add_units(D(2024, 1, 31), 1, MONTHS) == D(2024, 2, 29)
    assert add_units(D(2023, 1, 31), 1, MONTHS) == D(2023, 2, 28)
    assert add_units(D(2024, 3, 31, 8), -1, MONTHS) == D(2024, 2, 29, 8)
    assert add_units(D(2024, 12, 15), 2, MONTHS) == D(2025, 2, 15)
    assert add_units(D(2024, 1, 1), -7, TimeUnit.WEEKS) == D(2023, 11, 13)
    assert add_units(D(2024, 1, 1), 90, TimeUnit.MINUTES) == D(2024, 1, 1, 1, 30)


def test_units_between_is_the_largest_whole_count():
    assert units_between(D(2024, 1, 31), D(2024, 2, 29), MONTHS) == 1
    assert units_between(D(2024, 1, 31), D(2024, 2, 28), MONTHS) == 0
    assert units_between(D(2024, 1, 1), D(2024, 1, 3, 23), DAYS) == 2


def test_default_step_is_the_window_and_drops_an_anchor_without_history():
    # E = 30, L = 30: a_i = end - 30 - 30 i, while a_i >= start + 30 (one step of history)
    got, warnings = anchors(CombinedWindow(DAYS, 0, 30), D(2024, 1, 1), D(2024, 5, 30))
    assert got == [D(2024, 1, 31), D(2024, 3, 1), D(2024, 3, 31), D(2024, 4, 30)]
    assert warnings == []


def test_window_with_positive_start_steps_by_its_length():
    # SUM(t, 10, 30): E = 30, L = 20; lower = 2024-01-01 + 20 days
    got, _ = anchors(CombinedWindow(DAYS, 10, 30), D(2024, 1, 1), D(2024, 4, 1))
    assert got == [D(2024, 1, 22), D(2024, 2, 11), D(2024, 3, 2)]


def test_look_back_buffer_replaces_the_step_of_history():
    # F = -90 < S = 0: range_start moves 90 days later and is itself the lower bound
    w = CombinedWindow(DAYS, 0, 30, filter_start=-90)
    got, _ = anchors(w, D(2024, 1, 1), D(2024, 12, 31))
    assert got[-1] == D(2024, 12, 1)
    assert got[0] == D(2024, 4, 5)  # 2024-12-01 - 8 * 30 days; the next (03-06) is before 2024-03-31


def test_timeframe_step_and_w115():
    got, warnings = anchors(CombinedWindow(DAYS, 0, 30), D(2024, 1, 1), D(2024, 3, 1), timeframe_step=7)
    assert got == [D(2024, 1, 10), D(2024, 1, 17), D(2024, 1, 24), D(2024, 1, 31)]
    assert warnings == ["W115"]


def test_start_time_end_time_and_max_anchors():
    w = CombinedWindow(DAYS, 0, 10)
    got, _ = anchors(w, D(2024, 1, 1), D(2024, 3, 1), start_time="2024-01-05")
    assert got[0] == D(2024, 1, 11)  # the lower bound is start_time itself, no step of history
    got, _ = anchors(w, D(2024, 1, 1), D(2024, 3, 1), end_time=D(2024, 2, 1))
    assert got[-1] == D(2024, 1, 31)  # anchors after end_time are dropped
    got, _ = anchors(w, D(2024, 1, 1), D(2024, 3, 1), max_anchors=2)
    assert got == [D(2024, 2, 10), D(2024, 2, 20)]  # the newest two


def test_month_anchors_are_computed_from_range_end_without_drift():
    got, _ = anchors(CombinedWindow(MONTHS, 0, 1), D(2023, 1, 1), D(2024, 5, 31))
    assert got[-4:] == [D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31), D(2024, 4, 30)]


def test_hours_unit():
    got, _ = anchors(CombinedWindow(HOURS, 0, 24), D(2024, 1, 1), D(2024, 1, 4))
    assert got == [D(2024, 1, 2), D(2024, 1, 3)]


def test_no_anchor_is_e603():
    with pytest.raises(PQLRunError) as e:
        anchors(CombinedWindow(DAYS, 0, 30), D(2024, 1, 1), D(2024, 1, 20))
    assert e.value.code == "E603" and "2024-01-01" in e.value.message and "60 days" in e.value.message
    with pytest.raises(PQLRunError) as e:
        training_anchors(CombinedWindow(DAYS, 0, 30), TimeRange(None, None), parse_options({}))
    assert e.value.code == "E603"
    with pytest.raises(PQLRunError) as e:
        anchors(CombinedWindow(DAYS, 0, 30), D(2024, 1, 1), D(2024, 6, 1), end_time="2023-01-01")
    assert e.value.code == "E603"


def test_a_step_longer_than_the_data_is_e606():
    with pytest.raises(PQLRunError) as e:
        anchors(CombinedWindow(DAYS, 0, 10), D(2024, 1, 1), D(2024, 2, 1), timeframe_step=40)
    assert e.value.code == "E606" and "(21 days)" in e.value.message


def test_read_time_range_takes_latest_minimum_and_latest_maximum():
    tr = read_time_range([(0, D(2024, 1, 1), D(2024, 6, 1)), (1, D(2024, 2, 1), D(2024, 5, 1))])
    assert (tr.start, tr.end, tr.first) == (D(2024, 2, 1), D(2024, 6, 1), D(2024, 1, 1))
    assert read_time_range([(0, None, None)]).empty


def test_prediction_anchor():
    tr = TimeRange(D(2024, 1, 1), D(2024, 6, 1), D(2023, 1, 1))
    assert prediction_anchor(tr, parse_options({})) == D(2024, 6, 1)
    assert prediction_anchor(tr, parse_options({"anchor_time": "2025-01-01 08:00:00"})) == D(2025, 1, 1, 8)
    for bad in ("2022-12-31", "soon", 42):
        with pytest.raises(PQLRunError) as e:
            prediction_anchor(tr, parse_options({"anchor_time": bad}))
        assert e.value.code == "E609"
