"""Seeded generator of buy-it-again shaped data: users, items and transactions.

``generate(out_dir, n_users, n_items, n_transactions, seed=0)`` writes ``users.parquet``,
``items.parquet``, ``transactions.parquet`` and a ``graph.toml`` describing them (the
reference schema's columns, spec §2) and returns the path of ``graph.toml``.

Behaviour it imitates:

* **Popularity** is Zipf-like: item weights fall as ``1 / rank ** zipf`` over a random
  permutation of the ids, so the id says nothing about popularity.
* **Repertoires.** Every user has a few favourite items (more for busier users), drawn by a
  flattened popularity, and buys each one again and again at an item-specific interval (milk weekly,
  shampoo monthly) scaled by a personal pace, with jitter. About three quarters of all
  purchases are such repeats.
* **Exploration.** The rest are one-off purchases of items drawn by popularity, spread
  uniformly over the user's lifetime.
* **Lifetimes.** Some users exist from the start, the others join at uniform times; items are
  launched over the period and about one in ten is discontinued (``end_timestamp``). Nobody
  buys before joining, before an item's launch or after its end.

Everything is vectorised numpy; the same seed gives byte-identical files. 10M transactions
for 200k users and 20k items take about 15 seconds and about 1 GB of memory.

Run ``python benchmarks/synthetic.py OUT_DIR --users 300 --items 100 --transactions 8000``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["generate", "GRAPH_TOML", "REFERENCE_GRAPH_TOML", "REFERENCE_SCHEMA_TOML", "PURCHASE_EDGES_TOML",
           "table_toml", "edges_toml", "DEFAULT_START"]

DEFAULT_START = datetime(2023, 1, 1)
SECONDS_PER_DAY = 86_400
ROW_GROUP = 1_000_000
REPEAT_SHARE = 0.75

COUNTRIES = np.array(["US", "DE", "FR", "GB", "ES", "IT", "CA", "JP"])
COUNTRY_WEIGHTS = np.array([0.35, 0.15, 0.12, 0.12, 0.08, 0.08, 0.06, 0.04])
CATEGORIES = np.array(["dairy", "bakery", "produce", "meat", "frozen", "snacks", "drinks", "coffee",
                       "cleaning", "personal care", "baby", "pet", "pantry", "deli", "household",
                       "shoes", "apparel", "electronics", "books", "toys"])
STATUSES = np.array(["paid", "refunded", "cancelled"])
STATUS_WEIGHTS = np.array([0.93, 0.05, 0.02])


def table_toml(name: str, primary_key: str, time_column: str | None = None,
               end_time_column: str | None = None) -> str:
    """A ``[tables.<name>]`` block of graph.toml for ``<name>.parquet`` beside the file."""
    keys = {"path": f"{name}.parquet", "primary_key": primary_key, "time_column": time_column,
            "end_time_column": end_time_column}
    return f"[tables.{name}]\n" + "".join(f'{key} = "{value}"\n' for key, value in keys.items() if value)


def edges_toml(*edges: tuple[str, str, str]) -> str:
    """``[[edges]]`` blocks, one per ``(src_table, fkey, dst_table)``, a blank line between them."""
    return "\n".join(f'[[edges]]\nsrc_table = "{src}"\nfkey = "{fkey}"\ndst_table = "{dst}"\n'
                     for src, fkey, dst in edges)


# graph.toml text, assembled from the blocks above so that each table and edge is written once;
# other modules that describe the same tables (tests/datagen_ref.py, tests/test_cli.py) reuse them.
USERS_TOML = table_toml("users", "user_id", "join_timestamp")
ITEMS_TOML = table_toml("items", "item_id", "start_timestamp", "end_timestamp")
TRANSACTIONS_TOML = table_toml("transactions", "transaction_id", "timestamp")
QUANTITY_TOML = """\
[tables.transactions.columns]
quantity = "numerical"            # few distinct values would otherwise read as categorical
"""
# One edge per foreign key of a purchase: who bought it and what was bought.
PURCHASE_EDGES_TOML = edges_toml(("transactions", "user_id", "users"), ("transactions", "item_id", "items"))

GRAPH_TOML = f"""\
# Synthetic buy-it-again data written by benchmarks/synthetic.py (seed {{seed}}):
# {{n_users}} users, {{n_items}} items, {{n_transactions}} transactions from {{start}} over {{days}} days.
# Paths are relative to this file.

