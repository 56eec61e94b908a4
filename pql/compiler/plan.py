"""The plan (spec §11.1): aggregation CTEs and the scopes that resolve columns and aggregations.

An aggregation CTE computes, for every (key, anchor) pair that has input, the value ``v`` and the
input count ``n``. It joins the aggregated table to the ``anchors`` CTE on the window only (a range
join DuckDB executes as a merge join), so every anchor is handled in one statement and no row is
paired with anchors whose window it is not in. It groups by (key, anchor index): small integers
whose statistics let DuckDB use its perfect-hash aggregate. Keys without input get the empty-window value (or
are undefined) when a scope LEFT JOINs the CTE on (key, anchor). At evenly spaced anchors, DuckDB
SQL replaces the range join with anchor-index arithmetic (the same columns): running counts and
expanded rows (running.py), or per-bucket partials at a few anchors (buckets.py).

A *scope* is the row an expression is evaluated against: the entity row of the final query
(:class:`EntityScope`) or a row of an aggregated table inside a CTE (:class:`RowScope`). Scopes add
the joins they need lazily: one-hop parents, nested aggregation CTEs keyed by the row's primary
key and the example's anchor (§7.5: never the outer row's time).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from pql import ast
from pql.graph import Edge, Graph
from pql.validated import ValidatedQuery

from .aggregations import AGGREGATIONS, AggInput
from .buckets import bucket_eligible, bucketed_select
from .conditions import Operand, compile_condition
from .running import (EXPANDED, AnchorGrid, Destination, expanded_rows, expansion_eligible, member_ranges,
                      running_count_select, running_eligible)
from .sqlbuild import (ANCHOR, ANCHOR_INDEX, COUNT, ENTITY, KEY, VALUE, and_all, col, existence, filtered,
                       inner_join, left_join, table_ref)
from .timeunits import interval_add

__all__ = ["Planner", "EntityScope", "RowScope", "ROW_NUMBER"]

ROW_NUMBER = "__pql_row"  # source row order, for FIRST/LAST over a table without primary key
_SAME = object()  # a window bound equal to the enclosing join's, so not repeated


def _edge(graph: Graph, src: str, dst: str) -> Edge:
    edges = graph.edges_between(src, dst)
    if not edges:  # the validator rules this out (E105/E109); a bug if reached
        raise AssertionError(f"no edge {src} -> {dst}")
    return edges[0]


class _BaseScope(abc.ABC):
    """Joins and name resolution shared by both scopes."""

    def __init__(self, planner: "Planner", table: str, anchor: exp.Expression | None,
                 anchor_index: exp.Expression | None) -> None:
        self.planner = planner
        self.graph = planner.graph
        self.table = table
        self.anchor = anchor  # the example's anchor time (visibility)
        self.anchor_index = anchor_index  # its index: the join key of aggregation CTEs
        self.joins: list[exp.Join] = []
        self._parents: dict[Edge, str] = {}
        self._aggs: dict[str, str] = {}

    # Subclasses: the alias of the scope's own row, and the key children join on.
    @abc.abstractmethod
    def own_alias(self) -> str:
        """The alias of the scope's own row."""

    @abc.abstractmethod
    def child_key(self) -> exp.Expression:
        """The key that children of this scope join on."""

    def _parent_alias(self, edge: Edge) -> str:
        if edge not in self._parents:
            alias = f"j{len(self._parents) + 1}"
            self._parents[edge] = alias
            parent = self.graph.table(edge.dst_table)
            on = exp.EQ(this=col(parent.primary_key, alias), expression=col(edge.fkey, self.own_alias()))
            self.joins.append(left_join(table_ref(edge.dst_table, alias), on))
        return self._parents[edge]

    def column(self, node: ast.Column) -> exp.Expression:
        if node.table == self.table:
            alias = self.own_alias()
        else:
            alias = self._parent_alias(_edge(self.graph, self.table, node.table))
        expr: exp.Expression = col(node.name, alias)
        if node.name == self.graph.table(node.table).end_time_column and self.anchor is not None:
            # §7.5: an end time later than the anchor reads as NULL.
            expr = exp.Case(ifs=[exp.If(this=exp.GT(this=expr.copy(), expression=self.anchor.copy()),
                                        true=exp.cast(exp.Null(), "TIMESTAMP"))], default=expr)
        return expr

    # Whether this scope's aggregations may share one CTE per window group (see Planner.shared_cte).
    shares_ctes = False

    def aggregate(self, node: ast.Aggregation, *, dst_valid: bool = False) -> Operand:
        edge = _edge(self.graph, node.table, self.table)
        if self.shares_ctes:
            name, windowed, v_name, n_name = self.planner.shared_cte(node, edge, dst_valid=dst_valid)
        else:
            (name, windowed), v_name, n_name = self.planner.aggregation_cte(node, edge, dst_valid=dst_valid), VALUE, COUNT
        if name not in self._aggs:
            alias = f"g{len(self._aggs) + 1}"
            self._aggs[name] = alias
            on = [exp.EQ(this=col(KEY, alias), expression=self.child_key())]
            if windowed:
                on.append(exp.EQ(this=col(ANCHOR_INDEX, alias), expression=self.anchor_index.copy()))
            self.joins.append(left_join(table_ref(name, alias), and_all(on)))
        alias = self._aggs[name]
        spec = AGGREGATIONS[node.func]
        v, n = col(v_name, alias), col(n_name, alias)
        value = exp.Coalesce(this=v, expressions=[spec.empty()]) if spec.empty else v
        dtype = self.planner.column_dtype(node.column)
        return Operand(value, spec.result_dtype(dtype),
                       spec.definedness(v.copy(), n, list_input=bool(dtype and dtype.is_list)))

    def operand(self, node: ast.Column | ast.Aggregation) -> Operand:
        if isinstance(node, ast.Aggregation):
            return self.aggregate(node)
        return Operand(self.column(node), self.planner.column_dtype(node))


