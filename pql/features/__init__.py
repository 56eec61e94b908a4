"""Time-correct features: entity features, candidates and pair features, computed in DuckDB.

- :func:`entity_features` (node tasks): one row per (ENTITY, ANCHOR_TIMESTAMP).
- :func:`candidates` and :func:`pair_features` (link prediction, multilabel): candidate classes per
  (ENTITY, ANCHOR_TIMESTAMP) and one feature row per (ENTITY, ANCHOR_TIMESTAMP, CLASS).
- :func:`candidate_recall`: the share of truth pairs a candidate set covers.

Every feature for (entity, anchor a) reads only rows with time <= a; an end time later than a
reads as NULL; untimed tables are static (PQL-SPEC §7.5).
"""

from .candidates import candidate_recall, candidates
from .entity import entity_features
from .pairs import PAIR_FEATURES, pair_features

__all__ = ["entity_features", "candidates", "pair_features", "candidate_recall", "PAIR_FEATURES"]
