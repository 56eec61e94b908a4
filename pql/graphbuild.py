"""Assemble a checked :class:`~pql.graph.Graph` from table specifications (PQL-SPEC §6).

``graph.toml`` (``pql.graphfile``), a data directory (``pql.infer``) and in-memory tables
(``Graph.from_tables``) all describe tables as :class:`TableSpec` objects; :func:`build_graph`
reads each source's schema, checks every named column and edge, infers what it is asked to, and
assigns dtypes and stypes. All problems are collected and raised together as one PQLDataError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import duckdb
from sqlglot import exp

from pql.datasource import (
    RawColumn, connect, describe_source, read_error, register_data, release, source_expr, timestamp_problems,
)
from pql.errors import PQLDataError, PQLError, PQLWarning, did_you_mean
from pql.graph import RESERVED_TABLE_NAMES, ColumnSchema, Dtype, Edge, Graph, Stype, TableSchema
from pql import infer

__all__ = ["TableSpec", "build_graph", "raise_all", "STYPE_NAMES"]

STYPE_NAMES = ["numerical", "categorical", "multicategorical", "ID", "text", "timestamp"]


@dataclass
class TableSpec:
    """What a graph description says about one table; ``keys`` maps a role to the name used in messages."""

    name: str
    source: Path | None = None
    format: str | None = None
    data: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    primary_key: str | None = None
    time_column: str | None = None
    end_time_column: str | None = None
    stypes: dict[str, str] = field(default_factory=dict)  # column -> stype name (overrides, §6.3 rule 1)
    infer_primary_key: bool = False
    infer_time_column: bool = False
    keys: dict[str, str] = field(default_factory=dict)

    def key(self, role: str, column: str | None = None) -> str:
        base = self.keys.get(role, role)
        return f"{base}.{column}" if column is not None else base


def raise_all(errors: Sequence[PQLError]) -> None:
    """Raise every collected problem together (no-op when there are none)."""
    if not errors:
        return
    first = errors[0]
    msg = first.message if len(errors) == 1 else f"{first.message} (and {len(errors) - 1} more)"
    raise PQLDataError(msg, code=first.code, errors=list(errors), hints=first.hints,
                       table=first.table_name, column=first.column_name)


def _name_problem(name: str) -> PQLDataError | None:
    if name.upper() in RESERVED_TABLE_NAMES:
        return PQLDataError(f"table name '{name}' is reserved; rename it in graph.toml", code="E712", table=name)
    if "`" in name or "\n" in name or "\r" in name or not name:
        return PQLDataError(f"table name {name!r} may not be empty or contain a backtick or a newline",
                            code="E712", table=name)
    return None


class _Builder:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.errors: list[PQLError] = []
        self.warnings: list[PQLWarning] = []
        self.tables: dict[str, TableSchema] = {}
        self.raws: dict[str, list[RawColumn]] = {}
        self.sources: dict[str, exp.Expression] = {}
        self.specs: dict[str, TableSpec] = {}
        self.failed: set[str] = set()
        self.registered: list[str] = []

    def guarded(self, name: str, step: Any, *args: Any) -> None:
        """Run one table's step; a read failure (e.g. a bad CSV row met while sampling) becomes E702."""
        try:
            step(*args)
        except duckdb.Error as e:
            spec = self.specs[name]
            table = self.tables.pop(name, None) or TableSchema(name=name, columns={}, source=spec.source,
                                                                format=spec.format, data=spec.data)
            self.errors.append(read_error(table, e))
            self.failed.add(name)

    # -- per table --------------------------------------------------------------------------------
    def load(self, spec: TableSpec, index: int) -> None:
        self.specs[spec.name] = spec
        problem = _name_problem(spec.name)
        if problem is not None:
            self.errors.append(problem)
            self.failed.add(spec.name)
            return
        table = TableSchema(name=spec.name, columns={}, source=spec.source, format=spec.format, data=spec.data,
                            options=dict(spec.options))
        registered = f"__pql_load_{index}" if spec.data is not None else None
        try:
            if spec.data is not None:
                register_data(self.con, registered, table)
                self.registered.append(registered)
            source = source_expr(table, registered)
            raws = describe_source(self.con, table, source)
        except PQLDataError as e:
            self.errors.append(e)
            self.failed.add(spec.name)
            return
        self.tables[spec.name], self.raws[spec.name], self.sources[spec.name] = table, raws, source
        names = [r.name for r in raws]
        for role in ("primary_key", "time_column", "end_time_column"):
            column = getattr(spec, role)
            if column is None:
                continue
            if column in names:
                setattr(table, role, column)
            else:
                self.errors.append(self._no_column(spec, column, spec.key(role), names))
        for column in spec.stypes:
            if column not in names:
                self.errors.append(self._no_column(spec, column, spec.key("columns", column), names))
        if spec.infer_primary_key and spec.primary_key is None:
            table.primary_key, warns = infer.infer_primary_key(self.con, spec.name, source, raws)
            self.warnings += warns
        if spec.infer_time_column and spec.time_column is None:
            table.time_column, warns = infer.infer_time_column(spec.name, raws)
            self.warnings += warns
        for column in (table.time_column, table.end_time_column):
            if column is not None:
                raw = next(r for r in raws if r.name == column)
                self.errors += timestamp_problems(self.con, spec.name, source, raw)

    @staticmethod
    def _no_column(spec: TableSpec, column: str, key: str, names: list[str]) -> PQLDataError:
        dym, hints = did_you_mean(column, names)
        return PQLDataError(f"table '{spec.name}' has no column '{column}' (named by {key}){dym}", code="E704",
                            table=spec.name, column=column, hints=hints)

    # -- edges ------------------------------------------------------------------------------------
    def dtype(self, table: str, column: str) -> Dtype | None:
        raw = next((r for r in self.raws.get(table, []) if r.name == column), None)
        return raw.dtype if raw is not None else None

    def check_edge(self, edge: Edge) -> bool:
        if edge.src_table in self.failed or edge.dst_table in self.failed:
            return False  # the table's own error already says what is wrong
        reason = self._edge_problem(edge)
        if reason is None:
            return True
        self.errors.append(PQLDataError(f"edge {edge.src_table}.{edge.fkey} -> {edge.dst_table}: {reason}",
                                        code="E710", table=edge.src_table, column=edge.fkey))
        return False

    def _edge_problem(self, edge: Edge) -> str | None:
        for t in (edge.src_table, edge.dst_table):
            if t not in self.tables:
                dym, _ = did_you_mean(t, list(self.specs))
                return f"unknown table '{t}'{dym}"
        src_cols = [r.name for r in self.raws[edge.src_table]]
        if edge.fkey not in src_cols:
            dym, _ = did_you_mean(edge.fkey, src_cols)
            return f"table '{edge.src_table}' has no column '{edge.fkey}'{dym}"
        pk = self.tables[edge.dst_table].primary_key
        if pk is None:
            return f"table '{edge.dst_table}' has no primary key; set primary_key for '{edge.dst_table}'"
        a, b = self.dtype(edge.src_table, edge.fkey), self.dtype(edge.dst_table, pk)
        if a is not b:
            return f"dtypes {a}/{b} differ ('{edge.src_table}.{edge.fkey}' is {a}, '{edge.dst_table}.{pk}' is {b})"
        return None

    # -- columns ----------------------------------------------------------------------------------
    def assign_columns(self, name: str, edges: list[Edge]) -> None:
        table, spec, raws = self.tables[name], self.specs[name], self.raws[name]
        keys = {table.primary_key} | {e.fkey for e in edges if e.src_table == name}
        times = {table.time_column, table.end_time_column} - {None}
        overrides: dict[str, Stype] = {}
        dtypes: dict[str, Dtype] = {}
        for raw in raws:
            dtype = Dtype.TIMESTAMP if raw.name in times else raw.dtype
            if raw.name in spec.stypes:
                stype = self._override(name, raw, dtype, spec.stypes[raw.name])
                if stype is None:
                    continue
                if stype is Stype.TIMESTAMP and dtype is Dtype.STRING:
                    dtype = Dtype.TIMESTAMP
                    self.errors += timestamp_problems(self.con, name, self.sources[name], raw)
                overrides[raw.name] = stype
            dtypes[raw.name] = dtype
        need = [r for r in raws if r.name in dtypes and r.name not in overrides
                and infer.needs_stats(r.name, dtypes[r.name], r.name in keys)]
        stats = infer.column_stats(self.con, self.sources[name], need)
        for raw in raws:
            if raw.name not in dtypes:
                continue
            dtype = dtypes[raw.name]
            stype = overrides.get(raw.name) or infer.infer_stype(raw.name, dtype, is_key=raw.name in keys,
                                                                 stats=stats.get(raw.name))
            table.columns[raw.name] = ColumnSchema(raw.name, dtype, stype)

    def _override(self, table: str, raw: RawColumn, dtype: Dtype, text: str) -> Stype | None:
        where = f"column '{table}.{raw.name}'"
        try:
            stype = Stype.parse(text) if isinstance(text, str) else None
        except KeyError:
            stype = None
        if stype is None or stype is Stype.UNSUPPORTED:
            dym, hints = did_you_mean(str(text), STYPE_NAMES)
            if not dym:
                hints = ["semantic types: " + ", ".join(STYPE_NAMES)]
            self.errors.append(PQLDataError(f"{where}: '{text}' is not a semantic type{dym}", code="E711",
                                            table=table, column=raw.name, hints=hints))
            return None
        if dtype not in infer.STYPE_DTYPES[stype]:
            self.errors.append(PQLDataError(f"{where}: cannot be {stype} with dtype {dtype}", code="E711",
                                            table=table, column=raw.name))
            return None
        return stype


