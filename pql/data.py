"""The engine's DuckDB session over a graph's data, and the load checks (PQL-SPEC §6.6, §12).

:class:`Database` owns one in-process DuckDB connection in which every graph table is a VIEW named
exactly like the table, reading its file in place (or an in-memory pyarrow Table / pandas
DataFrame). In the view every timestamp column is a naive ``TIMESTAMP``: text parsed, zone-aware
values converted to UTC, dates at midnight. :meth:`Database.check` runs the load checks with SQL
aggregates, raises every error together and returns the warnings.
"""

from __future__ import annotations

from typing import Any, Iterable

import duckdb
from sqlglot import exp

from pql.datasource import (
    RawColumn, col, describe_source, ident, read_error, register_data, run, source_expr, timestamp_problems,
    view_select, zone_awareness,
)
from pql.errors import PQLDataError, PQLError, PQLWarning
from pql.graph import Dtype, Edge, Graph, TableSchema
from pql.graphbuild import raise_all

__all__ = ["Database"]

MAX_EXAMPLES = 3


def _not_null(e: exp.Expression) -> exp.Expression:
    return exp.Not(this=exp.Is(this=e, expression=exp.Null()))


def _fmt(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


class Database:
    """Graph tables registered as DuckDB views; ``con`` is the connection (created when not given)."""

    def __init__(self, graph: Graph, con: duckdb.DuckDBPyConnection | None = None) -> None:
        self.graph = graph
        self._owns_con = con is None
        self.con = con if con is not None else duckdb.connect()
        self._sources: dict[str, exp.Expression] = {}
        self._raws: dict[str, list[RawColumn]] = {}
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
                counts[name] = self._check_table(name, errors, warnings)
            except duckdb.Error as e:
                errors.append(read_error(self.graph.table(name), e))
        for name in self.graph.tables:
            if name in counts or name in checked:
                continue
            try:
                counts[name] = run(self.con, exp.select(exp.Count(this=exp.Star())).from_(self.view(name)))[0][0]
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
                    warnings += self._orphans(edge)
                except duckdb.Error as e:
                    errors.append(read_error(self.graph.table(edge.dst_table), e))
        raise_all(errors)
        return warnings

    def _check_table(self, name: str, errors: list[PQLError], warnings: list[PQLWarning]) -> int:
        """One aggregate over the view (which also reads every CSV value), then targeted queries."""
        table = self.graph.table(name)
        pk, time = table.primary_key, table.time_column
        items: list[exp.Expression] = [exp.Count(this=exp.Star())]
        if pk is not None:
            items += [exp.Count(this=col(pk)), exp.Count(this=exp.Distinct(expressions=[col(pk)]))]
        if time is not None:
            items.append(exp.Count(this=col(time)))
        if table.format == "csv":
            items += [exp.Count(this=col(c)) for c in table.columns]
        row = run(self.con, exp.select(*items).from_(self.view(name)))[0]
        total = row[0]
        for raw in self._raws[name]:
            schema = table.columns.get(raw.name)
            if schema is not None and schema.dtype is Dtype.TIMESTAMP:
                errors += timestamp_problems(self.con, name, self._sources[name], raw)
        if pk is not None:
            non_null, distinct = row[1], row[2]
            if non_null < total:
                errors.append(PQLDataError(f"table '{name}': primary key '{pk}' is NULL in {total - non_null} rows",
                                           code="E706", table=name, column=pk))
            if distinct < non_null:
                errors.append(self._duplicates(name, pk))
        if time is not None:
            nulls = total - row[3 if pk is not None else 1]
            if nulls:
                warnings.append(PQLWarning(
                    "W702", f"table '{name}': time column '{time}' is NULL in {nulls} rows; such rows are in no "
                            "window and no history", table=name, column=time))
        return total

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
                kind = zone_awareness(self.con, self._sources[name], raw) if raw is not None else None
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
        pk = self.graph.table(edge.dst_table).primary_key
        if pk is None:
            return []
        parent = (exp.select(exp.Literal.number(1)).from_(exp.alias_(self.view(edge.dst_table), "d", table=True))
                  .where(exp.EQ(this=col(pk, "d"), expression=col(edge.fkey, "s"))))
        query = (exp.select(exp.Count(this=exp.Star()))
                 .from_(exp.alias_(self.view(edge.src_table), "s", table=True))
                 .where(exp.and_(_not_null(col(edge.fkey, "s")), exp.Not(this=exp.Exists(this=parent)))))
        n = run(self.con, query)[0][0]
        if not n:
            return []
        return [PQLWarning("W701", f"table '{edge.src_table}': {n} rows have a '{edge.fkey}' without a parent in "
                                   f"'{edge.dst_table}'; they are treated as unlinked",
                           table=edge.src_table, column=edge.fkey)]
