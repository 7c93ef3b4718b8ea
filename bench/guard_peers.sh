#!/usr/bin/env bash
# Guardrails side by side (issue 7): Palisade vs Presidio (pattern recognisers) and
# llm-guard (rule-based Secrets scanner) on a generated PII/secrets set, plus Palisade's
# prompt-injection metrics and latency on the validation sets and on the guard's held-out
# short and task-style sets (crates/palisade-guard/data). Peers are installed from
# PyPI into a throw-away virtualenv (bench/.venv-guard); nothing downloads a model.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
venv=bench/.venv-guard
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # --no-deps: llm-guard's own requirements pull torch and transformers, which only its
  # model-based scanners need; the pinned file lists what the rule-based ones use.
  "$venv/bin/pip" install -q --no-deps -r bench/requirements-guard-peers.txt
fi
cargo build -q --release -p palisade
bin="$CARGO_TARGET_DIR/release/palisade"
mkdir -p bench/out
python3 bench/gen_pii.py bench/out/pii.jsonl 3000 600
echo "== PII and secrets (bench/out/pii.jsonl)"
"$venv/bin/python" bench/guard_peers.py bench/out/pii.jsonl "$bin" bench/out/guard_peers.json
data=../shared/datasets/prompt-injection
echo "== prompt injection (validation sets; model trained on the *-train files only)"
"$bin" guard eval "$data/s-labs-validation.jsonl" "$data/neuralchemy-validation.jsonl" --latency-bytes 1024
echo "== prompt injection (the guard's held-out short and task-style sets; never trained on)"
"$bin" guard eval crates/palisade-guard/data/heldout-benign.jsonl crates/palisade-guard/data/heldout-attacks.jsonl
