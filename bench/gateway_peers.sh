#!/usr/bin/env bash
# Gateway benchmark (issue 6): added latency of `palisade serve` over calling the mock
# OpenAI upstream directly, at fixed rates and at saturation, with auth and rate limiting
# on; LiteLLM's proxy on the same mock in the same run. Load comes from oha, a separate
# process (installed from crates.io into ~/.cache/palisade-tools when missing); LiteLLM
# from PyPI into a throw-away virtualenv (bench/requirements-gateway-peers.txt).
#
#   bash bench/gateway_peers.sh                 # everything
#   RATES=1000,5000 DURATION=10s REPS=5 bash bench/gateway_peers.sh
#   SKIP_LITELLM=1 bash bench/gateway_peers.sh  # Palisade only
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/palisade-target}"

cargo build --release --locked -p palisade
cargo build --release --locked -p palisade-gateway --example mock_upstream
PALISADE="${PALISADE:-$CARGO_TARGET_DIR/release/palisade}"
MOCK="$CARGO_TARGET_DIR/release/examples/mock_upstream"

TOOLS="$HOME/.cache/palisade-tools"
OHA="$TOOLS/bin/oha"
if [ ! -x "$OHA" ]; then
  echo "== installing oha 1.16.0 into $TOOLS"
  cargo install oha --version 1.16.0 --locked --root "$TOOLS"
fi

VENV="${VENV:-$HOME/.cache/palisade-venv-gateway}"
extra=()
if [ -n "${SKIP_LITELLM:-}" ]; then
  extra+=(--skip-litellm)
elif [ ! -x "$VENV/bin/litellm" ]; then
  echo "== installing LiteLLM into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --no-deps -r bench/requirements-gateway-peers.txt
fi

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 bench/gateway_bench.py --palisade "$PALISADE" --mock "$MOCK" --oha "$OHA" --venv "$VENV" \
  --rates "${RATES:-500,1000,2000,5000}" --duration "${DURATION:-5s}" --reps "${REPS:-3}" \
  --litellm-workers "${LITELLM_WORKERS:-1}" "${extra[@]}"
