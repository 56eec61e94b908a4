"""``graph.toml`` (PQL-SPEC §6.4): read it into a Graph, and write a Graph back as one.

The file is parsed by ``tomllib``, so every equivalent TOML spelling (dotted keys, inline tables,
``edges = [...]``) means the same. Its structure is checked here (E703 with the line and a
did-you-mean); names, files, keys and edges are then checked by :func:`pql.graphbuild.build_graph`.
Every problem of one file is reported together.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pql.datasource import format_for_path
from pql.errors import PQLDataError, PQLError, did_you_mean
from pql.graph import Edge, Graph
from pql.graphbuild import TableSpec, build_graph, raise_all

__all__ = ["load_graph_toml", "graph_to_toml"]

TOP_KEYS = ["tables", "edges"]
TABLE_KEYS = ["path", "format", "primary_key", "time_column", "end_time_column", "delimiter", "columns"]
EDGE_KEYS = ["src_table", "fkey", "dst_table"]
FORMATS = ["parquet", "csv"]
_STRING_TABLE_KEYS = ["path", "format", "primary_key", "time_column", "end_time_column", "delimiter"]


class _File:
    """The text of a graph file, for locating keys and reporting E703 at a line."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines() or [""]
        self.errors: list[PQLError] = []

    def header_line(self, table: str) -> int | None:
        pat = re.compile(r"^\s*\[\s*tables\s*\.\s*[\"']?" + re.escape(table) + r"[\"']?\s*[\].]")
        return next((i for i, ln in enumerate(self.lines) if pat.search(ln)), None)

    def line_of(self, key: str, table: str | None = None) -> int:
        """1-based line of ``key = …`` (searched after the table's header when there is one)."""
        start = (self.header_line(table) or 0) if table is not None else 0
        k = r"[\"']?" + re.escape(key) + r"[\"']?"
        pat = re.compile(r"(^|[\s.{,])" + k + r"\s*=|^\s*\[\[?([^\]]*\.)?\s*" + k + r"\s*\]")
        for i in list(range(start, len(self.lines))) + list(range(0, start)):
            if pat.search(self.lines[i].split("#", 1)[0]):
                return i + 1
        if table is not None:
            anywhere = next((i for i, ln in enumerate(self.lines) if table in ln), None)
            if anywhere is not None:
                return anywhere + 1
        return 1

    def error(self, line: int, reason: str, dym: str = "", hints: list[str] | None = None,
              table: str | None = None) -> None:
        self.errors.append(PQLDataError(f"graph file line {line}: {reason}{dym}", code="E703",
                                        hints=hints or [], table=table))

    def unknown_keys(self, found: dict[str, Any], allowed: list[str], where: str, table: str | None = None) -> None:
        for key in found:
            if key not in allowed:
                dym, hints = did_you_mean(key, allowed)
                self.error(self.line_of(key, table), f"unknown key '{key}' in {where}", dym, hints, table)


_TOML_ERROR_RE = re.compile(r"^(?P<msg>.*?)\s*\(at (?:line (?P<line>\d+), column \d+|end of document)\)$", re.S)
_DUP_TABLE_RE = re.compile(r"Cannot declare \('tables', '(?P<t>[^']*)'\) twice")


def _syntax_error(error: tomllib.TOMLDecodeError, f: _File) -> PQLDataError:
    m = _TOML_ERROR_RE.match(str(error))
    msg, line = (m.group("msg"), int(m.group("line") or len(f.lines))) if m else (str(error), 1)
    dup = _DUP_TABLE_RE.search(msg)
    if dup:
        msg = f"table '{dup.group('t')}' is declared twice"
    elif msg.startswith("Cannot overwrite a value") or msg.startswith("Cannot declare"):
        key = f.lines[line - 1].split("=", 1)[0].strip() if 0 < line <= len(f.lines) else "?"
        msg = f"key '{key}' is set twice"
    else:
        msg = f"invalid TOML: {msg[:1].lower()}{msg[1:]}"
    return PQLDataError(f"graph file line {line}: {msg}", code="E703")


