"""A third-party ranker installed through the ``pql.rankers`` entry-point group is found, built,
trained, used and saved exactly like a built-in one."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from pql.ast import TaskType
from pql.errors import PQLRunError
from pql.rankers import available_rankers, create_ranker, get_ranker_class, load_ranker
from pql.tasks import FeatureSet, TaskInfo

PLUGIN = '''
"""A tiny third-party ranker: least squares on the features."""
import numpy as np
from pql.ast import TaskType
from pql.rankers import Ranker


class LeastSquaresRanker(Ranker):
    name = "least_squares"
    supported_tasks = frozenset({TaskType.REGRESSION, TaskType.BINARY_CLASSIFICATION})

    def fit(self, train, task, *, valid=None, progress=None):
        X = np.hstack([np.nan_to_num(train.X), np.ones((len(train), 1))])
        self.coef, *_ = np.linalg.lstsq(X, np.asarray(train.y, dtype=float), rcond=None)
        self.task = task

    def predict(self, data):
        X = np.hstack([np.nan_to_num(data.X), np.ones((len(data), 1))])
        return X @ self.coef


class NotARanker:
    pass
'''


def install(tmp_path, monkeypatch, entry_points: str, module: str = "tiny_pql_plugin") -> None:
    """Write a package and its dist-info (as pip would) into tmp_path and put it on sys.path."""
    (tmp_path / f"{module}.py").write_text(PLUGIN)
    info = tmp_path / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


def regression_set(n: int, seed: int) -> FeatureSet:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = 2.0 * X[:, 0] - X[:, 2] + 0.5
    keys = pa.table({"ENTITY": np.arange(n), "ANCHOR_TIMESTAMP": pa.array(np.zeros(n, "datetime64[s]"))})
    return FeatureSet(keys, X, ["a", "b", "c"], y=y)


def test_entry_point_ranker_is_listed_built_fitted_used_and_saved(tmp_path, monkeypatch):
    assert "least_squares" not in available_rankers()
    install(tmp_path, monkeypatch, """
        [pql.rankers]
        least_squares = tiny_pql_plugin:LeastSquaresRanker
    """)
    assert "least_squares" in available_rankers()
    assert {"popularity", "history", "gbdt", "torch"} <= set(available_rankers())

    ranker = create_ranker("least_squares", TaskType.REGRESSION, seed=1)
    assert type(ranker).__module__ == "tiny_pql_plugin"
    ranker.fit(regression_set(200, 0), TaskInfo(TaskType.REGRESSION))
    test = regression_set(50, 1)
    pred = ranker.predict(test)
    np.testing.assert_allclose(pred, test.y, atol=1e-4)

    ranker.save(tmp_path / "model")
    again = load_ranker(tmp_path / "model")
    assert type(again).__name__ == "LeastSquaresRanker"
    np.testing.assert_array_equal(again.predict(test), pred)

    # the plugin takes part in the E614 listing like a built-in
    with pytest.raises(PQLRunError) as err:
        create_ranker("least_squares", TaskType.TEMPORAL_LINK_PREDICTION)
    assert err.value.code == "E614"
    with pytest.raises(PQLRunError) as err:
        create_ranker("history", TaskType.REGRESSION)
    assert "least_squares" in str(err.value)


def test_broken_entry_points_are_clear_errors(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, """
        [pql.rankers]
        not_a_ranker = tiny_pql_plugin:NotARanker
        missing_module = no_such_module_for_pql:Ranker
    """)
    with pytest.raises(PQLRunError) as err:
        get_ranker_class("not_a_ranker")
    assert err.value.code == "E610" and "does not subclass" in str(err.value)
    with pytest.raises(PQLRunError) as err:
        get_ranker_class("missing_module")
    assert err.value.code == "E610" and "cannot be loaded" in str(err.value)
    # a broken plugin never hides the built-ins
    assert create_ranker("popularity", TaskType.REGRESSION).name == "popularity"
