"""Conditions to SQL (spec §7.4, §7.6): two-valued logic, the operator table, literals.

Every comparison becomes ``COALESCE(<cmp>, FALSE)`` so a NULL operand is false (``IS NULL`` is
the exception); NOT, AND and OR are then plain boolean operators. Aggregations met on the way
report a definedness predicate; the caller ANDs them all in, whatever NOT or OR surrounds them
(an undefined aggregation drops the example, or the row in an inline filter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

from sqlglot import exp

from pql import ast
from pql.ast import BoolOperator, CmpOp
from pql.graph import Dtype

from .timeunits import timestamp_literal

__all__ = ["Operand", "Scope", "CompiledCondition", "compile_condition", "literal_sql"]


@dataclass
class Operand:
    """An operand's SQL value, its dtype and (for aggregations needing input) its definedness."""

    expr: exp.Expression
    dtype: Dtype | None
    defined: exp.Expression | None = None


class Scope(Protocol):
    def operand(self, node: ast.Column | ast.Aggregation) -> Operand: ...


@dataclass
class CompiledCondition:
    expr: exp.Expression
    defined: list[exp.Expression] = field(default_factory=list)  # all must hold
    operands: list[exp.Expression] = field(default_factory=list)  # non-NULL-test operands (static targets)


# -- literals ------------------------------------------------------------------------------------


def _float_sql(v: float) -> exp.Expression:
    if math.isfinite(v):
        return exp.Literal.number(repr(v))
    return exp.cast(exp.Literal.string("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")), "DOUBLE")


_LITERALS: dict[type, Callable[[ast.Node], exp.Expression]] = {
    ast.IntLit: lambda n: exp.Literal.number(n.value),
    ast.FloatLit: lambda n: _float_sql(n.value),
    ast.StrLit: lambda n: exp.Literal.string(n.value),
    ast.BoolLit: lambda n: exp.Boolean(this=n.value),
    ast.NullLit: lambda n: exp.Null(),
    ast.DateTimeLit: lambda n: timestamp_literal(n.value),
}


def literal_sql(node: ast.Node) -> exp.Expression:
    """A scalar literal as a sqlglot node (never as text)."""
    return _LITERALS[type(node)](node)


# -- operators -----------------------------------------------------------------------------------


def _values(right: ast.Node) -> list[exp.Expression]:
    assert isinstance(right, ast.ArrayLit)
    return [literal_sql(v) for v in right.values]


def _contains(left: exp.Expression, right: ast.Node, dtype: Dtype | None) -> exp.Expression:
    if dtype is not None and dtype.is_list:
        return exp.ArrayContains(this=left, expression=literal_sql(right))
    return exp.Contains(this=left, expression=literal_sql(right))


def _binary(cls: type[exp.Expression]) -> Callable[[exp.Expression, ast.Node, Dtype | None], exp.Expression]:
    return lambda left, right, dtype: cls(this=left, expression=literal_sql(right))


_OPERATORS: dict[CmpOp, Callable[[exp.Expression, ast.Node, Dtype | None], exp.Expression]] = {
    CmpOp.EQ: _binary(exp.EQ),
    CmpOp.NE: _binary(exp.NEQ),
    CmpOp.LT: _binary(exp.LT),
    CmpOp.LE: _binary(exp.LTE),
    CmpOp.GT: _binary(exp.GT),
    CmpOp.GE: _binary(exp.GTE),
    CmpOp.IN: lambda left, right, dtype: exp.In(this=left, expressions=_values(right)),
    CmpOp.NOT_IN: lambda left, right, dtype: exp.Not(this=exp.In(this=left, expressions=_values(right))),
    CmpOp.CONTAINS: _contains,
    CmpOp.NOT_CONTAINS: lambda left, right, dtype: exp.Not(this=_contains(left, right, dtype)),
    CmpOp.STARTS_WITH: _binary(exp.StartsWith),
    CmpOp.ENDS_WITH: _binary(exp.EndsWith),
}

# `= NULL` and `!= NULL` (the desugared IS NULL / IS NOT NULL) are tests, never NULL themselves.
_NULL_TESTS: dict[CmpOp, Callable[[exp.Expression], exp.Expression]] = {
    CmpOp.EQ: lambda left: exp.Is(this=left, expression=exp.Null()),
    CmpOp.NE: lambda left: exp.Not(this=exp.Is(this=left, expression=exp.Null())),
}


def false_if_null(expr: exp.Expression) -> exp.Expression:
    return exp.Coalesce(this=expr, expressions=[exp.false()])


def _comparison(node: ast.Comparison, scope: Scope) -> CompiledCondition:
    operand = scope.operand(node.left)
    defined = [operand.defined] if operand.defined is not None else []
    if isinstance(node.right, ast.NullLit) and node.op in _NULL_TESTS:
        return CompiledCondition(_NULL_TESTS[node.op](operand.expr), defined)
    cmp = _OPERATORS[node.op](operand.expr, node.right, operand.dtype)
    return CompiledCondition(false_if_null(cmp), defined, [operand.expr])


def _bool_op(node: ast.BoolOp, scope: Scope) -> CompiledCondition:
    left, right = compile_condition(node.left, scope), compile_condition(node.right, scope)
    cls = exp.And if node.op is BoolOperator.AND else exp.Or
    return CompiledCondition(
        exp.Paren(this=cls(this=left.expr, expression=right.expr)),
        left.defined + right.defined,
        left.operands + right.operands,
    )


def _not(node: ast.Not, scope: Scope) -> CompiledCondition:
    inner = compile_condition(node.operand, scope)
    return CompiledCondition(exp.Not(this=exp.Paren(this=inner.expr)), inner.defined, inner.operands)


_CONDITIONS: dict[type, Callable[[ast.Node, Scope], CompiledCondition]] = {
    ast.Comparison: _comparison,
    ast.BoolOp: _bool_op,
    ast.Not: _not,
}


def compile_condition(node: ast.Node, scope: Scope) -> CompiledCondition:
    return _CONDITIONS[type(node)](node, scope)