class RowScope(_BaseScope):
    """A row ``r`` of an aggregated table inside its CTE; the anchor is ``a.ANCHOR_TIMESTAMP``."""

    def own_alias(self) -> str:
        return "r"

    def child_key(self) -> exp.Expression:
        return col(self.graph.table(self.table).primary_key, "r")


class EntityScope(_BaseScope):
    """The example (``p.ENTITY``, ``p.ANCHOR_TIMESTAMP``) of the final query, with its entity row ``e``."""

    shares_ctes = True

    def __init__(self, planner: "Planner") -> None:
        super().__init__(planner, planner.vq.entity_table, col(ANCHOR, "p"), col(ANCHOR_INDEX, "p"))
        self._entity_joined = False

    def own_alias(self) -> str:
        if not self._entity_joined:
            self._entity_joined = True
            on = exp.EQ(this=col(self.planner.vq.entity_pk, "e"), expression=col(ENTITY, "p"))
            self.joins.insert(0, inner_join(table_ref(self.table, "e"), on))
        return "e"

    def child_key(self) -> exp.Expression:
        return col(ENTITY, "p")


@dataclass
class _SharedGroup:
    """Aggregations of the final query over the same rows (table, key, inline filter, link validity,
    unit) but other windows or functions: one CTE joins the anchors on the union of the windows and
    gives each member its own columns, its rows picked by ``FILTER (WHERE ...)``. Like a hand-written
    query, past features and future labels then cost one scan, one range join and one aggregate."""

    name: str
    edge: Edge
    dst_valid: bool
    members: list[ast.Aggregation] = field(default_factory=list)

    def columns(self, j: int) -> tuple[str, str]:
        return _member_columns(j)


def _member_columns(j: int) -> tuple[str, str]:
    """The value and count columns of the j-th aggregation of a CTE."""
    return (VALUE, COUNT) if j == 0 else (f"{VALUE}{j}", f"{COUNT}{j}")