{USERS_TOML}
{ITEMS_TOML}
{TRANSACTIONS_TOML}
{QUANTITY_TOML}
{PURCHASE_EDGES_TOML}"""

# The spec's whole reference schema (§2) without a header or placeholders, so anyone may write it
# as is next to data of that shape.
REFERENCE_SCHEMA_TOML = f"""\
# Static table (no time column): always fully visible.
{table_toml("regions", "region_id")}
# The entity table of most queries. A user exists at an anchor once join_timestamp <= anchor.
{USERS_TOML}[tables.users.columns]
name = "text"                     # short strings would otherwise read as categorical

# Items are launched (start_timestamp) and some are discontinued (end_timestamp); link
# prediction only counts and proposes items that exist at the anchor.
{ITEMS_TOML}[tables.items.columns]
description = "text"

# The fact table: one row per purchase.
{TRANSACTIONS_TOML}{QUANTITY_TOML}
# Marketing messages; opened ones are followed by more purchases.
{table_toml("notifications", "notification_id", "sent_at")}
# One edge per foreign key: src_table.fkey references dst_table's primary key.
{edges_toml(("users", "region_id", "regions"))}
{PURCHASE_EDGES_TOML}
{edges_toml(("notifications", "user_id", "users"))}"""

REFERENCE_GRAPH_TOML = """\
# The spec's reference schema (PQL-SPEC §2), generated by benchmarks/synthetic.py (seed {seed}):
# {n_users} users, {n_items} items, {n_transactions} transactions, {n_notifications} notifications,
# {n_regions} regions, from {start} over {days} days. Paths are relative to this file.

""" + REFERENCE_SCHEMA_TOML.replace("{", "{{").replace("}", "}}")  # literal text in a str.format template

FIRST_NAMES = np.array(["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Katherine",
                        "Linus", "Margaret", "Niklaus", "Radia", "Tim", "Vint", "Hedy"])
LAST_NAMES = np.array(["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus",
                       "Johnson", "Torvalds", "Hamilton", "Wirth", "Perlman", "Berners-Lee", "Cerf", "Lamarr"])
TAGS = np.array(["new", "loyal", "bargain", "premium", "family", "student"])
CHANNELS = np.array(["email", "push", "sms"])


@dataclass
class _Users:
    join: np.ndarray      # seconds since start
    activity: np.ndarray  # relative purchase rate


@dataclass
class _Items:
    start: np.ndarray     # seconds since start (may be negative: launched before the data begins)
    end: np.ndarray       # seconds since start; +inf when never discontinued
    weight: np.ndarray    # popularity, sums to 1
    interval: np.ndarray  # typical days between repeat purchases


def _users(rng: np.random.Generator, n: int, horizon: int) -> _Users:
    join = np.where(rng.random(n) < 0.4, 0, rng.integers(0, int(horizon * 0.9), n))
    activity = rng.lognormal(0.0, 0.7, n)
    return _Users(join=join.astype(np.int64), activity=activity)


def _items(rng: np.random.Generator, n: int, horizon: int, zipf: float) -> _Items:
    ranks = rng.permutation(n) + 1
    weight = 1.0 / ranks.astype(np.float64) ** zipf
    weight /= weight.sum()
    launched_late = rng.random(n) < 0.2
    start = np.where(launched_late, rng.integers(0, int(horizon * 0.8), n),
                     -rng.integers(SECONDS_PER_DAY, 365 * SECONDS_PER_DAY, n))
    ends = rng.random(n) < 0.1
    end_at = start.clip(0) + rng.uniform(0.2, 1.0, n) * (horizon - start.clip(0))
    end = np.where(ends, np.floor(end_at), np.inf)
    interval = np.clip(rng.lognormal(np.log(12.0), 0.6, n), 2.0, 120.0)
    return _Items(start=start.astype(np.int64), end=end, weight=weight, interval=interval)


def _valid(items: _Items, item: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (t >= items.start[item]) & (t < items.end[item])


def _repeat_purchases(rng: np.random.Generator, users: _Users, items: _Items, horizon: int,
                      target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's favourites bought again and again; exactly ``target`` rows (or fewer if scarce)."""
    n_users = users.join.size
    favourites = 1 + rng.poisson(2.0 + 3.0 * users.activity / users.activity.mean())
    pair_user = np.repeat(np.arange(n_users), favourites)
    flat = items.weight ** 0.6  # repertoires are more diverse than the best-seller list
    pair_item = rng.choice(items.weight.size, size=pair_user.size, p=flat / flat.sum())
    lo = np.maximum(users.join[pair_user], items.start[pair_item]).astype(np.float64)
    hi = np.minimum(float(horizon), items.end[pair_item])
    span = np.maximum(hi - lo, 0.0)
    # interval in seconds: item rhythm, personal pace (busier users come back sooner)
    base = items.interval[pair_item] * SECONDS_PER_DAY * rng.lognormal(0.0, 0.3, pair_user.size)
    base /= np.sqrt(users.activity[pair_user] / users.activity.mean())
    # calibrate one global pace so the natural number of repeats slightly exceeds the target
    pace = 1.0
    for _ in range(8):
        counts = np.floor(span / (base * pace)).astype(np.int64)
        total = int(counts.sum())
        if total == 0 or 1.05 * target <= total <= 1.6 * target:
            break
        pace *= total / (1.25 * target)
    interval = base * pace
    pair = np.repeat(np.arange(pair_user.size), counts)
    k = np.arange(pair.size) - np.repeat(np.cumsum(counts) - counts, counts)
    phase = rng.random(pair_user.size) * interval
    t = lo[pair] + phase[pair] + k * interval[pair] + rng.normal(0.0, 0.15, pair.size) * interval[pair]
    t = np.floor(t)
    keep = (t >= lo[pair]) & (t < hi[pair])
    pair, t = pair[keep], t[keep].astype(np.int64)
    if pair.size > target:
        chosen = np.sort(rng.permutation(pair.size)[:target])
        pair, t = pair[chosen], t[chosen]
    return pair_user[pair], pair_item[pair], t


