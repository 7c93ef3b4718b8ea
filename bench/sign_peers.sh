#!/usr/bin/env bash
# Signing benchmark and live interop: palisade vs the reference OpenSSF Model Signing
# implementation (`model-signing` from PyPI).
#
#   bash bench/sign_peers.sh            # venv, release build, interop, 4.3 GB hash/sign race
#
# Environment knobs (all optional):
#   VENV=bench/.venv-sign     venv for bench/requirements-sign-peers.txt (created if missing)
#   PALISADE=<path>           use this palisade binary instead of building one
#   CARGO_TARGET_DIR=...      where `cargo build --release -p palisade` goes
#   DIR=bench/out/sign4g      the ~4.3 GB input (generated once with random bytes)
#   OUT=bench/out/sign        signatures, keys, summary.md
#   REPS=3  MODES=files,shards,blake3
#   SKIP_INTEROP=1            skip re-running the interop vectors script
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-bench/.venv-sign}
OUT=${OUT:-bench/out/sign}
DIR=${DIR:-bench/out/sign4g}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r bench/requirements-sign-peers.txt
fi
if [ -z "${PALISADE:-}" ]; then
  cargo build --release -q -p palisade
  PALISADE="${CARGO_TARGET_DIR:-target}/release/palisade"
fi
mkdir -p "$OUT"
{ uname -a; nproc; grep -m1 "model name" /proc/cpuinfo; "$PALISADE" --version; "$VENV/bin/pip" show model-signing | sed -n 1,2p; } > "$OUT/env.txt"
if [ -z "${SKIP_INTEROP:-}" ]; then
  # Live interop, both directions: the reference signs (files, shards, BLAKE3, certificate)
  # and palisade verifies; palisade signs and the reference verifies. Regenerates the
  # committed vectors in a scratch copy so the tree is not touched.
  scratch=$(mktemp -d)
  cp -r crates/palisade-sign/tests/interop "$scratch/"
  "$VENV/bin/python" "$scratch/interop/make_vectors.py" "$PALISADE"
  for s in "$scratch"/interop/ref/*.sig; do
    name=$(basename "$s" .sig)
    case "$name" in
      files-p384) trust=(--key "$scratch/interop/keys/p384.pub") ;;
      cert) trust=(--chain "$scratch/interop/keys/ca.pem") ;;
      *) trust=(--key "$scratch/interop/keys/p256.pub") ;;
    esac
    "$PALISADE" verify "$scratch/interop/model" --signature "$s" "${trust[@]}" -q
  done
  "$PALISADE" verify "$scratch/interop/model" --signature "$scratch/interop/keyless.sig" -q \
    --identity signer@example.com --issuer https://accounts.example.com \
    --trust-root "$scratch/interop/keys/trusted_root.json"
  rm -rf "$scratch"
  echo "interop: reference -> palisade and palisade -> reference both verified"
fi
"$VENV/bin/python" bench/sign_bench.py --palisade "$PALISADE" --python "$VENV/bin/python" \
  --dir "$DIR" --out "$OUT" --reps "${REPS:-3}" --modes "${MODES:-files,shards,blake3}"
