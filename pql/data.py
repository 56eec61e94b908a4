"""The engine's DuckDB session over a graph's data, and the load checks (PQL-SPEC §6.6, §12).

:class:`Database` owns one in-process DuckDB connection in which every graph table is a VIEW named
exactly like the table, reading its file in place (or an in-memory pyarrow Table / pandas
DataFrame). In the view every timestamp column is a naive ``TIMESTAMP``: text parsed, zone-aware
values converted to UTC, dates at midnight. :meth:`Database.check` runs the load checks with SQL
aggregates, raises every error together and returns the warnings.

The checks cost few passes: per table one aggregate (counts; the distinct count of an integer
primary key is a bitmap over its value range when that range is small, else ``COUNT(DISTINCT)``),
and per foreign key one anti-join. Their results are remembered, keyed by the table's view, keys
and a fingerprint of its data (file size, mtime, inode; or the identity of an immutable in-memory
Arrow table), so a second check of unchanged data in the same process costs nothing. A file
modified within the last :data:`RACY_SECONDS` is never remembered (its mtime may not yet tell
later writes apart), and pandas DataFrames, which can change in place, are always re-checked.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterable

import duckdb
from sqlglot import exp

from pql.datasource import (
    RawColumn, col, connect, describe_source, ident, read_error, register_data, run, source_expr, timestamp_problems,
    view_select, zone_awareness,
)
from pql.errors import PQLDataError, PQLError, PQLWarning
from pql.graph import Dtype, Edge, Graph, TableSchema
from pql.graphbuild import raise_all

__all__ = ["Database", "clear_check_cache"]

MAX_EXAMPLES = 3
# The distinct count of an integer key is a bitmap of its range (bitstring_agg) when the range is at
# most BITMAP_RANGE_PER_ROW bits per non-NULL row (or BITMAP_MIN_RANGE) and at most BITMAP_MAX_RANGE
# bits; otherwise COUNT(DISTINCT). Both count exactly; the bitmap (per DuckDB thread at most 4 bytes
# per row, 8 MB in all) is smaller and several times faster than a hash table of every key.
BITMAP_RANGE_PER_ROW = 32
BITMAP_MIN_RANGE = 1 << 16
BITMAP_MAX_RANGE = 1 << 26
RACY_SECONDS = 3.0  # a file modified more recently than this is not remembered as checked
CACHE_SIZE = 512

# Results of checks on file-backed tables, shared by every Database of the process (the key holds
# what the views are made of, the schemas and the file fingerprints). In-memory tables use their
# Database's own cache.
_SHARED: "OrderedDict[Hashable, Any]" = OrderedDict()
_SHARED_LOCK = threading.Lock()
_MISSING = object()


def _not_null(e: exp.Expression) -> exp.Expression:
    return exp.Not(this=exp.Is(this=e, expression=exp.Null()))


def _fmt(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


class Database:
    """Graph tables registered as DuckDB views; ``con`` is the connection (created when not given)."""

    def __init__(self, graph: Graph, con: duckdb.DuckDBPyConnection | None = None) -> None:
        self.graph = graph
        self._owns_con = con is None
        self.con = con if con is not None else connect()
        self._sources: dict[str, exp.Expression] = {}
        self._raws: dict[str, list[RawColumn]] = {}
        self._view_keys: dict[str, tuple] = {}
        self._cache: dict[Hashable, Any] = {}
        errors: list[PQLError] = []
        for table in graph:
            try:
                self._register(table)
            except PQLDataError as e:
                errors += e.errors
        raise_all(errors)

    def _register(self, table: TableSchema) -> None:
        registered = None
        if table.data is not None:
            registered = f"__pql_data__{table.name}"  # like the view: replaced when re-registered
            register_data(self.con, registered, table)
        source = source_expr(table, registered)
        raws = describe_source(self.con, table, source)
        view = exp.Create(kind="VIEW", this=exp.Table(this=ident(table.name)), replace=True,
                          expression=view_select(table, raws, source))
        try:
            run(self.con, view)
        except duckdb.Error as e:
            raise read_error(table, e) from None
        self._sources[table.name], self._raws[table.name] = source, raws
        # What the view is made of (source_expr and view_select are functions of these and of the
        # column dtypes in _schema_key): with the data's fingerprint, what a remembered check depends on.
        self._view_keys[table.name] = (table.name, str(table.source), repr(sorted(table.options.items())),
                                       registered, tuple(raws))

    def view(self, table: str) -> exp.Table:
        """The FROM-able view of a graph table (its quoted name)."""
        return exp.Table(this=ident(table))

    def close(self) -> None:
        """Close the connection if this Database created it (a caller's connection stays open)."""
        if self._owns_con:
            self.con.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- §6.6 load checks -------------------------------------------------------------------------
    def check(self, tables: Iterable[str] | None = None) -> list[PQLWarning]:
        """Run the load checks. ``tables`` are the tables a query uses (default: all tables, none of
        them counted as used). Used tables get every check and E709 when empty; the other tables are
        only checked for emptiness (W706). Raises one PQLDataError with every error; returns warnings."""
        used = set(tables) if tables is not None else set()
        unknown = used - set(self.graph.tables)
        if unknown:
            raise ValueError(f"unknown tables: {sorted(unknown)}")
        checked = [t for t in self.graph.tables if tables is None or t in used]
        errors: list[PQLError] = []
        warnings: list[PQLWarning] = []
        counts: dict[str, int] = {}
        for name in checked:
            try:
                counts[name], errs, warns = self._memo(("table",), [name], lambda name=name: self._check_table(name))
            except duckdb.Error as e:
                errors.append(read_error(self.graph.table(name), e))
                continue
            errors += errs
            warnings += warns
        for name in self.graph.tables:
            if name in counts or name in checked:
                continue
            try:
                counts[name] = self._memo(("count",), [name], lambda name=name: self._count(name))
            except duckdb.Error as e:
                errors.append(read_error(self.graph.table(name), e))
        for name, n in counts.items():
            if n == 0 and name in used:
                errors.append(PQLDataError(f"table '{name}' is empty but the query uses it", code="E709", table=name))
            elif n == 0:
                warnings.append(PQLWarning("W706", f"table '{name}' is empty; no query uses it", table=name))
        readable = [t for t in checked if t in counts]
        try:
            errors += self._zone_mix(readable)
        except duckdb.Error as e:  # only the text scans of already-read tables can fail here
            errors.append(PQLDataError(f"cannot compare time zones of {', '.join(readable)}: {e}", code="E702"))
        for edge in self.graph.edges:
            if edge.src_table in counts and edge.src_table in checked and edge.dst_table in counts:
                try:
                    warnings += self._memo(("orphans", edge.fkey), [edge.src_table, edge.dst_table],
                                           lambda edge=edge: self._orphans(edge))
                except duckdb.Error as e:
                    errors.append(read_error(self.graph.table(edge.dst_table), e))
        raise_all(errors)
        return warnings

    # -- remembered results ----------------------------------------------------------------------
    def _memo(self, what: tuple, tables: list[str], compute: Callable[[], Any]) -> Any:
        """``compute()``, or its remembered result when the tables' views, keys and data are unchanged
        (lists in the result are handed out as copies, so callers may extend them)."""
        schemas = [self.graph.table(t) for t in tables]
        prints = [_fingerprint(s) for s in schemas]  # taken before the data is read
        if any(p is None for p in prints):
            return compute()
        key = (what, tuple((self._view_keys[s.name], _schema_key(s), p) for s, p in zip(schemas, prints)))
        shared = all(p[0] == "file" for p in prints)
        found = _shared_get(key) if shared else self._cache.get(key, _MISSING)
        if found is _MISSING:
            found = compute()
            if shared:
                _shared_put(key, found)
            else:
                self._cache[key] = found
        return _copy(found)

    def _count(self, name: str) -> int:
        return run(self.con, exp.select(exp.Count(this=exp.Star())).from_(self.view(name)))[0][0]

    def _check_table(self, name: str) -> tuple[int, list[PQLError], list[PQLWarning]]:
        """One aggregate over the view (which also reads every CSV value), then targeted queries:
        the distinct count of the key (non-CSV tables), E707/E708 on time text, E705 examples."""
        errors: list[PQLError] = []
        warnings: list[PQLWarning] = []
        table = self.graph.table(name)
        pk, time_col = table.primary_key, table.time_column
        one_pass = table.format == "csv"  # a CSV is parsed once; Parquet and Arrow read columns cheaply
        int_key = pk is not None and table.columns[pk].dtype is Dtype.INT
        items: list[exp.Expression] = [exp.Count(this=exp.Star())]
        slots: dict[str, int] = {}

        def add(label: str, item: exp.Expression) -> None:
            slots[label] = len(items)
            items.append(item)

        if pk is not None:
            add("non_null", exp.Count(this=col(pk)))
            if one_pass:
                add("distinct", exp.Count(this=exp.Distinct(expressions=[col(pk)])))
            elif int_key:
                add("min", exp.Min(this=col(pk)))
                add("max", exp.Max(this=col(pk)))
        if time_col is not None:
            add("time", exp.Count(this=col(time_col)))
        if one_pass:
            items += [exp.Count(this=col(c)) for c in table.columns]
        row = run(self.con, exp.select(*items).from_(self.view(name)))[0]
        total = row[0]
        for raw in self._raws[name]:
            schema = table.columns.get(raw.name)
            if schema is not None and schema.dtype is Dtype.TIMESTAMP:
                errors += timestamp_problems(self.con, name, self._sources[name], raw)
        if pk is not None:
            non_null = row[slots["non_null"]]
            if non_null < total:
                errors.append(PQLDataError(f"table '{name}': primary key '{pk}' is NULL in {total - non_null} rows",
                                           code="E706", table=name, column=pk))
            if "distinct" in slots:
                distinct = row[slots["distinct"]]
            else:
                bounds = (row[slots["min"]], row[slots["max"]]) if int_key else None
                distinct = self._distinct(name, pk, non_null, bounds)
            if distinct < non_null:
                errors.append(self._duplicates(name, pk))
        if time_col is not None:
            nulls = total - row[slots["time"]]
            if nulls:
                warnings.append(PQLWarning(
                    "W702", f"table '{name}': time column '{time_col}' is NULL in {nulls} rows; such rows are in no "
                            "window and no history", table=name, column=time_col))
        return total, errors, warnings

    def _distinct(self, name: str, pk: str, non_null: int, bounds: tuple[Any, Any] | None) -> int:
        """The number of distinct non-NULL key values: a bitmap over [min, max] for a compact integer
        range, else ``COUNT(DISTINCT)``."""
        if non_null == 0:
            return 0
        if bounds is not None:
            lo, hi = int(bounds[0]), int(bounds[1])
            if hi - lo < min(max(BITMAP_RANGE_PER_ROW * non_null, BITMAP_MIN_RANGE), BITMAP_MAX_RANGE):
                bitmap = exp.Anonymous(this="bitstring_agg", expressions=[col(pk), _int_lit(lo), _int_lit(hi)])
                query = exp.select(exp.Anonymous(this="bit_count", expressions=[bitmap])).from_(self.view(name))
                try:
                    return run(self.con, query)[0][0]
                except duckdb.Error:  # an integer type bitstring_agg does not take: count the usual way
                    pass
        query = exp.select(exp.Count(this=exp.Distinct(expressions=[col(pk)]))).from_(self.view(name))
        return run(self.con, query)[0][0]

    def _duplicates(self, name: str, pk: str) -> PQLDataError:
        dup = (exp.select(col(pk), exp.Window(this=exp.Count(this=exp.Star())))
               .from_(self.view(name)).where(_not_null(col(pk))).group_by(col(pk))
               .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
               .order_by(col(pk)).limit(MAX_EXAMPLES))
        rows = run(self.con, dup)
        n = rows[0][1] if rows else 0
        examples = ", ".join(_fmt(r[0]) for r in rows)
        return PQLDataError(f"table '{name}': primary key '{pk}' has {n} duplicate values, e.g. {examples}",
                            code="E705", table=name, column=pk)

    def _zone_mix(self, tables: list[str]) -> list[PQLError]:
        """E708 across the graph: zone-aware time columns next to naive ones (dates are neither)."""
        aware, naive = [], []
        for name in tables:
            table = self.graph.table(name)
            for c in (table.time_column, table.end_time_column):
                raw = next((r for r in self._raws[name] if r.name == c), None) if c else None
                kind = None if raw is None else self._memo(
                    ("zone", c), [name], lambda name=name, raw=raw: zone_awareness(self.con, self._sources[name], raw))
                if kind is not None:
                    (aware if kind else naive).append((name, c))
        if not (aware and naive):
            return []
        others = ", ".join(f"{t}.{c}" for t, c in naive)
        return [PQLDataError(f"table '{t}': column '{c}' mixes zone-aware and naive timestamps", code="E708",
                             table=t, column=c, hints=[f"'{t}.{c}' is zone-aware but {others} are naive; "
                                                       "use one convention for every time column"])
                for t, c in aware]

    def _orphans(self, edge: Edge) -> list[PQLWarning]:
        """W701: non-NULL foreign keys with no parent row, counted by one anti-join."""
        pk = self.graph.table(edge.dst_table).primary_key
        if pk is None:
            return []
        query = (exp.select(exp.Count(this=exp.Star()))
                 .from_(exp.alias_(self.view(edge.src_table), "s", table=True))
                 .join(exp.alias_(self.view(edge.dst_table), "d", table=True),
                       on=exp.EQ(this=col(pk, "d"), expression=col(edge.fkey, "s")), join_type="ANTI")
                 .where(_not_null(col(edge.fkey, "s"))))
        n = run(self.con, query)[0][0]
        if not n:
            return []
        return [PQLWarning("W701", f"table '{edge.src_table}': {n} rows have a '{edge.fkey}' without a parent in "
                                   f"'{edge.dst_table}'; they are treated as unlinked",
                           table=edge.src_table, column=edge.fkey)]


# -- fingerprints and the shared cache ------------------------------------------------------------
def _fingerprint(table: TableSchema) -> tuple | None:
    """What identifies the table's data now, or None when it cannot be told apart from a change:
    a pandas DataFrame (mutable), a file just written (racy mtime), a file that cannot be stat'ed."""
    if table.data is not None:
        pa = sys.modules.get("pyarrow")
        if pa is not None and isinstance(table.data, (pa.Table, pa.RecordBatch)):  # immutable
            return ("arrow", id(table.data))  # the Database's graph keeps the object alive
        return None
    if table.source is None:
        return None
    try:
        st = os.stat(table.source)
    except OSError:
        return None
    if time.time() - st.st_mtime < RACY_SECONDS:
        return None
    return ("file", str(table.source), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _schema_key(table: TableSchema) -> tuple:
    return (table.primary_key, table.time_column, table.end_time_column, table.format,
            tuple((c.name, c.dtype) for c in table.columns.values()))


def _copy(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    return list(value) if isinstance(value, list) else value


def _shared_get(key: Hashable) -> Any:
    with _SHARED_LOCK:
        found = _SHARED.get(key, _MISSING)
        if found is not _MISSING:
            _SHARED.move_to_end(key)
        return found


def _shared_put(key: Hashable, value: Any) -> None:
    with _SHARED_LOCK:
        _SHARED[key] = value
        while len(_SHARED) > CACHE_SIZE:
            _SHARED.popitem(last=False)


def clear_check_cache() -> None:
    """Forget every remembered load check of file-backed tables (tests; data rewritten in place)."""
    with _SHARED_LOCK:
        _SHARED.clear()


def _int_lit(value: int) -> exp.Expression:
    literal = exp.Literal.number(abs(value))
    return exp.Neg(this=literal) if value < 0 else literal
