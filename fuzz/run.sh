#!/usr/bin/env bash
# Runs every fuzz target for $1 seconds (default 60), seeding corpora with the fixtures.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
export RUSTC_BOOTSTRAP=1
fixtures=../crates/palisade-scan/tests/fixtures/pickle
for target in pickle_stream zip_container npy scan_bytes; do
  mkdir -p "corpus/$target"
  find "$fixtures" -type f ! -name '*.json' ! -name '*.md' -exec cp -n {} "corpus/$target/" \; 2>/dev/null || true
  echo "== $target (${secs}s)"
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 2>&1 | tail -n 3
done
