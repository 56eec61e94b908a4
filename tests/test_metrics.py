"""Metrics of PQL-SPEC §14 against hand-computed values, including ties and duplicates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pql.ast import TaskType
from pql.errors import PQLRunError
from pql.metrics import (
    MetricResult, RankingRow, accuracy_binary, accuracy_multiclass, ap_macro, ap_micro, auroc, auroc_macro,
    average_precision, default_metrics, evaluate_ranking, mae, metrics_table, mse, nmae, r2, ranking_metrics,
    repeat_explore, rmse, select_metrics, undefined_warnings,
)


# -- binary -------------------------------------------------------------------------------------------


def test_auroc_hand_computed():
    # pairs (pos, neg): (0.8 vs 0.1) 1, (0.8 vs 0.5) 1, (0.4 vs 0.1) 1, (0.4 vs 0.5) 0 -> 3/4
    assert auroc([1, 0, 1, 0], [0.8, 0.1, 0.4, 0.5]) == pytest.approx(0.75)


def test_auroc_ties_count_half():
    # one pos and one neg tied at 0.5: 1/2; plus pos 0.9 beats both negs
    # pairs: (0.9,0.5)=1 (0.9,0.2)=1 (0.5,0.5)=0.5 (0.5,0.2)=1 -> 3.5/4
    assert auroc([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.2]) == pytest.approx(3.5 / 4)
    assert auroc([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3]) == pytest.approx(0.5)


def test_auroc_undefined_without_a_class():
    assert auroc([1, 1], [0.2, 0.3]) is None
    assert auroc([0, 0], [0.2, 0.3]) is None


def test_ap_hand_computed():
    # sorted: 0.9 (1), 0.8 (0), 0.7 (1), 0.1 (0): P@1 = 1, P@3 = 2/3 -> (1 + 2/3) / 2
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx((1 + 2 / 3) / 2)


def test_ap_groups_tied_scores():
    # 0.9 (1); then a tie at 0.5 of {1, 0, 0}: one threshold with recall 1, precision 2/4
    # AP = 0.5 * 1 + 0.5 * 0.5 = 0.75 (not order-dependent inside the tie)
    assert average_precision([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.5]) == pytest.approx(0.75)
    assert average_precision([1, 0, 0, 1], [0.9, 0.5, 0.5, 0.5]) == pytest.approx(0.75)
    assert average_precision([0, 0], [0.3, 0.1]) is None


def test_ap_matches_sklearn_on_random_data():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p = np.round(rng.random(200), 1)  # many ties
    assert average_precision(y, p) == pytest.approx(average_precision_score(y, p))
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p))


def test_accuracy():
    assert accuracy_binary([True, False, True], [0.5, 0.49, 0.2]) == pytest.approx(2 / 3)
    assert accuracy_binary([True, False], [0.7, 0.7], threshold=0.8) == pytest.approx(0.5)
    # multiclass: a tie between class 0 and 2 goes to class 0; truth -1 (unseen class) is wrong
    probs = np.array([[0.4, 0.2, 0.4], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    assert accuracy_multiclass([0, 1, -1], probs) == pytest.approx(2 / 3)
    assert accuracy_multiclass([2, 1, 2], probs) == pytest.approx(2 / 3)


# -- regression --------------------------------------------------------------------------------------------


def test_regression_metrics():
    y, yhat = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 6.0]
    assert mae(y, yhat) == pytest.approx((0 + 1 + 1 + 2) / 4)
    assert mse(y, yhat) == pytest.approx((0 + 1 + 1 + 4) / 4)
    assert rmse(y, yhat) == pytest.approx(math.sqrt(1.5))
    assert r2(y, yhat) == pytest.approx(1 - 6 / 5)  # Σ(y-ȳ)² = 2.25+0.25+0.25+2.25
    assert r2([2.0, 2.0], [1.0, 3.0]) is None
    assert nmae(y, yhat, [1.0, 3.0]) == pytest.approx(1.0 / math.sqrt(2.0))
    assert nmae(y, yhat, [5.0, 5.0]) is None


# -- multilabel classification ----------------------------------------------------------------------------


def test_multilabel_macro_and_micro():
    Y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    P = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.4], [0.6, 0.3, 0.1]])
    # label 0: scores 0.9(1) 0.6(1) 0.2(0) -> ap 1, auroc 1; label 1: 0.8(1) 0.3(1) 0.1(0) -> 1, 1
    # label 2 has no positive: left out
    assert ap_macro(Y, P) == pytest.approx(1.0)
    assert auroc_macro(Y, P) == pytest.approx(1.0)
    flat_y, flat_p = Y.ravel(), P.ravel()
    assert ap_micro(Y, P) == pytest.approx(average_precision(flat_y, flat_p))
    # micro by hand: sorted 0.9(1) 0.8(1) 0.6(1) 0.5(0) 0.4(0) 0.3(1) ... -> (1+1+1+4/6)/4
    assert ap_micro(Y, P) == pytest.approx((1 + 1 + 1 + 4 / 6) / 4)


# -- ranking --------------------------------------------------------------------------------------------------


def test_ranking_hand_computed():
    row = RankingRow(predicted=["a", "x", "b", "y"], truth=frozenset({"a", "b", "c"}))
    m = ranking_metrics([row], K=3, k_values=(1, 10))
    assert m["map@3"].value == pytest.approx((1 + 2 / 3) / 3)
    assert m["map@1"].value == pytest.approx(1.0)
    assert m["precision@3"].value == pytest.approx(2 / 3)
    assert m["precision@10"].value == pytest.approx(2 / 10)  # divides by k, not by the list length
    assert m["recall@1"].value == pytest.approx(1 / 3)
    assert m["recall@10"].value == pytest.approx(2 / 3)
    idcg3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@3"].value == pytest.approx((1 + 1 / math.log2(4)) / idcg3)
    assert m["hit@1"].value == 1.0
    assert m["mrr"].value == 1.0
    assert m["map@3"].n == 1


def test_ranking_deduplicates_predictions_and_uses_min_truth_k():
    # duplicates of a hit count once: the list is a, b after dedup
    row = RankingRow(predicted=["a", "a", "a", "b"], truth=frozenset({"a", "b"}))
    m = ranking_metrics([row], K=2, k_values=(1,))
    assert m["map@2"].value == pytest.approx(1.0)
    assert m["precision@2"].value == pytest.approx(1.0)
    # denominator min(|T|, k): |T| = 5 > k = 2, two hits at 1 and 2 -> map@2 = 1
    row2 = RankingRow(predicted=["a", "b", "c"], truth=frozenset("abcde"))
    m2 = ranking_metrics([row2], K=2, k_values=(1,))
    assert m2["map@2"].value == pytest.approx(1.0)
    assert m2["recall@2"].value == pytest.approx(2 / 5)


def test_recall_is_not_clipped_and_mrr_without_hit():
    row = RankingRow(predicted=["x", "y"], truth=frozenset({"a", "b", "c", "d"}))
    hit = RankingRow(predicted=["x", "a"], truth=frozenset({"a", "b", "c", "d"}))
    m = ranking_metrics([row, hit], K=1, k_values=(2,))
    # recall@2 for 'hit' = 1/4 (not 1/2 as a clipped min(|T|, k) denominator would give)
    assert m["recall@2"].value == pytest.approx((0 + 1 / 4) / 2)
    assert m["mrr"].value == pytest.approx((0 + 1 / 2) / 2)
    assert m["hit@1"].value == 0.0


def test_rows_with_empty_truth_are_left_out():
    rows = [RankingRow(["a"], frozenset({"a"})), RankingRow(["a"], frozenset())]
    m = ranking_metrics(rows, K=1, k_values=(1,))
    assert m["map@1"].value == 1.0 and m["map@1"].n == 1
    empty = ranking_metrics([RankingRow(["a"], frozenset())], K=1, k_values=(1,))
    assert empty["map@1"].value is None and empty["map@1"].n == 0


def test_default_ranking_names_order():
    names = default_metrics(TaskType.TEMPORAL_LINK_PREDICTION, K=50)
    assert names[0] == "map@50"
    assert names[-1] == "mrr"
    assert names[1:6] == ["map@1", "map@10", "map@100", "precision@1", "precision@10"]
    assert "map@50" not in names[1:] and "recall@50" in names and "hit@100" in names
    assert default_metrics(TaskType.BINARY_CLASSIFICATION) == ["auroc", "ap", "acc"]
    assert default_metrics(TaskType.FORECASTING) == ["mae", "mse", "rmse", "r2"]


def test_select_metrics_checks_names():
    assert select_metrics(TaskType.REGRESSION, ["nmae", "mae"], None, None) == ["nmae", "mae"]
    assert select_metrics(TaskType.TEMPORAL_LINK_PREDICTION, ["recall@5"], 10, None) == ["recall@5"]
    with pytest.raises(PQLRunError) as e:
        select_metrics(TaskType.BINARY_CLASSIFICATION, ["aucroc"], None, None)
    assert e.value.code == "E602" and "auroc" in e.value.message


def test_repeat_explore_subsets():
    rows = [RankingRow(["a", "b", "c"], frozenset({"a", "c"})),
            RankingRow(["x", "y"], frozenset({"y"}))]
    history = [frozenset({"a", "z"}), frozenset({"y"})]
    m = repeat_explore(rows, history, K=2, k_values=(1,))
    # repeat truths: {a}, {y}; explore truths: {c}, {} (left out)
    assert m["repeat/map@2"].value == pytest.approx((1.0 + 0.5) / 2)
    assert m["repeat/map@2"].n == 2
    assert m["explore/recall@1"].value == 0.0 and m["explore/recall@1"].n == 1
    assert m["explore/hit@2"].value == 0.0
    assert m["repeat_share"].value == pytest.approx(2 / 3)


def test_metrics_table_and_warnings():
    values = {"val": {"auroc": MetricResult(None, 4), "acc": MetricResult(0.5, 4)}}
    t = metrics_table(values)
    assert t.column_names == ["SPLIT", "METRIC", "VALUE", "N"]
    assert t.to_pylist()[0] == {"SPLIT": "val", "METRIC": "auroc", "VALUE": None, "N": 4}
    w = undefined_warnings(values)
    assert len(w) == 1 and "auroc" in w[0].message
    ranked = evaluate_ranking([RankingRow(["a"], frozenset({"a"}))], ["map@1", "mrr"], K=1)
    assert ranked["mrr"].value == 1.0
