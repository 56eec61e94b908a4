"""The Kumo-style methods of :class:`pql.Graph`: building from SDK tables, validate, links, stats.

``pql.Graph`` is one class for the whole engine; its ``__init__`` accepts SDK :class:`~pql.sdk.Table`
objects and ``dict(src_table=..., fkey=..., dst_table=...)`` edges and calls
:func:`build_from_sdk_tables`, which builds the graph through ``pql.graphbuild`` (the same checks as
``graph.toml``). ``validate``, ``link``, ``unlink``, ``infer_links`` and ``get_table_stats`` live
here so ``pql/graph.py`` stays the data model.
"""

from __future__ import annotations

from typing import Any, Iterable

from pql.errors import PQLDataError, PQLRunError, did_you_mean
from pql.graph import Edge, Graph, Stype, TableSchema

__all__ = ["as_edge", "build_from_sdk_tables", "validate_graph", "link", "unlink", "infer_links",
           "table_stats", "edge_problem"]

_EDGE_KEYS = ("src_table", "fkey", "dst_table")


def as_edge(edge: Any) -> Edge:
    """An :class:`Edge` from an Edge, a dict with src_table / fkey / dst_table, or a 3-tuple."""
    if isinstance(edge, Edge):
        return edge
    if isinstance(edge, dict):
        unknown = [k for k in edge if k not in _EDGE_KEYS]
        missing = [k for k in _EDGE_KEYS if k not in edge]
        if unknown or missing:
            what = f"unknown key '{unknown[0]}'" + did_you_mean(str(unknown[0]), _EDGE_KEYS)[0] if unknown \
                else f"missing {', '.join(missing)}"
            raise PQLDataError(f"edge {edge!r}: {what}", code="E710",
                               hints=["write edges as dict(src_table='transactions', fkey='user_id', dst_table='users')"])
        edge = tuple(edge[k] for k in _EDGE_KEYS)
    if isinstance(edge, (tuple, list)) and len(edge) == 3 and all(isinstance(x, str) for x in edge):
        return Edge(*edge)
    raise PQLDataError(f"edge {edge!r} is invalid: expected dict(src_table=..., fkey=..., dst_table=...)",
                       code="E710")


def build_from_sdk_tables(tables: dict[str, Any], edges: Iterable[Edge]) -> Graph:
    """Build and check a graph whose tables are SDK ``Table`` objects (or a mix with ``TableSchema``)."""
    from pql.graphbuild import TableSpec, build_graph

    from .table import Table

    specs = []
    for name, t in tables.items():
        if isinstance(t, Table):
            specs.append(t.to_spec(name))
        elif isinstance(t, TableSchema):
            specs.append(TableSpec(name=name, source=t.source, format=t.format, data=t.data, options=dict(t.options),
                                   primary_key=t.primary_key, time_column=t.time_column,
                                   end_time_column=t.end_time_column,
                                   stypes={c.name: str(c.stype) for c in t.columns.values()
                                           if c.stype is not Stype.UNSUPPORTED}))
        else:
            raise PQLDataError(f"graph table '{name}' is a {type(t).__name__}; expected a pql.Table "
                               "(Table.from_source_table(...)) or a TableSchema", code="E710", table=str(name))
    return build_graph(specs, list(edges))


# -- validation -----------------------------------------------------------------------------------------
def validate_graph(graph: Graph, verbose: bool = True) -> Graph:
    """Run the load checks of §6.6 on every table (raising one PQLDataError with every error); with
    ``verbose``, print the tables, edges and warnings."""
    from .jobs import database_for

    db, lock = database_for(graph)
    with lock:
        warnings = db.check(list(graph.tables))
    for w in warnings:
        if w not in graph.warnings:
            graph.warnings.append(w)
    if verbose:
        print(_report(graph, table_stats(graph)))
    return graph


def _report(graph: Graph, stats: dict[str, dict[str, Any]]) -> str:
    lines = [f"Graph is valid: {len(graph.tables)} tables, {len(graph.edges)} edges"]
    for name, s in stats.items():
        parts = [f"{s['num_rows']:,} rows", f"{s['num_columns']} columns"]
        if s["primary_key"]:
            parts.append(f"primary key {s['primary_key']}")
        if s["time_column"]:
            parts.append(f"time {s['time_column']} {s['min_time']} .. {s['max_time']}")
        lines.append(f"  {name}: {', '.join(parts)}")
    lines += [f"  edge {e}" for e in graph.edges]
    lines += [w.render() for w in graph.warnings]
    return "\n".join(lines)


