#!/usr/bin/env bash
# MLflow's client (mlflow-skinny, PyPI) reads Palisade's registry through the
# MLflow-compatible routes. Knobs: PALISADE=<binary>.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PALISADE:-}" ]; then
  cargo build --release -q -p palisade
  PALISADE="${CARGO_TARGET_DIR:-target}/release/palisade"
fi
VENV=bench/.venv-mlflow
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r bench/requirements-mlflow.txt
fi
"$VENV/bin/python" bench/mlflow_interop.py --palisade "$PALISADE"
