"""The events of a pair task: which (entity, class, time) rows the target is made of.

Link prediction: the rows of the target table ``T`` (``LIST_DISTINCT(T.fk, …)``): entity key
through T's foreign key to the entity, class = the destination key, time = T's time column.
Multilabel: the values of the target column (lists flattened, multicategorical strings split on
'|' as the compiler does): a child table's rows for a temporal target, or for a static target the
entity's own (or its parent's) column, which is the label itself and never a visible history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlglot import exp

from pql import ast
from pql.ast import AggFunc, QueryKind
from pql.compiler.sqlbuild import and_all, table_ref
from pql.graph import Dtype, Graph, TableSchema
from pql.validated import ValidatedQuery

from .sql import qcol

__all__ = ["EventSource", "event_source"]


@dataclass(frozen=True)
class EventSource:
    graph: Graph
    entity: str
    table: str  # the table holding the class values
    column: str  # the class column
    key: str  # the column of ``table`` joining the entity (its FK, or the PK for the entity's own column)
    time: str | None  # None: untimed (every row visible)
    flatten: str  # "none" | "list" | "split"
    parent_fk: str | None  # static target on a parent's column: the entity's FK to that parent
    dst: str | None  # link prediction: the destination table
    history: bool  # False when the events are the static label itself
    filter: ast.Node | None = None  # the target's inline filter (history candidates pass it, §13)

    @property
    def dst_table(self) -> TableSchema | None:
        return self.graph.table(self.dst) if self.dst else None

    def select(self) -> exp.Expression:
        """SELECT k, c, t, m: distinct (entity key, class, time) with their multiplicity ``m``."""
        value = FLATTEN[self.flatten](qcol(self.column, "r"))
        time = qcol(self.time, "r") if self.time else exp.cast(exp.Null(), "TIMESTAMP", copy=False)
        source: exp.Expression = table_ref(self.table, "r")
        joins: list[exp.Join] = []
        if self.parent_fk is not None:  # the entity row joined to its parent's value
            ent = self.graph.table(self.entity)
            key = qcol(ent.primary_key, "e")
            joins.append(exp.Join(this=source, on=exp.EQ(this=qcol(self.key, "r"),
                                                          expression=qcol(self.parent_fk, "e"))))
            source = table_ref(self.entity, "e")
        else:
            key = qcol(self.key, "r")
        where = and_all([_not_null(key.copy()), _not_null(qcol(self.time, "r")) if self.time else None])
        inner = exp.select(_as(key, "k"), _as(value, "c"), _as(time, "t"), copy=False).from_(source, copy=False)
        for j in joins:
            inner = inner.join(j, copy=False)
        inner = inner.where(where, copy=False)
        kct = [exp.column("k"), exp.column("c"), exp.column("t")]
        return exp.select(*kct, _as(exp.Count(this=exp.Star()), "m"), copy=False) \
            .from_(inner.subquery(copy=False), copy=False).where(_not_null(exp.column("c")), copy=False) \
            .group_by(*(c.copy() for c in kct), copy=False)


def _as(e: exp.Expression, name: str) -> exp.Alias:
    return exp.alias_(e, name, copy=False)


def _not_null(e: exp.Expression) -> exp.Expression:
    return exp.Not(this=exp.Is(this=e, expression=exp.Null()))


FLATTEN: dict[str, Callable[[exp.Expression], exp.Expression]] = {  # the class values of one row
    "none": lambda value: value,
    "list": lambda value: exp.Explode(this=value),
    "split": lambda value: exp.Explode(this=exp.Split(this=value, expression=exp.Literal.string("|"))),
}


def _flatten(column_dtype: Dtype, is_list_distinct: bool) -> str:
    if column_dtype.is_list:
        return "list"
    if column_dtype is Dtype.STRING and not is_list_distinct:
        return "split"
    return "none"


def event_source(vq: ValidatedQuery) -> EventSource:
    """The event source of a pair task's target."""
    graph, target = vq.graph, vq.query.target
    static = vq.kind is QueryKind.STATIC
    if isinstance(target, ast.Aggregation):
        column = target.column
        assert isinstance(column, ast.Column)
        table = graph.table(column.table)
        edge = graph.edges_between(table.name, vq.entity_table)[0]
        dtype = table.columns[column.name].dtype
        is_ld = target.func is AggFunc.LIST_DISTINCT
        flatten = "none" if vq.task_type.is_link_prediction else _flatten(dtype, is_ld)
        return EventSource(graph, vq.entity_table, table.name, column.name, edge.fkey, table.time_column,
                           flatten, None, vq.dst_table if vq.task_type.is_link_prediction else None,
                           history=not static, filter=target.filter)
    assert isinstance(target, ast.Column)  # a static multilabel target: a column of the entity or a parent
    table = graph.table(target.table)
    dtype = table.columns[target.name].dtype
    if target.table == vq.entity_table:
        return EventSource(graph, vq.entity_table, table.name, target.name, vq.entity_pk, None,
                           _flatten(dtype, False), None, None, history=False)
    edge = graph.edges_between(vq.entity_table, target.table)[0]
    return EventSource(graph, vq.entity_table, table.name, target.name, table.primary_key, None,
                       _flatten(dtype, False), edge.fkey, None, history=False)
