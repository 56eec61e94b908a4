"""Kumo-style tables: a source table plus keys, time columns and column semantic types.

``Table.from_source_table(source_table=connector.table('users'), primary_key='user_id')`` names the
keys; ``.infer_metadata()`` fills in every column's dtype and stype (and the primary key and time
column when not given) with the same rules as graph loading (spec §6.2-§6.5, ``pql.infer``).
Setting ``table['col'].stype = 'categorical'`` overrides inference (§6.3 rule 1). A table joins a
graph through ``pql.Graph(tables={'users': users, ...}, edges=[...])``.
"""

from __future__ import annotations

from typing import Any

from pql.errors import PQLDataError, PQLRunError, PQLWarning, did_you_mean
from pql.graph import Dtype, Stype, TableSchema

from .connectors import SourceTable

__all__ = ["Column", "Table"]

_ROLES = ("primary_key", "time_column", "end_time_column")


class Column:
    """One column of a :class:`Table`: its dtype and stype (None until inferred or set)."""

    def __init__(self, table: "Table", name: str) -> None:
        self._table = table
        self.name = name
        self.dtype: Dtype | None = None
        self._stype: Stype | None = None

    @property
    def stype(self) -> Stype | None:
        return self._stype

    @stype.setter
    def stype(self, value: Stype | str | None) -> None:
        """Override the inferred semantic type (checked against the dtype when the graph is built)."""
        if value is None:
            self._table._overrides.pop(self.name, None)
            self._stype = None
            return
        stype = value if isinstance(value, Stype) else _parse_stype(self._table.name, self.name, value)
        self._table._overrides[self.name] = stype
        self._stype = stype

    def __repr__(self) -> str:
        return f"Column(name={self.name!r}, dtype={_s(self.dtype)}, stype={_s(self.stype)})"


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


def _parse_stype(table: str, column: str, text: Any) -> Stype:
    from pql.graphbuild import STYPE_NAMES

    try:
        stype = Stype.parse(text) if isinstance(text, str) else None
    except KeyError:
        stype = None
    if stype is None or stype is Stype.UNSUPPORTED:
        dym, hints = did_you_mean(str(text), STYPE_NAMES)
        raise PQLDataError(f"column '{table}.{column}': '{text}' is not a semantic type{dym}", code="E711",
                           table=table, column=column, hints=hints or ["semantic types: " + ", ".join(STYPE_NAMES)])
    return stype


