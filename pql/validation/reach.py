"""Stage 2, reachability (PQL-SPEC §7.7, §9.3): every column and aggregation links to its reference
table in one hop, through exactly one edge."""

from __future__ import annotations

from pql.ast import Column
from pql.graph import Edge
from pql.validation.context import Clause, Ctx, Site
from pql.formatter import format_name, format_node

__all__ = ["check_reachability"]


def _fkeys(edges: list[Edge]) -> str:
    names = [e.fkey for e in edges]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _column(ctx: Ctx, site: Site) -> None:
    col: Column = site.node
    ref = site.reference(ctx.entity)
    if col.table == ref:
        ctx.edges[id(col)] = None
        return
    parents = ctx.graph.edges_between(ref, col.table)
    if len(parents) == 1:
        ctx.edges[id(col)] = parents[0]
        return
    if len(parents) > 1:
        ctx.error("E106", f"'{ref}' links to '{col.table}' through {_fkeys(parents)}; keep exactly one edge", col)
        return
    if site.depth == 0 and site.clause is Clause.ASSUMING:
        return  # a static column in ASSUMING is E306 (windows stage), whatever table it names
    ref_text = format_name(ref, table=True)
    t, c = format_name(col.table, table=True), format_name(col.name)
    is_child = site.depth == 0 and bool(ctx.graph.edges_between(col.table, ref))
    if is_child and site.clause is Clause.TARGET:
        ctx.error("E107", f"'{t}.{c}' has many values per {ref_text}; aggregate it, "
                          f"e.g. PREDICT LAST({t}.{c}, 0, 30, days)", col)
    elif is_child and site.clause is Clause.WHERE:
        ctx.error("E108", f"'{t}.{c}' has many rows per {ref_text}; use an aggregation, "
                          f"e.g. COUNT({t}.* WHERE {format_node(_enclosing_comparison(ctx, col))}, -30, 0, days) > 0",
                  col)
    else:
        ctx.error("E109", f"'{t}.{c}' is not reachable from '{ref}' (own columns and one FK hop to a parent only)",
                  col)


def _enclosing_comparison(ctx: Ctx, col: Column):
    return next((s.node for s in ctx.sites.cmps if s.node.left is col), col)


def _aggregation(ctx: Ctx, site: Site) -> None:
    agg = site.node
    ref = site.reference(ctx.entity)
    child = agg.column.table
    if site.depth > 0 and ctx.graph.tables[ref].primary_key is None:
        ctx.error("E110", f"cannot aggregate '{child}' per row of '{ref}': '{ref}' has no primary key", agg.column)
        return
    links = ctx.graph.edges_between(child, ref)
    if len(links) == 1:
        ctx.edges[id(agg)] = links[0]
    elif not links:
        r = format_name(ref, table=True)
        ctx.error("E105", f"'{child}' has no foreign key to '{ref}', so {format_node(agg)} has no value per {r} row; "
                          f"aggregate a table that links to '{ref}'", agg.column)
    else:
        ctx.error("E106", f"'{child}' links to '{ref}' through {_fkeys(links)}; keep exactly one edge", agg.column)


def check_reachability(ctx: Ctx) -> None:
    ctx.edges[id(ctx.query.entity.key)] = None
    for site in ctx.sites.columns:
        _column(ctx, site)
    for site in ctx.sites.aggs:
        _aggregation(ctx, site)
    for site in ctx.sites.args:
        ctx.edges[id(site.node)] = None  # an aggregation argument is a column of the aggregated table
