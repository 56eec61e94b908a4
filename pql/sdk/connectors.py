"""Connectors: where source tables come from and where outputs go (Kumo's ``kumoai.connector``).

A connector lists tables (``table_names()``), hands out :class:`SourceTable` objects
(``connector.table(name)`` or ``connector[name]``) and writes result tables (``write_table``):

- :class:`LocalConnector` - a folder of Parquet / CSV files (one table per file, named by its stem);
  DuckDB reads the files in place.
- :class:`DuckDBConnector` - the tables and views of a DuckDB database file.
- :class:`S3Connector` - Parquet / CSV objects under ``s3://bucket/prefix``, read through pyarrow's
  S3 filesystem with credentials from the environment (``AWS_ACCESS_KEY_ID`` ...);
  ``endpoint_url`` points it at an S3-compatible server.

Every problem is a :class:`~pql.errors.PQLDataError` naming the connector, the table and what to do:
E721 location not found, E722 table not in the connector, E723 access refused, E702 unreadable.
"""

from __future__ import annotations

import abc
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import pyarrow as pa

from pql.datasource import FORMAT_BY_SUFFIX
from pql.errors import PQLDataError, PQLRunError, did_you_mean

__all__ = ["Connector", "SourceTable", "LocalConnector", "DuckDBConnector", "S3Connector", "as_arrow"]

T = TypeVar("T")
_TABLE_NAME_RE = re.compile(r"^[^/\\\x00\n\r`]+$")


def as_arrow(table: Any, what: str = "table") -> pa.Table:
    """A pyarrow Table from a pyarrow Table or a pandas DataFrame."""
    if isinstance(table, pa.Table):
        return table
    if hasattr(table, "to_arrow"):  # an SDK table or job result
        return table.to_arrow()
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a test dependency only
        pd = None
    if pd is not None and isinstance(table, pd.DataFrame):
        return pa.Table.from_pandas(table, preserve_index=False)
    raise PQLRunError(f"{what} must be a pyarrow Table or a pandas DataFrame, not {type(table).__name__}",
                      code="E602")


def _check_output_name(name: Any) -> str:
    if not isinstance(name, str) or not _TABLE_NAME_RE.match(name) or name in (".", ".."):
        raise PQLRunError(f"output table name {name!r} is invalid: use a plain name without '/', '\\' or "
                          "backticks", code="E602")
    return name


@dataclass
class SourceTable:
    """A table behind a connector. ``path`` is a local file DuckDB can read in place (None when the
    data must be loaded, e.g. from S3 or a DuckDB database); ``to_arrow()`` always works."""

    name: str
    connector: "Connector" = field(repr=False)
    format: str  # "parquet" | "csv" | "duckdb"
    location: str  # file path, s3:// URI, or the database file
    path: Path | None = None

    def to_arrow(self, columns: list[str] | None = None) -> pa.Table:
        return self.connector._read(self, columns)

    def schema(self) -> pa.Schema:
        return self.connector._schema(self)

    @property
    def columns(self) -> list[str]:
        return list(self.schema().names)

    def head(self, num_rows: int = 5) -> Any:
        """The first rows as a pandas DataFrame."""
        return self.to_arrow().slice(0, num_rows).to_pandas()

    def __repr__(self) -> str:
        return f"SourceTable(name={self.name!r}, connector={self.connector!r})"


class Connector(abc.ABC):
    """Lists, reads and writes tables; subclasses implement the storage."""

    def table_names(self) -> list[str]:
        return sorted(self._tables())

    def has_table(self, name: str) -> bool:
        return name in self._tables()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has_table(name)

    def table(self, name: str) -> SourceTable:
        tables = self._tables()
        if name not in tables:
            raise self._not_found(name, sorted(tables))
        return tables[name]

    def __getitem__(self, name: str) -> SourceTable:
        return self.table(name)

    def write_table(self, name: str, table: Any) -> str:
        """Write ``table`` (pyarrow or pandas) as table ``name``; returns where it went."""
        return self._write(_check_output_name(name), as_arrow(table))

    def _not_found(self, name: str, names: list[str]) -> PQLDataError:
        dym, hints = did_you_mean(str(name), names)
        if not names:
            hints = [f"{self!r} holds no tables: {self._empty_hint()}"]
        return PQLDataError(f"table '{name}' not found in {self!r}{dym}", code="E722", table=str(name), hints=hints)

    # -- storage -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def _tables(self) -> dict[str, SourceTable]: ...

    @abc.abstractmethod
    def _read(self, source: SourceTable, columns: list[str] | None) -> pa.Table: ...

    @abc.abstractmethod
    def _schema(self, source: SourceTable) -> pa.Schema: ...

    @abc.abstractmethod
    def _write(self, name: str, table: pa.Table) -> str: ...

    def _empty_hint(self) -> str:
        return "add .parquet or .csv files"