def table_stats(graph: Graph) -> dict[str, dict[str, Any]]:
    """Per table: rows, columns, keys, and the time column's range."""
    from sqlglot import exp

    from pql.datasource import col, run

    from .jobs import database_for

    db, lock = database_for(graph)
    out: dict[str, dict[str, Any]] = {}
    with lock:
        for t in graph:
            items: list[exp.Expression] = [exp.Count(this=exp.Star())]
            if t.time_column:
                items += [exp.Min(this=col(t.time_column)), exp.Max(this=col(t.time_column))]
            row = run(db.con, exp.select(*items).from_(db.view(t.name)))[0]
            out[t.name] = {"num_rows": int(row[0]), "num_columns": len(t.columns), "primary_key": t.primary_key,
                           "time_column": t.time_column, "end_time_column": t.end_time_column,
                           "min_time": row[1] if t.time_column else None,
                           "max_time": row[2] if t.time_column else None}
    return out


# -- links --------------------------------------------------------------------------------------------
def edge_problem(graph: Graph, edge: Edge) -> str | None:
    """Why ``edge`` cannot link the graph's tables (the E710 reasons of spec §6.1), or None."""
    for t in (edge.src_table, edge.dst_table):
        if t not in graph.tables:
            return f"unknown table '{t}'{did_you_mean(t, list(graph.tables))[0]}"
    src = graph.tables[edge.src_table]
    if edge.fkey not in src.columns:
        return f"table '{edge.src_table}' has no column '{edge.fkey}'{did_you_mean(edge.fkey, src.column_names)[0]}"
    pk = graph.tables[edge.dst_table].primary_key
    if pk is None:
        return f"table '{edge.dst_table}' has no primary key; set primary_key for '{edge.dst_table}'"
    a, b = src.columns[edge.fkey].dtype, graph.tables[edge.dst_table].columns[pk].dtype
    if a is not b:
        return f"dtypes {a}/{b} differ ('{edge.src_table}.{edge.fkey}' is {a}, '{edge.dst_table}.{pk}' is {b})"
    return None


def _edge_arg(src_table: Any, fkey: str | None, dst_table: str | None) -> Edge:
    if isinstance(src_table, (Edge, dict)):
        return as_edge(src_table)
    return as_edge((src_table, fkey, dst_table))


def link(graph: Graph, src_table: Any, fkey: str | None = None, dst_table: str | None = None) -> Graph:
    """Add the edge ``src_table.fkey -> dst_table``; the foreign key becomes an ID column (§6.3 rule 2)."""
    edge = _edge_arg(src_table, fkey, dst_table)
    if edge in graph.edges:
        raise PQLDataError(f"edge {edge}: already in the graph", code="E710", table=edge.src_table, column=edge.fkey)
    reason = edge_problem(graph, edge)
    if reason is not None:
        raise PQLDataError(f"edge {edge.src_table}.{edge.fkey} -> {edge.dst_table}: {reason}", code="E710",
                           table=edge.src_table, column=edge.fkey)
    graph.edges.append(edge)
    graph.tables[edge.src_table].columns[edge.fkey].stype = Stype.ID
    _invalidate(graph)
    return graph


def unlink(graph: Graph, src_table: Any, fkey: str | None = None, dst_table: str | None = None) -> Graph:
    """Remove an edge (the column keeps its semantic type)."""
    edge = _edge_arg(src_table, fkey, dst_table)
    if edge not in graph.edges:
        have = [str(e) for e in graph.edges]
        raise PQLDataError(f"edge {edge}: not in the graph", code="E710", table=edge.src_table, column=edge.fkey,
                           hints=["edges: " + ", ".join(have)] if have else ["the graph has no edges"])
    graph.edges.remove(edge)
    _invalidate(graph)
    return graph


def infer_links(graph: Graph) -> list[Edge]:
    """Add the edges of §6.5 (a column named like exactly one other table's primary key, same dtype)
    that the graph does not have yet; returns the added edges."""
    from pql import infer

    columns = {t.name: {c.name: c.dtype for c in t.columns.values()} for t in graph}
    found, warnings = infer.infer_edges(columns, {t.name: t.primary_key for t in graph})
    added = [e for e in found if e not in graph.edges]
    for e in added:
        link(graph, e)
    graph.warnings += [w for w in warnings if w not in graph.warnings]
    return added


def _invalidate(graph: Graph) -> None:
    from .jobs import forget_database

    forget_database(graph)


def check_graph(graph: Any, what: str = "graph") -> Graph:
    if not isinstance(graph, Graph):
        raise PQLRunError(f"{what} must be a pql.Graph, not {type(graph).__name__}", code="E602",
                          hints=["build one with pql.Graph(tables={...}, edges=[...])"])
    return graph
