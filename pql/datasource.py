"""Where a table's rows come from, as DuckDB sees them (PQL-SPEC §6.2, §11.2).

Every DuckDB-specific choice about *reading* data lives here: the ``read_parquet`` / ``read_csv``
source expressions (file paths only as string literals), the raw DuckDB type of each column and
its normalisation to a :class:`~pql.graph.Dtype`, the expression that turns a raw timestamp-like
column into a naive UTC ``TIMESTAMP``, and the translation of DuckDB errors into E701/E702.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import duckdb
from sqlglot import exp

from pql.errors import PQLDataError
from pql.graph import Dtype, TableSchema

__all__ = [
    "RawColumn", "FORMAT_BY_SUFFIX", "SAMPLE_SIZE", "ident", "col", "lit", "run", "format_for_path", "csv_options",
    "source_expr", "describe_source", "normalise_dtype", "timestamp_expr", "view_select", "register_data",
    "not_found", "read_error", "timestamp_problems", "zone_awareness", "connect", "release",
]

SAMPLE_SIZE = 100_000  # §6.3: statistics use the first 100 000 non-null values

FORMAT_BY_SUFFIX = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv"}

# ISO-8601 text that carries a zone designator after a time of day (a bare date never does).
ZONED_TEXT_RE = r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"


# -- sqlglot node helpers (the only way user names and paths reach SQL) ------------------------
def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table, quoted=True)


def lit(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def run(con: duckdb.DuckDBPyConnection, expression: exp.Expression) -> list[tuple]:
    """Render once for DuckDB and execute as a single statement."""
    return con.execute(expression.sql(dialect="duckdb")).fetchall()


# -- connections ----------------------------------------------------------------------------------
# Opening an in-memory DuckDB database costs about 20 ms. A graph build only reads (DESCRIBE and
# SELECT) through its connection, so when it is done the connection is as good as new and the next
# Database of the process takes it instead of opening another. Entries carry the process id: a
# forked child never uses (nor closes) a DuckDB instance its parent created.
MAX_IDLE = 1
_idle: list[tuple[int, duckdb.DuckDBPyConnection]] = []
_idle_lock = threading.Lock()


def connect() -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection: one a graph build of this process left idle, else a new one."""
    pid = os.getpid()
    with _idle_lock:
        for i, (owner, con) in enumerate(_idle):
            if owner == pid:
                del _idle[i]
                return con
    return duckdb.connect()


def release(con: duckdb.DuckDBPyConnection, registered: Iterable[str] = ()) -> None:
    """Hand back a connection from :func:`connect` that only read: its registered objects are
    dropped and it is kept for the next :func:`connect` (closed when one is already waiting)."""
    try:
        for name in registered:
            con.unregister(name)
    except duckdb.Error:
        con.close()
        return
    pid = os.getpid()
    with _idle_lock:
        if sum(owner == pid for owner, _ in _idle) < MAX_IDLE:
            _idle.append((pid, con))
            return
    con.close()


# -- raw schema ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RawColumn:
    """A column as the source presents it: its name, DuckDB type text and normalised dtype."""

    name: str
    type: str
    dtype: Dtype

    @property
    def is_text(self) -> bool:
        return self.type == "VARCHAR"

    @property
    def is_zone_aware(self) -> bool:
        return self.type == "TIMESTAMP WITH TIME ZONE"


_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
              "UBIGINT", "UHUGEINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
_TIME_TYPES = {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}
_SCALAR_DTYPES = [
    (lambda t: t in _INT_TYPES, Dtype.INT),
    (lambda t: t in _FLOAT_TYPES or t.startswith("DECIMAL"), Dtype.FLOAT),
    (lambda t: t == "BOOLEAN", Dtype.BOOL),
    (lambda t: t == "VARCHAR" or t.startswith("ENUM("), Dtype.STRING),
    (lambda t: t in _TIME_TYPES, Dtype.TIMESTAMP),
]
_LIST_DTYPES = {Dtype.STRING: Dtype.LIST_STRING, Dtype.INT: Dtype.LIST_INT}


def normalise_dtype(duck_type: str) -> Dtype:
    """§6.2: any integer -> int, float/decimal -> float, bool, varchar -> string, date/timestamp(tz) ->
    timestamp, LIST of string/int -> list<string>/list<int>, anything else -> other."""
    t = duck_type.strip().upper()
    if t.endswith("[]"):
        return _LIST_DTYPES.get(_scalar_dtype(t[:-2]), Dtype.OTHER)
    return _scalar_dtype(t)


def _scalar_dtype(t: str) -> Dtype:
    return next((d for test, d in _SCALAR_DTYPES if test(t)), Dtype.OTHER)


def format_for_path(path: Path) -> str | None:
    return FORMAT_BY_SUFFIX.get(path.suffix.lower())


