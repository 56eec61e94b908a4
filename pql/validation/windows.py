"""Stage 4, windows and time (PQL-SPEC §7.2, §7.8, §9.5, §10.1): window placement, query kind,
and the combined target window."""

from __future__ import annotations

from pql.ast import AggFunc, Aggregation, Column, TimeUnit
from pql.validated import CombinedWindow
from pql.validation.context import Clause, Ctx, Site
from pql.formatter import format_node

__all__ = ["check_windows"]


def _bounds(agg: Aggregation) -> tuple[str, str]:
    w = agg.window
    return ("-INF" if w.start is None else str(w.start)), str(w.end)


def _where(agg: Aggregation):
    return agg.window if agg.window is not None and agg.window.span is not None else agg


def _example_arg(agg: Aggregation) -> str:
    return format_node(agg.column) + (f" WHERE {format_node(agg.filter)}" if agg.filter is not None else "")


def _windowless(ctx: Ctx, site: Site) -> None:
    agg: Aggregation = site.node
    table = ctx.graph.tables[agg.column.table]
    if ctx.is_target_root(agg) and agg.func is AggFunc.LIST_DISTINCT:
        timed = ctx.graph.timed_tables
        if table.is_timed:
            ctx.error("E310", f"'{table.name}' has a time column; add a window: "
                              f"LIST_DISTINCT({format_node(agg.column)}, 0, 30, days)", agg)
            return
        if timed:
            names = ", ".join(f"'{t}'" for t in timed)
            ctx.error("E311", f"static link prediction needs a graph without time columns, but {names} "
                              f"{'has' if len(timed) == 1 else 'have'} one; add a window", agg)
            return
        if isinstance(agg.column, Column) and ctx.graph.is_foreign_key(agg.column.table, agg.column.name):
            return  # static link prediction (or E401 / E410 in the target stage)
    bounds = "-30, 0" if site.clause is Clause.WHERE else "0, 30"
    example = f"{agg.func.value}({_example_arg(agg)}, {bounds}, days)"
    ctx.error("E302", f"{format_node(agg)} needs a window, e.g. {example}", agg)


def _placement(ctx: Ctx, site: Site, target_temporal: bool | None) -> None:
    agg: Aggregation = site.node
    w = agg.window
    if not ctx.graph.tables[agg.column.table].is_timed:
        t = agg.column.table
        ctx.error("E301", f"'{t}' has no time column, so {format_node(agg)} cannot have a window; set time_column for "
                          f"'{t}' or predict a column", agg)
    s, e = _bounds(agg)
    negative_start = w.start is None or w.start < 0
    if site.clause is Clause.TARGET and site.depth == 0 and negative_start:
        ctx.error("E303", f"target window ({s}, {e}) looks into the past; use 0 <= start < end", _where(agg))
    elif site.clause is Clause.WHERE and target_temporal is False:
        if site.depth == 0:
            ctx.error("E308", f"the target is static, so WHERE cannot use windows ('{format_node(agg)}')", agg)
    elif site.clause is Clause.WHERE and w.end > 0:
        ctx.error("E304", f"entity filter window ({s}, {e}) looks into the future, unknown at prediction time; "
                          "use end <= 0 or move it to ASSUMING", _where(agg))
    elif site.clause is Clause.ASSUMING and site.depth == 0 and negative_start and target_temporal:
        ctx.error("E305", f"ASSUMING window ({s}, {e}) starts in the past; use start >= 0 or move it to WHERE",
                  _where(agg))


def _target_kind(ctx: Ctx) -> bool | None:
    """True temporal, False static, None unknown (target aggregations without windows: E302)."""
    target_aggs = [s.node for s in ctx.sites.aggs if s.clause is Clause.TARGET and s.depth == 0]
    if any(a.window is not None for a in target_aggs):
        return True
    if not target_aggs or ctx.is_target_root(target_aggs[0]) and target_aggs[0].func is AggFunc.LIST_DISTINCT:
        return False
    return None


def _assuming(ctx: Ctx, target_temporal: bool | None) -> None:
    assuming = ctx.query.assuming
    if assuming is None or target_temporal is None:
        return
    if not target_temporal:
        ctx.error("E307", f"ASSUMING needs a temporal target; '{format_node(ctx.query.target)}' is static", assuming)
        return
    for site in ctx.sites.cmps:
        if site.clause is Clause.ASSUMING and site.depth == 0 and isinstance(site.node.left, Column):
            ctx.error("E306", f"ASSUMING '{format_node(site.node)}' has no window; ASSUMING takes future aggregations "
                              "only — move it to WHERE", site.node)


def _mixed_target(ctx: Ctx) -> None:
    top = [s.node for s in ctx.sites.cmps if s.clause is Clause.TARGET and s.depth == 0]
    temporal = next((c for c in top if isinstance(c.left, Aggregation) and c.left.window is not None), None)
    if temporal is None:
        return
    for cmp in top:
        if isinstance(cmp.left, Column):
            a = format_node(cmp)
            ctx.error("E309", f"target mixes static '{a}' with temporal '{format_node(temporal)}'; move '{a}' to "
                              "FOR EACH … WHERE", cmp)


def _combined_window(ctx: Ctx) -> CombinedWindow:
    sites = ctx.sites.aggs
    target = [s.node.window for s in sites if s.clause is Clause.TARGET and s.depth == 0 and s.node.window]
    units = {w.unit for w in target}
    unit = min(units, key=lambda u: u.approx_seconds)
    if TimeUnit.MONTHS in units and len(units) > 1:
        ctx.warn("W110", "months mixed with other units count as 30 days in the combined window",
                 ctx.query.target)
    per = unit.approx_seconds

    def conv(value: int, u: TimeUnit) -> int:
        return (value * u.approx_seconds) // per  # floor: exact for target windows, U being the finest unit

    start = min(conv(w.start, w.unit) for w in target)
    end = max(conv(w.end, w.unit) for w in target)
    filters = [s.node.window for s in sites
               if s.node.window is not None and s.node.window.start is not None
               and (s.clause is Clause.WHERE or (s.clause is Clause.TARGET and s.depth > 0))]
    fstart = min((conv(w.start, w.unit) for w in filters), default=None)
    return CombinedWindow(unit=unit, start=start, end=end, filter_start=fstart)


def check_windows(ctx: Ctx) -> None:
    target_temporal = _target_kind(ctx)
    for site in ctx.sites.aggs:
        if site.node.window is None:
            _windowless(ctx, site)
        else:
            _placement(ctx, site, target_temporal)
    _assuming(ctx, target_temporal)
    _mixed_target(ctx)
    ctx.temporal = bool(target_temporal)
    if target_temporal and not ctx.errors:
        ctx.window = _combined_window(ctx)
