"""The ``candidate_filter`` option (spec §13, §15): a PQL condition on destination columns only.

The text is parsed as a condition, every column must belong to the destination table (E608),
types are checked by the validator, and the condition compiles with the compiler's two-valued
logic against the destination row ``d``, with an end time later than the anchor reading as NULL
(§7.5).
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from pql import ast
from pql.compiler.conditions import Operand, compile_condition
from pql.errors import PQLRunError, PQLValidationError
from pql.graph import Graph, TableSchema

from .sql import qcol

__all__ = ["candidate_filter_sql"]

_IGNORED = {"E414"}  # the check's own skeleton predicts the destination's key; that is not the user's


class _DestinationScope:
    """Columns of the destination row ``d`` at the anchor ``bound``."""

    def __init__(self, table: TableSchema, bound: exp.Expression) -> None:
        self.table, self.bound = table, bound

    def operand(self, node: ast.Column | ast.Aggregation) -> Operand:
        assert isinstance(node, ast.Column)
        expr: exp.Expression = qcol(node.name, "d")
        if node.name == self.table.end_time_column:
            expr = exp.Case(ifs=[exp.If(this=exp.GT(this=expr.copy(), expression=self.bound.copy()),
                                        true=exp.cast(exp.Null(), "TIMESTAMP"))], default=expr)
        return Operand(expr, self.table.columns[node.name].dtype)


def _outside(cond: ast.Node, dst: str) -> str | None:
    for node in ast.walk(cond):
        if isinstance(node, ast.Aggregation):
            column = node.column
            return f"{column.table}.{getattr(column, 'name', '*')}"
        if isinstance(node, (ast.Column, ast.Wildcard)) and node.table != dst:
            return f"{node.table}.{getattr(node, 'name', '*')}"
    return None


def candidate_filter_sql(graph: Graph, dst: str, value: Any, bound: exp.Expression) -> exp.Expression:
    """The SQL predicate over destination row ``d`` for the option value (text or a condition node)."""
    from pql.compiler import parse_condition
    from pql.validator import validate

    table = graph.table(dst)
    cond = parse_condition(value, dst, table.primary_key) if isinstance(value, str) else value
    found = _outside(cond, dst)
    if found is not None:
        raise PQLRunError(f"candidate_filter may only use columns of '{dst}', found '{found}'", code="E608",
                          table=dst)
    key = ast.Column(dst, table.primary_key)
    try:
        validate(ast.Query(target=key, problem=None, entity=ast.EntitySpec(key=key, filter=cond)), graph)
    except PQLValidationError as e:
        errors = [x for x in e.errors if x.code not in _IGNORED]
        if errors:
            raise PQLValidationError(errors) from None
    compiled = compile_condition(cond, _DestinationScope(table, bound))
    parts = list(compiled.defined) + [compiled.expr]
    out = parts[0]
    for p in parts[1:]:
        out = exp.And(this=out, expression=p)
    return out