def csv_options(table: TableSchema) -> list[exp.Expression]:
    """Explicit dialect so a malformed row is an error, not a silently re-sniffed file."""
    default = "\t" if table.source is not None and table.source.suffix.lower() == ".tsv" else ","
    delim = str(table.options.get("delimiter", default))
    opts: list[tuple[str, exp.Expression]] = [
        ("header", exp.true()), ("delim", lit(delim)), ("quote", lit('"')), ("escape", lit('"')),
        ("strict_mode", exp.true()), ("null_padding", exp.false()),
    ]
    return [exp.EQ(this=exp.column(k), expression=v) for k, v in opts]


def source_expr(table: TableSchema, registered: str | None = None) -> exp.Expression:
    """A FROM-able expression for the table's raw rows: a file read in place, or a registered object."""
    if registered is not None:
        return exp.Table(this=ident(registered))
    if table.source is None:
        raise ValueError(f"table {table.name!r} has neither a file nor registered data")
    path = lit(str(table.source))
    if table.format == "csv":
        return exp.Table(this=exp.ReadCSV(this=path, expressions=csv_options(table)))
    return exp.Table(this=exp.Anonymous(this="read_parquet", expressions=[path]))


def describe_source(con: duckdb.DuckDBPyConnection, table: TableSchema, source: exp.Expression) -> list[RawColumn]:
    """Column names and types of a source (Parquet schema / CSV sniffed by DuckDB); raises E701/E702."""
    if table.source is not None and table.data is None and not table.source.is_file():
        raise not_found(table)
    query = exp.Describe(this=exp.select(exp.Star()).from_(source))
    try:
        rows = run(con, query)
    except duckdb.Error as e:
        raise read_error(table, e) from None
    return [RawColumn(r[0], r[1], normalise_dtype(r[1])) for r in rows]


# -- normalised view ----------------------------------------------------------------------------
def timestamp_expr(raw: RawColumn, column: exp.Expression) -> exp.Expression:
    """A naive TIMESTAMP from a raw column: strings parsed (zoned text converted to UTC), zone-aware
    values converted to UTC, dates at midnight. Unparsable text becomes NULL (E707 reports it)."""
    ts = exp.DataType.build("TIMESTAMP")
    if raw.is_zone_aware:
        return exp.AtTimeZone(this=column, zone=lit("UTC"))
    if raw.is_text:
        zoned = exp.func("regexp_matches", exp.func("trim", column.copy()), lit(ZONED_TEXT_RE))
        aware = exp.AtTimeZone(this=exp.TryCast(this=exp.func("trim", column.copy()),
                                                 to=exp.DataType.build("TIMESTAMPTZ")), zone=lit("UTC"))
        naive = exp.TryCast(this=exp.func("trim", column.copy()), to=ts)
        return exp.Case(ifs=[exp.If(this=zoned, true=aware)], default=naive)
    if raw.type == "TIMESTAMP":
        return column
    return exp.cast(column, ts)


def _normalised(raw: RawColumn, dtype: Dtype, column: exp.Expression) -> exp.Expression:
    if dtype is Dtype.TIMESTAMP:
        return timestamp_expr(raw, column)
    if dtype is Dtype.FLOAT and raw.type != "DOUBLE":
        return exp.cast(column, exp.DataType.build("DOUBLE"))
    if dtype is Dtype.STRING and raw.type != "VARCHAR":
        return exp.cast(column, exp.DataType.build("VARCHAR"))
    return column


def view_select(table: TableSchema, raws: list[RawColumn], source: exp.Expression) -> exp.Select:
    """``SELECT`` every column of the table, normalised to its graph dtype, from the raw source."""
    by_name = {r.name: r for r in raws}
    items = []
    for name, schema in table.columns.items():
        raw = by_name.get(name)
        if raw is None:
            raise PQLDataError(f"table '{table.name}': column '{name}' is no longer in '{table.source}'",
                               code="E702", table=table.name, column=name)
        items.append(exp.alias_(_normalised(raw, schema.dtype, col(name)), ident(name)))
    return exp.select(*items).from_(source)


# -- errors ---------------------------------------------------------------------------------------
def not_found(table: TableSchema) -> PQLDataError:
    return PQLDataError(f"table '{table.name}': file '{table.source}' not found", code="E701", table=table.name)


def read_error(table: TableSchema, error: BaseException) -> PQLDataError:
    """E702 naming the table, with DuckDB's reason cut down to its informative lines."""
    if table.source is not None and table.data is None and not table.source.exists():
        return not_found(table)
    fmt = table.format or "in-memory table"
    reason = _short_reason(str(error))
    if table.format == "csv" and "sniffing" in reason and table.source is not None:
        reason = _csv_row_problem(table) or reason
    where = str(table.source) if table.source is not None else "<in-memory>"
    return PQLDataError(f"table '{table.name}': cannot read '{where}' as {fmt}: {reason}", code="E702",
                        table=table.name)


