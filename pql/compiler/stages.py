"""The statements of each stage (spec §10.3, §10.5, §10.6, §11.1): training, labels, prediction.

Each is one sqlglot ``Select`` chaining CTEs: ``anchors`` (VALUES of TIMESTAMP literals),
``population`` (entity x anchor with existence), the aggregation CTEs of the plan, then the final
SELECT with the entity filter, ASSUMING and the target's definedness as WHERE predicates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Sequence

from sqlglot import exp

from pql import ast
from pql.ast import AggFunc, QueryKind, TaskType
from pql.graph import Dtype
from pql.validated import ValidatedQuery

from .conditions import CompiledCondition, compile_condition, literal_sql
from .options import SplitSpec
from .plan import EntityScope, Planner
from .running import AnchorGrid
from .splits import SPLIT_TIME, split_case, static_split_select
from .sqlbuild import (ANCHOR, ANCHOR_INDEX, ENTITY, SPLIT, TARGET, anchors_cte, and_all, col, cross_join,
                       existence, table_ref)
from .timeunits import timestamp_literal

__all__ = ["StageBuilder"]


def _sorted_distinct(expr: exp.Expression) -> exp.Expression:
    return exp.ArraySort(this=exp.ArrayDistinct(this=expr))


def _as_label_list(expr: exp.Expression, dtype: Dtype | None, is_list_distinct: bool) -> exp.Expression:
    """Multilabel TARGETs are sorted lists of distinct values (§12)."""
    if is_list_distinct:
        return expr
    if dtype is Dtype.STRING:  # a multicategorical string column: labels separated by '|'
        return _sorted_distinct(exp.Split(this=expr, expression=exp.Literal.string("|")))
    return _sorted_distinct(expr)


_TARGET_TYPES: dict[TaskType, Callable[[exp.Expression, Dtype | None, bool], exp.Expression]] = {
    TaskType.BINARY_CLASSIFICATION: lambda e, d, ld: exp.cast(e, "BOOLEAN"),
    TaskType.REGRESSION: lambda e, d, ld: exp.cast(e, "DOUBLE"),
    TaskType.FORECASTING: lambda e, d, ld: exp.cast(e, "DOUBLE"),
    TaskType.MULTICLASS_CLASSIFICATION: lambda e, d, ld: e,
    TaskType.MULTILABEL_CLASSIFICATION: _as_label_list,
    TaskType.MULTILABEL_RANKING: _as_label_list,
    TaskType.TEMPORAL_LINK_PREDICTION: lambda e, d, ld: e,
    TaskType.STATIC_LINK_PREDICTION: lambda e, d, ld: e,
}


@dataclass
class _Target:
    expr: exp.Expression
    defined: list[exp.Expression]
    nullable: bool = False  # a defined value may still be NULL (static columns and conditions)


def _values_cte(times: Sequence[dt.datetime | None]) -> exp.Select:
    rows = [exp.Tuple(expressions=[timestamp_literal(t)]) for t in times]
    values = exp.Values(expressions=rows, alias=exp.TableAlias(this=exp.to_identifier("v"),
                                                                columns=[exp.to_identifier(ANCHOR, quoted=True)]))
    return exp.select(exp.Star()).from_(values)


class StageBuilder:
    """Builds the statement of each stage for one validated query."""

    def __init__(self, vq: ValidatedQuery) -> None:
        # DuckDB-only plan shapes (running counts) are allowed unless portable SQL is asked for.
        self.portable = False
        self.vq = vq
        self.graph = vq.graph
        self.entity = self.graph.table(vq.entity_table)
        self.static = vq.kind is QueryKind.STATIC

    # -- pieces -----------------------------------------------------------------------------------
    def _planner(self, anchors: Sequence[dt.datetime | None]) -> Planner:
        return Planner(self.vq, None if self.portable else AnchorGrid.of(anchors), portable=self.portable)

    def _population(self, *, exists: bool, ids: Sequence[ast.Node] | None = None) -> exp.Select:
        pk = col(self.vq.entity_pk, "e")
        anchor = col(ANCHOR, "a")
        where = [exp.Not(this=exp.Is(this=pk.copy(), expression=exp.Null()))]
        if ids is not None:
            where.append(exp.In(this=pk.copy(), expressions=[literal_sql(i) for i in ids]))
        if exists:
            t, end = self.entity.time_column, self.entity.end_time_column
            alive = existence(col(t, "e") if t else None, col(end, "e") if end else None, anchor)
            if alive is not None:
                where.append(alive)
        return (exp.select(exp.alias_(pk, ENTITY, quoted=True), exp.alias_(anchor.copy(), ANCHOR, quoted=True),
                           exp.alias_(col(ANCHOR_INDEX, "a"), ANCHOR_INDEX, quoted=True))
                .from_(table_ref(self.entity.name, "e")).join(cross_join(table_ref("anchors", "a")))
                .where(and_all(where)))

    def _exists_needed(self, anchors: Sequence[dt.datetime | None]) -> bool:
        return not all(a is None for a in anchors)

    def _condition(self, node: ast.Node | None, scope: EntityScope) -> list[exp.Expression]:
        if node is None:
            return []
        cc = compile_condition(node, scope)
        return cc.defined + [cc.expr]

    def _target(self, scope: EntityScope) -> _Target:
        vq, target = self.vq, self.vq.query.target
        if isinstance(target, ast.CONDITION_TYPES):
            cc: CompiledCondition = compile_condition(target, scope)
            expr = cc.expr
            if self.static and cc.operands:  # §7.4: a NULL operand leaves a static condition unlabelled
                tests = [exp.Is(this=o.copy(), expression=exp.Null()) for o in cc.operands]
                any_null = tests[0]
                for t in tests[1:]:
                    any_null = exp.Or(this=any_null, expression=t)
                expr = exp.Case(ifs=[exp.If(this=any_null, true=exp.cast(exp.Null(), "BOOLEAN"))], default=expr)
            return _Target(exp.cast(expr, "BOOLEAN"), cc.defined, nullable=self.static)
        if isinstance(target, ast.Aggregation):
            operand = scope.aggregate(target, dst_valid=vq.task_type.is_link_prediction)
        else:
            operand = scope.operand(target)
        is_ld = isinstance(target, ast.Aggregation) and target.func is AggFunc.LIST_DISTINCT
        expr = _TARGET_TYPES[vq.task_type](operand.expr, operand.dtype, is_ld)
        return _Target(expr, [operand.defined] if operand.defined is not None else [],
                       nullable=not isinstance(target, ast.Aggregation))

    def _with(self, select: exp.Select, anchors: exp.Select, population: exp.Select, planner: Planner,
              extra: Sequence[tuple[str, exp.Select]] = ()) -> exp.Select:
        ctes = [("anchors", anchors), ("population", population)] + planner.ctes + list(extra)
        for name, body in ctes:
            # DuckDB: inline the anchors wherever used, so their statistics reach the aggregates
            select = select.with_(exp.to_identifier(name), as_=body, materialized=False if name == "anchors" else None)
        return select

    def _final(self, scope: EntityScope, projections: list[exp.Expression], where: list[exp.Expression]) -> exp.Select:
        select = exp.select(col(ENTITY, "p"), col(ANCHOR, "p"), *projections).from_(table_ref("population", "p"))
        for j in scope.joins:
            select = select.join(j)
        cond = and_all(where)
        return select.where(cond) if cond is not None else select

    def _labelled(self, anchors: Sequence[dt.datetime | None], *, extra_time: bool = False
                  ) -> tuple[exp.Select, Planner, exp.Select]:
        """The final SELECT of labelled rows (training/labels), its planner and population."""
        planner = self._planner(anchors)
        scope = EntityScope(planner)
        where = self._condition(self.vq.query.entity.filter, scope)
        if self.vq.query.assuming is not None:
            where += self._condition(self.vq.query.assuming.condition, scope)
        target = self._target(scope)
        where += target.defined
        if target.nullable:
            where.append(exp.Not(this=exp.Is(this=target.expr.copy(), expression=exp.Null())))
        projections = [exp.alias_(target.expr.copy(), TARGET, quoted=True)]
        if extra_time:
            projections.append(exp.alias_(col(self.entity.time_column, scope.own_alias()), SPLIT_TIME, quoted=True))
        population = self._population(exists=self._exists_needed(anchors))
        return self._final(scope, projections, where), planner, population

    # -- stages -----------------------------------------------------------------------------------
    def labels(self, anchors: Sequence[dt.datetime | None]) -> exp.Select:
        """ENTITY, ANCHOR_TIMESTAMP, TARGET for exactly ``anchors`` (ASSUMING applied, no SPLIT)."""
        final, planner, population = self._labelled(anchors)
        final = final.order_by(col(ANCHOR, "p"), col(ENTITY, "p"))
        return self._with(final, anchors_cte(anchors, timestamp_literal), population, planner)

    def training(self, anchors: Sequence[dt.datetime | None], split: SplitSpec,
                 assignment: dict[dt.datetime, str] | None, seed: int) -> exp.Select:
        if assignment is not None:  # temporal: a CASE over anchor thresholds
            final, planner, population = self._labelled(anchors)
            final = final.select(exp.alias_(split_case(assignment, col(ANCHOR, "p")), SPLIT, quoted=True))
            final = final.order_by(col(ANCHOR, "p"), col(ENTITY, "p"))
            return self._with(final, anchors_cte(anchors, timestamp_literal), population, planner)
        final, planner, population = self._labelled(anchors, extra_time=split.kind == "entity_time")
        outer = static_split_select(split, "labelled", seed)
        return self._with(outer, anchors_cte(anchors, timestamp_literal), population, planner,
                          [("labelled", final)])

    def prediction(self, anchor: dt.datetime | None, horizons: Sequence[dt.datetime] | None = None,
                   entity_filter: ast.Node | None = None) -> exp.Select:
        """ENTITY, ANCHOR_TIMESTAMP at ``anchor`` (§10.5, §10.6); ``horizons``: forecasting anchors."""
        planner = self._planner([anchor])
        scope = EntityScope(planner)
        ids = self.vq.query.entity.ids
        where: list[exp.Expression] = []
        if ids is None:
            where += self._condition(entity_filter, scope)
            if self.static:  # predict the entities whose target is unknown
                target = self._target(scope)
                known = and_all(target.defined + ([exp.Not(this=exp.Is(this=target.expr, expression=exp.Null()))]
                                                  if target.nullable else []))
                where.append(exp.Not(this=exp.Coalesce(this=exp.Paren(this=known), expressions=[exp.false()])))
        population = self._population(exists=ids is None and anchor is not None, ids=ids)
        select = self._final(scope, [], where)
        extra: list[tuple[str, exp.Select]] = []
        if horizons:
            select = select.join(cross_join(table_ref("horizons", "h")))
            select.set("expressions", [col(ENTITY, "p"), exp.alias_(col(ANCHOR, "h"), ANCHOR, quoted=True)])
            extra.append(("horizons", _values_cte(horizons)))
            select = select.order_by(col(ANCHOR, "h"), col(ENTITY, "p"))
        else:
            select = select.order_by(col(ANCHOR, "p"), col(ENTITY, "p"))
        return self._with(select, anchors_cte([anchor], timestamp_literal), population, planner, extra)
