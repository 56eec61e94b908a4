"""Writing and showing result tables: atomic Parquet/CSV files and a terminal preview."""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

import pyarrow as pa

from pql.errors import PQLRunError

__all__ = ["parse_anchor_list", "parse_timestamp", "write_table", "write_tables_atomically", "write_text_atomically",
           "preview_table"]


def parse_timestamp(text: str, *, option: str = "anchor") -> _dt.datetime:
    """ISO date or date-time (naive, UTC); E602 naming the option otherwise."""
    t = text.strip()
    try:
        value = _dt.datetime.fromisoformat(t)
    except ValueError:
        raise PQLRunError(f"{option} = {text!r} is invalid: expected YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS'",
                          code="E602") from None
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value


def parse_anchor_list(text: str) -> list[_dt.datetime]:
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise PQLRunError("anchors = '' is invalid: give at least one timestamp", code="E602")
    return [parse_timestamp(p, option="anchors") for p in parts]


def _csv_ready(table: pa.Table) -> pa.Table:
    """List columns become JSON arrays (CSV has no list type)."""
    cols = []
    for name, col in zip(table.column_names, table.columns):
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            values = [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()]
            cols.append(pa.array(values, type=pa.string()))
        else:
            cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def _write_one(table: pa.Table, path: Path, suffix: str) -> None:
    if suffix.lower() == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(_csv_ready(table), path)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, path)


def write_tables_atomically(tables: Iterable[tuple[pa.Table, Path]]) -> None:
    """Write every table under a temporary name next to its target, then rename them all.

    If any write fails, the temporaries are removed and no target is touched.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for table, path in tables:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            staged.append((Path(tmp), path))
            _write_one(table, Path(tmp), path.suffix)
        for tmp, path in staged:
            os.replace(tmp, path)
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise PQLRunError(f"cannot write output: {exc.strerror or exc}", code="E612") from None
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise


def write_table(table: pa.Table, path: Path) -> None:
    write_tables_atomically([(table, path)])


def preview_table(table: pa.Table, limit: int = 20) -> str:
    """A fixed-width preview of the first rows plus the row count."""
    head = table.slice(0, limit).to_pylist()
    names = table.column_names

    def cell(v: object) -> str:
        if isinstance(v, _dt.datetime):
            return v.isoformat(sep=" ")
        if isinstance(v, float):
            return f"{v:.6g}"
        if isinstance(v, list):
            s = json.dumps(v, default=str)
            return s if len(s) <= 60 else s[:57] + "..."
        return "NULL" if v is None else str(v)

    rows = [[cell(r[n]) for n in names] for r in head]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    line = "  ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    more = table.num_rows - len(rows)
    out.append(f"({table.num_rows} rows" + (f", {more} not shown)" if more > 0 else ")"))
    return "\n".join(out)


def write_text_atomically(text: str, path: Path) -> None:
    """Write a text file through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
