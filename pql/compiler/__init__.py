"""Validated query -> plan of sqlglot expressions -> DuckDB SQL -> training/prediction tables.

``compile_query(query, graph, *, database=None, **options)`` returns a :class:`CompiledQuery`.
Modules: ``options`` (§15), ``anchors`` (§10.2), ``aggregations`` (the AggFunc table),
``conditions`` (two-valued logic, operator table), ``plan`` (aggregation CTEs and scopes),
``stages`` (training, labels, prediction statements), ``splits`` (§10.4), ``compiled``
(execution), ``explain``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pql import ast
from pql.errors import PQLError
from pql.graph import Graph
from pql.validated import ValidatedQuery

from .compiled import STAGES, CompiledQuery, render, used_tables
from .options import OPTION_NAMES, Options, SplitSpec, parse_options

__all__ = ["compile_query", "CompiledQuery", "Options", "SplitSpec", "OPTION_NAMES", "STAGES", "parse_options",
           "parse_condition", "render", "used_tables"]


def _shift_spans(node: Any, lines: int) -> Any:
    """A copy of an AST with every span moved up ``lines`` lines."""
    if isinstance(node, tuple):
        return tuple(_shift_spans(n, lines) for n in node)
    if not isinstance(node, ast.Node):
        return node
    changes = {f.name: _shift_spans(getattr(node, f.name), lines) for f in dataclasses.fields(node) if f.name != "span"}
    span = node.span
    if span is not None:
        span = ast.Span(span.line - lines, span.column, span.end_line - lines, span.end_column)
    return dataclasses.replace(node, **changes, span=span)


def _shift_error(e: PQLError, lines: int) -> None:
    for err in [e] + [x for x in e.errors if x is not e]:
        s = err.span
        if s is not None and s.line > lines:
            err.span = ast.Span(s.line - lines, s.column, s.end_line - lines, s.end_column)


def parse_condition(text: str, table: str, pk: str) -> ast.Node:
    """Parse a PQL condition on its own (spans relative to ``text``), e.g. the ``entity_filter`` option."""
    from pql.parser import parse

    skeleton = f"PREDICT `{table}`.`{pk}` FOR EACH `{table}`.`{pk}` WHERE\n"  # names hold no backtick (§6.1)
    try:
        query = parse(skeleton + text)
    except PQLError as e:
        _shift_error(e, 1)
        raise
    return _shift_spans(query.entity.filter, 1)


def _entity_filter(vq: ValidatedQuery, graph: Graph, value: Any) -> ast.Node:
    """The ``entity_filter`` option as a condition checked by the entity-filter rules."""
    from pql.validator import validate

    cond = parse_condition(value, vq.entity_table, vq.entity_pk) if isinstance(value, str) else value
    query = dataclasses.replace(vq.query, entity=dataclasses.replace(vq.query.entity, filter=cond))
    validate(query, graph)  # raises PQLValidationError with spans in the option's text
    return cond


def compile_query(query: ast.Query | str | ValidatedQuery, graph: Graph, *, database: Any = None,
                  **options: Any) -> CompiledQuery:
    """Validate (if needed) and compile ``query`` for ``graph``; check the options (E601, E602).

    ``database`` is a :class:`pql.data.Database` (one is created from the graph when needed).
    """
    opts = parse_options(options)
    if isinstance(query, ValidatedQuery):
        vq = query
    else:
        from pql.validator import validate

        vq = validate(query, graph)
    flt = _entity_filter(vq, graph, opts.get("entity_filter")) if "entity_filter" in opts else None
    return CompiledQuery(vq, opts, database=database, entity_filter=flt)
