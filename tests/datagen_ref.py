"""A small deterministic dataset for the spec's reference schema (PQL-SPEC §2), for any test to reuse.

``write_reference_dataset(dir)`` writes regions, users, items, transactions and notifications as
Parquet plus a matching ``graph.toml`` (``benchmarks.synthetic.REFERENCE_SCHEMA_TOML``, the one
description of that schema's files) and returns the toml path. About 400 transactions over 2024,
with some NULLs (ages, prices, gift flags, tags, one region), and items with end timestamps (NULL =
still listed). Loading it gives exactly ``tests.schemas.reference_graph()``'s dtypes and stypes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.synthetic import REFERENCE_SCHEMA_TOML

__all__ = ["write_reference_dataset", "REFERENCE_GRAPH_TOML", "START", "END"]

START = datetime(2024, 1, 1)
END = datetime(2025, 1, 1)

# the graph.toml written next to the data: the reference schema as the benchmark generator describes it
REFERENCE_GRAPH_TOML = REFERENCE_SCHEMA_TOML

_FIRST = ["Ada", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gia", "Hugo", "Ines", "Jon", "Kai", "Lea"]
_LAST = ["Ito", "Khan", "Lopez", "Meyer", "Novak", "Okafor", "Park", "Rossi", "Silva", "Weber"]
_TAGS = ["sports", "music", "tech", "travel", "food"]
_WORDS = ["soft", "durable", "classic", "compact", "bright", "quiet", "handmade", "organic", "light", "warm"]


def _ts(rng: np.random.Generator, n: int, lo: datetime, hi: datetime) -> list[datetime]:
    span = int((hi - lo).total_seconds())
    return sorted(lo + timedelta(seconds=int(s)) for s in rng.integers(0, span, n))


def _maybe_null(rng: np.random.Generator, values: list, share: float) -> list:
    mask = rng.random(len(values)) < share
    return [None if m else v for v, m in zip(values, mask)]


def _write(dir: Path, name: str, columns: dict[str, tuple[list, pa.DataType]]) -> None:
    table = pa.table({c: pa.array(v, type=t) for c, (v, t) in columns.items()})
    pq.write_table(table, dir / f"{name}.parquet")


def write_reference_dataset(dir: Path, seed: int = 0) -> Path:
    """Write the reference dataset into ``dir`` (created if needed); returns the ``graph.toml`` path."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ts, i64, f64, s, b = pa.timestamp("us"), pa.int64(), pa.float64(), pa.string(), pa.bool_()

    n_regions, n_users, n_items, n_tx, n_notes = 5, 60, 40, 400, 150
    _write(dir, "regions", {
        "region_id": (list(range(1, n_regions + 1)), i64),
        "name": (["North", "South", "East", "West", "Central"], s),
        "country": (["US", "US", "DE", "FR", "JP"], s),
        "population": ([int(x) for x in rng.integers(10_000, 5_000_000, n_regions)], i64),
    })

    joins = _ts(rng, n_users, datetime(2023, 6, 1), datetime(2024, 10, 1))
    _write(dir, "users", {
        "user_id": (list(range(1, n_users + 1)), i64),
        "name": ([f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" for _ in range(n_users)], s),
        "age": (_maybe_null(rng, [int(x) for x in rng.integers(18, 80, n_users)], 0.1), i64),
        "country": ([str(rng.choice(["US", "DE", "FR", "JP"])) for _ in range(n_users)], s),
        "is_vip": ([bool(x) for x in rng.random(n_users) < 0.2], b),
        "tags": (_maybe_null(rng, [sorted({str(t) for t in rng.choice(_TAGS, int(rng.integers(0, 3)))})
                                   for _ in range(n_users)], 0.1), pa.list_(s)),
        "birth_date": ([datetime(1950, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 20_000, n_users)], ts),
        "region_id": (_maybe_null(rng, [int(x) for x in rng.integers(1, n_regions + 1, n_users)], 0.05), i64),
        "join_timestamp": (joins, ts),
    })

    starts = _ts(rng, n_items, datetime(2023, 1, 1), datetime(2024, 9, 1))
    ends = [st + timedelta(days=int(rng.integers(60, 400))) if rng.random() < 0.4 else None for st in starts]
    _write(dir, "items", {
        "item_id": (list(range(1, n_items + 1)), i64),
        "category": ([str(rng.choice(["books", "garden", "toys", "kitchen", "games"])) for _ in range(n_items)], s),
        "brand": ([str(rng.choice(["acme", "zenith", "orbit", "nova", "pioneer", "lumen"])) for _ in range(n_items)],
                  s),
        "price": ([round(float(x), 2) for x in rng.uniform(2, 200, n_items)], f64),
        "description": ([" ".join(str(w) for w in rng.choice(_WORDS, 8)) + f" item number {i}"
                         for i in range(1, n_items + 1)], s),
        "start_timestamp": (starts, ts),
        "end_timestamp": (ends, ts),
    })

    tx_times = _ts(rng, n_tx, START, END)
    tx_users = [int(x) for x in rng.integers(1, n_users + 1, n_tx)]
    tx_items = [int(x) for x in rng.integers(1, n_items + 1, n_tx)]
    _write(dir, "transactions", {
        "transaction_id": (list(range(1, n_tx + 1)), i64),
        "user_id": (tx_users, i64),
        "item_id": (tx_items, i64),
        "price": (_maybe_null(rng, [round(float(x), 2) for x in rng.uniform(1, 250, n_tx)], 0.05), f64),
        "quantity": ([int(x) for x in rng.integers(1, 6, n_tx)], i64),
        "status": ([str(x) for x in rng.choice(["paid", "refunded", "cancelled"], n_tx, p=[0.8, 0.1, 0.1])], s),
        "is_gift": (_maybe_null(rng, [bool(x) for x in rng.random(n_tx) < 0.1], 0.05), b),
        "timestamp": (tx_times, ts),
    })

    _write(dir, "notifications", {
        "notification_id": (list(range(1, n_notes + 1)), i64),
        "user_id": ([int(x) for x in rng.integers(1, n_users + 1, n_notes)], i64),
        "channel": ([str(x) for x in rng.choice(["email", "push", "sms"], n_notes)], s),
        "opened": ([bool(x) for x in rng.random(n_notes) < 0.3], b),
        "sent_at": (_ts(rng, n_notes, START, END), ts),
    })

    toml = dir / "graph.toml"
    toml.write_text(REFERENCE_GRAPH_TOML, encoding="utf-8")
    return toml