# -- file formats (local files and S3 objects) ------------------------------------------------------
def _read_file(fmt: str, path: str, columns: list[str] | None, filesystem: Any = None) -> pa.Table:
    if fmt == "csv":
        import pyarrow.csv as pacsv

        if filesystem is not None:
            with filesystem.open_input_stream(path) as f:
                table = pacsv.read_csv(f)
        else:
            table = pacsv.read_csv(path)
        return table.select(columns) if columns is not None else table
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns, filesystem=filesystem)


def _file_schema(fmt: str, path: str, filesystem: Any = None) -> pa.Schema:
    if fmt == "csv":
        return _read_file(fmt, path, None, filesystem).schema
    import pyarrow.parquet as pq

    return pq.read_schema(path, filesystem=filesystem)


def _files_by_stem(names: list[tuple[str, str]], where: str) -> dict[str, tuple[str, str]]:
    """(stem -> (full path, format)) from (file name, full path) pairs; two files for one stem is E714."""
    found: dict[str, tuple[str, str]] = {}
    for base, full in sorted(names):
        if base.startswith("."):
            continue
        stem, dot, suffix = base.rpartition(".")
        fmt = FORMAT_BY_SUFFIX.get(f".{suffix.lower()}") if dot else None
        if fmt is None:
            continue
        if stem in found:
            raise PQLDataError(f"two files define table '{stem}': {Path(found[stem][0]).name}, {base}", code="E714",
                               table=stem, hints=[f"keep one of them in {where}"])
        found[stem] = (full, fmt)
    return found