def _explore_purchases(rng: np.random.Generator, users: _Users, items: _Items, horizon: int,
                       target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-off purchases of popular items over each user's lifetime; exactly ``target`` rows."""
    life = (horizon - users.join).astype(np.float64)
    user_p = users.activity * life
    user_p /= user_p.sum()
    out_u, out_i, out_t, have = [], [], [], 0
    while have < target:
        n = int((target - have) * 1.3) + 16
        u = rng.choice(user_p.size, size=n, p=user_p)
        i = rng.choice(items.weight.size, size=n, p=items.weight)
        t = users.join[u] + np.floor(rng.random(n) * life[u]).astype(np.int64)
        ok = _valid(items, i, t)
        take = min(int(ok.sum()), target - have)
        out_u.append(u[ok][:take]), out_i.append(i[ok][:take]), out_t.append(t[ok][:take])
        have += take
    return np.concatenate(out_u), np.concatenate(out_i), np.concatenate(out_t)


def _timestamps(start: datetime, seconds: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Naive timestamps ``start + seconds``; NULL where ``missing`` is true."""
    base = np.datetime64(start, "us")
    values = base + seconds.astype("timedelta64[s]").astype("timedelta64[us]")
    return pa.array(values, pa.timestamp("us"), mask=missing)


def _write(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with pq.ParquetWriter(tmp, table.schema, compression="zstd") as writer:
        for offset in range(0, max(table.num_rows, 1), ROW_GROUP):
            writer.write_table(table.slice(offset, ROW_GROUP))
    tmp.replace(path)


def generate(out_dir: str | Path, n_users: int, n_items: int, n_transactions: int, seed: int = 0,
             start: datetime = DEFAULT_START, days: int = 365, zipf: float = 1.05, reference: bool = False) -> Path:
    """Write the three tables and ``graph.toml`` into ``out_dir``; returns the graph file's path.

    ``reference=True`` writes the spec's whole reference schema instead (§2): users also get
    ``name``, ``tags``, ``birth_date`` and ``region_id``, items a ``description``, plus the
    ``regions`` and ``notifications`` tables. The three base tables' other columns are the same.
    """
    if min(n_users, n_items) < 1 or n_transactions < 0 or days < 1:
        raise ValueError("need n_users >= 1, n_items >= 1, n_transactions >= 0 and days >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    horizon = days * SECONDS_PER_DAY
    users = _users(rng, n_users, horizon)
    items = _items(rng, n_items, horizon, zipf)

    ru, ri, rt = _repeat_purchases(rng, users, items, horizon, int(round(REPEAT_SHARE * n_transactions)))
    eu, ei, et = _explore_purchases(rng, users, items, horizon, n_transactions - ru.size)
    user_idx = np.concatenate([ru, eu])
    item_idx = np.concatenate([ri, ei])
    seconds = np.concatenate([rt, et])
    order = np.lexsort((item_idx, user_idx, seconds))
    user_idx, item_idx, seconds = user_idx[order], item_idx[order], seconds[order]
    del ru, ri, rt, eu, ei, et, order

    item_price = np.round(rng.lognormal(np.log(6.0), 0.8, n_items), 2)
    n = seconds.size
    discount = np.where(rng.random(n) < 0.15, rng.uniform(0.6, 0.95, n), 1.0)
    transactions = pa.table({
        "transaction_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "user_id": pa.array(user_idx.astype(np.int64) + 1),
        "item_id": pa.array(item_idx.astype(np.int64) + 1),
        "price": pa.array(np.round(item_price[item_idx] * discount, 2)),
        "quantity": pa.array(1 + rng.poisson(0.35, n).astype(np.int64)),
        "status": pa.DictionaryArray.from_arrays(
            pa.array(rng.choice(3, size=n, p=STATUS_WEIGHTS).astype(np.int8)), pa.array(STATUSES)).cast(pa.string()),
        "is_gift": pa.array(rng.random(n) < 0.03),
        "timestamp": _timestamps(start, seconds),
    })
    _write(transactions, out / "transactions.parquet")
    del transactions, user_idx, item_idx, seconds, discount

    users_table = pa.table({
        "user_id": pa.array(np.arange(1, n_users + 1, dtype=np.int64)),
        "age": pa.array(rng.integers(18, 81, n_users).astype(np.int64)),
        "country": pa.array(COUNTRIES[rng.choice(COUNTRIES.size, size=n_users, p=COUNTRY_WEIGHTS)]),
        "is_vip": pa.array(rng.random(n_users) < 0.05),
        "join_timestamp": _timestamps(start, users.join),
    })
    has_end = np.isfinite(items.end)
    items_table = pa.table({
        "item_id": pa.array(np.arange(1, n_items + 1, dtype=np.int64)),
        "category": pa.array(CATEGORIES[rng.integers(0, CATEGORIES.size, n_items)]),
        "brand": pa.array(np.char.add("brand_", rng.integers(1, 1 + max(5, n_items // 40), n_items).astype(str))),
        "price": pa.array(item_price),
        "start_timestamp": _timestamps(start, items.start),
        "end_timestamp": _timestamps(start, np.where(has_end, items.end, 0).astype(np.int64), ~has_end),
    })
    sizes = {"seed": seed, "n_users": n_users, "n_items": n_items, "n_transactions": n,
             "start": start.date().isoformat(), "days": days}
    template = GRAPH_TOML
    if reference:
        extra_rng = np.random.default_rng([seed, 1])  # its own stream: the base columns stay as they are
        users_table, items_table, regions, notifications = _reference_tables(
            extra_rng, users_table, items_table, users, start, horizon)
        _write(regions, out / "regions.parquet")
        _write(notifications, out / "notifications.parquet")
        sizes.update(n_regions=regions.num_rows, n_notifications=notifications.num_rows)
        template = REFERENCE_GRAPH_TOML
    _write(users_table, out / "users.parquet")
    _write(items_table, out / "items.parquet")

    graph = out / "graph.toml"
    graph.write_text(template.format(**sizes), encoding="utf-8")
    return graph


def _reference_tables(rng: np.random.Generator, users_table: pa.Table, items_table: pa.Table, users: _Users,
                      start: datetime, horizon: int) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
    """The reference schema's extra columns and tables (regions, notifications)."""
    n_users, n_items = users_table.num_rows, items_table.num_rows
    per_country = max(1, min(6, n_users // 200))
    n_regions = COUNTRIES.size * per_country
    region_country = np.tile(np.arange(COUNTRIES.size), per_country)
    regions = pa.table({
        "region_id": pa.array(np.arange(1, n_regions + 1, dtype=np.int64)),
        "name": pa.array(np.char.add("Region ", np.arange(1, n_regions + 1).astype(str))),
        "country": pa.array(COUNTRIES[region_country]),
        "population": pa.array(rng.integers(50_000, 5_000_000, n_regions).astype(np.int64)),
    })

    country_idx = np.searchsorted(np.sort(COUNTRIES), users_table.column("country").to_numpy(zero_copy_only=False))
    country_idx = np.argsort(COUNTRIES)[country_idx]
    region = country_idx + COUNTRIES.size * rng.integers(0, per_country, n_users) + 1
    no_region = rng.random(n_users) < 0.03
    names = np.char.add(np.char.add(FIRST_NAMES[rng.integers(0, FIRST_NAMES.size, n_users)], " "),
                        LAST_NAMES[rng.integers(0, LAST_NAMES.size, n_users)])
    testers = rng.random(n_users) < 0.02
    names = np.where(testers, np.char.add("test account ", np.arange(1, n_users + 1).astype(str)), names)
    n_tags = rng.integers(0, 4, n_users)
    tag_values = TAGS[rng.integers(0, TAGS.size, int(n_tags.sum()))]
    offsets = np.concatenate([[0], np.cumsum(n_tags)]).astype(np.int32)
    ages = users_table.column("age").to_numpy()
    birth = -(ages * 365.25 * SECONDS_PER_DAY + rng.integers(0, 365 * SECONDS_PER_DAY, n_users)).astype(np.int64)
    users_table = pa.table({
        "user_id": users_table.column("user_id"),
        "name": pa.array(names),
        "age": users_table.column("age"),
        "country": users_table.column("country"),
        "is_vip": users_table.column("is_vip"),
        "tags": pa.ListArray.from_arrays(pa.array(offsets), pa.array(tag_values)),
        "birth_date": _timestamps(start, birth),
        "region_id": pa.array(region.astype(np.int64), mask=no_region),
        "join_timestamp": users_table.column("join_timestamp"),
    })

    categories = items_table.column("category").to_numpy(zero_copy_only=False)
    brands = items_table.column("brand").to_numpy(zero_copy_only=False)
    descriptions = np.char.add(np.char.add(np.char.add("A ", categories), " product from "), brands)
    items_table = items_table.add_column(4, "description", pa.array(descriptions))

    # notifications: busier users get more; opened ones mostly go to busier users
    life = (horizon - users.join).astype(np.float64)
    weight = users.activity * life
    n_notifications = max(1, int(20 * n_users))
    who = rng.choice(n_users, size=n_notifications, p=weight / weight.sum())
    sent = users.join[who] + np.floor(rng.random(n_notifications) * life[who]).astype(np.int64)
    order = np.lexsort((who, sent))
    who, sent = who[order], sent[order]
    opened = rng.random(n_notifications) < np.clip(0.15 + 0.2 * users.activity[who], 0, 0.9)
    notifications = pa.table({
        "notification_id": pa.array(np.arange(1, n_notifications + 1, dtype=np.int64)),
        "user_id": pa.array(who.astype(np.int64) + 1),
        "channel": pa.array(CHANNELS[rng.integers(0, CHANNELS.size, n_notifications)]),
        "opened": pa.array(opened),
        "sent_at": _timestamps(start, sent),
    })
    return users_table, items_table, regions, notifications


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate synthetic users/items/transactions Parquet data.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--start", type=datetime.fromisoformat, default=DEFAULT_START)
    parser.add_argument("--reference", action="store_true", help="the spec's full reference schema (5 tables)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    graph = generate(args.out_dir, args.users, args.items, args.transactions, seed=args.seed,
                     start=args.start, days=args.days, reference=args.reference)
    print(f"wrote {graph.parent} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