class Planner:
    """Builds the aggregation CTEs (deduplicated structurally) for one validated query."""

    def __init__(self, vq: ValidatedQuery, grid: AnchorGrid | None = None, *, portable: bool = False) -> None:
        self.vq = vq
        self.graph = vq.graph
        self.grid = grid  # evenly spaced anchors: COUNTs may use running counts (running.py)
        self.portable = portable  # SQL for another engine: no DuckDB-only forms
        self._ctes: list[tuple[str, exp.Select]] = []
        self._names: dict[Any, tuple[str, bool]] = {}
        self._groups: dict[Any, _SharedGroup] = {}
        self._finished = False
        self._count = 0

    def _new_name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    @property
    def ctes(self) -> list[tuple[str, exp.Select]]:
        """Every CTE, in dependency order (building the shared groups on first access)."""
        if not self._finished:
            self._finished = True
            for group in self._groups.values():
                self._ctes.append((group.name, self._build(group.members, group.edge, group.dst_valid)))
        return self._ctes

    def shared_cte(self, node: ast.Aggregation, edge: Edge, *, dst_valid: bool = False) -> tuple[str, bool, str, str]:
        """The CTE for ``node`` shared with the other aggregations of its group (see _SharedGroup):
        its name, whether it is keyed by anchor, and the value and count columns of ``node``."""
        if self._finished:  # the final query's aggregations are all requested before the CTEs are read
            raise AssertionError("shared CTE requested after the plan was built")
        window = node.window
        key = (node.table, edge, node.filter, dst_valid, window.unit if window is not None else None)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _SharedGroup(self._new_name("agg"), edge, dst_valid)
        if node not in group.members:
            group.members.append(node)
        v, n = group.columns(group.members.index(node))
        return group.name, window is not None, v, n

    def column_dtype(self, node: ast.Column | ast.Wildcard):
        if isinstance(node, ast.Wildcard):
            return None
        c = self.graph.column(node.table, node.name)
        return c.dtype if c is not None else None

    def aggregation_cte(self, node: ast.Aggregation, edge: Edge, *, dst_valid: bool = False) -> tuple[str, bool]:
        """The CTE name for ``node`` keyed by ``edge.fkey``; and whether it is keyed by anchor too."""
        key = (node, edge, dst_valid)
        if key not in self._names:
            select = self._build([node], edge, dst_valid)
            name = self._new_name("agg")
            self._ctes.append((name, select))
            self._names[key] = (name, node.window is not None)
        return self._names[key]

    def _source(self, node: ast.Aggregation, nodes: list[ast.Aggregation]) -> exp.Expression:
        """The aggregated table as ``r``; numbered rows when FIRST/LAST needs source order."""
        table = self.graph.table(node.table)
        if any(n.func in (ast.AggFunc.FIRST, ast.AggFunc.LAST) for n in nodes) and table.primary_key is None:
            numbered = exp.select(exp.Star(), exp.alias_(exp.Window(this=exp.RowNumber()), ROW_NUMBER, quoted=True)
                                  ).from_(table_ref(node.table))
            return exp.Subquery(this=numbered, alias=exp.TableAlias(this=exp.to_identifier("r")))
        return table_ref(node.table, "r")

    def _order(self, node: ast.Aggregation) -> exp.Expression:
        table = self.graph.table(node.table)
        keys = [col(table.time_column, "r")] if table.time_column else []
        keys.append(col(table.primary_key or ROW_NUMBER, "r"))
        return keys[0] if len(keys) == 1 else exp.Tuple(expressions=keys)

    def _build(self, nodes: list[ast.Aggregation], edge: Edge, dst_valid: bool) -> exp.Select:
        """One CTE over the rows of ``nodes`` (same table, filter and unit): (key[, anchor index]) and
        a value and count column per node. A single node restricts its rows in WHERE; several share
        the union of their windows and each aggregate keeps its own rows with FILTER."""
        node = nodes[0]
        table = self.graph.table(node.table)
        windowed = node.window is not None
        anchor = col(ANCHOR_INDEX, "a") if windowed else None
        scope = RowScope(self, node.table, col(ANCHOR, "a") if windowed else None, anchor)
        fk = col(edge.fkey, "r")
        time_col = col(table.time_column, "r") if windowed else None
        where: list[exp.Expression] = [exp.Not(this=exp.Is(this=fk.copy(), expression=exp.Null()))]
        joins: list[exp.Join] = []
        running = windowed and running_eligible(nodes, self.graph, self.grid, dst_valid)
        expand = windowed and not running and expansion_eligible(nodes, self.graph, self.grid)
        bucketed = windowed and not running and not expand and bucket_eligible(nodes, self.graph, self.grid, dst_valid)
        members = member_ranges(nodes) if expand else []
        if expand:  # each row repeated at the anchor indexes whose window holds it (running.py)
            anchor = col(EXPANDED, "r")
        elif windowed and not bucketed:
            starts = [n.window.start for n in nodes]
            start = None if None in starts else min(starts)
            end = max(n.window.end for n in nodes)
            joins.append(inner_join(table_ref("anchors", "a"), self._window(start, end, node.window.unit, time_col)))
        if node.filter is not None:
            cond = compile_condition(node.filter, scope)
            where.extend(cond.defined)
            where.append(cond.expr)
        if dst_valid and not expand:
            where.append(self._destination_valid(node))
        if running:
            return self._running(nodes, fk, time_col, where, scope.joins)
        if bucketed:
            return self._bucketed(nodes, fk, time_col, where, scope.joins)
        group = [fk.copy()] + ([anchor.copy()] if anchor is not None else [])
        projections = [exp.alias_(fk.copy(), KEY, quoted=True)]
        if anchor is not None:
            projections.append(exp.alias_(anchor.copy(), ANCHOR_INDEX, quoted=True))
        for j, member in enumerate(nodes):
            own: list[exp.Expression] = []
            if members:  # the member's own anchor index range
                lo, hi = members[j]
                own.append(exp.Between(this=anchor.copy(), low=col(lo, "r"), high=col(hi, "r")))
            elif len(nodes) > 1 and windowed:  # the union's join already applies the bounds it shares
                w = member.window
                own += self._window_parts(w.start if w.start != start else _SAME, w.end if w.end != end else _SAME,
                                          w.unit, time_col)
            value_col = None
            if isinstance(member.column, ast.Column):
                value_col = col(member.column.name, "r")
                own.append(exp.Not(this=exp.Is(this=value_col.copy(), expression=exp.Null())))
            dtype = self.column_dtype(member.column)
            value = AGGREGATIONS[member.func].build(
                AggInput(value_col, self._order(member), bool(dtype and dtype.is_list), dtype))
            count: exp.Expression = exp.Count(this=exp.Star())
            if len(nodes) == 1:
                where.extend(own)
            elif own:
                value, count = filtered(value, and_all(own)), filtered(count, and_all(own))
            v_name, n_name = _member_columns(j)
            projections += [exp.alias_(value, v_name, quoted=True), exp.alias_(count, n_name, quoted=True)]
        select = exp.select(*projections)
        for j in joins + scope.joins:
            select = select.join(j)
        select = select.where(and_all(where)).group_by(*group)
        source = self._source(node, nodes)
        if expand:
            internal = {EXPANDED} | {name for pair in members for name in pair}
            read = sorted({c.name for c in select.find_all(exp.Column) if c.table == "r"} - internal)
            source = expanded_rows(nodes, source=source, columns=read, time_col=time_col, grid=self.grid,
                                   destination=self._destination(node) if dst_valid else None)
        return select.from_(source)

    def _running(self, nodes: list[ast.Aggregation], fk: exp.Expression, time_col: exp.Expression,
                 where: list[exp.Expression], joins: list[exp.Join]) -> exp.Select:
        """The running-count form of a COUNT CTE (same columns as the range-join form)."""
        own = [[exp.Not(this=exp.Is(this=col(n.column.name, "r"), expression=exp.Null()))]
               if isinstance(n.column, ast.Column) else [] for n in nodes]
        if len(nodes) == 1:
            where, own = where + own[0], [[]]
        return running_count_select(nodes, source=self._source(nodes[0], nodes), key=fk, time_col=time_col,
                                    where=where, joins=joins, member_conditions=own,
                                    names=[_member_columns(j) for j in range(len(nodes))], grid=self.grid)

    def _bucketed(self, nodes: list[ast.Aggregation], fk: exp.Expression, time_col: exp.Expression,
                  where: list[exp.Expression], joins: list[exp.Join]) -> exp.Select:
        """The bucketed form of a COUNT/SUM/MIN/MAX CTE (buckets.py; same columns as the range join)."""
        values = [col(n.column.name, "r") if isinstance(n.column, ast.Column) else None for n in nodes]
        own = [[exp.Not(this=exp.Is(this=v.copy(), expression=exp.Null()))] if v is not None else [] for v in values]
        if len(nodes) == 1:
            where, own = where + own[0], [[]]
        return bucketed_select(nodes, source=self._source(nodes[0], nodes), key=fk, time_col=time_col, where=where,
                               joins=joins, values=values, member_conditions=own,
                               names=[_member_columns(j) for j in range(len(nodes))],
                               value_dtypes=[self.column_dtype(n.column) for n in nodes], grid=self.grid)

    def _window(self, start: int | None, end: int, unit: ast.TimeUnit, time_col: exp.Expression) -> exp.Expression:
        """§7.1: a + s*u < time <= a + e*u (no lower bound for -INF)."""
        return and_all(self._window_parts(start, end, unit, time_col))

    @staticmethod
    def _window_parts(start: int | None | object, end: int | object, unit: ast.TimeUnit,
                      time_col: exp.Expression) -> list[exp.Expression]:
        """The bounds of a window; a bound given as ``_SAME`` is left out."""
        anchor = col(ANCHOR, "a")
        parts = []
        if start is not None and start is not _SAME:
            parts.append(exp.GT(this=time_col.copy(), expression=interval_add(anchor.copy(), start, unit)))
        if end is not _SAME:
            parts.append(exp.LTE(this=time_col.copy(), expression=interval_add(anchor.copy(), end, unit)))
        return parts

    def _destination_valid(self, node: ast.Aggregation) -> exp.Expression:
        """§7.5: a link target counts only if its destination row exists at the anchor.

        A semi-join on (key, anchor index) against the CTE of valid destinations (destination
        rows x anchors, small), probed after the window join: it cannot multiply rows, and DuckDB
        cannot reorder it into a join of every destination-anchor pair with the child table."""
        assert isinstance(node.column, ast.Column)
        dst = self.graph.table(self.graph.foreign_key(node.table, node.column.name).dst_table)
        # A destination table without time columns is valid at every anchor: the semi-join needs
        # only its keys, not keys x anchors.
        windowed = node.window is not None and (dst.time_column or dst.end_time_column) is not None
        name = self._valid_destinations(dst.name, windowed)
        on = [exp.EQ(this=col(KEY, "d"), expression=col(node.column.name, "r"))]
        if windowed:
            on.append(exp.EQ(this=col(ANCHOR_INDEX, "d"), expression=col(ANCHOR_INDEX, "a")))
        return exp.Exists(this=exp.select(exp.Literal.number(1)).from_(table_ref(name, "d")).where(and_all(on)))

    def _destination(self, node: ast.Aggregation) -> Destination:
        """The link target's destination table, joined on its key, for the expanded rows' §7.5 check."""
        assert isinstance(node.column, ast.Column)
        dst = self.graph.table(self.graph.foreign_key(node.table, node.column.name).dst_table)
        on = exp.EQ(this=col(dst.primary_key, "d"), expression=col(node.column.name, "r"))
        return Destination(table_ref(dst.name, "d"), on, col(dst.time_column, "d") if dst.time_column else None,
                           col(dst.end_time_column, "d") if dst.end_time_column else None)

    def _valid_destinations(self, table: str, windowed: bool) -> str:
        key = ("valid", table, windowed)
        if key not in self._names:
            dst = self.graph.table(table)
            pk = col(dst.primary_key, "d")
            select = exp.select(exp.alias_(pk, KEY, quoted=True)).from_(table_ref(table, "d"))
            where = [exp.Not(this=exp.Is(this=pk.copy(), expression=exp.Null()))]
            if windowed:
                alive = existence(col(dst.time_column, "d") if dst.time_column else None,
                                  col(dst.end_time_column, "d") if dst.end_time_column else None, col(ANCHOR, "a"))
                select = select.select(exp.alias_(col(ANCHOR_INDEX, "a"), ANCHOR_INDEX, quoted=True))
                select = select.join(inner_join(table_ref("anchors", "a"), alive) if alive is not None
                                     else exp.Join(this=table_ref("anchors", "a"), kind="CROSS"))
            name = self._new_name("valid")
            self._ctes.append((name, select.where(and_all(where))))
            self._names[key] = (name, windowed)
        return self._names[key][0]
