"""The spec's valid example queries (PQL-SPEC §16.1), shared by the tests that use them.

``SPEC_VALID``: (id, text, task type), V1-V26 plus variants; ``SPEC_V``: V1-V26 text by id.
"""

from __future__ import annotations

import re

SPEC_VALID = [
    ("V1", "PREDICT COUNT(transactions.*, 0, 30, days) = 0 FOR EACH users.user_id WHERE COUNT(transactions.*, -90, 0, days) > 0", "binary_classification"),
    ("V2", "PREDICT SUM(transactions.price, 10, 30) FOR EACH users.user_id", "regression"),
    ("V3", "PREDICT SUM(transactions.price, 0, 3, months) FOR EACH users.user_id WHERE SUM(transactions.price, -2, 0, months) > 0.05", "regression"),
    ("V4", "PREDICT SUM(transactions.price, 0, 30) FOR EACH users.user_id ASSUMING COUNT(notifications.*, 0, 7) > 2", "regression"),
    ("V5", "PREDICT LIST_DISTINCT(transactions.item_id, 0, 30) RANK TOP 12 FOR EACH users.user_id", "temporal_link_prediction"),
    ("V6", "PREDICT LIST_DISTINCT(transactions.item_id, 0, 30) CLASSIFY FOR EACH users.user_id", "multilabel_classification"),
    ("V7", "PREDICT LIST_DISTINCT(transactions.status, 0, 30) RANK TOP 3 FOR EACH users.user_id", "multilabel_ranking"),
    ("V8", "PREDICT users.age FOR EACH users.user_id", "regression"),
    ("V9", "PREDICT users.country FOR EACH users.user_id WHERE regions.population > 1000000", "multiclass_classification"),
    ("V10", "PREDICT users.tags RANK TOP 5 FOR EACH users.user_id", "multilabel_ranking"),
    ("V11", "PREDICT LAST(transactions.status, 0, 30, days) FOR EACH users.user_id", "multiclass_classification"),
    ("V12", "PREDICT SUM(transactions.price, 0, 7, days) FORECAST 4 TIMEFRAMES FOR EACH items.item_id", "forecasting"),
    ("V13", "PREDICT COUNT(transactions.* WHERE items.category = 'shoes', 0, 14) > 0 FOR EACH users.user_id", "binary_classification"),
    ("V14", "PREDICT COUNT(transactions.*, 0, 24, hours) > 0 OR COUNT(notifications.* WHERE notifications.opened = true, 0, 1, days) > 0 FOR EACH users.user_id", "binary_classification"),
    ("V15", "PREDICT (users.age > 40 OR users.country = 'US') AND NOT users.is_vip = true FOR EACH users.user_id", "binary_classification"),
    ("V16", "PREDICT users.birth_date > 1990-01-01 FOR EACH users.user_id", "binary_classification"),
    ("V17", "PREDICT MIN(transactions.price, 0, 30) <= 5 FOR EACH users.user_id WHERE regions.country = 'DE' AND COUNT(transactions.*, -INF, 0) > 0", "binary_classification"),
    ("V18", "PREDICT AVG(transactions.price, 0, 4, weeks) FOR EACH items.item_id ASSUMING SUM(transactions.quantity, 0, 4, weeks) > 0", "regression"),
    ("V19", "PREDICT COUNT(transactions.*, 0, 30) > 0 FOR users.user_id IN (1, 2, 3)", "binary_classification"),
    ("V19=", "PREDICT COUNT(transactions.*, 0, 30) > 0 FOR users.user_id = 42", "binary_classification"),
    ("V20", "PREDICT LIST_DISTINCT(transactions.item_id, 0, 30, days) RANK TOP 50 FOR EACH users.user_id WHERE COUNT(transactions.*, -90, 0, days) >= 3", "temporal_link_prediction"),
    ("V21", "PREDICT COUNT(users.* WHERE COUNT(transactions.*, 0, 30, days) > 0, 0, 30, days) FOR EACH regions.region_id", "regression"),
    ("V22", "predict count(transactions.*, 0, 7) > 0 for each users.user_id where users.name not like '%test%'", "binary_classification"),
    ("V23", "PREDICT LAST(transactions.status, 0, 30) LIKE 'refund%' FOR EACH users.user_id", "binary_classification"),
    ("V24", "PREDICT COUNT(notifications.*, 0, 7) > 0 FOR EACH users.user_id WHERE users.country NOT IN ('US', 'CA') AND users.region_id IS NOT NULL", "binary_classification"),
    ("V25", "PREDICT SUM(transactions.`price`, 0, 30) FOR EACH users.user_id WHERE users.join_timestamp > 2024-01-01 12:00:00", "regression"),
    ("V26", "PREDICT LIST_DISTINCT(transactions.item_id WHERE items.category = 'shoes', 0, 30) RANK TOP 10 FOR EACH users.user_id", "temporal_link_prediction"),
    ("multi-line", "-- weekly re-engagement\n"
                   "PREDICT COUNT(transactions.*, 0, 7) > 0   # any purchase next week\n"
                   "FOR\n"
                   "  EACH users.user_id WHERE COUNT(notifications.*, -7, 0) > 0", "binary_classification"),
]


SPEC_V = {name: text for name, text, _ in SPEC_VALID if re.fullmatch(r"V\d+", name)}
