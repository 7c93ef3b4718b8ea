#!/usr/bin/env bash
# Registry benchmark: 1 GB push and pull through `palisade serve` (encryption on) and
# promotion latency. Knobs: PALISADE=<binary>, SIZE_MB=1024, REPS=3, PROMOTIONS=200.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PALISADE:-}" ]; then
  cargo build --release -q -p palisade
  PALISADE="${CARGO_TARGET_DIR:-target}/release/palisade"
fi
python3 bench/registry_bench.py --palisade "$PALISADE" --size-mb "${SIZE_MB:-1024}" --reps "${REPS:-3}" --promotions "${PROMOTIONS:-200}"
