#!/usr/bin/env bash
# Part 2 benchmark: palisade vs. modelscan and modelaudit on non-pickle formats and archives
# (coverage on the labelled fixture corpora) plus throughput on a ~2 GB directory of benign
# safetensors / ONNX / GGUF files.
#
#   bash bench/formats_peers.sh           # everything: venv, build, inputs, runs, tables
#
# Environment knobs (all optional):
#   VENV=bench/.venv        peer venv (created if missing; shared with pickle_peers.sh)
#   OUT=bench/out/formats   raw tool outputs, results.tsv, env.txt, summary.md, coverage_matrix.md
#   MIXED=bench/out/mixed   throughput directory (made by bench/gen_mixed_dir.py if missing)
#   MIXED_SCALE=1           size factor passed to gen_mixed_dir.py --scale (1 -> ~2.03 GB)
#   PALISADE=<path>         use this palisade binary instead of building one
#   CARGO_TARGET_DIR=/tmp/bench-target   where `cargo build --release -p palisade` goes
#   FORMATS=crates/palisade-scan/tests/fixtures/formats   manifest.json: file, verdict,
#                           format, technique, is_dir (file may be a directory)
#   PICKLES=crates/palisade-scan/tests/fixtures/pickle    manifest.json: file, verdict,
#                           container (reported as format "pickle-family/<container>")
#   TOOLS="palisade modelscan modelaudit"
#   TIMEOUT=300             seconds per corpus invocation (`timeout`; 124 = timed out)
#   TP_TIMEOUT=900          seconds per peer invocation on the throughput directory
#   REPS=3                  palisade runs on the throughput directory (median reported)
#   COLD=1                  also one palisade run on it right after dropping the page cache
#                           (needs a writable /proc/sys/vm/drop_caches; skipped otherwise)
#   SKIP_CORPUS=1 / SKIP_THROUGHPUT=1   run only one half
#
# The peer venv gets requirements-peers.txt (part 1 pins) plus requirements-formats-peers.txt:
# the light optional dependencies modelaudit/modelscan use for these formats (onnx, h5py,
# safetensors, py7zr) and the generator's gguf. tensorflow and torch are NOT installed (too
# heavy for this 2-core box): modelscan then cannot scan SavedModels (it reports a
# DEPENDENCY error and exits 3 -> counted as "unsupported"); modelaudit parses SavedModel and
# torch files with its own readers.
#
# "Flagged" is decided exactly as in pickle_peers.sh (same code: summarize.outcome):
#   palisade   `palisade scan PATH --format json -q -o R.json`: 1 = findings (flagged),
#              0 = clean, 2 = error / incomplete scan.
#   modelscan  `modelscan scan -p PATH -r json -o R.json`: 1 = issues (flagged), 0 = clean,
#              3 = no supported file -> "unsupported" (not flagged), 2 / 4 = error.
#   modelaudit `modelaudit scan --format json --no-cache -o R.json PATH`: 1 = WARNING/CRITICAL
#              issue (flagged), 0 = none, 2 = operational error / inconclusive.
#   A peer exit 2 whose own JSON report still names an issue (modelscan) or a WARNING/CRITICAL
#   issue (modelaudit) is counted as flagged ("flagged*"). 124 = timeout, >=128 = signal ->
#   errors. Directories (ONNX with external data, SavedModels, HF repo dirs) are passed as
#   the directory itself, one invocation per manifest entry.
#
# Throughput: `cat $MIXED/* > /dev/null` twice, then `/usr/bin/time -v palisade scan $MIXED -q`
# REPS times (median wall time, measured with bash $EPOCHREALTIME around the `time` call
# because GNU time's "Elapsed" has only 10 ms resolution; GB/s = total bytes / 1e9 / seconds;
# peak RSS = "Maximum resident set size"; "read from disk" = "File system inputs" x 512 B), then modelscan and modelaudit once each on the same directory
# (cache re-warmed before each) with TP_TIMEOUT. palisade also runs once on each file of the
# directory alone (warm), to show which formats it reads in full.
#
# Safety: the fixtures contain harmless payloads (`touch /tmp/palisade-marker`) and
# extractor attacks (zip-slip '../../evil.pkl', absolute '/tmp/evil'). After every
# invocation the script checks that none of $SENTINELS appeared, and at the end that
# `git status` of the fixture directories is unchanged. Every tool runs in the empty
# directory $OUT/cwd so no settings file is picked up.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
VENV=${VENV:-$HERE/.venv}
OUT=${OUT:-$HERE/out/formats}
MIXED=${MIXED:-$HERE/out/mixed}
MIXED_SCALE=${MIXED_SCALE:-1}
FORMATS=${FORMATS:-$REPO/crates/palisade-scan/tests/fixtures/formats}
PICKLES=${PICKLES:-$REPO/crates/palisade-scan/tests/fixtures/pickle}
TOOLS=${TOOLS:-"palisade modelscan modelaudit"}
TIMEOUT=${TIMEOUT:-300}
TP_TIMEOUT=${TP_TIMEOUT:-900}
REPS=${REPS:-3}
COLD=${COLD:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target}
export PROMPTFOO_DISABLE_TELEMETRY=1 NO_ANALYTICS=1 NO_COLOR=1
SENTINELS="/tmp/palisade-marker /tmp/evil /tmp/evil.pkl /evil.pkl /evil"

