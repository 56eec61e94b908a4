"""``CompiledQuery.explain()``: the task, the anchors, the windows at the newest anchor, the SQL.

It reads only the anchors' min/max statement; no output table is computed.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pql import ast
from pql.errors import PQLError

from .timeunits import add_units

if TYPE_CHECKING:
    from .compiled import CompiledQuery

__all__ = ["explain"]

_MAX_LISTED = 24


def _ts(t: dt.datetime | None) -> str:
    return t.isoformat(sep=" ") if t is not None else "NULL (no timed table)"


def _node_text(node: ast.Node) -> str:
    try:
        from pql.formatter import format_node

        return format_node(node)
    except Exception:  # the formatter is a convenience here, never a reason to fail
        return type(node).__name__


def _windows(cq: "CompiledQuery", a0: dt.datetime) -> list[str]:
    lines: list[str] = []
    seen: set[ast.Aggregation] = set()
    for node in ast.walk(cq.validated.query):
        if not isinstance(node, ast.Aggregation) or node in seen:
            continue
        seen.add(node)
        table = cq.graph.table(node.table)
        w = node.window
        if w is None:
            lines.append(f"  {_node_text(node)}: every row (no window)")
            continue
        hi = add_units(a0, w.end, w.unit)
        lo = "-INF" if w.start is None else _ts(add_units(a0, w.start, w.unit))
        lines.append(f"  {_node_text(node)}: {lo} < {node.table}.{table.time_column} <= {_ts(hi)}")
    return lines


def explain(cq: "CompiledQuery") -> str:
    vq = cq.validated
    out = [f"task type: {vq.task_type} ({vq.kind})",
           f"entity: {vq.entity_table}.{vq.entity_pk}"]
    if vq.window is not None:
        w = vq.window
        out.append(f"combined window: S={w.start} E={w.end} L={w.length} {w.unit.word}"
                   + (f", F={w.filter_start}" if w.filter_start is not None else ""))
    anchors = cq.anchors()
    shown = anchors if len(anchors) <= _MAX_LISTED else anchors[:_MAX_LISTED // 2] + [None] + anchors[-_MAX_LISTED // 2:]
    out.append(f"training anchors ({len(anchors)}):")
    out += ["  …" if a is None and len(anchors) > _MAX_LISTED else f"  {_ts(a)}" for a in shown]
    out.append(f"split: {cq.split}")
    if anchors and anchors[-1] is not None:
        out.append(f"windows at the newest anchor {_ts(anchors[-1])}:")
        out += _windows(cq, anchors[-1]) or ["  (none)"]
    try:
        out.append(f"prediction anchor: {_ts(cq.prediction_anchor())}")
    except PQLError as e:
        out.append(f"prediction anchor: unavailable ({e.code}: {e.message})")
    for stage in ("training", "prediction"):
        try:
            text = cq.sql(stage)
        except PQLError as e:
            text = f"-- unavailable: [{e.code}] {e.message}"
        out += ["", f"-- {stage} SQL", text]
    for w in cq.warnings:
        out.append(f"warning[{w.code}]: {w.message}")
    return "\n".join(out)