def _guard_read(source: SourceTable, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except PQLDataError:
        raise
    except (OSError, pa.ArrowException, ValueError, KeyError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PQLDataError(f"table '{source.name}': cannot read '{source.location}' as {source.format}: {reason}",
                           code="E702", table=source.name) from None


# -- local folder ------------------------------------------------------------------------------------
class LocalConnector(Connector):
    """A folder of Parquet / CSV files; each file is a table named by its stem."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path).expanduser()
        if not p.exists():
            raise PQLDataError(f"connector folder '{path}' not found", code="E721", hints=[
                f"LocalConnector takes a folder of .parquet / .csv files; relative paths start at {Path.cwd()}"])
        if not p.is_dir():
            raise PQLDataError(f"connector path '{path}' is a file, not a folder", code="E721",
                               hints=[f"pass the folder that holds it: LocalConnector({str(p.parent)!r})"])
        self.path = p.resolve()

    def __repr__(self) -> str:
        return f"LocalConnector({str(self.path)!r})"

    def _tables(self) -> dict[str, SourceTable]:
        files = [(f.name, str(f)) for f in self.path.iterdir() if f.is_file()]
        return {stem: SourceTable(stem, self, fmt, full, Path(full))
                for stem, (full, fmt) in _files_by_stem(files, str(self.path)).items()}

    def _read(self, source: SourceTable, columns: list[str] | None) -> pa.Table:
        return _guard_read(source, lambda: _read_file(source.format, source.location, columns))

    def _schema(self, source: SourceTable) -> pa.Schema:
        return _guard_read(source, lambda: _file_schema(source.format, source.location))

    def _write(self, name: str, table: pa.Table) -> str:
        from pql.output import write_table

        target = self.path / f"{name}.parquet"
        others = [f for f in self.path.glob(f"{name}.*") if f != target and FORMAT_BY_SUFFIX.get(f.suffix.lower())]
        if others:  # a second file for the name would make the table ambiguous (E714) on reading
            raise PQLRunError(f"cannot write table '{name}': {others[0].name} already defines it in {self!r}",
                              code="E612", hints=["choose another output_table_name or remove that file"])
        write_table(table, target)
        return str(target)


# -- DuckDB database file ----------------------------------------------------------------------------
class DuckDBConnector(Connector):
    """The tables and views of a DuckDB database file (schema ``main``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise PQLDataError(f"DuckDB database file '{path}' not found", code="E721", hints=[
                "create it first, e.g. duckdb.connect(path) and CREATE TABLE ...; "
                f"relative paths start at {Path.cwd()}"])
        self.path = p.resolve()
        self._con_error("list tables", lambda con: None)  # fails early on a file that is not a database

    def __repr__(self) -> str:
        return f"DuckDBConnector({str(self.path)!r})"

    def _con_error(self, what: str, fn: Callable[[Any], T], table: str | None = None) -> T:
        import duckdb

        try:
            con = duckdb.connect(str(self.path))
        except duckdb.Error as e:
            raise PQLDataError(f"cannot open DuckDB database '{self.path}': {str(e).splitlines()[0]}",
                               code="E702", table=table) from None
        try:
            return fn(con)
        except duckdb.Error as e:
            raise PQLDataError(f"DuckDB database '{self.path}': cannot {what}: {str(e).splitlines()[0]}",
                               code="E702", table=table) from None
        finally:
            con.close()

    def _tables(self) -> dict[str, SourceTable]:
        from sqlglot import exp

        query = (exp.select("table_name").from_(exp.table_("tables", db="information_schema"))
                 .where(exp.column("table_schema").eq(exp.Literal.string("main"))))
        rows = self._con_error("list tables", lambda con: con.execute(query.sql(dialect="duckdb")).fetchall())
        return {r[0]: SourceTable(r[0], self, "duckdb", str(self.path)) for r in rows}

    def _select(self, name: str, columns: list[str] | None) -> str:
        from pql.datasource import col, ident
        from sqlglot import exp

        items = [col(c) for c in columns] if columns is not None else [exp.Star()]
        return exp.select(*items).from_(exp.Table(this=ident(name))).sql(dialect="duckdb")

    def _read(self, source: SourceTable, columns: list[str] | None) -> pa.Table:
        def read(con: Any) -> pa.Table:
            rel = con.sql(self._select(source.name, columns))
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()

        return self._con_error(f"read table '{source.name}'", read, source.name)

    def _schema(self, source: SourceTable) -> pa.Schema:
        from sqlglot import exp

        def schema(con: Any) -> pa.Schema:
            rel = con.sql(exp.select("*").from_(exp.Subquery(this=exp.maybe_parse(self._select(source.name, None))))
                          .limit(0).sql(dialect="duckdb"))
            table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
            return table.schema

        return self._con_error(f"read table '{source.name}'", schema, source.name)

    def _write(self, name: str, table: pa.Table) -> str:
        from pql.datasource import ident
        from sqlglot import exp

        staging = "__pql_output"
        create = exp.Create(kind="TABLE", this=exp.Table(this=ident(name)), replace=True,
                            expression=exp.select("*").from_(exp.Table(this=ident(staging))))

        def write(con: Any) -> None:
            con.register(staging, table)
            con.execute(create.sql(dialect="duckdb"))  # CREATE OR REPLACE: atomic in DuckDB
            con.unregister(staging)

        self._con_error(f"write table '{name}'", write, name)
        return f"{self.path}:{name}"


# -- S3 -------------------------------------------------------------------------------------------------
_DENIED = ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "FORBIDDEN", "EXPIRED_TOKEN",
           "INVALID_TOKEN", "UNRECOGNIZED_CLIENT", "NO_CREDENTIALS", "ACCESSDENIED", "INVALIDACCESSKEYID")
_CREDENTIAL_HINT = ("S3Connector reads credentials from the environment: set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if temporary), or AWS_PROFILE, for an account "
                    "that may read and write this bucket")


def _parse_s3_uri(uri: str) -> tuple[str, str]:
    m = re.fullmatch(r"s3://([^/]+)/?(.*)", uri.strip()) if isinstance(uri, str) else None
    if m is None:
        raise PQLDataError(f"S3 location {uri!r} is invalid: expected s3://bucket/prefix", code="E721",
                           hints=["e.g. S3Connector('s3://my-bucket/datasets/shop/')"])
    return m.group(1), m.group(2).strip("/")


class S3Connector(Connector):
    """Parquet / CSV objects directly under ``s3://bucket/prefix``; each object is a table named by its
    stem. Credentials come from the environment; ``endpoint_url`` selects an S3-compatible server."""

    def __init__(self, root_dir: str, endpoint_url: str | None = None, *, region: str | None = None) -> None:
        import pyarrow.fs as pafs

        self.bucket, self.prefix = _parse_s3_uri(root_dir)
        self.endpoint_url = endpoint_url
        kwargs: dict[str, Any] = {}
        if endpoint_url is not None:
            m = re.fullmatch(r"(https?)://(.+?)/?", endpoint_url.strip())
            if m is None:
                raise PQLDataError(f"endpoint_url {endpoint_url!r} is invalid: expected http(s)://host[:port]",
                                   code="E721")
            kwargs.update(scheme=m.group(1), endpoint_override=m.group(2))
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region is not None or endpoint_url is not None:
            kwargs["region"] = region or "us-east-1"
        try:
            self.fs = pafs.S3FileSystem(**kwargs)
        except (OSError, pa.ArrowException) as e:
            raise self._error(e, "connect") from None
        info = self._call("open the bucket", lambda: self.fs.get_file_info(self.bucket))
        if info.type == pafs.FileType.NotFound:
            raise PQLDataError(f"S3 bucket '{self.bucket}' not found" + (f" at {endpoint_url}" if endpoint_url else ""),
                               code="E721", hints=["check the bucket name in the s3:// location, and endpoint_url "
                                                   "for S3-compatible servers"])

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def __repr__(self) -> str:
        return f"S3Connector({self.root!r})"

    def _key(self, name: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, name) if p)

    def _error(self, e: BaseException, what: str, table: str | None = None) -> PQLDataError:
        text = str(e)
        upper = text.upper().replace(" ", "_")
        if any(code in upper for code in _DENIED):
            reason = text.split("operation:")[-1].strip() if "operation:" in text else text
            return PQLDataError(f"S3 refused access to '{self.root}' ({what}): {reason}", code="E723",
                                table=table, hints=[_CREDENTIAL_HINT])
        if "NO_SUCH_BUCKET" in upper:
            return PQLDataError(f"S3 bucket '{self.bucket}' not found", code="E721", table=table,
                                hints=["check the bucket name in the s3:// location"])
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        return PQLDataError(f"S3 location '{self.root}': cannot {what}: {first}", code="E702", table=table)

    def _call(self, what: str, fn: Callable[[], T], table: str | None = None) -> T:
        try:
            return fn()
        except (OSError, pa.ArrowException, ValueError) as e:
            raise self._error(e, what, table) from None

    def _tables(self) -> dict[str, SourceTable]:
        import pyarrow.fs as pafs

        base = "/".join(p for p in (self.bucket, self.prefix) if p)
        infos = self._call("list objects", lambda: self.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True)))
        files = [(i.base_name, i.path) for i in infos if i.type == pafs.FileType.File]
        return {stem: SourceTable(stem, self, fmt, f"s3://{full}")
                for stem, (full, fmt) in _files_by_stem(files, self.root).items()}

    def _read(self, source: SourceTable, columns: list[str] | None) -> pa.Table:
        path = source.location.removeprefix("s3://")
        return self._call(f"read table '{source.name}' as {source.format}",
                          lambda: _read_file(source.format, path, columns, self.fs), source.name)

    def _schema(self, source: SourceTable) -> pa.Schema:
        path = source.location.removeprefix("s3://")
        return self._call(f"read table '{source.name}' as {source.format}",
                          lambda: _file_schema(source.format, path, self.fs), source.name)

    def _write(self, name: str, table: pa.Table) -> str:
        import pyarrow.parquet as pq

        key = self._key(f"{name}.parquet")
        self._call(f"write table '{name}'", lambda: pq.write_table(table, key, filesystem=self.fs), name)
        return f"s3://{key}"

    def _empty_hint(self) -> str:
        return "no .parquet or .csv objects under this prefix; check the s3:// location"
