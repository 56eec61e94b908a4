"""Stage 1, names (PQL-SPEC §9.3): tables and columns exist, `t.*` only in COUNT, FOR names the PK."""

from __future__ import annotations

from pql.ast import Column, Wildcard
from pql.catalog import AGGREGATIONS
from pql.errors import did_you_mean
from pql.validation.context import Ctx
from pql.formatter import format_name

__all__ = ["check_names"]


def _table(ctx: Ctx, node: Column | Wildcard):
    table = ctx.graph.tables.get(node.table)
    if table is None:
        dym, hints = did_you_mean(node.table, ctx.graph.tables)
        ctx.error("E101", f"unknown table '{node.table}'{dym}; table names are case-sensitive", node, hints)
    return table


def _column(ctx: Ctx, node: Column) -> None:
    table = _table(ctx, node)
    if table is None:
        return
    schema = table.columns.get(node.name)
    if schema is None:
        dym, hints = did_you_mean(node.name, table.columns)
        ctx.error("E102", f"table '{node.table}' has no column '{node.name}'{dym}", node, hints)
        return
    ctx.schemas[id(node)] = schema


def _entity_key(ctx: Ctx) -> None:
    key = ctx.query.entity.key
    table = _table(ctx, key)
    if table is None:
        return
    t = format_name(key.table, table=True)
    if table.primary_key is None:
        ctx.error("E104", f"'{t}.{format_name(key.name)}' is not the primary key of '{key.table}'; "
                          f"declare primary_key for '{key.table}'", key)
    elif key.name != table.primary_key:
        clause = "FOR EACH" if ctx.query.entity.ids is None else "FOR"
        ctx.error("E104", f"'{t}.{format_name(key.name)}' is not the primary key of '{key.table}'; "
                          f"write {clause} {t}.{format_name(table.primary_key)}", key)
    else:
        ctx.schemas[id(key)] = table.columns[key.name]


def check_names(ctx: Ctx) -> None:
    _entity_key(ctx)
    for site in ctx.sites.columns:
        _column(ctx, site.node)
    for site in ctx.sites.args:
        node = site.node
        if isinstance(node, Wildcard):
            if _table(ctx, node) is not None and not AGGREGATIONS[site.outer.func].accepts_wildcard:
                t = format_name(node.table, table=True)
                ctx.error("E103", f"'{t}.*' is only valid inside COUNT; write COUNT({t}.*, …) or name a column", node)
        else:
            _column(ctx, node)
