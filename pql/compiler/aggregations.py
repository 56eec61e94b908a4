"""The aggregation table (spec §7.3, §11.1): one entry per AggFunc.

Each entry gives the SQL over the input rows of one (key, anchor) group, the value on an empty
window (``None`` = undefined, which drops the example), the result dtype and the definedness test.
The input rows have already been restricted to non-NULL values of the column (§7.3), so every
builder sees only real input and ``COUNT(*)`` is the input count ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlglot import exp

from pql.ast import AggFunc
from pql.graph import Dtype

__all__ = ["AggInput", "AggSpec", "AGGREGATIONS", "sql_type"]


@dataclass(frozen=True)
class AggInput:
    """What a builder may read from one input row."""

    value: exp.Expression | None  # the column (None for t.*)
    order: exp.Expression  # time, or (time, pk[, row number]) as a tuple: the FIRST/LAST order
    is_list: bool  # list input: LIST_DISTINCT flattens it
    dtype: Dtype | None  # the column's dtype (None for t.*)


_SQL_TYPES = {
    Dtype.INT: "BIGINT",
    Dtype.FLOAT: "DOUBLE",
    Dtype.BOOL: "BOOLEAN",
    Dtype.STRING: "VARCHAR",
    Dtype.TIMESTAMP: "TIMESTAMP",
}


def sql_type(dtype: Dtype) -> str | None:
    return _SQL_TYPES.get(dtype)


def _numeric(expr: exp.Expression, dtype: Dtype | None) -> exp.Expression:
    """Fix the SQL type of a numeric result (DuckDB sums BIGINT into HUGEINT)."""
    return exp.cast(expr, "DOUBLE" if dtype is Dtype.FLOAT else "BIGINT")


def _list_distinct(i: AggInput) -> exp.Expression:
    collected: exp.Expression = exp.ArrayAgg(this=i.value)
    if i.is_list:
        collected = exp.Flatten(this=collected)
    return exp.ArraySort(this=exp.ArrayDistinct(this=collected))


def _same(d: Dtype | None) -> Dtype | None:
    return d


def _list_of(d: Dtype | None) -> Dtype | None:
    if d is None or d.is_list:
        return d
    return {Dtype.STRING: Dtype.LIST_STRING, Dtype.INT: Dtype.LIST_INT}.get(d, Dtype.OTHER)


@dataclass(frozen=True)
class AggSpec:
    build: Callable[[AggInput], exp.Expression]
    empty: Callable[[], exp.Expression] | None  # value on an empty window; None = undefined
    result_dtype: Callable[[Dtype | None], Dtype | None]
    defined: Callable[[exp.Expression, exp.Expression], exp.Expression] | None = None  # list inputs: (v, n) -> bool

    @property
    def needs_input(self) -> bool:
        return self.empty is None

    def definedness(self, v: exp.Expression, n: exp.Expression, *, list_input: bool = False) -> exp.Expression | None:
        """A predicate that is true when the value is defined (None: always defined).

        The input count n > 0 suffices, except for LIST_DISTINCT over list columns, whose non-NULL
        inputs may all be empty lists."""
        if self.defined is not None and list_input:
            return self.defined(v, n)
        if self.needs_input:
            return exp.GT(this=n, expression=exp.Literal.number(0))
        return None


def _zero() -> exp.Expression:
    return exp.Literal.number(0)


AGGREGATIONS: dict[AggFunc, AggSpec] = {
    AggFunc.COUNT: AggSpec(lambda i: exp.Count(this=exp.Star()), _zero, lambda d: Dtype.INT),
    AggFunc.COUNT_DISTINCT: AggSpec(
        lambda i: exp.Count(this=exp.Distinct(expressions=[i.value])), _zero, lambda d: Dtype.INT),
    AggFunc.SUM: AggSpec(lambda i: _numeric(exp.Sum(this=i.value), i.dtype), _zero, _same),
    AggFunc.AVG: AggSpec(lambda i: exp.cast(exp.Avg(this=i.value), "DOUBLE"), None, lambda d: Dtype.FLOAT),
    AggFunc.MIN: AggSpec(lambda i: exp.Min(this=i.value), None, _same),
    AggFunc.MAX: AggSpec(lambda i: exp.Max(this=i.value), None, _same),
    AggFunc.FIRST: AggSpec(lambda i: exp.ArgMin(this=i.value, expression=i.order), None, _same),
    AggFunc.LAST: AggSpec(lambda i: exp.ArgMax(this=i.value, expression=i.order), None, _same),
    AggFunc.LIST_DISTINCT: AggSpec(
        _list_distinct, None, _list_of,
        defined=lambda v, n: exp.GT(this=exp.ArraySize(this=v), expression=exp.Literal.number(0))),
}
