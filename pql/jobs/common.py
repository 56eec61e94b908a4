"""Small helpers the jobs share: staged progress reporting and key look-ups between arrow tables."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Progress", "StageProgress", "match_rows", "class_order", "KEYS"]

Progress = Callable[[str, float], None]  # (message, fraction of the whole job done in [0, 1])
KEYS = ("ENTITY", "ANCHOR_TIMESTAMP")


class StageProgress:
    """Maps named stages with weights onto one [0, 1] progress bar and times each stage.

    ``stage(name)`` starts a stage; ``sub(message, fraction)`` reports inside it (the callback the
    rankers receive); timings go to ``timings`` in seconds.
    """

    def __init__(self, callback: Progress | None, weights: dict[str, float]) -> None:
        self.callback = callback
        total = sum(weights.values()) or 1.0
        self._start: dict[str, float] = {}
        acc = 0.0
        for name, w in weights.items():
            self._start[name] = acc / total
            acc += w
        self._width = {name: w / total for name, w in weights.items()}
        self.current: str | None = None
        self.timings: dict[str, float] = {}
        self._t0 = 0.0

    def stage(self, name: str, message: str | None = None) -> None:
        self._close()
        self.current = name
        self._t0 = time.perf_counter()
        self._emit(message or name, 0.0)

    def sub(self, message: str, fraction: float) -> None:
        self._emit(message, min(max(float(fraction), 0.0), 1.0))

    def done(self) -> None:
        self._close()
        if self.callback:
            self.callback("done", 1.0)

    def _close(self) -> None:
        if self.current is not None:
            self.timings[self.current] = round(self.timings.get(self.current, 0.0)
                                               + time.perf_counter() - self._t0, 3)
            self.current = None

    def _emit(self, message: str, fraction: float) -> None:
        if self.callback is None or self.current is None:
            return
        start = self._start.get(self.current, 0.0)
        width = self._width.get(self.current, 0.0)
        self.callback(message, start + width * fraction)


def _null_safe(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column usable as a join key: timestamps as int64 and NULL as a sentinel (NULL anchors of
    static queries must match each other)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        arr = arr.cast(pa.timestamp("us")).cast(pa.int64())
        return pc.fill_null(arr, np.iinfo(np.int64).min)
    if arr.null_count:
        if pa.types.is_integer(arr.type):
            return pc.fill_null(arr.cast(pa.int64()), np.iinfo(np.int64).min)
        return pc.fill_null(arr.cast(pa.string()), "\x00<null>")
    return arr


def match_rows(keys: pa.Table, table: pa.Table, on: Sequence[str]) -> np.ndarray:
    """For each row of ``keys``, the index of the row of ``table`` with equal ``on`` columns (-1 if none).

    ``table`` must be unique on ``on``. NULLs match NULLs.
    """
    if keys.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    left = pa.table({f"k{i}": _null_safe(keys.column(c)) for i, c in enumerate(on)})
    left = left.append_column("__left", pa.array(np.arange(keys.num_rows, dtype=np.int64)))
    right = pa.table({f"k{i}": _null_safe(table.column(c)).cast(left.column(f"k{i}").type)
                      for i, c in enumerate(on)})
    right = right.append_column("__right", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    joined = left.join(right, keys=[f"k{i}" for i in range(len(on))], join_type="left outer")
    out = np.full(keys.num_rows, -1, dtype=np.int64)
    li = joined.column("__left").to_numpy()
    ri = joined.column("__right").to_numpy(zero_copy_only=False)
    ri = np.where(np.isnan(ri.astype(np.float64)), -1, ri).astype(np.int64)
    out[li] = ri
    return out


def class_order(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Dense ascending rank of each value (equal values share a rank): ties in SCORE go to the
    smaller CLASS."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    return pc.rank(arr, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64)
