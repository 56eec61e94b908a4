#!/usr/bin/env bash
# Installs pql with its test dependencies into ./.venv and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
