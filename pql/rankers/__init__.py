"""Rankers: the plugin interface, the registry and the built-ins (popularity, history, gbdt, torch)."""

from pql.rankers.base import (
    ENTRY_POINT_GROUP,
    Ranker,
    available_rankers,
    create_ranker,
    get_ranker_class,
    load_ranker,
)

__all__ = ["ENTRY_POINT_GROUP", "Ranker", "available_rankers", "create_ranker", "get_ranker_class", "load_ranker"]
