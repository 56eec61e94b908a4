"""A feature block: one statement producing some feature columns for keyed rows.

Every builder returns :class:`Block` objects; :func:`fill` runs them and scatters their columns
into one float32 matrix by row index. A feature that a row has no source rows for takes the
block's default for it (0 for counts and sums, NaN for values that are undefined without input).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import duckdb
import numpy as np
from sqlglot import exp

from .sql import fetch_into

__all__ = ["Block", "fill", "ROW", "alias"]

ROW = "pql_row"  # the row-index column every block statement returns


def alias(i: int) -> str:
    """The engine alias of a block's i-th feature column."""
    return f"f{i}"


@dataclass
class Block:
    """``names``: feature names; ``defaults``: value of each when the statement returns no row for a
    row index; ``statement(lo, hi)``: the SELECT of ``pql_row`` and ``f0..fn`` for row indices in
    [lo, hi) (``batch``: rows per statement, 0 = all at once)."""

    names: list[str]
    defaults: list[float]
    statement: Callable[[int, int], exp.Expression]
    batch: int = 0
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert len(self.names) == len(self.defaults)


def fill(con: duckdb.DuckDBPyConnection, blocks: list[Block], n_rows: int,
         row_map: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Run every block and assemble X (n_rows x total features) with the names in block order;
    ``row_map`` (a permutation) places block row i at X row ``row_map[i]``."""
    names = [n for b in blocks for n in b.names]
    X = np.empty((n_rows, len(names)), dtype=np.float32)
    col = 0
    for b in blocks:
        width = len(b.names)
        X[:, col:col + width] = np.asarray(b.defaults, dtype=np.float32)
        if width:
            step = b.batch or max(n_rows, 1)
            for lo in range(0, max(n_rows, 1), step):
                fetch_into(con, b.statement(lo, min(lo + step, n_rows)), X, col, ROW,
                           [alias(i) for i in range(width)], row_map=row_map)
        col += width
    return X, names
