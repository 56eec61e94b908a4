"""Per-call validation state: where every node sits in the query, and what each stage learnt.

``collect`` walks the query once and records every column, aggregation and comparison with its
clause (target, entity filter, ASSUMING), its depth inside inline filters and the aggregation
whose filter encloses it; the stages then iterate over these flat lists.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pql.ast import Aggregation, BoolOp, Comparison, Node, Not, Query, Span
from pql.errors import PQLError, PQLWarning
from pql.graph import ColumnSchema, Dtype, Edge, Graph, Stype
from pql.validated import CombinedWindow

__all__ = ["Clause", "Site", "Sites", "Ctx", "collect"]


class Clause(enum.Enum):
    TARGET = "target"
    WHERE = "entity filter"
    ASSUMING = "ASSUMING"
    KEY = "entity"


@dataclass(slots=True)
class Site:
    """One node and its place: ``depth`` counts enclosing inline filters; ``outer`` is the innermost
    aggregation whose filter holds the node (for an aggregation argument: the aggregation itself)."""

    node: Node
    clause: Clause
    depth: int
    outer: Aggregation | None

    def reference(self, entity: str) -> str:
        """The reference table R of §7.7: the entity at depth 0, else the enclosing aggregated table."""
        return entity if self.outer is None else self.outer.column.table


@dataclass(slots=True)
class Sites:
    columns: list[Site] = field(default_factory=list)  # columns used as operands or as the target
    args: list[Site] = field(default_factory=list)  # aggregation arguments (Column or Wildcard)
    aggs: list[Site] = field(default_factory=list)
    cmps: list[Site] = field(default_factory=list)


def collect(query: Query) -> Sites:
    sites = Sites()

    def cond(node: Node, clause: Clause, depth: int, outer: Aggregation | None) -> None:
        if isinstance(node, Comparison):
            sites.cmps.append(Site(node, clause, depth, outer))
            operand(node.left, clause, depth, outer)
        elif isinstance(node, BoolOp):
            cond(node.left, clause, depth, outer)
            cond(node.right, clause, depth, outer)
        elif isinstance(node, Not):
            cond(node.operand, clause, depth, outer)
        else:
            operand(node, clause, depth, outer)

    def operand(node: Node, clause: Clause, depth: int, outer: Aggregation | None) -> None:
        if isinstance(node, Aggregation):
            sites.aggs.append(Site(node, clause, depth, outer))
            sites.args.append(Site(node.column, clause, depth, node))
            if node.filter is not None:
                cond(node.filter, clause, depth + 1, node)
        else:
            sites.columns.append(Site(node, clause, depth, outer))

    cond(query.target, Clause.TARGET, 0, None)
    if query.entity.filter is not None:
        cond(query.entity.filter, Clause.WHERE, 0, None)
    if query.assuming is not None:
        cond(query.assuming.condition, Clause.ASSUMING, 0, None)
    return sites


class Ctx:
    """State shared by the stages of one ``validate`` call."""

    __slots__ = ("query", "graph", "source", "sites", "entity", "entity_pk", "schemas", "types", "edges",
                 "errors", "warnings", "temporal", "window")

    def __init__(self, query: Query, graph: Graph, source: str | None) -> None:
        self.query = query
        self.graph = graph
        self.source = source
        self.sites = collect(query)
        self.entity: str = query.entity.key.table
        self.entity_pk: str = query.entity.key.name
        self.schemas: dict[int, ColumnSchema] = {}  # id(Column) -> its column schema (names stage)
        self.types: dict[int, tuple[Dtype, Stype]] = {}  # id(Column | Aggregation) -> bound types
        self.edges: dict[int, Edge | None] = {}  # id(Column | Aggregation) -> one-hop edge (reachability)
        self.errors: list[PQLError] = []
        self.warnings: list[PQLWarning] = []
        self.temporal = False  # set by the windows stage
        self.window: CombinedWindow | None = None  # set by the windows stage for temporal queries

    def error(self, code: str, message: str, node: Node | None, hints: tuple[str, ...] | list[str] = ()) -> None:
        self.errors.append(PQLError(message, code=code, span=_span(node), hints=hints))

    def warn(self, code: str, message: str, node: Node | None, hints: tuple[str, ...] | list[str] = ()) -> None:
        w = PQLWarning(code, message, span=_span(node), hints=hints)
        if w not in self.warnings:
            self.warnings.append(w)

    def is_target_root(self, node: Node) -> bool:
        return node is self.query.target


def _span(node: Node | None) -> Span | None:
    return getattr(node, "span", None) if node is not None else None

