"""Which columns of a table feed which features, read from the graph (dtypes, stypes, keys).

Keys never become values (the entity's key, foreign keys); columns a *static* target reads are
left out everywhere (they are the label), and so are the tables a static target aggregates.
Wide tables are capped so the feature count stays bounded; columns are taken in source order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pql import ast
from pql.ast import QueryKind
from pql.graph import Dtype, Graph, Stype, TableSchema
from pql.validated import ValidatedQuery

__all__ = ["Roles", "roles", "Exclusions", "exclusions", "MAX_NUMERIC", "MAX_DISTINCT", "MAX_CATEGORICAL"]

MAX_NUMERIC = 16  # numeric columns aggregated per child table / read per row table
MAX_DISTINCT = 8  # categorical / ID columns counted distinct per child table
MAX_CATEGORICAL = 12  # categorical columns encoded per row table


@dataclass
class Roles:
    """Columns of one table by the features they feed."""

    numeric: list[str] = field(default_factory=list)  # int/float numerical, and bools (as 0/1)
    booleans: set[str] = field(default_factory=set)  # the subset of ``numeric`` that is bool
    categorical: list[str] = field(default_factory=list)  # categorical stype: code + frequency
    ids: list[str] = field(default_factory=list)  # non-key IDs and foreign keys: distinct counts / frequency
    multi: list[str] = field(default_factory=list)  # multicategorical: list length (+ top values when static)
    timestamps: list[str] = field(default_factory=list)  # timestamp columns other than the time column


@dataclass(frozen=True)
class Exclusions:
    columns: frozenset[tuple[str, str]]
    tables: frozenset[str]


def exclusions(vq: ValidatedQuery) -> Exclusions:
    """A static target's columns and aggregated tables are the label: never features."""
    if vq.kind is not QueryKind.STATIC:
        return Exclusions(frozenset(), frozenset())
    cols, tables = set(), set()
    for node in ast.walk(vq.query.target):
        if isinstance(node, ast.Column):
            cols.add((node.table, node.name))
        if isinstance(node, ast.Aggregation):
            tables.add(node.table)
    return Exclusions(frozenset(cols), frozenset(tables))


def roles(graph: Graph, table: TableSchema, excluded: Exclusions, *, skip: tuple[str, ...] = ()) -> Roles:
    """The feature roles of ``table``'s columns (``skip``: further columns to leave out)."""
    out = Roles()
    for c in table.columns.values():
        name = c.name
        if (table.name, name) in excluded.columns or name in skip or name == table.primary_key:
            continue
        if name in (table.time_column, table.end_time_column):
            continue
        if graph.is_foreign_key(table.name, name) or c.stype is Stype.ID:
            if c.dtype in (Dtype.INT, Dtype.STRING):
                out.ids.append(name)
        elif c.dtype is Dtype.BOOL:
            out.numeric.append(name)
            out.booleans.add(name)
        elif c.stype is Stype.NUMERICAL and c.dtype.is_numeric:
            out.numeric.append(name)
        elif c.stype is Stype.CATEGORICAL and c.dtype in (Dtype.INT, Dtype.STRING):
            out.categorical.append(name)
        elif c.stype is Stype.MULTICATEGORICAL and (c.dtype.is_list or c.dtype is Dtype.STRING):
            out.multi.append(name)
        elif c.dtype is Dtype.TIMESTAMP:
            out.timestamps.append(name)
    out.numeric = out.numeric[:MAX_NUMERIC]
    out.categorical = out.categorical[:MAX_CATEGORICAL]
    out.ids = out.ids[:MAX_DISTINCT]
    out.multi = out.multi[:MAX_CATEGORICAL]
    return out