T0=$(date +%s)
log() { printf '[%s +%ss] %s\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*" >&2; }

# --- prerequisites -----------------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
  log "installing GNU time (Debian package 'time')"
  apt-get update -qq && apt-get install -y -qq time >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
log "installing pinned peers + format extras into $VENV"
"$VENV/bin/pip" install -q -r "$HERE/requirements-peers.txt" -r "$HERE/requirements-formats-peers.txt"

if [ -z "${PALISADE:-}" ]; then
  log "building palisade (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  (cd "$REPO" && cargo build --release -p palisade)
  PALISADE=$CARGO_TARGET_DIR/release/palisade
fi
PALISADE=$(realpath "$PALISADE")

RAW=$OUT/raw
RESULTS=$OUT/results.tsv
rm -rf "$RAW" "$OUT/cwd"
mkdir -p "$RAW" "$OUT/cwd"
printf 'tool\tinput\tfile\trun\trc\tseconds\tmaxrss_kb\tfs_inputs\thr_seconds\n' > "$RESULTS"

# sentinels that already exist are not ours: warn and do not watch them
WATCH=()
for s in $SENTINELS; do
  if [ -e "$s" ] || [ -L "$s" ]; then log "WARNING: $s exists before the run; not watching it"
  else WATCH+=("$s"); fi
done
FIXSTATUS_BEFORE=$(git -C "$REPO" status --porcelain --ignored -- "$FORMATS" "$PICKLES" 2>/dev/null || true)

# --- versions and machine ----------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "ram: $(free -m | awk '/^Mem:/{print $2}') MiB"
  echo "kernel: $(uname -r)"
  echo "fs: $(df -hT "$HERE" | awk 'NR==2{print $1" "$2}')"
  echo "python: $("$VENV/bin/python" --version 2>&1)"
  echo "palisade: $("$PALISADE" --version 2>&1) ($PALISADE, git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/'))"
  for p in modelscan modelaudit onnx h5py safetensors py7zr gguf; do
    echo "$p: $("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$p'))" 2>/dev/null || echo 'not installed')"
  done
  for p in tensorflow torch; do
    echo "$p: $("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$p'))" 2>/dev/null || echo 'not installed')"
  done
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/env.txt"
cat "$OUT/env.txt" >&2

# --- one timed invocation ----------------------------------------------------------------
# run_tool TOOL INPUT_LABEL PATH RUN_LABEL [TIMEOUT] -> appends a row to $RESULTS
run_tool() {
  local tool=$1 input=$2 file=$3 run=$4 tmo=${5:-$TIMEOUT}
  local id
  id=$(printf '%s__%s__%s' "${tool%_tp}" "$input" "$run" | tr '/ ' '__')
  local r=$RAW/$id
  local -a cmd
  case $tool in
    palisade)   cmd=("$PALISADE" scan "$file" --format json -q -o "$r.json") ;;
    palisade_tp) cmd=("$PALISADE" scan "$file" -q) ;;   # the throughput command, as stated
    modelscan)  cmd=("$VENV/bin/modelscan" scan -p "$file" -r json -o "$r.json") ;;
    modelaudit) cmd=("$VENV/bin/modelaudit" scan --format json --no-cache -o "$r.json" "$file") ;;
    *) echo "unknown tool $tool" >&2; return 1 ;;
  esac
  local rc=0 t_a t_b
  t_a=$EPOCHREALTIME
  (cd "$OUT/cwd" && /usr/bin/time -v -o "$r.time" timeout "$tmo" "${cmd[@]}" \
      > "$r.out" 2> "$r.err") || rc=$?
  t_b=$EPOCHREALTIME
  local secs rss fsin hr
  hr=$(awk -v a="$t_a" -v b="$t_b" 'BEGIN{printf "%.4f", b - a}')
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$r.time")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$r.time")
  fsin=$(awk -F': ' '/File system inputs/{print $2}' "$r.time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${tool%_tp}" "$input" "$file" "$run" "$rc" \
    "${secs:-NA}" "${rss:-NA}" "${fsin:-NA}" "$hr" >> "$RESULTS"
  local s
  for s in "${WATCH[@]}"; do
    if [ -e "$s" ] || [ -L "$s" ]; then
      echo "!!! $s appeared after $tool on $file" >&2
      ls -la "$s" >&2 || true
      rm -rf "$s"
      printf '%s\t%s\t%s\t%s\tMARKER:%s\tNA\tNA\tNA\tNA\n' "${tool%_tp}" "$input" "$file" "$run" "$s" >> "$RESULTS"
    fi
  done
}

