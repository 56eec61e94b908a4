"""Stage 5, target and problem (PQL-SPEC §8, §9.6): the task type, step by step, and the checks
that depend on it."""

from __future__ import annotations

from dataclasses import dataclass

from pql.ast import AggFunc, Aggregation, Classify, Column, Forecast, Rank, TaskType
from pql.catalog import AGGREGATIONS
from pql.graph import Dtype, Edge, Stype
from pql.validation.context import Clause, Ctx
from pql.formatter import format_name, format_node

__all__ = ["Inference", "infer_task"]

_CONDITION_TYPES = (Dtype.BOOL, Stype.CATEGORICAL)


@dataclass
class Inference:
    task_type: TaskType | None = None
    dst_table: str | None = None
    dtype: Dtype | None = None
    stype: Stype | None = None


def _kind(ctx: Ctx) -> str:
    target = ctx.query.target
    if not isinstance(target, (Column, Aggregation)):
        return "a condition"
    dtype, stype = ctx.types[id(target)]
    return "bool" if dtype is Dtype.BOOL else str(stype)


def _rank_error(ctx: Ctx) -> None:
    k = ctx.query.problem.k
    ctx.error("E402", f"RANK needs a set-valued target (LIST_DISTINCT or a multicategorical column); "
                      f"'{format_node(ctx.query.target)}' is {_kind(ctx)} — drop RANK TOP {k}", ctx.query.problem)


def _scalar_task(ctx: Ctx, task: TaskType) -> TaskType | None:
    """Steps 1, 3 and 6: a single-valued target; RANK is E402, CLASSIFY is ignored (W103)."""
    problem = ctx.query.problem
    if isinstance(problem, Rank):
        _rank_error(ctx)
        return None
    if isinstance(problem, Classify):
        ctx.warn("W103", f"CLASSIFY has no effect on this target ({task.value})", problem)
    return task


def _link_fk(ctx: Ctx) -> Edge | None:
    target = ctx.query.target
    if isinstance(target, Aggregation) and target.func is AggFunc.LIST_DISTINCT and isinstance(target.column, Column):
        return ctx.graph.foreign_key(target.column.table, target.column.name)
    return None


def _entity_filter_columns(ctx: Ctx) -> list[Column]:
    """Columns of the entity table used inside the target's inline filters (reached by a parent hop)."""
    return [s.node for s in ctx.sites.columns
            if s.clause is Clause.TARGET and s.depth > 0 and s.node.table == ctx.entity
            and s.reference(ctx.entity) != ctx.entity]


def _step_condition(ctx: Ctx, inf: Inference) -> TaskType | None:
    if isinstance(ctx.query.problem, Forecast):
        ctx.error("E408", f"FORECAST needs a numerical target; '{format_node(ctx.query.target)}' is a condition",
                  ctx.query.target)
        return None
    inf.dtype, inf.stype = _CONDITION_TYPES
    return _scalar_task(ctx, TaskType.BINARY_CLASSIFICATION)


def _step_forecast(ctx: Ctx, inf: Inference) -> TaskType | None:
    target = ctx.query.target
    if not ctx.temporal:
        ctx.error("E407", "FORECAST needs a forward-looking aggregation such as SUM(t.c, 0, 7, days)", target)
    elif inf.stype is not Stype.NUMERICAL:
        ctx.error("E408", f"FORECAST needs a numerical target; '{format_node(target)}' is {_kind(ctx)}", target)
    elif not (isinstance(target, Aggregation) and AGGREGATIONS[target.func].forecastable):
        ctx.error("E409", f"FORECAST supports SUM, COUNT and COUNT_DISTINCT, not {target.func.value} "
                          "(undefined on empty timeframes)", target)
    else:
        return TaskType.FORECASTING
    return None


