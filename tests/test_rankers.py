"""Built-in rankers on small synthetic feature sets (no DuckDB): shapes per task type, learning a
planted signal, baseline semantics, determinism, save/load, registry errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from pql.ast import TaskType
from pql.errors import PQLRunError
from pql.rankers import available_rankers, create_ranker, load_ranker
from pql.rankers._common import grouped_map_at_k, sample_pair_rows
from pql.tasks import FeatureSet, TaskInfo

T = TaskType
NODE = [T.BINARY_CLASSIFICATION, T.MULTICLASS_CLASSIFICATION, T.REGRESSION, T.FORECASTING]
PAIR = [T.TEMPORAL_LINK_PREDICTION, T.STATIC_LINK_PREDICTION, T.MULTILABEL_RANKING,
        T.MULTILABEL_CLASSIFICATION]
CLASSES = ["a", "b", "c", "d"]
# small and fast settings for the learning rankers
FAST = {"gbdt": {"max_iter": 60}, "torch": {"epochs": 3, "min_steps": 60, "hidden": 32},
        "popularity": {}, "history": {}}
PAIR_NAMES = ["pair_count", "pair_decay_count", "pair_days_since_last", "class_pop_30d",
              "class_pop_decay", "signal"]


def node_set(task_type: TaskType, n: int = 1200, seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    X[rng.uniform(size=X.shape) < 0.05] = np.nan
    x0 = np.nan_to_num(X[:, 0])
    y = {T.BINARY_CLASSIFICATION: (x0 > 0).astype(np.int64),
         T.MULTICLASS_CLASSIFICATION: np.digitize(x0, [-0.7, 0.0, 0.7]).astype(np.int64),
         T.REGRESSION: 3 * x0 + 1.0,
         T.FORECASTING: 2 * x0 - 1.0}[task_type]
    keys = pa.table({"ENTITY": np.arange(n), "ANCHOR_TIMESTAMP": pa.array(np.zeros(n, "datetime64[s]"))})
    return FeatureSet(keys, X, ["f0", "f1", "f2", "f3"], y=y)


def pair_set(n_groups: int = 120, per: int = 30, seed: int = 0, n_classes: int = 60) -> FeatureSet:
    """Candidates per (entity, anchor); relevance planted mostly in 'signal', a little in history."""
    rng = np.random.default_rng(seed)
    n = n_groups * per
    ent = np.repeat(np.arange(n_groups), per)
    cls = np.concatenate([rng.choice(n_classes, per, replace=False) for _ in range(n_groups)])
    count = rng.poisson(0.7, n).astype(float)
    decay = count * rng.uniform(0.2, 1.0, n)
    pop = rng.gamma(2.0, 50.0, n_classes)[cls]
    days = np.where(count > 0, rng.uniform(1, 100, n), np.nan)
    signal = rng.normal(size=n)
    logit = 3.0 * signal + 0.5 * decay - 3.5
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X = np.column_stack([count, decay, days, 0.3 * pop, pop, signal]).astype(np.float32)
    keys = pa.table({"ENTITY": ent, "ANCHOR_TIMESTAMP": pa.array(np.zeros(n, "datetime64[s]")),
                     "CLASS": cls})
    extra = {"entity_code": ent.astype(np.int64), "class_code": cls.astype(np.int64),
             "n_entity_codes": np.array([n_groups]), "n_class_codes": np.array([n_classes])}
    return FeatureSet(keys, X, list(PAIR_NAMES), y=y, group=ent.copy(), extra=extra)


def task(task_type: TaskType) -> TaskInfo:
    classes = CLASSES if task_type == T.MULTICLASS_CLASSIFICATION else None
    return TaskInfo(task_type, k=10 if task_type in PAIR else None, classes=classes)


def fitted(name: str, task_type: TaskType, seed: int = 0, **params):
    data = pair_set(seed=seed) if task_type in PAIR else node_set(task_type, seed=seed)
    valid = pair_set(seed=seed + 50) if task_type in PAIR else node_set(task_type, n=300, seed=seed + 50)
    ranker = create_ranker(name, task_type, seed=seed, **{**FAST[name], **params})
    ranker.fit(data, task(task_type), valid=valid)
    return ranker


CASES = [(name, t) for name in ("popularity", "gbdt", "torch") for t in NODE + PAIR[:1]] + \
        [("history", t) for t in PAIR] + [(name, t) for name in ("popularity", "gbdt") for t in PAIR[1:]]


@pytest.mark.parametrize("name,task_type", CASES, ids=[f"{n}-{t.value}" for n, t in CASES])
def test_fit_predict_shapes(name, task_type):
    ranker = fitted(name, task_type)
    test = pair_set(seed=9) if task_type in PAIR else node_set(task_type, n=200, seed=9)
    scores = ranker.predict(test)
    if task_type == T.MULTICLASS_CLASSIFICATION:
        assert scores.shape == (len(test), len(CLASSES))
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    else:
        assert scores.shape == (len(test),)
    assert np.isfinite(scores).all()
    if task_type == T.BINARY_CLASSIFICATION:
        assert ((scores >= 0) & (scores <= 1)).all()


@pytest.mark.parametrize("name", ["gbdt", "torch"])
def test_binary_signal_is_learned(name):
    ranker = fitted(name, T.BINARY_CLASSIFICATION)
    test = node_set(T.BINARY_CLASSIFICATION, n=600, seed=3)
    assert roc_auc_score(test.y, ranker.predict(test)) > 0.9


def test_gbdt_regression_beats_the_mean():
    ranker = fitted("gbdt", T.REGRESSION)
    test = node_set(T.REGRESSION, n=600, seed=3)
    mae = np.mean(np.abs(ranker.predict(test) - test.y))
    assert mae < 0.5 * np.mean(np.abs(test.y - test.y.mean()))


@pytest.mark.parametrize("name,params", [("gbdt", {}), ("gbdt", {"objective": "pairwise"}),
                                         ("torch", {"epochs": 6})])
def test_pair_rankers_rank_planted_positives_first(name, params):
    ranker = fitted(name, T.TEMPORAL_LINK_PREDICTION, **params)
    history = fitted("history", T.TEMPORAL_LINK_PREDICTION)
    test = pair_set(seed=11)
    learned = grouped_map_at_k(ranker.predict(test), test.y, test.group, 10)
    baseline = grouped_map_at_k(history.predict(test), test.y, test.group, 10)
    assert learned > 0.6 and learned > baseline + 0.2


def test_history_ranks_bought_items_first_then_popularity():
    data = pair_set(seed=4)
    scores = fitted("history", T.TEMPORAL_LINK_PREDICTION).predict(data)
    bought = data.column("pair_count") > 0
    assert scores[bought].min() > scores[~bought].max()
    decay, pop = data.column("pair_decay_count"), data.column("class_pop_decay")
    for g in range(5):
        rows = np.flatnonzero(data.group == g)
        b, nb = rows[bought[rows]], rows[~bought[rows]]
        assert (np.argsort(-scores[b], kind="stable") == np.argsort(-decay[b], kind="stable")).all()
        assert (np.argsort(-scores[nb], kind="stable") == np.argsort(-pop[nb], kind="stable")).all()


def test_history_breaks_decay_ties_by_count_and_popularity_by_recent_count():
    names = PAIR_NAMES
    X = np.array([[2, 1.0, 5, 10, 50, 0], [5, 1.0, 5, 10, 50, 0],      # same decay, more buys wins
                  [0, 0.0, np.nan, 3, 80, 0], [0, 0.0, np.nan, 9, 80, 0]], dtype=np.float32)
    keys = pa.table({"ENTITY": [1] * 4, "ANCHOR_TIMESTAMP": pa.array(np.zeros(4, "datetime64[s]")),
                     "CLASS": [1, 2, 3, 4]})
    data = FeatureSet(keys, X, list(names), group=np.zeros(4, dtype=np.int64))
    hist = fitted("history", T.TEMPORAL_LINK_PREDICTION).predict(data)
    assert hist[1] > hist[0] > hist[3] > hist[2]
    pop = fitted("popularity", T.TEMPORAL_LINK_PREDICTION).predict(data)
    assert pop[3] > pop[2] > pop[0] == pop[1]


def test_popularity_node_constants():
    b = node_set(T.BINARY_CLASSIFICATION)
    assert fitted("popularity", T.BINARY_CLASSIFICATION).predict(b)[0] == pytest.approx(b.y.mean())
    r = node_set(T.REGRESSION)
    assert fitted("popularity", T.REGRESSION).predict(r)[0] == pytest.approx(r.y.mean())
    m = node_set(T.MULTICLASS_CLASSIFICATION)
    freq = np.bincount(m.y, minlength=4) / len(m.y)
    np.testing.assert_allclose(fitted("popularity", T.MULTICLASS_CLASSIFICATION).predict(m)[0], freq)


@pytest.mark.parametrize("name", ["gbdt", "torch"])
def test_multiclass_class_absent_from_training_gets_zero_or_low_probability(name):
    data = node_set(T.MULTICLASS_CLASSIFICATION)
    keep = np.flatnonzero(data.y != 3)   # class "d" never seen in training
    ranker = create_ranker(name, T.MULTICLASS_CLASSIFICATION, **FAST[name])
    ranker.fit(data.take(keep), task(T.MULTICLASS_CLASSIFICATION))
    probs = ranker.predict(node_set(T.MULTICLASS_CLASSIFICATION, n=100, seed=5))
    assert probs.shape == (100, 4)
    assert probs[:, 3].max() < 0.2


@pytest.mark.parametrize("name,task_type", [("gbdt", T.TEMPORAL_LINK_PREDICTION),
                                            ("gbdt", T.MULTICLASS_CLASSIFICATION),
                                            ("torch", T.TEMPORAL_LINK_PREDICTION),
                                            ("torch", T.BINARY_CLASSIFICATION)])
def test_same_seed_same_predictions(name, task_type):
    test = pair_set(seed=9) if task_type in PAIR else node_set(task_type, n=200, seed=9)
    a = fitted(name, task_type, seed=3).predict(test)
    b = fitted(name, task_type, seed=3).predict(test)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["popularity", "history", "gbdt", "torch"])
def test_pair_score_does_not_depend_on_the_candidate_set(name):
    ranker = fitted(name, T.TEMPORAL_LINK_PREDICTION)
    test = pair_set(seed=9)
    rows = np.arange(0, len(test), 7)
    np.testing.assert_allclose(ranker.predict(test)[rows], ranker.predict(test.take(rows)), rtol=1e-6)


@pytest.mark.parametrize("name,task_type", [("popularity", T.REGRESSION),
                                            ("history", T.TEMPORAL_LINK_PREDICTION),
                                            ("gbdt", T.BINARY_CLASSIFICATION),
                                            ("gbdt", T.TEMPORAL_LINK_PREDICTION),
                                            ("torch", T.TEMPORAL_LINK_PREDICTION),
                                            ("torch", T.REGRESSION)])
def test_save_load_round_trip(tmp_path, name, task_type):
    ranker = fitted(name, task_type)
    test = pair_set(seed=9) if task_type in PAIR else node_set(task_type, n=200, seed=9)
    ranker.save(tmp_path / "m")
    again = load_ranker(tmp_path / "m")
    assert type(again) is type(ranker)
    np.testing.assert_array_equal(again.predict(test), ranker.predict(test))


def test_torch_embeddings():
    pair = fitted("torch", T.TEMPORAL_LINK_PREDICTION)
    test = pair_set(seed=9)
    emb = pair.entity_embeddings(test)
    assert emb.shape == (len(test), 32) and emb.dtype == np.float32
    same = test.extra["entity_code"] == test.extra["entity_code"][0]
    assert (emb[same] == emb[0]).all()
    classes, matrix = pair.class_embeddings()
    assert classes == sorted(set(classes)) and matrix.shape == (len(classes), 32)
    node = fitted("torch", T.BINARY_CLASSIFICATION)
    assert node.entity_embeddings(node_set(T.BINARY_CLASSIFICATION, n=50)).shape == (50, 32)
    assert node.class_embeddings() is None


@pytest.mark.parametrize("name,task_type", [("gbdt", T.TEMPORAL_LINK_PREDICTION), ("gbdt", T.REGRESSION),
                                            ("torch", T.TEMPORAL_LINK_PREDICTION),
                                            ("torch", T.BINARY_CLASSIFICATION)])
def test_feature_importances_find_the_signal(name, task_type):
    ranker = fitted(name, task_type)
    imp = ranker.feature_importances()
    planted = "signal" if task_type in PAIR else "f0"
    assert set(imp) == set(PAIR_NAMES if task_type in PAIR else ["f0", "f1", "f2", "f3"])
    assert max(imp, key=imp.get) == planted and imp[planted] > 0
    assert ranker.feature_importances() == imp   # computed once, deterministic


def test_sampling_keeps_positives_and_bounds_negatives():
    data = pair_set(seed=2)
    rng = np.random.default_rng(0)
    rows = sample_pair_rows(data.y, data.group, 5, rng, hard=data.column("pair_decay_count"))
    kept_groups = set(data.group[rows])
    assert kept_groups == set(data.group[data.y == 1])   # groups without a positive are dropped
    for g in kept_groups:
        grow = rows[data.group[rows] == g]
        assert (data.y[grow] == 1).sum() == ((data.group == g) & (data.y == 1)).sum()
        assert (data.y[grow] == 0).sum() <= 5
    again = sample_pair_rows(data.y, data.group, 5, np.random.default_rng(0), hard=data.column("pair_decay_count"))
    np.testing.assert_array_equal(rows, again)


def test_registry_lists_builtins_and_rejects_unknown_names():
    assert {"popularity", "history", "gbdt", "torch"} <= set(available_rankers())
    with pytest.raises(PQLRunError) as err:
        create_ranker("gbdtt", T.BINARY_CLASSIFICATION)
    assert err.value.code == "E610" and "did you mean 'gbdt'?" in str(err.value)


def test_unsupported_task_lists_rankers_that_support_it():
    with pytest.raises(PQLRunError) as err:
        create_ranker("history", T.BINARY_CLASSIFICATION)
    assert err.value.code == "E614"
    listed = str(err.value).split("rankers that do:")[1]
    assert {"popularity", "gbdt", "torch"} <= {s.strip() for s in listed.split(",")}
    assert "history" not in listed


def test_bad_parameters_and_single_class_training():
    with pytest.raises(PQLRunError) as err:
        create_ranker("gbdt", T.REGRESSION, max_iters=10)
    assert err.value.code == "E601" and "max_iter" in str(err.value)
    with pytest.raises(PQLRunError) as err:
        create_ranker("torch", T.REGRESSION, epochs="many")
    assert err.value.code == "E602"
    assert create_ranker("gbdt", T.REGRESSION, max_iter="20").config["max_iter"] == 20
    data = node_set(T.BINARY_CLASSIFICATION)
    data.y = np.ones(len(data), dtype=np.int64)
    with pytest.raises(PQLRunError) as err:
        create_ranker("gbdt", T.BINARY_CLASSIFICATION).fit(data, task(T.BINARY_CLASSIFICATION))
    assert err.value.code == "E616" and "single class" in str(err.value)


def test_missing_contract_feature_is_a_clear_error():
    data = pair_set()
    data = FeatureSet(data.keys, data.X[:, 1:], data.names[1:], y=data.y, group=data.group)
    ranker = fitted("history", T.TEMPORAL_LINK_PREDICTION)
    with pytest.raises(PQLRunError) as err:
        ranker.predict(data)
    assert err.value.code == "E615" and "pair_count" in str(err.value)


def test_sample_weights_undo_the_negative_sampling():
    data = pair_set(seed=2)
    rows, w = sample_pair_rows(data.y, data.group, 6, np.random.default_rng(1),
                               hard=data.column("pair_decay_count"), with_weights=True, positives=2)
    for g in set(data.group[rows]):
        kept = data.group[rows] == g
        in_group = data.group == g
        neg, pos = kept & (data.y[rows] == 0), kept & (data.y[rows] == 1)
        # the weighted counts of the sample equal the group's counts of negatives and positives
        assert w[neg].sum() == pytest.approx((in_group & (data.y == 0)).sum())
        assert w[pos].sum() == pytest.approx((in_group & (data.y == 1)).sum())
        assert pos.sum() <= 2


def test_regression_losses_are_checked():
    with pytest.raises(PQLRunError) as err:
        create_ranker("gbdt", T.REGRESSION, loss="hinge")
    assert err.value.code == "E602"
    data = node_set(T.REGRESSION)   # has negative targets
    with pytest.raises(PQLRunError) as err:
        create_ranker("gbdt", T.REGRESSION, loss="poisson").fit(data, task(T.REGRESSION))
    assert err.value.code == "E602" and "non-negative" in str(err.value)
    with pytest.raises(PQLRunError) as err:
        create_ranker("torch", T.REGRESSION, loss="hinge")
    assert err.value.code == "E602"
