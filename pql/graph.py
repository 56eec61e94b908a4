"""The graph of tables (PQL-SPEC §6): tables, typed columns, keys, time columns and edges.

This module holds the data model and the link look-ups every stage shares. Loading lives
elsewhere: ``pql.graphfile`` reads ``graph.toml``, ``pql.infer`` infers schemas from data files.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

__all__ = ["Dtype", "Stype", "ColumnSchema", "TableSchema", "Edge", "Graph", "RESERVED_TABLE_NAMES"]

RESERVED_TABLE_NAMES = frozenset({"PREDICTIONS", "TRAINING_TABLE", "EMBEDDINGS", "ITEM_EMBEDDINGS", "METRICS"})


class Dtype(enum.Enum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"
    TIMESTAMP = "timestamp"
    LIST_STRING = "list<string>"
    LIST_INT = "list<int>"
    OTHER = "other"

    def __str__(self) -> str:
        return self.value

    @property
    def is_numeric(self) -> bool:
        return self in (Dtype.INT, Dtype.FLOAT)

    @property
    def is_list(self) -> bool:
        return self in (Dtype.LIST_STRING, Dtype.LIST_INT)

    @property
    def element(self) -> "Dtype":
        """Element dtype of a list dtype (itself otherwise)."""
        return {Dtype.LIST_STRING: Dtype.STRING, Dtype.LIST_INT: Dtype.INT}.get(self, self)

    @classmethod
    def parse(cls, text: str) -> "Dtype":
        return _DTYPE_BY_NAME[text.strip().lower()]


_DTYPE_BY_NAME = {d.value: d for d in Dtype}


class Stype(enum.Enum):
    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"
    MULTICATEGORICAL = "multicategorical"
    ID = "ID"
    TEXT = "text"
    TIMESTAMP = "timestamp"
    UNSUPPORTED = "unsupported"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> "Stype":
        """Stype names ignore case (spec §6.4)."""
        return _STYPE_BY_NAME[text.strip().lower()]


_STYPE_BY_NAME = {s.value.lower(): s for s in Stype}


@dataclass
class ColumnSchema:
    name: str
    dtype: Dtype
    stype: Stype

    def __str__(self) -> str:
        return f"{self.name} {self.dtype}/{self.stype}"


@dataclass
class TableSchema:
    """One table: its columns (in source order), keys, time columns and where its data lives.

    ``source`` is a file path (Parquet or CSV, ``format`` says which) or an in-memory table
    (a ``pyarrow.Table`` or a ``pandas.DataFrame``) held in ``data``.
    """

    name: str
    columns: dict[str, ColumnSchema]
    primary_key: str | None = None
    time_column: str | None = None
    end_time_column: str | None = None
    source: Path | None = None
    format: str | None = None  # "parquet" | "csv" | None for in-memory
    data: Any = None
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {"delimiter": ";"} for CSV

    def column(self, name: str) -> ColumnSchema | None:
        return self.columns.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    @property
    def is_timed(self) -> bool:
        return self.time_column is not None

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)


@dataclass(frozen=True)
class Edge:
    """``src_table.fkey`` references the primary key of ``dst_table``."""

    src_table: str
    fkey: str
    dst_table: str

    def __str__(self) -> str:
        return f"{self.src_table}.{self.fkey} -> {self.dst_table}"


class Graph:
    """Tables and the foreign-key edges between them."""

    def __init__(self, tables: dict[str, Any] | None = None, edges: list[Any] | None = None,
                 *, path: Path | None = None) -> None:
        """``tables`` maps names to :class:`TableSchema` objects, or to SDK ``pql.Table`` objects
        (then the graph is built and checked from their data, see ``pql.sdk.graph``); ``edges`` are
        :class:`Edge` objects or ``dict(src_table=..., fkey=..., dst_table=...)``."""
        from_sdk = any(not isinstance(t, TableSchema) for t in (tables or {}).values())
        if from_sdk or any(not isinstance(e, Edge) for e in (edges or [])):
            from pql.sdk.graph import as_edge, build_from_sdk_tables

            edges = [as_edge(e) for e in (edges or [])]
            if from_sdk:
                built = build_from_sdk_tables(dict(tables or {}), edges)
                tables, edges = built.tables, built.edges
        self.tables: dict[str, TableSchema] = dict(tables or {})
        self.edges: list[Edge] = list(edges or [])
        self.path = path  # graph.toml or data directory this graph came from, if any
        self.warnings: list[Any] = list(built.warnings) if from_sdk else []  # PQLWarnings from loading

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path) -> "Graph":
        from pql.graphfile import load_graph_toml

        return load_graph_toml(Path(path))

    @classmethod
    def from_directory(cls, path: str | Path) -> "Graph":
        from pql.infer import graph_from_directory

        return graph_from_directory(Path(path))

    @classmethod
    def from_tables(cls, tables: dict[str, Any], *, primary_keys: dict[str, str] | None = None,
                    time_columns: dict[str, str] | None = None, end_time_columns: dict[str, str] | None = None,
                    edges: list[Any] | None = None, stypes: dict[str, dict[str, str]] | None = None,
                    infer: bool = False) -> "Graph":
        """A graph over in-memory tables (pyarrow Table / pandas DataFrame) or file paths; dtypes and
        stypes are inferred from the data, keys/time columns/edges as given (or inferred with ``infer``)."""
        from pql.graphbuild import graph_from_tables

        return graph_from_tables(tables, primary_keys=primary_keys, time_columns=time_columns,
                                 end_time_columns=end_time_columns, edges=edges, stypes=stypes, infer=infer)

    def to_toml(self, base: str | Path | None = None, *, stypes: bool = True) -> str:
        """The ``graph.toml`` text for this graph (paths relative to ``base`` when possible)."""
        from pql.graphfile import graph_to_toml

        return graph_to_toml(self, Path(base) if base is not None else None, stypes=stypes)

    @classmethod
    def load(cls, path: str | Path) -> "Graph":
        """A ``graph.toml`` file, or a directory (its ``graph.toml`` if present, else inferred)."""
        p = Path(path)
        if p.is_dir():
            return cls.from_toml(p / "graph.toml") if (p / "graph.toml").is_file() else cls.from_directory(p)
        return cls.from_toml(p)

    # -- look-ups -----------------------------------------------------------------------------
    def __contains__(self, table: str) -> bool:
        return table in self.tables

    def __iter__(self) -> Iterator[TableSchema]:
        return iter(self.tables.values())

    def table(self, name: str) -> TableSchema:
        return self.tables[name]

    def column(self, table: str, column: str) -> ColumnSchema | None:
        t = self.tables.get(table)
        return t.columns.get(column) if t else None

    def edges_between(self, src: str, dst: str) -> list[Edge]:
        """Edges from ``src`` (holding the FK) to ``dst`` (holding the PK). Never a self-edge."""
        if src == dst:
            return []
        return [e for e in self.edges if e.src_table == src and e.dst_table == dst]

    def parents(self, table: str) -> list[Edge]:
        """Edges out of ``table``: its foreign keys."""
        return [e for e in self.edges if e.src_table == table and e.dst_table != table]

    def children(self, table: str) -> list[Edge]:
        """Edges into ``table``: the tables whose foreign keys reference it."""
        return [e for e in self.edges if e.dst_table == table and e.src_table != table]

    def foreign_key(self, table: str, column: str) -> Edge | None:
        """The edge whose FK is ``table.column`` (the first one when there are parallel edges)."""
        return next((e for e in self.edges if e.src_table == table and e.fkey == column), None)

    def is_foreign_key(self, table: str, column: str) -> bool:
        return self.foreign_key(table, column) is not None

    def is_key(self, table: str, column: str) -> bool:
        t = self.tables.get(table)
        return t is not None and (t.primary_key == column or self.is_foreign_key(table, column))

    @property
    def timed_tables(self) -> list[str]:
        return [t.name for t in self.tables.values() if t.is_timed]

    # -- Kumo SDK methods (pql.sdk.graph) --------------------------------------------------------
    def validate(self, verbose: bool = True) -> "Graph":
        """Load checks on every table (§6.6); with ``verbose`` print tables, edges and warnings."""
        from pql.sdk.graph import validate_graph

        return validate_graph(self, verbose)

    def link(self, src_table: Any, fkey: str | None = None, dst_table: str | None = None) -> "Graph":
        """Add the edge ``src_table.fkey -> dst_table`` (or an Edge / dict); E710 when it cannot link."""
        from pql.sdk.graph import link

        return link(self, src_table, fkey, dst_table)

    def unlink(self, src_table: Any, fkey: str | None = None, dst_table: str | None = None) -> "Graph":
        from pql.sdk.graph import unlink

        return unlink(self, src_table, fkey, dst_table)

    def infer_links(self) -> list[Edge]:
        """Add the foreign keys §6.5 infers (by primary-key name and dtype); returns the added edges."""
        from pql.sdk.graph import infer_links

        return infer_links(self)

    def get_table_stats(self) -> dict[str, dict[str, Any]]:
        """Per table: num_rows, num_columns, primary_key, time_column, min_time, max_time."""
        from pql.sdk.graph import table_stats

        return table_stats(self)

    # -- display --------------------------------------------------------------------------------
    def describe(self) -> str:
        """Every table with every column's dtype and stype, keys, time columns, and the edges."""
        lines: list[str] = []
        for t in self.tables.values():
            extras = []
            if t.primary_key:
                extras.append(f"primary key {t.primary_key}")
            if t.time_column:
                extras.append(f"time {t.time_column}")
            if t.end_time_column:
                extras.append(f"end time {t.end_time_column}")
            head = f"{t.name}" + (f" ({', '.join(extras)})" if extras else " (static, no time column)")
            lines.append(head)
            for c in t.columns.values():
                fk = self.foreign_key(t.name, c.name)
                note = f"  -> {fk.dst_table}" if fk else ""
                lines.append(f"  {c.name:<24} {str(c.dtype):<14} {str(c.stype)}{note}")
        if self.edges:
            lines.append("edges")
            lines.extend(f"  {e}" for e in self.edges)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Graph(tables={list(self.tables)}, edges={[str(e) for e in self.edges]})"