def _step_link(ctx: Ctx, inf: Inference, fk: Edge) -> TaskType | None:
    target: Aggregation = ctx.query.target
    problem = ctx.query.problem
    if fk.dst_table == ctx.entity:
        others = [e for e in ctx.graph.parents(fk.src_table) if e.dst_table != ctx.entity]
        hint = ""
        if others and ctx.graph.tables[others[0].dst_table].primary_key:
            dst = others[0].dst_table
            hint = f"; try FOR EACH {format_name(dst, table=True)}.{format_name(ctx.graph.tables[dst].primary_key)}"
        ctx.error("E411", f"'{format_node(target.column)}' points back to '{ctx.entity}': nothing to predict{hint}",
                  target.column)
        return None
    if isinstance(problem, Rank):
        for col in _entity_filter_columns(ctx):
            ctx.error("E412", f"link-prediction filter uses entity column '{format_node(col)}'; move it to "
                              "FOR EACH … WHERE", col)
        inf.dst_table = fk.dst_table
        return TaskType.TEMPORAL_LINK_PREDICTION if ctx.temporal else TaskType.STATIC_LINK_PREDICTION
    if isinstance(problem, Classify):
        if target.window is None:
            ctx.error("E410", "CLASSIFY needs a windowed LIST_DISTINCT; use RANK TOP k", problem)
            return None
        return TaskType.MULTILABEL_CLASSIFICATION
    ctx.error("E401", f"'{format_node(target)}' predicts a set; add RANK TOP k or CLASSIFY", target)
    return None


def _step_set(ctx: Ctx, inf: Inference) -> TaskType | None:
    problem = ctx.query.problem
    if isinstance(problem, Rank):
        return TaskType.MULTILABEL_RANKING
    if isinstance(problem, Classify):
        return TaskType.MULTILABEL_CLASSIFICATION
    ctx.error("E401", f"'{format_node(ctx.query.target)}' predicts a set; add RANK TOP k or CLASSIFY", ctx.query.target)
    return None


_STYPE_TASKS = {
    Stype.NUMERICAL: TaskType.REGRESSION,
    Stype.CATEGORICAL: TaskType.MULTICLASS_CLASSIFICATION,
    Stype.ID: TaskType.MULTICLASS_CLASSIFICATION,
}


def _step_value(ctx: Ctx, inf: Inference) -> TaskType | None:
    """Steps 3, 5, 6 and 7 for a column or aggregation target."""
    if inf.dtype is Dtype.BOOL:
        return _scalar_task(ctx, TaskType.BINARY_CLASSIFICATION)
    fk = _link_fk(ctx)
    if fk is not None:
        return _step_link(ctx, inf, fk)
    if inf.stype is Stype.MULTICATEGORICAL:
        return _step_set(ctx, inf)
    task = _STYPE_TASKS.get(inf.stype)
    if task is None:
        target = ctx.query.target
        ctx.error("E413", f"cannot predict '{format_node(target)}' of semantic type {inf.stype}", target)
        return None
    return _scalar_task(ctx, task)


def _is_entity_key(ctx: Ctx) -> bool:
    t = ctx.query.target
    return isinstance(t, Column) and t.table == ctx.entity and t.name == ctx.entity_pk


def infer_task(ctx: Ctx) -> Inference:
    """Spec §8; errors go to ``ctx``. Also reports W104 and W112."""
    target = ctx.query.target
    inf = Inference()
    if _is_entity_key(ctx):
        ctx.error("E414", f"'{format_node(target)}' is the entity key; predict another column", target)
        return inf
    if isinstance(target, (Column, Aggregation)):
        inf.dtype, inf.stype = ctx.types[id(target)]
        step = _step_forecast if isinstance(ctx.query.problem, Forecast) else _step_value
    else:
        step = _step_condition
    inf.task_type = step(ctx, inf)
    if inf.task_type is not None and inf.task_type.is_link_prediction:
        fk_dtype = ctx.types[id(target.column)][0]
        inf.dtype, inf.stype = {Dtype.INT: Dtype.LIST_INT, Dtype.STRING: Dtype.LIST_STRING}.get(
            fk_dtype, Dtype.OTHER), Stype.MULTICATEGORICAL
    if inf.task_type is not None and not inf.task_type.is_link_prediction:
        for col in _entity_filter_columns(ctx):
            ctx.warn("W104", f"entity column '{format_node(col)}' in a target filter; move it to FOR EACH … WHERE",
                     col)
    _leakage(ctx)
    return inf


def _leakage(ctx: Ctx) -> None:
    if ctx.temporal or ctx.graph.tables[ctx.entity].is_timed:
        return
    timed = ctx.graph.timed_tables
    if timed:
        names = ", ".join(f"'{t}'" for t in timed)
        ctx.warn("W112", f"possible leakage: the query is static and '{ctx.entity}' has no time column, but "
                         f"{names} {'has' if len(timed) == 1 else 'have'} one; the split is random", ctx.query.entity)
