"""Schemas shared by the tests: the spec's reference schema (§2) and a second, different one.

Both are schema-only graphs (no data); tests that need rows attach them separately.
"""

from __future__ import annotations

from pql.graph import ColumnSchema, Dtype, Edge, Graph, Stype, TableSchema

I, F, B, S, T, LS = Dtype.INT, Dtype.FLOAT, Dtype.BOOL, Dtype.STRING, Dtype.TIMESTAMP, Dtype.LIST_STRING
NUM, CAT, MCAT, ID, TXT, TS = Stype.NUMERICAL, Stype.CATEGORICAL, Stype.MULTICATEGORICAL, Stype.ID, Stype.TEXT, Stype.TIMESTAMP


def _table(name, cols, pk=None, time=None, end=None) -> TableSchema:
    return TableSchema(
        name=name,
        columns={c: ColumnSchema(c, d, s) for c, d, s in cols},
        primary_key=pk,
        time_column=time,
        end_time_column=end,
    )


def reference_graph() -> Graph:
    """PQL-SPEC §2: regions, users, items, transactions, notifications."""
    tables = [
        _table("regions", [("region_id", I, ID), ("name", S, CAT), ("country", S, CAT), ("population", I, NUM)],
               pk="region_id"),
        _table("users", [("user_id", I, ID), ("name", S, TXT), ("age", I, NUM), ("country", S, CAT),
                         ("is_vip", B, CAT), ("tags", LS, MCAT), ("birth_date", T, TS), ("region_id", I, ID),
                         ("join_timestamp", T, TS)],
               pk="user_id", time="join_timestamp"),
        _table("items", [("item_id", I, ID), ("category", S, CAT), ("brand", S, CAT), ("price", F, NUM),
                         ("description", S, TXT), ("start_timestamp", T, TS), ("end_timestamp", T, TS)],
               pk="item_id", time="start_timestamp", end="end_timestamp"),
        _table("transactions", [("transaction_id", I, ID), ("user_id", I, ID), ("item_id", I, ID),
                                ("price", F, NUM), ("quantity", I, NUM), ("status", S, CAT),
                                ("is_gift", B, CAT), ("timestamp", T, TS)],
               pk="transaction_id", time="timestamp"),
        _table("notifications", [("notification_id", I, ID), ("user_id", I, ID), ("channel", S, CAT),
                                 ("opened", B, CAT), ("sent_at", T, TS)],
               pk="notification_id", time="sent_at"),
    ]
    edges = [
        Edge("users", "region_id", "regions"),
        Edge("transactions", "user_id", "users"),
        Edge("transactions", "item_id", "items"),
        Edge("notifications", "user_id", "users"),
    ]
    return Graph({t.name: t for t in tables}, edges)


def marketplace_graph() -> Graph:
    """A second schema: a marketplace with sellers, string keys, a parallel edge and an untimed fact table.

    - customers(customer_id string PK, segment, signup_at time, city, score float, newsletter bool)
    - sellers(seller_id PK, rating float, country) — static
    - products(product_id PK, seller_id FK, category, price, labels list<string>) — static
    - orders(order_id PK, customer_id FK, product_id FK, amount float, qty int, channel, ordered_at time)
    - reviews(review_id PK, customer_id FK, product_id FK, stars int, body text, created_at time)
    - referrals(referrer_id FK -> customers, referee_id FK -> customers): parallel edges, no PK, no time
    - events(event_id, customer_id FK, kind): untimed child table
    """
    tables = [
        _table("customers", [("customer_id", S, ID), ("segment", S, CAT), ("signup_at", T, TS), ("city", S, CAT),
                             ("score", F, NUM), ("newsletter", B, CAT)],
               pk="customer_id", time="signup_at"),
        _table("sellers", [("seller_id", I, ID), ("rating", F, NUM), ("country", S, CAT)], pk="seller_id"),
        _table("products", [("product_id", I, ID), ("seller_id", I, ID), ("category", S, CAT), ("price", F, NUM),
                            ("labels", LS, MCAT)],
               pk="product_id"),
        _table("orders", [("order_id", I, ID), ("customer_id", S, ID), ("product_id", I, ID), ("amount", F, NUM),
                          ("qty", I, NUM), ("channel", S, CAT), ("ordered_at", T, TS)],
               pk="order_id", time="ordered_at"),
        _table("reviews", [("review_id", I, ID), ("customer_id", S, ID), ("product_id", I, ID), ("stars", I, NUM),
                           ("body", S, TXT), ("created_at", T, TS)],
               pk="review_id", time="created_at"),
        _table("referrals", [("referrer_id", S, ID), ("referee_id", S, ID)]),
        _table("events", [("event_id", I, ID), ("customer_id", S, ID), ("kind", S, CAT)], pk="event_id"),
    ]
    edges = [
        Edge("products", "seller_id", "sellers"),
        Edge("orders", "customer_id", "customers"),
        Edge("orders", "product_id", "products"),
        Edge("reviews", "customer_id", "customers"),
        Edge("reviews", "product_id", "products"),
        Edge("referrals", "referrer_id", "customers"),
        Edge("referrals", "referee_id", "customers"),
        Edge("events", "customer_id", "customers"),
    ]
    return Graph({t.name: t for t in tables}, edges)
