"""Training and prediction jobs: label table -> features -> rankers -> metrics and outputs.

``run(query, graph, ...)`` trains, evaluates against baselines, predicts and writes a run folder;
``predict(model_dir, ...)`` scores again with a saved model folder.
"""

from pql.jobs.predict import PredictResult, predict
from pql.jobs.train import RunResult, run

__all__ = ["run", "predict", "RunResult", "PredictResult"]