def build_graph(specs: Iterable[TableSpec], edges: Iterable[Edge], *, infer_edges: bool = False,
                path: Path | None = None, con: duckdb.DuckDBPyConnection | None = None,
                failed_tables: Iterable[str] = ()) -> Graph:
    """Read every table's schema, check names, keys and edges, infer what is asked, assign stypes.

    ``failed_tables`` names tables the caller already reported as broken: edges touching them are
    not reported again."""
    if con is not None:
        return _build(_Builder(con), specs, edges, infer_edges=infer_edges, path=path, failed_tables=failed_tables)
    b = _Builder(connect())
    try:
        graph = _build(b, specs, edges, infer_edges=infer_edges, path=path, failed_tables=failed_tables)
    except Exception:
        release(b.con, b.registered)
        raise
    except BaseException:  # interrupted mid-query: not worth reusing
        b.con.close()
        raise
    release(b.con, b.registered)  # it only read, so the next Database may take it over
    return graph


def _build(b: _Builder, specs: Iterable[TableSpec], edges: Iterable[Edge], *, infer_edges: bool,
           path: Path | None, failed_tables: Iterable[str]) -> Graph:
    b.failed.update(failed_tables)
    b.specs.update({name: TableSpec(name) for name in failed_tables})
    for i, spec in enumerate(specs):
        b.guarded(spec.name, b.load, spec, i)
    kept = [e for e in edges if b.check_edge(e)]
    if infer_edges:
        cols = {t: {r.name: r.dtype for r in raws} for t, raws in b.raws.items()}
        found, warns = infer.infer_edges(cols, {t: s.primary_key for t, s in b.tables.items()})
        kept += [e for e in found if e not in kept]
        b.warnings += warns
    for name in list(b.tables):
        b.guarded(name, b.assign_columns, name, kept)
    raise_all(b.errors)
    graph = Graph(b.tables, kept, path=path)
    graph.warnings = list(b.warnings)
    return graph


