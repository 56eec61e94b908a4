"""Leakage: changing or adding rows after an anchor never changes that anchor's features.

Random shop graphs (tests/feature_graphs.py) are computed twice: as drawn, and after every timed
row later than the anchor was changed (values, foreign keys, times, end times), new later rows were
added to every timed table, and end times later than the anchor were moved to other later values
or NULL. Entity features, candidates and pair features at that anchor must not change (the codes
in ``extra`` are identifiers over the whole table, not features, and are not compared).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import pql
from pql.data import Database
from pql.features import candidates, entity_features, pair_features
from tests.feature_graphs import ANCHORS, build, perturb_after, random_rows

QUERIES = {
    "node": "PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH users.user_id",
    "lp": "PREDICT LIST_DISTINCT(orders.item_id, 0, 30, days) RANK TOP 5 FOR EACH users.user_id",
    "multilabel": "PREDICT LIST_DISTINCT(orders.channel, 0, 7, days) RANK TOP 2 FOR EACH users.user_id",
    "items": "PREDICT SUM(orders.qty, 0, 7, days) FOR EACH items.item_id",
}
SEEDS = range(6)


def _pairs(entities, anchors):
    rows = [(e, a) for a in anchors for e in entities]
    return pa.table({"ENTITY": pa.array([r[0] for r in rows], pa.int64()),
                     "ANCHOR_TIMESTAMP": pa.array([r[1] for r in rows], pa.timestamp("us"))})


def _at(fs, anchor):
    mask = np.array([a == anchor for a in fs.keys.column("ANCHOR_TIMESTAMP").to_pylist()])
    return fs.keys.filter(pa.array(mask)).to_pylist(), fs.X[mask]


def _compute(rows, entities_from):
    """Every feature kind on one graph, for the entities of ``entities_from`` at all anchors."""
    graph = build(rows)
    out = {}
    users = [r["user_id"] for r in entities_from["users"]]
    items = [r["item_id"] for r in entities_from["items"]]
    with Database(graph) as db:
        for kind, query in QUERIES.items():
            vq = pql.validate(query, graph)
            pairs = _pairs(items if kind == "items" else users, ANCHORS)
            if kind in ("node", "items"):
                out[kind] = (entity_features(db, vq, pairs),)
                continue
            cands = candidates(db, vq, pairs, options={"num_popular": 3, "num_neighbours": 4})
            history = candidates(db, vq, pairs, options={"candidates": "history"})
            out[kind] = (cands, history, vq)
            out[kind + "_pf"] = pair_features(db, vq, cands)
        return out


def _pair_features_on(rows, kind, cands):
    graph = build(rows)
    with Database(graph) as db:
        return pair_features(db, pql.validate(QUERIES[kind], graph), cands)


@pytest.mark.parametrize("seed", SEEDS)
def test_rows_after_the_anchor_never_change_its_features(seed):
    anchor = ANCHORS[seed % len(ANCHORS)]
    rows = random_rows(seed)
    changed = perturb_after(rows, anchor, seed + 100)
    base, other = _compute(rows, rows), _compute(changed, rows)
    for kind in ("node", "items"):
        (fa,), (fb,) = base[kind], other[kind]
        assert fa.names == fb.names
        ka, xa = _at(fa, anchor)
        kb, xb = _at(fb, anchor)
        assert ka == kb
        np.testing.assert_allclose(xa, xb, rtol=1e-5, equal_nan=True, err_msg=f"{kind} seed {seed}")
    for kind in ("lp", "multilabel"):
        for i, label in ((0, "candidates"), (1, "history candidates")):
            a = [r for r in base[kind][i].to_pylist() if r["ANCHOR_TIMESTAMP"] == anchor]
            b = [r for r in other[kind][i].to_pylist() if r["ANCHOR_TIMESTAMP"] == anchor]
            assert a == b, f"{kind} {label} changed at {anchor} (seed {seed})"
        # the same candidate rows, featurised on the changed graph
        cands = base[kind][0]
        pa_, pb = base[kind + "_pf"], _pair_features_on(changed, kind, cands)
        assert pa_.names == pb.names
        ka, xa = _at(pa_, anchor)
        kb, xb = _at(pb, anchor)
        assert ka == kb
        np.testing.assert_allclose(xa, xb, rtol=1e-5, equal_nan=True, err_msg=f"{kind} pairs seed {seed}")


def test_the_perturbation_changes_later_features():
    """The test above can fail: the same perturbation does change a later anchor's features."""
    anchor, later = ANCHORS[0], ANCHORS[1]
    rows = random_rows(3)
    changed = perturb_after(rows, anchor, 103)
    (fa,), (fb,) = _compute(rows, rows)["node"], _compute(changed, rows)["node"]
    _, xa = _at(fa, later)
    _, xb = _at(fb, later)
    assert not np.allclose(xa, xb, equal_nan=True)
