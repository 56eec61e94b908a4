"""Validate a query against a graph (PQL-SPEC §7-§9): ``Query`` + ``Graph`` -> ``ValidatedQuery``.

Stages run in order names -> reachability -> types -> windows and time -> target and problem.
Each collects all of its errors; a stage with errors stops the later ones, so errors do not
cascade. All errors are raised together as one :class:`PQLValidationError`; warnings (the
parser's and the validator's) are returned on the validated query.
"""

from __future__ import annotations

from pql.ast import Aggregation, Column, Query, QueryKind
from pql.errors import PQLValidationError, PQLWarning
from pql.graph import Graph
from pql.validated import NodeInfo, ValidatedQuery
from pql.validation.context import Clause, Ctx
from pql.validation.names import check_names
from pql.validation.reach import check_reachability
from pql.validation.target import infer_task
from pql.validation.types import check_types
from pql.validation.windows import check_windows

__all__ = ["validate", "STAGES"]

STAGES = (
    ("names", check_names),
    ("reachability", check_reachability),
    ("types", check_types),
    ("windows", check_windows),
)


def validate(query: Query | str, graph: Graph) -> ValidatedQuery:
    """Check ``query`` (an AST or PQL text) against ``graph``.

    Raises :class:`pql.errors.PQLSyntaxError` for text that does not parse and
    :class:`pql.errors.PQLValidationError` (``.errors`` lists every problem) for a query the graph
    cannot answer.
    """
    source: str | None = None
    parse_warnings: list[PQLWarning] = []
    if isinstance(query, str):
        from pql.parser import parse_with_warnings

        source = query
        query, parse_warnings = parse_with_warnings(query)
    ctx = Ctx(query, graph, source)
    for _name, stage in STAGES:
        stage(ctx)
        if ctx.errors:
            raise _failure(ctx)
    inference = infer_task(ctx)
    if ctx.errors:
        raise _failure(ctx)
    vq = ValidatedQuery(
        query=query,
        graph=graph,
        task_type=inference.task_type,
        kind=QueryKind.TEMPORAL if ctx.temporal else QueryKind.STATIC,
        entity_table=ctx.entity,
        entity_pk=ctx.entity_pk,
        target_tables=_target_tables(ctx),
        dst_table=inference.dst_table,
        window=ctx.window,
        warnings=list(parse_warnings) + ctx.warnings,
        target_dtype=inference.dtype,
        target_stype=inference.stype,
        source=source,
    )
    _bind(ctx, vq)
    return vq


def _failure(ctx: Ctx) -> PQLValidationError:
    """All errors of the failed stage, in source order."""
    def position(err):
        return (0, err.span.line, err.span.column) if err.span is not None else (1, 0, 0)

    return PQLValidationError(sorted(ctx.errors, key=position))


def _target_tables(ctx: Ctx) -> tuple[str, ...]:
    names = (s.node.column.table for s in ctx.sites.aggs if s.clause is Clause.TARGET and s.depth == 0)
    return tuple(dict.fromkeys(names))


def _bind(ctx: Ctx, vq: ValidatedQuery) -> None:
    sites = ctx.sites
    key = ctx.query.entity.key
    nodes = [key] + [s.node for s in sites.columns] + [s.node for s in sites.args if isinstance(s.node, Column)]
    for col in nodes:
        dtype, stype = ctx.types[id(col)]
        vq.set_info(col, NodeInfo(dtype, stype, col.table, ctx.edges.get(id(col))))
    for site in sites.aggs:
        agg: Aggregation = site.node
        dtype, stype = ctx.types[id(agg)]
        vq.set_info(agg, NodeInfo(dtype, stype, agg.column.table, ctx.edges.get(id(agg))))