# --- coverage on the two labelled corpora ------------------------------------------------
if [ "${SKIP_CORPUS:-0}" != 1 ]; then
  # lines: INPUT_LABEL <tab> RUN_LABEL <tab> PATH   (RUN_LABEL = manifest "file")
  mapfile -t CORPUS < <(python3 - "$FORMATS" "$PICKLES" <<'EOF'
import json, os, sys
for label, root in (("formats", sys.argv[1]), ("pickle", sys.argv[2])):
    man = os.path.join(root, "manifest.json")
    if not os.path.isfile(man):
        print(f"no {man}", file=sys.stderr)
        continue
    for e in json.load(open(man)):
        p = os.path.join(root, e["file"])
        if os.path.lexists(p):
            print(f"{label}\t{e['file']}\t{p}")
        else:
            print(f"missing fixture {p}", file=sys.stderr)
EOF
  )
  log "corpus: ${#CORPUS[@]} entries"
  for tool in $TOOLS; do
    log "$tool on the corpus"
    t1=$(date +%s)
    for line in "${CORPUS[@]}"; do
      IFS=$'\t' read -r input run path <<< "$line"
      run_tool "$tool" "$input" "$path" "$run"
    done
    log "$tool corpus done in $(( $(date +%s) - t1 )) s"
  done
fi

# --- throughput --------------------------------------------------------------------------
warm() { cat "$MIXED"/* > /dev/null; cat "$MIXED"/* > /dev/null; }
if [ "${SKIP_THROUGHPUT:-0}" != 1 ]; then
  log "generating / checking $MIXED"
  "$VENV/bin/python" "$HERE/gen_mixed_dir.py" "$MIXED" --scale "$MIXED_SCALE"
  ls -l "$MIXED" > "$OUT/mixed_ls.txt"
  log "warming the page cache (cat twice)"
  warm
  for rep in $(seq 1 "$REPS"); do
    log "palisade on the mixed dir, run $rep/$REPS"
    run_tool palisade_tp mixed "$MIXED" "warm$rep" "$TP_TIMEOUT"
  done
  for f in "$MIXED"/*; do   # per-file breakdown: which formats are read in full
    log "palisade on $(basename "$f") alone"
    run_tool palisade_tp mixed_file "$f" "$(basename "$f")" "$TP_TIMEOUT"
  done
  if [ "$COLD" = 1 ]; then
    if ( sync && echo 3 > /proc/sys/vm/drop_caches ) 2>/dev/null; then
      log "palisade on the mixed dir, cold page cache"
      run_tool palisade_tp mixed_cold "$MIXED" cold "$TP_TIMEOUT"
    else
      log "cannot drop the page cache here; skipping the cold run"
    fi
  fi
  for tool in $TOOLS; do
    [ "$tool" = palisade ] && continue
    log "warming the page cache; $tool on the mixed dir (timeout $TP_TIMEOUT s)"
    warm
    run_tool "$tool" mixed "$MIXED" warm1 "$TP_TIMEOUT"
  done
fi

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/env.txt"
FIXSTATUS_AFTER=$(git -C "$REPO" status --porcelain --ignored -- "$FORMATS" "$PICKLES" 2>/dev/null || true)
if [ "$FIXSTATUS_BEFORE" != "$FIXSTATUS_AFTER" ]; then
  echo "fixture tree changed during the run (git status differs):" >> "$OUT/env.txt"
  diff <(echo "$FIXSTATUS_BEFORE") <(echo "$FIXSTATUS_AFTER") >> "$OUT/env.txt" || true
else
  echo "fixture tree unchanged by the run (git status identical before/after)" >> "$OUT/env.txt"
fi

log "summarising"
python3 "$HERE/formats_coverage.py" --out "$OUT" --formats "$FORMATS" --pickles "$PICKLES" \
  --mixed "$MIXED" | tee "$OUT/summary.md"
echo
echo "total script run time: $(( $(date +%s) - T0 )) s" | tee -a "$OUT/summary.md"
