"""SQL plumbing of the feature builders: templates, temporary tables and fetching.

Feature SQL is written as engine-owned DuckDB templates in which every graph name is a
placeholder ``__name``; :func:`tpl` parses the template with sqlglot and substitutes each
placeholder by a quoted identifier (``str`` values) or by a sqlglot expression (``exp.Expression``
values), so user names and values reach SQL only as sqlglot nodes (spec §11.2). The string is
rendered once, for DuckDB, when the statement runs.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import Any, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import sqlglot
from sqlglot import exp

from pql.errors import PQLInternalError
from pql.graph import TableSchema

__all__ = ["tpl", "from_template", "render", "ident", "qcol", "run", "fetch", "fetch_into", "temp_name", "registered", "temp_table",
           "visible", "days_between", "FAR_FUTURE", "FAR_PAST", "ts_literal"]

FAR_FUTURE = "9999-12-31 00:00:00"  # the visibility bound of a NULL (static) anchor: everything visible
FAR_PAST = "0001-01-01 00:00:00"  # window starts of a NULL anchor: every window is all history
_counter = itertools.count()


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def qcol(name: str, table: str | None = None) -> exp.Column:
    """``table."name"``: the table part is an engine alias, the column a quoted identifier."""
    return exp.Column(this=ident(name), table=exp.to_identifier(table) if table else None)


def ts_literal(text: str) -> exp.Expression:
    return exp.cast(exp.Literal.string(text), "TIMESTAMP")


def tpl(sql: str, **subs: Any) -> exp.Expression:
    """Parse an engine-written DuckDB template and substitute its ``__name`` placeholders.

    A ``str`` value becomes a quoted identifier wherever ``__name`` appears as an identifier (a
    column, table or alias name); an ``exp.Expression`` value replaces an unqualified column
    ``__name`` as a whole.
    """
    return _substitute(sqlglot.parse_one(sql, read="duckdb"), subs)


def from_template(text: str, **subs: Any) -> tuple[exp.Expression, list[exp.Join]]:
    """A FROM clause written as template text (``__tbl AS q JOIN __other AS r ON ...``, placeholders
    as in :func:`tpl`) as its first source and its joins, for callers not yet building expressions."""
    source = _substitute(exp.Select().from_(text, dialect="duckdb", copy=False).args["from_"], subs).this
    joins = source.args.get("joins") or []
    source.set("joins", None)
    return source, joins


def _substitute(tree: exp.Expression, subs: dict[str, Any]) -> exp.Expression:
    names = {f"__{k}": v for k, v in subs.items() if isinstance(v, str)}
    exprs = {f"__{k}": v for k, v in subs.items() if isinstance(v, exp.Expression)}

    def repl(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in exprs:
            return exprs[node.name].copy()
        if isinstance(node, exp.Identifier) and node.this in names:
            return ident(names[node.this])
        return node

    out = tree.transform(repl)
    leftover = [n.this for n in out.find_all(exp.Identifier) if str(n.this).startswith("__") and not n.quoted]
    if leftover:  # a template bug: a placeholder nobody filled
        raise PQLInternalError(f"internal error, please report: unfilled SQL placeholders {sorted(set(leftover))}")
    return out


def render(statement: exp.Expression) -> str:
    """The DuckDB text of a statement (rendered once, right before it runs)."""
    return statement.sql(dialect="duckdb")


def run(con: duckdb.DuckDBPyConnection, statement: exp.Expression) -> None:
    try:
        con.execute(render(statement))
    except duckdb.Error as e:  # SQL we generated failed: our bug
        raise PQLInternalError(f"internal error, please report: feature SQL failed: {type(e).__name__}: {e}") from None


def fetch(con: duckdb.DuckDBPyConnection, statement: exp.Expression) -> pa.Table:
    try:
        return con.sql(render(statement)).to_arrow_table()
    except duckdb.Error as e:
        raise PQLInternalError(f"internal error, please report: feature SQL failed: {type(e).__name__}: {e}") from None


def fetch_into(con: duckdb.DuckDBPyConnection, statement: exp.Expression, X: np.ndarray, col0: int,
               row_col: str, names: list[str], batch_rows: int = 1 << 20, row_map: np.ndarray | None = None) -> int:
    """Run ``statement`` and scatter its ``names`` columns into ``X[row, col0:]`` by its ``row_col``
    column (row indices), in record batches so a wide result is never held twice. Returns rows read."""
    try:
        reader = con.sql(render(statement)).to_arrow_reader(batch_rows)
    except duckdb.Error as e:
        raise PQLInternalError(f"internal error, please report: feature SQL failed: {type(e).__name__}: {e}") from None
    n = 0
    for batch in reader:
        rows = batch.column(row_col).to_numpy(zero_copy_only=False).astype(np.int64)
        if row_map is not None:
            rows = row_map[rows]
        block = np.empty((batch.num_rows, len(names)), dtype=np.float32)
        for j, name in enumerate(names):
            values = batch.column(name)
            if values.null_count:
                values = values.cast(pa.float64()).fill_null(np.nan)
            block[:, j] = values.to_numpy(zero_copy_only=False)
        X[rows, col0:col0 + len(names)] = block
        n += batch.num_rows
    return n


def temp_name(kind: str) -> str:
    return f"__pql_{kind}_{next(_counter)}"


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, table: pa.Table, kind: str = "in") -> Iterator[str]:
    """An Arrow table visible to SQL under a fresh engine name for the duration of the block."""
    name = temp_name(kind)
    con.register(name, table)
    try:
        yield name
    finally:
        con.unregister(name)


@contextmanager
def temp_table(con: duckdb.DuckDBPyConnection, select: exp.Expression, kind: str = "t") -> Iterator[str]:
    """``CREATE TEMP TABLE <fresh> AS select`` for the duration of the block."""
    name = temp_name(kind)
    run(con, exp.Create(kind="TABLE", this=exp.Table(this=ident(name)), expression=select,
                        properties=exp.Properties(expressions=[exp.TemporaryProperty()])))
    try:
        yield name
    finally:
        con.execute(render(exp.Drop(kind="TABLE", exists=True, tables=[exp.Table(this=ident(name))])))


def visible(table: TableSchema, alias: str, bound: exp.Expression) -> exp.Expression | None:
    """§7.5 for a row of ``table`` at visibility bound ``bound``: time <= bound (a NULL time is
    never visible). The end time is not a filter: an end time after the anchor only reads as NULL."""
    if table.time_column is None:
        return None
    return exp.LTE(this=qcol(table.time_column, alias), expression=bound.copy())


def days_between(later: exp.Expression, earlier: exp.Expression) -> exp.Expression:
    """(later - earlier) in days, as a DOUBLE: ``(EPOCH(later) - EPOCH(earlier)) / 86400.0``. The
    arguments become part of the result (not copied): pass trees built for this statement."""
    span = exp.Sub(this=exp.TimeToUnix(this=later), expression=exp.TimeToUnix(this=earlier))
    return exp.Div(this=exp.Paren(this=span), expression=exp.Literal.number("86400.0"), typed=False, safe=False)
