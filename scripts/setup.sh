#!/usr/bin/env bash
# Creates ./.venv (if missing) and installs pql with the extras given as arguments, e.g.
#   bash scripts/setup.sh test examples
# torch is installed first as the CPU build where one is available, so no multi-GB CUDA build is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "pql needs Python 3.11 or newer (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
  # The CPU wheel of torch 2.13.0; elsewhere pip falls back to the registry's build of the same version.
  $PIP install -q "torch==2.13.0" || $PIP install -q "torch>=2.2,<2.14"
fi
extras=$(IFS=,; echo "$*")
if [ -n "$extras" ]; then
  $PIP install -q -e ".[${extras}]"
else
  $PIP install -q -e .
fi
