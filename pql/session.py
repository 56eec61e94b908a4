"""The SQL session of PQL-SPEC §12: one DuckDB connection holding the graph tables and a run's outputs.

Every graph table is a view named like the table (``pql.data.Database``); after a run the session
also holds ``TRAINING_TABLE``, ``PREDICTIONS``, ``METRICS`` and, when produced, ``EMBEDDINGS`` /
``ITEM_EMBEDDINGS``. ``session.sql(text)`` runs the user's SQL unchanged (unquoted names are
case-insensitive, so ``predictions`` works) and returns the result of its last statement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pql.errors import PQLRunError

__all__ = ["Session", "RUN_TABLES"]

RUN_TABLES = ("PREDICTIONS", "TRAINING_TABLE", "METRICS", "EMBEDDINGS", "ITEM_EMBEDDINGS")


class Session:
    """A DuckDB connection with the graph's tables (when given) and named result tables."""

    def __init__(self, graph: Any = None, *, database: Any = None, tables: dict[str, pa.Table] | None = None) -> None:
        if database is None and graph is not None:
            from pql.data import Database

            database = Database(graph)
        self.database = database
        self.graph = graph if graph is not None else getattr(database, "graph", None)
        self.con: duckdb.DuckDBPyConnection = database.con if database is not None else duckdb.connect()
        self._tables: dict[str, pa.Table] = {}
        for name, table in (tables or {}).items():
            self.register(name, table)

    # -- tables -----------------------------------------------------------------------------------
    def register(self, name: str, table: pa.Table) -> None:
        """Make ``table`` queryable as ``name`` (replacing an earlier table of that name)."""
        self.con.register(name, table)
        self._tables[name] = table

    def table(self, name: str) -> pa.Table:
        for key, t in self._tables.items():
            if key.lower() == name.lower():
                return t
        raise KeyError(name)

    @property
    def tables(self) -> list[str]:
        """The names registered by the run (the graph's tables are there too)."""
        return list(self._tables)

    # -- SQL ---------------------------------------------------------------------------------------
    def sql(self, text: str) -> pa.Table:
        """Run ``text`` unchanged; the result of its last statement as a pyarrow Table (E619 on error)."""
        if not isinstance(text, str) or not text.strip():
            raise PQLRunError("the SQL text is empty", code="E619")
        try:
            relation = self.con.sql(text)
            if relation is None:
                return pa.table({})
            return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        except duckdb.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PQLRunError(f"SQL failed: {message}", code="E619",
                              hints=["tables here: " + ", ".join(self._available())]) from None

    def _available(self) -> list[str]:
        graph_tables = [t.name for t in self.graph] if self.graph is not None else []
        return graph_tables + list(self._tables)

    def close(self) -> None:
        if self.database is not None:
            self.database.close()
        else:
            self.con.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_result(cls, result: Any) -> "Session":
        """The session of a finished :func:`pql.jobs.run` (sharing its DuckDB connection)."""
        tables = {"TRAINING_TABLE": result.training_table, "PREDICTIONS": result.predictions,
                  "METRICS": result.metrics_table}
        if result.embeddings is not None:
            tables["EMBEDDINGS"] = result.embeddings
        if result.item_embeddings is not None:
            tables["ITEM_EMBEDDINGS"] = result.item_embeddings
        return cls(result.graph, database=result.database, tables=tables)

    @classmethod
    def from_run_dir(cls, path: str | Path, *, graph: Any = None) -> "Session":
        """A session over a run folder: its output tables plus the graph recorded in its model folder
        (or ``graph``). E618 when the folder holds no pql outputs."""
        root = Path(path)
        if not root.is_dir():
            raise PQLRunError(f"run folder '{root}' not found", code="E618")
        tables = _read_outputs(root)
        if not tables:
            raise PQLRunError(f"'{root}' holds no pql outputs (predictions, training_table, metrics)", code="E618",
                              hints=["pass the --out folder of `pql run` or `pql predict`"])
        if graph is None:
            gfile = root / "model" / "graph.toml"
            if gfile.is_file():
                from pql.graph import Graph

                graph = Graph.from_toml(gfile)
        elif isinstance(graph, (str, Path)):
            from pql.graph import Graph

            graph = Graph.load(graph)
        return cls(graph, tables=tables)


def _read_outputs(root: Path) -> dict[str, pa.Table]:
    out: dict[str, pa.Table] = {}
    duck = root / "outputs.duckdb"
    if duck.is_file():
        con = duckdb.connect(str(duck), read_only=True)
        try:
            listed = con.sql("SELECT table_name FROM information_schema.tables").fetchall()
            present = {r[0].upper(): r[0] for r in listed}
            for name in RUN_TABLES:
                if name in present:
                    from sqlglot import exp

                    stmt = exp.select("*").from_(exp.Table(this=exp.to_identifier(present[name], quoted=True)))
                    out[name] = con.sql(stmt.sql(dialect="duckdb")).to_arrow_table()
        finally:
            con.close()
    for name in RUN_TABLES:
        if name in out:
            continue
        pq_path, csv_path = root / f"{name.lower()}.parquet", root / f"{name.lower()}.csv"
        if pq_path.is_file():
            import pyarrow.parquet as pq

            out[name] = pq.read_table(pq_path)
        elif csv_path.is_file():
            import pyarrow.csv as pacsv

            out[name] = pacsv.read_csv(csv_path)
    return out
