"""Plain-language description of a validated query (what `pql check` prints).

Target, entity, every window as readable text relative to the anchor, and the filters.
"""

from __future__ import annotations

from pql import ast
from pql.formatter import format_condition, format_literal, format_node
from pql.validated import ValidatedQuery

__all__ = ["describe_window", "describe_query"]


def _amount(n: int, unit: ast.TimeUnit) -> str:
    word = unit.word if abs(n) != 1 else unit.word[:-1]
    return f"{abs(n)} {word}"


def describe_window(w: ast.Window) -> str:
    """E.g. ``the next 30 days (anchor < t <= anchor + 30 days)``."""
    u = w.unit
    lo = "-INF" if w.start is None else ("anchor" if w.start == 0 else
                                          f"anchor {'+' if w.start > 0 else '-'} {_amount(w.start, u)}")
    hi = "anchor" if w.end == 0 else f"anchor {'+' if w.end > 0 else '-'} {_amount(w.end, u)}"
    interval = f"t <= {hi}" if w.start is None else f"{lo} < t <= {hi}"
    if w.start is None:
        words = "all history up to the anchor" if w.end == 0 else (
            f"all history up to {_amount(w.end, u)} {'after' if w.end > 0 else 'before'} the anchor")
    elif w.start == 0 and w.end > 0:
        words = f"the next {_amount(w.end, u)}"
    elif w.end == 0 and w.start < 0:
        words = f"the last {_amount(w.start, u)}"
    elif w.start >= 0:
        words = f"from {_amount(w.start, u)} to {_amount(w.end, u)} after the anchor"
    elif w.end <= 0:
        words = f"from {_amount(w.start, u)} to {_amount(w.end, u)} before the anchor"
    else:
        words = f"from {_amount(w.start, u)} before to {_amount(w.end, u)} after the anchor"
    return f"{words} ({interval})"


def _windows(node: object) -> list[ast.Aggregation]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Aggregation) and n.window is not None]


def describe_query(vq: ValidatedQuery) -> str:
    q = vq.query
    lines = [f"task type: {vq.task_type.value} ({vq.kind.value})"]
    target_text = format_condition(q.target) if isinstance(q.target, ast.CONDITION_TYPES) else format_node(q.target)
    lines.append(f"target:    {target_text}")
    if isinstance(q.problem, ast.Rank):
        lines.append(f"problem:   rank the top {q.problem.k}" +
                     (f" {vq.dst_table}" if vq.dst_table else " labels"))
    elif isinstance(q.problem, ast.Forecast):
        lines.append(f"problem:   forecast {q.problem.n} consecutive timeframes")
    elif isinstance(q.problem, ast.Classify):
        lines.append("problem:   classify every label")
    ent = q.entity
    if ent.ids is None:
        lines.append(f"entity:    each {ent.table} row, keyed by {ent.table}.{ent.pk}")
    else:
        ids = ", ".join(format_literal(i) for i in ent.ids)
        lines.append(f"entity:    {ent.table}.{ent.pk} in ({ids})")
    if ent.filter is not None:
        lines.append(f"where:     {format_condition(ent.filter)}")
    if q.assuming is not None:
        lines.append(f"assuming:  {format_condition(q.assuming.condition)} (training only)")
    sections = [("target", q.target), ("where", ent.filter),
                ("assuming", q.assuming.condition if q.assuming else None)]
    win_lines = []
    for name, node in sections:
        if node is None:
            continue
        for agg in _windows(node):
            win_lines.append(f"  {name:<9} {format_node(agg)}: {describe_window(agg.window)}")
    if win_lines:
        lines.append("windows:")
        lines.extend(win_lines)
    if vq.window is not None:
        w = vq.window
        lines.append(f"combined target window: ({w.start}, {w.end}] {w.unit.word}, length {w.length}")
    return "\n".join(lines)