class Table:
    """A source table with keys, time columns and column types (Kumo's ``kumoai.Table``)."""

    def __init__(self, source_table: SourceTable, column_names: list[str] | None = None,
                 primary_key: str | None = None, time_column: str | None = None,
                 end_time_column: str | None = None) -> None:
        if not isinstance(source_table, SourceTable):
            raise PQLRunError(f"source_table must come from a connector, e.g. connector.table('users'); got "
                              f"{type(source_table).__name__}", code="E602")
        self.source_table = source_table
        available = source_table.columns
        names = list(column_names) if column_names is not None else available
        for n in names:
            if n not in available:
                raise self._no_column(n, "column_names", available)
        self._selected = column_names is not None
        self._columns = {n: Column(self, n) for n in names}
        self._overrides: dict[str, Stype] = {}
        self._data: Any = None
        self.warnings: list[PQLWarning] = []
        self._roles: dict[str, str | None] = dict.fromkeys(_ROLES)
        for role, value in zip(_ROLES, (primary_key, time_column, end_time_column)):
            self._set_role(role, value)

    @classmethod
    def from_source_table(cls, source_table: SourceTable, column_names: list[str] | None = None,
                          primary_key: str | None = None, time_column: str | None = None,
                          end_time_column: str | None = None) -> "Table":
        return cls(source_table, column_names, primary_key, time_column, end_time_column)

    # -- keys and columns ----------------------------------------------------------------------------
    def _no_column(self, column: str, role: str, names: list[str]) -> PQLDataError:
        dym, hints = did_you_mean(str(column), names)
        return PQLDataError(f"table '{self.name}' has no column '{column}' (named by {role}){dym}", code="E704",
                            table=self.name, column=str(column), hints=hints)

    def _set_role(self, role: str, value: str | None) -> None:
        if value is not None and value not in self._columns:
            raise self._no_column(value, role, list(self._columns))
        self._roles[role] = value

    primary_key = property(lambda self: self._roles["primary_key"],
                           lambda self, v: self._set_role("primary_key", v))
    time_column = property(lambda self: self._roles["time_column"],
                           lambda self, v: self._set_role("time_column", v))
    end_time_column = property(lambda self: self._roles["end_time_column"],
                               lambda self, v: self._set_role("end_time_column", v))

    @property
    def name(self) -> str:
        return self.source_table.name

    @property
    def columns(self) -> list[Column]:
        return list(self._columns.values())

    def has_column(self, name: str) -> bool:
        return name in self._columns

    def column(self, name: str) -> Column:
        if name not in self._columns:
            raise self._no_column(name, "column()", list(self._columns))
        return self._columns[name]

    __getitem__ = column

    # -- the table as a graph sees it -------------------------------------------------------------------
    def to_spec(self, name: str | None = None, *, infer: bool = False) -> Any:
        """The :class:`pql.graphbuild.TableSpec` of this table under ``name`` (default: the source name)."""
        from pql.graphbuild import TableSpec

        st = self.source_table
        if st.path is not None and not self._selected:  # a local file: DuckDB reads it in place
            fields: dict[str, Any] = {"source": st.path, "format": st.format}
        else:
            if self._data is None:
                self._data = st.to_arrow(list(self._columns) if self._selected else None)
            fields = {"data": self._data}
        return TableSpec(name=name or self.name, **fields, primary_key=self.primary_key,
                         time_column=self.time_column, end_time_column=self.end_time_column,
                         stypes={c: str(s) for c, s in self._overrides.items()},
                         infer_primary_key=infer and self.primary_key is None,
                         infer_time_column=infer and self.time_column is None)

    def _schema(self, *, infer: bool = False) -> TableSchema:
        from pql.graphbuild import build_graph

        graph = build_graph([self.to_spec(infer=infer)], [])
        self.warnings = list(graph.warnings)
        return graph.tables[self.name]

    def infer_metadata(self, inplace: bool = True) -> "Table":
        """Infer every column's dtype and stype, and the primary key and time column when not set
        (spec §6.3, §6.5). Stypes set by hand are kept. Returns the table."""
        target = self if inplace else self._copy()
        schema = target._schema(infer=True)
        for role in _ROLES:
            if target._roles[role] is None:
                target._roles[role] = getattr(schema, role)
        for c in schema.columns.values():
            col = target._columns[c.name]
            col.dtype = c.dtype
            col._stype = target._overrides.get(c.name, c.stype)
        return target

    def _copy(self) -> "Table":
        other = Table(self.source_table, list(self._columns) if self._selected else None, *self._roles.values())
        for name, stype in self._overrides.items():
            other._columns[name].stype = stype
        other._data = self._data
        return other

    @property
    def metadata(self) -> Any:
        """One row per column: name, dtype, stype and whether it is the primary key / time / end time
        column (a pandas DataFrame)."""
        import pandas as pd

        rows = [{"name": c.name, "dtype": _s(c.dtype), "stype": _s(c.stype),
                 "is_primary": c.name == self.primary_key, "is_time_column": c.name == self.time_column,
                 "is_end_time_column": c.name == self.end_time_column} for c in self._columns.values()]
        return pd.DataFrame(rows, columns=["name", "dtype", "stype", "is_primary", "is_time_column",
                                           "is_end_time_column"])

    def validate(self, verbose: bool = True) -> "Table":
        """Check keys, time columns and stypes, then the load checks of §6.6 (duplicate or NULL primary
        keys, unparsable timestamps, ...). Raises one PQLDataError with every problem."""
        from pql.data import Database
        from pql.graph import Graph

        schema = self._schema()
        graph = Graph({self.name: schema}, [])
        with Database(graph) as db:
            warnings = db.check([self.name])
            rows = count_rows(db, self.name)
        self.warnings = list(self.warnings) + list(warnings)
        if verbose:
            print(self._report(schema, rows))
        return self

    def _report(self, schema: TableSchema, rows: int) -> str:
        keys = [f"primary key {schema.primary_key}" if schema.primary_key else "no primary key"]
        keys.append(f"time column {schema.time_column}" if schema.time_column else "no time column")
        if schema.end_time_column:
            keys.append(f"end time column {schema.end_time_column}")
        lines = [f"Table '{self.name}' is valid: {rows:,} rows, {len(schema.columns)} columns, {', '.join(keys)}"]
        lines += [w.render() for w in self.warnings]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Table(name={self.name!r}, source={self.source_table.connector!r}, primary_key={self.primary_key!r}, "
                f"time_column={self.time_column!r}, end_time_column={self.end_time_column!r}, "
                f"columns={list(self._columns)})")


def count_rows(db: Any, table: str) -> int:
    """Rows of a graph table's view in a :class:`pql.data.Database`."""
    from sqlglot import exp

    from pql.datasource import run

    return int(run(db.con, exp.select(exp.Count(this=exp.Star())).from_(db.view(table)))[0][0])