def load_graph_toml(path: Path) -> Graph:
    """Read ``graph.toml``: tables (paths relative to the file), keys, time columns, stype overrides
    and edges. With a graph file no edges are inferred. Raises PQLDataError listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise PQLDataError(f"graph file '{path}' not found", code="E701")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PQLDataError(f"cannot read graph file '{path}': {e}", code="E702") from None
    f = _File(text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _syntax_error(e, f) from None
    f.unknown_keys(doc, TOP_KEYS, "the graph file")
    tables = doc.get("tables", {})
    if not isinstance(tables, dict) or not tables:
        f.error(f.line_of("tables") if "tables" in doc else 1, "no tables: add a [tables.<name>] section with a path")
        tables = {}
    specs, failed = [], set()
    for name, body in tables.items():
        spec = _table_spec(f, path.parent, name, body)
        if spec is None:
            failed.add(name)
        else:
            specs.append(spec)
    edges = _edges(f, doc.get("edges", []))
    try:
        graph = build_graph(specs, edges, infer_edges=False, path=path, failed_tables=failed)
    except PQLDataError as e:
        raise_all(f.errors + e.errors)
        raise
    raise_all(f.errors)
    return graph


def _table_spec(f: _File, base: Path, name: str, body: Any) -> TableSpec | None:
    where = f"table '{name}'"
    if not isinstance(body, dict):
        f.error(f.header_line(name) + 1 if f.header_line(name) is not None else f.line_of(name),
                f"{where} must be a table with a path, e.g. [tables.{name}] path = \"{name}.parquet\"", table=name)
        return None
    f.unknown_keys(body, TABLE_KEYS, where, name)
    bad = [k for k in _STRING_TABLE_KEYS if k in body and not isinstance(body[k], str)]
    for k in bad:
        f.error(f.line_of(k, name), f"{where}: '{k}' must be a string, got {body[k]!r}", table=name)
    columns = body.get("columns", {})
    if not isinstance(columns, dict):
        f.error(f.line_of("columns", name), f"{where}: 'columns' must be a table of column = \"stype\"", table=name)
        columns = {}
    for c, s in columns.items():
        if not isinstance(s, str):
            f.error(f.line_of(c, name), f"{where}: the semantic type of column '{c}' must be a string, got {s!r}",
                    table=name)
    if "path" not in body:
        f.error(f.header_line(name) + 1 if f.header_line(name) is not None else 1,
                f"{where} has no 'path'; add path = \"<file>.parquet\" or \"<file>.csv\"", table=name)
        return None
    if bad:
        return None
    source = (base / body["path"]).resolve()
    fmt = body.get("format")
    if fmt is not None and fmt.lower() not in FORMATS:
        dym, hints = did_you_mean(fmt, FORMATS)
        f.error(f.line_of("format", name), f"{where}: unknown format '{fmt}'", dym, hints, table=name)
        return None
    fmt = fmt.lower() if fmt is not None else format_for_path(source)
    if fmt is None:
        f.error(f.line_of("path", name), f"{where}: cannot tell the format of '{body['path']}'; "
                                         "set format = \"csv\" or \"parquet\"", table=name)
        return None
    options = {}
    if "delimiter" in body:
        if fmt != "csv" or len(body["delimiter"]) != 1:
            f.error(f.line_of("delimiter", name), f"{where}: delimiter must be one character and applies only to "
                                                  "CSV files", table=name)
            return None
        options["delimiter"] = body["delimiter"]
    return TableSpec(name=name, source=source, format=fmt, options=options, primary_key=body.get("primary_key"),
                     time_column=body.get("time_column"), end_time_column=body.get("end_time_column"),
                     stypes={c: s for c, s in columns.items() if isinstance(s, str)},
                     keys={"columns": f"tables.{name}.columns", "primary_key": f"tables.{name}.primary_key",
                           "time_column": f"tables.{name}.time_column",
                           "end_time_column": f"tables.{name}.end_time_column"})


def _edges(f: _File, raw: Any) -> list[Edge]:
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        f.error(f.line_of("edges"), "'edges' must be an array of {src_table, fkey, dst_table} tables")
        return []
    edges = []
    for i, e in enumerate(raw, start=1):
        if not isinstance(e, dict):
            f.error(f.line_of("edges"), f"edge {i} must be a table with src_table, fkey and dst_table")
            continue
        f.unknown_keys(e, EDGE_KEYS, f"edge {i}")
        missing = [k for k in EDGE_KEYS if not isinstance(e.get(k), str)]
        if missing:
            f.error(_edge_line(f, i), f"edge {i} needs string values for {', '.join(missing)}")
            continue
        edges.append(Edge(e["src_table"], e["fkey"], e["dst_table"]))
    return edges


def _edge_line(f: _File, index: int) -> int:
    hits = [i + 1 for i, ln in enumerate(f.lines) if re.search(r"\[\[\s*edges\s*\]\]|src_table\s*=", ln)]
    return hits[index - 1] if index - 1 < len(hits) else f.line_of("edges")


# -- writing ----------------------------------------------------------------------------------------
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def _str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def graph_to_toml(graph: Graph, base: Path | None = None, *, stypes: bool = True) -> str:
    """A ``graph.toml`` that loads back to the same graph. Paths are relative to ``base`` (the
    directory the file will live in) when possible, else absolute. With ``stypes`` every column's
    semantic type is written as an override so it can be reviewed and edited."""
    from pql.infer import STYPE_DTYPES

    out: list[str] = []
    for t in graph:
        if t.source is None:
            raise ValueError(f"table {t.name!r} is held in memory; write it to a file before saving graph.toml")
        src = Path(t.source)
        path = src
        if base is not None:
            try:
                path = src.resolve().relative_to(Path(base).resolve())
            except ValueError:
                path = src.resolve()
        out.append(f"[tables.{_key(t.name)}]")
        out.append(f"path = {_str(path.as_posix())}")
        if t.format and format_for_path(src) != t.format:
            out.append(f"format = {_str(t.format)}")
        for role in ("primary_key", "time_column", "end_time_column"):
            if getattr(t, role) is not None:
                out.append(f"{role} = {_str(getattr(t, role))}")
        if "delimiter" in t.options:
            out.append(f"delimiter = {_str(str(t.options['delimiter']))}")
        cols = [c for c in t.columns.values() if stypes and c.stype in STYPE_DTYPES
                and c.dtype in STYPE_DTYPES[c.stype] and c.name not in (t.time_column, t.end_time_column)]
        if cols:
            out.append(f"[tables.{_key(t.name)}.columns]")
            out.extend(f"{_key(c.name)} = {_str(str(c.stype))}" for c in cols)
        out.append("")
    for e in graph.edges:
        out += ["[[edges]]", f"src_table = {_str(e.src_table)}", f"fkey = {_str(e.fkey)}",
                f"dst_table = {_str(e.dst_table)}", ""]
    return "\n".join(out)