def _short_reason(text: str) -> str:
    text = re.sub(r"^[A-Za-z ]*Error: ", "", text.strip())
    keep = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith(("Possible fixes", "LINE ", "file =", "*")) or line.startswith("^"):
            break
        keep.append(line)
    return "; ".join(keep[:4]) or "unknown error"


def _csv_row_problem(table: TableSchema, max_lines: int = 1_000_000) -> str | None:
    """Find the first row whose field count differs from the header's (streamed, bounded)."""
    delim = str(table.options.get("delimiter", "\t" if table.source.suffix.lower() == ".tsv" else ","))
    if len(delim) != 1:
        return None
    try:
        with open(table.source, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh, delimiter=delim, quotechar='"', doublequote=True, strict=True)
            header = next(reader, None)
            if header is None:
                return "the file is empty"
            for row in itertools.islice(reader, max_lines):
                if row and len(row) != len(header):
                    return (f"line {reader.line_num} has {len(row)} fields, expected {len(header)}: "
                            f"{delim.join(row)[:80]!r}")
    except csv.Error as e:
        return f"line {reader.line_num}: {e}"
    except OSError as e:
        return str(e)
    return None


def register_data(con: duckdb.DuckDBPyConnection, name: str, table: TableSchema) -> None:
    """Expose an in-memory pyarrow Table / pandas DataFrame to DuckDB under an engine-chosen name."""
    try:
        con.register(name, table.data)
    except Exception as e:  # DuckDB raises assorted types for objects it cannot scan
        raise PQLDataError(f"table '{table.name}': cannot read {type(table.data).__name__} as a table: "
                           f"{_short_reason(str(e))}", code="E702", table=table.name) from None


# -- timestamp text (E707 / E708), shared by loading and the load checks ------------------------
def timestamp_problems(con: duckdb.DuckDBPyConnection, table: str, source: exp.Expression,
                       raw: RawColumn) -> list[PQLDataError]:
    """E707 for values of a time column that are not timestamps (text that does not parse as
    ISO-8601, or a column that is neither text nor a timestamp), E708 for text mixing zoned and
    naive values. Whole-column aggregates, then at most one more query for the first bad value."""
    if raw.dtype is Dtype.TIMESTAMP:
        return []
    c = col(raw.name)
    not_null = exp.Not(this=exp.Is(this=c.copy(), expression=exp.Null()))
    if raw.is_text:
        parsed = timestamp_expr(raw, c.copy())
        bad = exp.and_(not_null, exp.Is(this=parsed, expression=exp.Null()))
        zoned = exp.func("regexp_matches", exp.func("trim", c.copy()), lit(ZONED_TEXT_RE))
        items = [_count_if(bad), _count_if(exp.and_(not_null.copy(), zoned)),
                 _count_if(exp.and_(not_null.copy(), exp.Not(this=zoned.copy())))]
    else:
        bad = not_null
        items = [_count_if(bad), exp.Literal.number(0), exp.Literal.number(0)]
    n_bad, n_zoned, n_naive = run(con, exp.select(*items).from_(source.copy()))[0]
    out: list[PQLDataError] = []
    if n_bad:
        first = run(con, exp.select(exp.cast(c.copy(), "VARCHAR")).from_(source.copy()).where(bad.copy()).limit(1))
        example = first[0][0] if first else "?"
        out.append(PQLDataError(f"table '{table}': column '{raw.name}' has {n_bad} non-timestamp values, "
                                f"e.g. '{example}'", code="E707", table=table, column=raw.name,
                                hints=["time columns need timestamps or ISO-8601 text such as 2024-01-31 12:00:00"]))
    if n_zoned and n_naive:
        out.append(PQLDataError(f"table '{table}': column '{raw.name}' mixes zone-aware and naive timestamps",
                                code="E708", table=table, column=raw.name,
                                hints=[f"{n_zoned} values carry a zone offset, {n_naive} do not"]))
    return out


def _count_if(cond: exp.Expression) -> exp.Expression:
    return exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(this=cond))


def zone_awareness(con: duckdb.DuckDBPyConnection, source: exp.Expression, raw: RawColumn) -> bool | None:
    """True for zone-aware values, False for naive ones, None when it does not apply (dates, empty text)."""
    if raw.is_zone_aware:
        return True
    if raw.type in ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"):
        return False
    if raw.is_text:
        zoned = exp.func("regexp_matches", exp.func("trim", col(raw.name)), lit(ZONED_TEXT_RE))
        any_zoned, all_zoned = run(con, exp.select(exp.func("bool_or", zoned), exp.func("bool_and", zoned.copy()))
                                   .from_(source.copy())
                                   .where(exp.Not(this=exp.Is(this=col(raw.name), expression=exp.Null()))))[0]
        if any_zoned is None or any_zoned != all_zoned:
            return None  # empty, or mixed within the column (reported on its own as E708)
        return bool(all_zoned)
    return None
