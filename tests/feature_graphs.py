"""A small shop graph for the feature tests: hand-written rows and random ones.

Tables: ``regions`` (static dimension of users), ``users`` (timed, with an end time, a bool, a
categorical, a multicategorical list), ``items`` (timed, with an end time), ``orders`` (timed
events: users x items) and ``reviews`` (a static child of users).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pyarrow as pa

from pql.graph import Graph

D = dt.datetime
A = D(2024, 2, 1)  # the anchor of the hand-written data

SCHEMA: dict[str, list[tuple[str, pa.DataType]]] = {
    "regions": [("region_id", pa.int64()), ("population", pa.float64()), ("zone", pa.string())],
    "users": [("user_id", pa.int64()), ("joined", pa.timestamp("us")), ("left_at", pa.timestamp("us")),
              ("age", pa.float64()), ("segment", pa.string()), ("vip", pa.bool_()), ("region_id", pa.int64()),
              ("tags", pa.list_(pa.string()))],
    "items": [("item_id", pa.int64()), ("created", pa.timestamp("us")), ("retired", pa.timestamp("us")),
              ("price", pa.float64()), ("dept", pa.string())],
    "orders": [("order_id", pa.int64()), ("user_id", pa.int64()), ("item_id", pa.int64()),
               ("ts", pa.timestamp("us")), ("amount", pa.float64()), ("qty", pa.int64()), ("channel", pa.string())],
    "reviews": [("review_id", pa.int64()), ("user_id", pa.int64()), ("stars", pa.float64())],
}
KEYS = {"regions": "region_id", "users": "user_id", "items": "item_id", "orders": "order_id", "reviews": "review_id"}
TIMES = {"users": "joined", "items": "created", "orders": "ts"}
ENDS = {"users": "left_at", "items": "retired"}
EDGES = [("users", "region_id", "regions"), ("orders", "user_id", "users"), ("orders", "item_id", "items"),
         ("reviews", "user_id", "users")]
STYPES = {"regions": {"population": "numerical", "zone": "categorical"},
          "users": {"age": "numerical", "segment": "categorical", "tags": "multicategorical"},
          "items": {"price": "numerical", "dept": "categorical"},
          "orders": {"amount": "numerical", "qty": "numerical", "channel": "categorical"},
          "reviews": {"stars": "numerical"}}


def _row(table: str, *values: Any) -> dict[str, Any]:
    return dict(zip([c for c, _ in SCHEMA[table]], values))


def hand_rows() -> dict[str, list[dict[str, Any]]]:
    """The hand-computed example (anchor A = 2024-02-01 00:00)."""
    return {
        "regions": [_row("regions", 1, 1000.0, "north"), _row("regions", 2, 500.0, "south")],
        "users": [
            _row("users", 1, D(2024, 1, 1), None, 30.0, "a", True, 1, ["x", "y"]),
            _row("users", 2, D(2024, 1, 5), D(2024, 1, 20), 40.0, "b", False, 2, ["x"]),
            _row("users", 3, D(2024, 2, 15), None, 50.0, "a", True, 1, ["z"]),  # joins after A
        ],
        "items": [
            _row("items", 1, D(2023, 12, 1), None, 10.0, "food"),
            _row("items", 2, D(2024, 1, 1), D(2024, 3, 1), 20.0, "toys"),  # retires after A: valid at A
            _row("items", 3, D(2024, 2, 10), None, 5.0, "food"),  # created after A
            _row("items", 4, D(2023, 12, 1), D(2024, 1, 25), 8.0, "toys"),  # retired before A
            _row("items", 5, D(2023, 12, 1), None, 3.0, "food"),
        ],
        "orders": [
            _row("orders", 1, 1, 1, D(2024, 1, 2), 5.0, 1, "web"),  # exactly 30 days before A
            _row("orders", 2, 1, 1, D(2024, 1, 20), 7.0, 2, "app"),
            _row("orders", 3, 1, 2, A, 3.0, 1, "web"),  # exactly at A: visible
            _row("orders", 4, 1, 2, A + dt.timedelta(seconds=1), 100.0, 9, "web"),  # just after A: invisible
            _row("orders", 5, 2, 1, D(2024, 1, 10), 4.0, 1, "app"),
            _row("orders", 6, 1, 3, D(2024, 2, 12), 50.0, 5, "phone"),  # future
            _row("orders", 7, 2, 4, D(2024, 1, 12), 6.0, 1, "app"),
            _row("orders", 8, 2, 5, D(2024, 1, 15), 2.0, 1, "web"),
        ],
        "reviews": [_row("reviews", 1, 1, 4.0), _row("reviews", 2, 1, 2.0), _row("reviews", 3, 2, 5.0)],
    }


def build(rows: dict[str, list[dict[str, Any]]]) -> Graph:
    tables = {name: pa.Table.from_pylist(rows[name], schema=pa.schema(SCHEMA[name])) for name in SCHEMA}
    return Graph.from_tables(tables, primary_keys=KEYS, time_columns=TIMES, end_time_columns=ENDS, edges=EDGES,
                             stypes=STYPES)


# -- random data --------------------------------------------------------------------------------
ANCHORS = [D(2024, 1, 15), D(2024, 2, 1), D(2024, 2, 1, 12)]


def _time(rnd: random.Random) -> D:
    """Mostly near the anchors (on them, a second after, whole days away)."""
    base = rnd.choice(ANCHORS)
    kind = rnd.random()
    if kind < 0.2:
        return base
    if kind < 0.3:
        return base + dt.timedelta(seconds=1)
    return base + dt.timedelta(days=rnd.randint(-40, 20), hours=rnd.choice([0, 0, 6]))


def random_rows(seed: int, n_users: int = 6, n_items: int = 6, n_orders: int = 40) -> dict[str, list[dict]]:
    rnd = random.Random(seed)
    rows: dict[str, list[dict]] = {
        "regions": [_row("regions", i, float(rnd.choice([100, 200, 300])), rnd.choice(["n", "s", None]))
                    for i in (1, 2, 3)],
        "users": [], "items": [], "orders": [], "reviews": [],
    }
    for u in range(1, n_users + 1):
        joined = _time(rnd) - dt.timedelta(days=rnd.choice([0, 30, 60]))
        left = rnd.choice([None, None, _time(rnd)])
        rows["users"].append(_row("users", u, joined, left, rnd.choice([20.0, 30.0, None]), rnd.choice("ab"),
                                  rnd.choice([True, False]), rnd.choice([1, 2, 3, 9]),
                                  rnd.choice([["x"], ["x", "y"], [], None])))
    for i in range(1, n_items + 1):
        created = _time(rnd) - dt.timedelta(days=rnd.choice([0, 40]))
        rows["items"].append(_row("items", i, created, rnd.choice([None, None, _time(rnd)]),
                                  rnd.choice([1.0, 2.5, None]), rnd.choice(["food", "toys", None])))
    for o in range(1, n_orders + 1):
        rows["orders"].append(_row("orders", o, rnd.randint(1, n_users), rnd.choice(list(range(1, n_items + 1)) + [99]),
                                   _time(rnd), rnd.choice([1.0, 2.0, 3.5, None]), rnd.randint(1, 3),
                                   rnd.choice(["web", "app", None])))
    rows["reviews"] = [_row("reviews", r, rnd.randint(1, n_users), rnd.choice([1.0, 5.0])) for r in range(1, 6)]
    return rows


def perturb_after(rows: dict[str, list[dict]], anchor: D, seed: int) -> dict[str, list[dict]]:
    """Change and add rows of timed tables whose time is after ``anchor``; move end times that are
    after the anchor to other values after it (or NULL, which reads the same at the anchor)."""
    rnd = random.Random(seed)
    later = [anchor + dt.timedelta(seconds=1), anchor + dt.timedelta(days=3), anchor + dt.timedelta(days=40)]
    out = {name: [dict(r) for r in table] for name, table in rows.items()}
    for name, time in TIMES.items():
        end = ENDS.get(name)
        for row in out[name]:
            if end and row[end] is not None and row[end] > anchor:
                row[end] = rnd.choice(later + [None])
            if row[time] is None or row[time] <= anchor:
                continue
            for column, dtype in SCHEMA[name]:
                if column in (KEYS[name], time):
                    continue
                row[column] = _random_value(rnd, dtype, later, row[column])
            _repoint(rnd, name, row, out)
            row[time] = rnd.choice(later)
        pk = KEYS[name]
        next_key = max(r[pk] for r in out[name]) + 1 if out[name] else 1
        for k in range(2):
            template = dict(rnd.choice(out[name])) if out[name] else {}
            new = {c: _random_value(rnd, t, later, template.get(c)) for c, t in SCHEMA[name]}
            new[pk], new[time] = next_key + k, rnd.choice(later)
            _repoint(rnd, name, new, out)
            out[name].append(new)
    return out


def _repoint(rnd: random.Random, table: str, row: dict, rows: dict[str, list[dict]]) -> None:
    """Point a changed row's foreign keys (and integers) at other existing rows."""
    for src, fk, dst in EDGES:
        if src == table:
            row[fk] = rnd.choice([r[KEYS[dst]] for r in rows[dst]])
    if table == "orders":
        row["qty"] = rnd.randint(1, 9)


def _random_value(rnd: random.Random, dtype: pa.DataType, later: list[D], current: Any) -> Any:
    if pa.types.is_timestamp(dtype):
        return rnd.choice(later + [None])
    if pa.types.is_floating(dtype):
        return rnd.choice([7.0, 11.5, None])
    if pa.types.is_integer(dtype):
        return current if current is not None else 1  # keys stay keys
    if pa.types.is_boolean(dtype):
        return rnd.choice([True, False])
    if pa.types.is_list(dtype):
        return rnd.choice([["q"], ["x", "q"], None])
    return rnd.choice(["zz", "web", "b", None])
