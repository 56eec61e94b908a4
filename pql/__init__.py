"""pql: a local engine for Kumo-style predictive queries.

The core is a small flat API; the CLI and REPL are thin shells over it.
"""

from __future__ import annotations

from pql import ast
from pql.ast import TaskType
from pql.errors import (
    PQLDataError,
    PQLError,
    PQLInternalError,
    PQLRunError,
    PQLSyntaxError,
    PQLValidationError,
    PQLWarning,
)
from pql.graph import ColumnSchema, Dtype, Edge, Graph, Stype, TableSchema

__version__ = "0.1.0"

__all__ = [
    "__version__", "ast", "TaskType", "parse", "format", "validate", "compile",
    "PQLError", "PQLSyntaxError", "PQLValidationError", "PQLRunError", "PQLDataError", "PQLInternalError",
    "PQLWarning", "Graph", "TableSchema", "ColumnSchema", "Edge", "Dtype", "Stype",
]


def parse(text: str) -> "ast.Query":
    """Parse PQL text into a :class:`pql.ast.Query` (raises :class:`PQLSyntaxError`)."""
    from pql.parser import parse as _parse

    return _parse(text)


def format(query: "ast.Query | str", *, multiline: bool = False) -> str:  # noqa: A001 - public API name
    """The canonical text of a query (spec §4.4)."""
    from pql.formatter import format_query

    if isinstance(query, str):
        query = parse(query)
    return format_query(query, multiline=multiline)


def validate(query: "ast.Query | str", graph: Graph):
    """Check a query against a graph; returns a ``ValidatedQuery`` (raises :class:`PQLValidationError`)."""
    from pql.validator import validate as _validate

    return _validate(query, graph)


def compile(query, graph: Graph, **options):  # noqa: A001 - public API name
    """Compile a query for a graph into a ``CompiledQuery`` (training and prediction tables)."""
    from pql.compiler import compile_query

    return compile_query(query, graph, **options)


# The Kumo-style SDK (pql.sdk), imported on first use so `import pql` stays light.
_SDK_NAMES = frozenset({
    "init", "LocalConnector", "DuckDBConnector", "S3Connector", "SourceTable", "Table", "PredictiveQuery",
    "Trainer", "ModelPlan", "TrainingTablePlan", "TrainingTable", "PredictionTable",
})
__all__ += sorted(_SDK_NAMES)


def __getattr__(name: str):
    if name in _SDK_NAMES:
        import pql.sdk

        return getattr(pql.sdk, name)
    raise AttributeError(f"module 'pql' has no attribute {name!r}")
