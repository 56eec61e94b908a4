"""The validated form of a query: the hand-off from the validator to the compiler.

``pql.validator.validate`` builds a :class:`ValidatedQuery`; ``pql.compiler`` reads it. Names are
resolved, types known, the task type inferred and the combined target window computed (spec §5,
§8, §10.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pql.ast import Node, Query, QueryKind, TaskType, TimeUnit
from pql.graph import Dtype, Edge, Graph, Stype

__all__ = ["CombinedWindow", "NodeInfo", "ValidatedQuery"]


@dataclass(frozen=True)
class CombinedWindow:
    """Spec §10.1, in the common unit ``unit`` (U).

    ``start`` (S) is the minimum start and ``end`` (E) the maximum end over the target-level
    aggregations; ``filter_start`` (F) is the minimum finite start among the aggregations of the
    entity filter and the target's inline filters (None when there are none).
    """

    unit: TimeUnit
    start: int
    end: int
    filter_start: int | None = None

    @property
    def length(self) -> int:
        """L = E - S."""
        return self.end - self.start


@dataclass(frozen=True)
class NodeInfo:
    """What the validator learnt about one Column or Aggregation node.

    ``table`` is the table the column lives in (the aggregated table for an aggregation);
    ``edge`` is the one-hop edge used to reach it from its reference table: for a column of a
    parent table, the edge child -> parent; for an aggregation, the edge aggregated -> reference.
    ``None`` when the column is the reference table's own.
    """

    dtype: Dtype
    stype: Stype
    table: str
    edge: Edge | None = None


@dataclass
class ValidatedQuery:
    query: Query
    graph: Graph
    task_type: TaskType
    kind: QueryKind
    entity_table: str
    entity_pk: str
    target_tables: tuple[str, ...]  # tables aggregated at the top level of the target
    dst_table: str | None = None  # link prediction: the table the predicted FK points at
    window: CombinedWindow | None = None  # None for static queries
    warnings: list[Any] = field(default_factory=list)  # PQLWarning
    target_dtype: Dtype | None = None
    target_stype: Stype | None = None
    source: str | None = None  # the query text, when validated from text
    _info: dict[int, tuple[Node, NodeInfo]] = field(default_factory=dict, repr=False)

    def info(self, node: Node) -> NodeInfo:
        """Bound dtype/stype/table/edge of a Column or Aggregation node of ``self.query``."""
        return self._info[id(node)][1]

    def set_info(self, node: Node, info: NodeInfo) -> None:
        self._info[id(node)] = (node, info)  # keep the node alive so id() stays unique
