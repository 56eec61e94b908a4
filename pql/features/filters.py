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


class _EventScope:
    """A row ``r`` of the target table at anchor ``an.av``, and its one-hop parents (visible at the
    anchor, end times after it read as NULL). Aggregations are not resolved here."""

    def __init__(self, graph: Graph, table: TableSchema, bound: exp.Expression) -> None:
        self.graph, self.table, self.bound = graph, table, bound
        self.joins: list[exp.Join] = []
        self._aliases: dict[str, str] = {}

    def _masked(self, table: TableSchema, alias: str, name: str) -> exp.Expression:
        expr: exp.Expression = qcol(name, alias)
        if name == table.end_time_column:
            expr = exp.Case(ifs=[exp.If(this=exp.GT(this=expr.copy(), expression=self.bound.copy()),
                                        true=exp.cast(exp.Null(), "TIMESTAMP"))], default=expr)
        return expr

    def _parent(self, name: str) -> str:
        if name not in self._aliases:
            alias = f"p{len(self._aliases)}"
            edge = self.graph.edges_between(self.table.name, name)[0]
            parent = self.graph.table(name)
            on: exp.Expression = exp.EQ(this=qcol(parent.primary_key, alias), expression=qcol(edge.fkey, "r"))
            if parent.time_column:
                on = exp.And(this=on, expression=exp.LTE(this=qcol(parent.time_column, alias),
                                                         expression=self.bound.copy()))
            self.joins.append(exp.Join(this=exp.Table(this=exp.to_identifier(name, quoted=True),
                                                      alias=exp.TableAlias(this=exp.to_identifier(alias))),
                                       on=on, side="LEFT"))
            self._aliases[name] = alias
        return self._aliases[name]

    def operand(self, node: ast.Column | ast.Aggregation) -> Operand:
        if not isinstance(node, ast.Column):
            raise _NestedAggregation(node)
        if node.table == self.table.name:
            table, alias = self.table, "r"
        else:
            table, alias = self.graph.table(node.table), self._parent(node.table)
        return Operand(self._masked(table, alias, node.name), table.columns[node.name].dtype)


class _NestedAggregation(Exception):
    """A target filter holds a nested aggregation, which history candidates do not apply."""


def history_filter(graph: Graph, table: str, cond: ast.Node | None,
                   bound: exp.Expression) -> tuple[list[exp.Join], exp.Expression] | None:
    """The target's inline filter over its rows ``r`` at anchor ``bound`` (§13: H(u, p) passes it):
    the joins it needs and the predicate. None when there is no filter, or when it holds nested
    aggregations, which history candidates then do not apply (a superset of H)."""
    if cond is None:
        return None
    scope = _EventScope(graph, graph.table(table), bound)
    try:
        compiled = compile_condition(cond, scope)
    except _NestedAggregation:
        return None
    parts = list(compiled.defined) + [compiled.expr]
    out = parts[0]
    for p in parts[1:]:
        out = exp.And(this=out, expression=p)
    return scope.joins, out
