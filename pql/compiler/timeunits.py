"""Time arithmetic shared by the anchor algorithm and the SQL windows (spec §7.1).

Units are exact durations except months, which are calendar months with end-of-month clamping,
exactly like DuckDB's ``TIMESTAMP + INTERVAL n MONTH`` (2024-01-31 + 1 month = 2024-02-29).
The Python side (anchors, thresholds) and the SQL side (windows) must agree, so both live here.
"""

from __future__ import annotations

import calendar
import datetime as dt

from sqlglot import exp

from pql.ast import TimeUnit

__all__ = ["add_units", "interval_add", "timestamp_literal", "units_between", "describe_amount"]

# The SQL interval unit and the multiplier applied to the amount (weeks become 7 days, which
# every dialect understands).
_SQL_UNIT: dict[TimeUnit, tuple[str, int]] = {
    TimeUnit.SECONDS: ("SECOND", 1),
    TimeUnit.MINUTES: ("MINUTE", 1),
    TimeUnit.HOURS: ("HOUR", 1),
    TimeUnit.DAYS: ("DAY", 1),
    TimeUnit.WEEKS: ("DAY", 7),
    TimeUnit.MONTHS: ("MONTH", 1),
}


def _add_months(ts: dt.datetime, n: int) -> dt.datetime:
    total = ts.year * 12 + (ts.month - 1) + n
    year, month = divmod(total, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise OverflowError("date out of range")
    day = min(ts.day, calendar.monthrange(year, month)[1])
    return ts.replace(year=year, month=month, day=day)


def add_units(ts: dt.datetime, n: int, unit: TimeUnit) -> dt.datetime:
    """``ts + n * unit`` with the semantics of §7.1 (raises OverflowError out of range)."""
    if unit is TimeUnit.MONTHS:
        return _add_months(ts, n)
    return ts + dt.timedelta(seconds=n * unit.exact_seconds)


def units_between(start: dt.datetime, end: dt.datetime, unit: TimeUnit) -> int:
    """The largest whole n with ``add_units(start, n, unit) <= end`` (may be negative)."""
    if unit is TimeUnit.MONTHS:
        n = (end.year - start.year) * 12 + (end.month - start.month)
        while add_units(start, n, unit) > end:
            n -= 1
        while add_units(start, n + 1, unit) <= end:
            n += 1
        return n
    return int((end - start).total_seconds() // unit.exact_seconds)


def describe_amount(n: int, unit: TimeUnit) -> str:
    return f"{n} {unit.word}"


def timestamp_literal(ts: dt.datetime | None) -> exp.Expression:
    """A TIMESTAMP literal as a sqlglot node (a typed NULL for None)."""
    if ts is None:
        return exp.cast(exp.Null(), "TIMESTAMP")
    return exp.cast(exp.Literal.string(ts.isoformat(sep=" ")), "TIMESTAMP")


def interval_add(base: exp.Expression, n: int, unit: TimeUnit) -> exp.Expression:
    """``base + INTERVAL 'n' UNIT`` (just ``base`` when n is 0)."""
    if n == 0:
        return base
    name, mult = _SQL_UNIT[unit]
    interval = exp.Interval(this=exp.Literal.string(str(n * mult)), unit=exp.Var(this=name))
    return exp.Add(this=base, expression=interval)
