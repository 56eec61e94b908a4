"""Output tables in the formats of PQL-SPEC §12, and writing a run folder atomically.

Every table is ordered by ANCHOR_TIMESTAMP, ENTITY, then RANK (multiclass: SCORE descending, ties
to the smaller CLASS). A run folder is staged in a hidden temporary folder inside the output
folder; its entries are renamed into place only after every output was written, and the staging
folder is removed on any error, so nothing is ever half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pql.ast import TaskType
from pql.errors import PQLRunError
from pql.tasks import FeatureSet, TaskInfo

from .common import KEYS
from .evaluate import top_lists

__all__ = ["node_predictions", "pair_predictions", "embeddings_table", "item_embeddings_table", "FORMATS",
           "check_out_dir", "write_run_dir", "table_file_name", "sort_keys"]

FORMATS = ("parquet", "csv", "duckdb")
OUTPUT_TABLES = ("PREDICTIONS", "TRAINING_TABLE", "METRICS", "EMBEDDINGS", "ITEM_EMBEDDINGS")
DUCKDB_FILE = "outputs.duckdb"


def sort_keys(table: pa.Table, extra: Sequence[tuple[str, str]] = ()) -> pa.Table:
    keys = [("ANCHOR_TIMESTAMP", "ascending"), ("ENTITY", "ascending"), *extra]
    return table.take(pc.sort_indices(table, sort_keys=keys))


def _keys(fs_keys: pa.Table) -> dict[str, Any]:
    return {"ENTITY": fs_keys.column("ENTITY"),
            "ANCHOR_TIMESTAMP": fs_keys.column("ANCHOR_TIMESTAMP").cast(pa.timestamp("us"))}


def node_predictions(task: TaskInfo, keys: pa.Table, scores: np.ndarray, *, threshold: float = 0.5,
                     num_classes: int | None = None) -> pa.Table:
    """binary / regression / forecasting / multiclass output tables."""
    tt = task.task_type
    cols = _keys(keys)
    if tt is TaskType.BINARY_CLASSIFICATION:
        p = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
        cols.update(TARGET_PRED=pa.array(p >= threshold, pa.bool_()), True_PROB=pa.array(p, pa.float64()),
                    False_PROB=pa.array(1.0 - p, pa.float64()))
        return sort_keys(pa.table(cols))
    if tt is TaskType.MULTICLASS_CLASSIFICATION:
        return _multiclass(task, keys, np.asarray(scores, dtype=np.float64), num_classes)
    cols["TARGET_PRED"] = pa.array(np.asarray(scores, dtype=np.float64), pa.float64())
    return sort_keys(pa.table(cols))


def _multiclass(task: TaskInfo, keys: pa.Table, probs: np.ndarray, num_classes: int | None) -> pa.Table:
    classes = list(task.classes or [])
    n, m = probs.shape if probs.ndim == 2 else (len(probs), 0)
    take = min(num_classes or m, m)
    # per row: classes by probability descending, ties to the smaller class (classes are sorted)
    order = np.lexsort((np.tile(np.arange(m), (n, 1)), -probs), axis=1)[:, :take] if n else np.zeros((0, take), int)
    rows = np.repeat(np.arange(n), take)
    cls = order.ravel()
    cols = {k: v.take(pa.array(rows, type=pa.int64())) for k, v in _keys(keys).items()}
    cols["CLASS"] = pa.array([classes[c] for c in cls.tolist()])
    cols["SCORE"] = pa.array(probs[rows, cls] if n else np.zeros(0), pa.float64())
    cols["PREDICTED"] = pa.array(np.tile(np.arange(take) == 0, n), pa.bool_())
    table = pa.table(cols)
    table = table.append_column("__pos", pa.array(np.tile(np.arange(take), n), pa.int64()))
    return sort_keys(table, [("__pos", "ascending")]).drop_columns(["__pos"])


def pair_predictions(fs: FeatureSet, scores: np.ndarray, K: int | None) -> pa.Table:
    """Long format: ENTITY, ANCHOR_TIMESTAMP, CLASS, SCORE, RANK 1..K per (entity, anchor)."""
    rows, rank = top_lists(fs, np.asarray(scores, dtype=np.float64), K)
    idx = pa.array(rows, type=pa.int64())
    keys = fs.keys.take(idx)
    table = pa.table({**_keys(keys), "CLASS": keys.column("CLASS"),
                      "SCORE": pa.array(np.asarray(scores, dtype=np.float64)[rows], pa.float64()),
                      "RANK": pa.array(rank, pa.int32())})
    return sort_keys(table, [("RANK", "ascending")])


def embeddings_table(keys: pa.Table, emb: np.ndarray) -> pa.Table:
    """ENTITY, ANCHOR_TIMESTAMP, EMBEDDING (one row per (entity, anchor); the first row of each)."""
    k = keys.select(list(KEYS))
    seen: dict[tuple[Any, Any], int] = {}
    for i, key in enumerate(zip(k.column("ENTITY").to_pylist(), k.column("ANCHOR_TIMESTAMP").to_pylist())):
        seen.setdefault(key, i)
    first = np.asarray(sorted(seen.values()), dtype=np.int64)
    sub = k.take(pa.array(first, type=pa.int64()))
    values = np.asarray(emb, dtype=np.float32)[first]
    table = pa.table({**_keys(sub), "EMBEDDING": pa.array(list(values), pa.list_(pa.float32()))})
    return sort_keys(table)


def item_embeddings_table(classes: Sequence[Any], emb: np.ndarray) -> pa.Table:
    table = pa.table({"CLASS": pa.array(list(classes)),
                      "EMBEDDING": pa.array(list(np.asarray(emb, dtype=np.float32)), pa.list_(pa.float32()))})
    return table.take(pc.sort_indices(table, sort_keys=[("CLASS", "ascending")]))


# -- writing -------------------------------------------------------------------------------------------


def table_file_name(name: str, fmt: str) -> str:
    return f"{name.lower()}.{fmt}"


def check_out_dir(out_dir: Path, overwrite: bool, fmt: str) -> None:
    """All checks on the output folder, before any work is written (E602, E617)."""
    if fmt not in FORMATS:
        raise PQLRunError(f"format = {fmt} is invalid: expected one of {', '.join(FORMATS)}", code="E602")
    if out_dir.exists() and not out_dir.is_dir():
        raise PQLRunError(f"output folder '{out_dir}' is a file", code="E617")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise PQLRunError(f"output folder '{out_dir}' already exists", code="E617",
                          hints=["pass --overwrite (overwrite=True) to replace its outputs, or choose another --out"])


def _write_table(table: pa.Table, path: Path) -> None:
    from pql.output import write_table

    write_table(table, path)


def _write_duckdb(tables: dict[str, pa.Table], path: Path) -> None:
    import duckdb
    from sqlglot import exp

    con = duckdb.connect(str(path))
    try:
        for name, table in tables.items():
            con.register("__pql_out", table)
            create = exp.Create(kind="TABLE", this=exp.Table(this=exp.to_identifier(name, quoted=True)),
                                expression=exp.select("*").from_("__pql_out"))
            con.execute(create.sql(dialect="duckdb"))
            con.unregister("__pql_out")
    finally:
        con.close()


def write_run_dir(out_dir: Path, tables: dict[str, pa.Table], *, fmt: str = "parquet",
                  json_files: dict[str, Any] | None = None,
                  folders: dict[str, Callable[[Path], None]] | None = None, overwrite: bool = False) -> list[Path]:
    """Write ``tables`` (upper-case names -> tables), JSON files and folders (name -> writer) into
    ``out_dir``: staged, then renamed; nothing is left behind on error. Returns the written paths."""
    check_out_dir(out_dir, overwrite, fmt)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".pql-stage-", dir=out_dir))
    try:
        names: list[str] = []
        if fmt == "duckdb":
            _write_duckdb(tables, stage / DUCKDB_FILE)
            names.append(DUCKDB_FILE)
        else:
            for name, table in tables.items():
                fname = table_file_name(name, fmt)
                _write_table(table, stage / fname)
                names.append(fname)
        for fname, payload in (json_files or {}).items():
            (stage / fname).write_text(json.dumps(payload, indent=2, default=str) + "\n")
            names.append(fname)
        for fname, writer in (folders or {}).items():
            writer(stage / fname)
            names.append(fname)
        _commit(stage, out_dir, names)
    except OSError as exc:
        _cleanup(stage, out_dir, created)
        raise PQLRunError(f"cannot write output: {exc.strerror or exc}", code="E612") from None
    except BaseException:
        _cleanup(stage, out_dir, created)
        raise
    shutil.rmtree(stage, ignore_errors=True)
    return [out_dir / n for n in names]


def _stale(out_dir: Path, names: list[str]) -> list[str]:
    """Outputs of an earlier run in ``out_dir`` that this run does not rewrite (removed on commit)."""
    known = {table_file_name(t, f) for t in OUTPUT_TABLES for f in ("parquet", "csv")}
    known |= {DUCKDB_FILE, "metrics.json", "model"}
    return sorted(n for n in known - set(names) if (out_dir / n).exists())


def _commit(stage: Path, out_dir: Path, names: list[str]) -> None:
    trash = Path(tempfile.mkdtemp(prefix=".pql-old-", dir=out_dir))
    for n in _stale(out_dir, names):
        os.replace(out_dir / n, trash / n)
    for n in names:
        target = out_dir / n
        if target.is_dir() and not target.is_symlink():
            os.replace(target, trash / n)
        os.replace(stage / n, target)
    shutil.rmtree(trash, ignore_errors=True)


def _cleanup(stage: Path, out_dir: Path, created: bool) -> None:
    shutil.rmtree(stage, ignore_errors=True)
    if created:
        shutil.rmtree(out_dir, ignore_errors=True)
