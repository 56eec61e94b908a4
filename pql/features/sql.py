"""SQL plumbing of the feature builders: small expression helpers, temporary tables and fetching.

Every feature statement is a sqlglot expression tree built by its module: graph table and column
names enter only as quoted identifiers and user values only as literals (spec §11.2); no SQL text
is formatted. The tree is rendered once, for DuckDB, when the statement runs.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import Iterator

import duckdb
import numpy as np
import pyarrow as pa
from sqlglot import exp

from pql.errors import PQLInternalError
from pql.graph import TableSchema

__all__ = ["render", "ident", "qcol", "run", "fetch", "fetch_into", "temp_name", "registered", "temp_table",
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