def graph_from_tables(tables: dict[str, Any], *, primary_keys: dict[str, str] | None = None,
                      time_columns: dict[str, str] | None = None, end_time_columns: dict[str, str] | None = None,
                      edges: Iterable[Edge | tuple[str, str, str]] | None = None,
                      stypes: dict[str, dict[str, str]] | None = None, infer: bool = False) -> Graph:
    """A graph over in-memory tables (pyarrow Tables or pandas DataFrames) or files (a path).

    Keys, time columns and edges are taken as given; with ``infer=True`` the ones not given (a
    table missing from ``primary_keys`` / ``time_columns``, or ``edges=None``) are inferred as for
    a data directory (§6.5). Dtypes and stypes always come from the data (§6.2, §6.3)."""
    from pql.datasource import format_for_path

    primary_keys, time_columns = dict(primary_keys or {}), dict(time_columns or {})
    end_time_columns, stypes = dict(end_time_columns or {}), dict(stypes or {})
    errors: list[PQLError] = []
    for role, mapping in (("primary_keys", primary_keys), ("time_columns", time_columns),
                          ("end_time_columns", end_time_columns), ("stypes", stypes)):
        for name in mapping:
            if name not in tables:
                dym, hints = did_you_mean(name, list(tables))
                errors.append(PQLDataError(f"{role} names unknown table '{name}'{dym}", code="E704", table=name,
                                           hints=hints))
    raise_all(errors)
    specs = []
    for name, data in tables.items():
        spec = TableSpec(name=name, primary_key=primary_keys.get(name), time_column=time_columns.get(name),
                         end_time_column=end_time_columns.get(name), stypes=dict(stypes.get(name, {})),
                         infer_primary_key=infer and name not in primary_keys,
                         infer_time_column=infer and name not in time_columns,
                         keys={"primary_key": f"primary_keys['{name}']", "time_column": f"time_columns['{name}']",
                               "end_time_column": f"end_time_columns['{name}']", "columns": f"stypes['{name}']"})
        if isinstance(data, (str, Path)):
            spec.source = Path(data).resolve()
            spec.format = format_for_path(spec.source) or "parquet"
        else:
            spec.data = data
        specs.append(spec)
    edge_list = [e if isinstance(e, Edge) else Edge(*e) for e in (edges or [])]
    return build_graph(specs, edge_list, infer_edges=infer and edges is None)
