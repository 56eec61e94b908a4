"""The events of a pair task: which (entity, class, time) rows the target is made of.

Link prediction: the rows of the target table ``T`` (``LIST_DISTINCT(T.fk, …)``): entity key
through T's foreign key to the entity, class = the destination key, time = T's time column.
Multilabel: the values of the target column (lists flattened, multicategorical strings split on
'|' as the compiler does): a child table's rows for a temporal target, or for a static target the
entity's own (or its parent's) column, which is the label itself and never a visible history.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from pql import ast
from pql.ast import AggFunc, QueryKind
from pql.graph import Dtype, Graph, TableSchema
from pql.validated import ValidatedQuery

from .sql import tpl

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
        if self.flatten == "list":
            value = "UNNEST(r.__col)"
        elif self.flatten == "split":
            value = "UNNEST(STRING_SPLIT(r.__col, '|'))"
        else:
            value = "r.__col"
        time = "r.__time" if self.time else "CAST(NULL AS TIMESTAMP)"
        subs = {"tbl": self.table, "col": self.column, "key": self.key}
        if self.time:
            subs["time"] = self.time
        if self.parent_fk is not None:  # the entity row joined to its parent's value
            ent = self.graph.table(self.entity)
            subs.update({"ent": self.entity, "epk": ent.primary_key, "pfk": self.parent_fk})
            source = "__ent AS e JOIN __tbl AS r ON r.__key = e.__pfk"
            key = "e.__epk"
        else:
            source, key = "__tbl AS r", "r.__key"
        where = f"{key} IS NOT NULL" + (" AND r.__time IS NOT NULL" if self.time else "")
        inner = f"SELECT {key} AS k, {value} AS c, {time} AS t FROM {source} WHERE {where}"
        return tpl(f"SELECT k, c, t, COUNT(*) AS m FROM ({inner}) WHERE c IS NOT NULL GROUP BY k, c, t", **subs)


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
