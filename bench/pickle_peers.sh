#!/usr/bin/env bash
# Side-by-side benchmark of palisade's pickle scanner against peer scanners.
#
#   bash bench/pickle_peers.sh            # everything: venv, build, inputs, runs, tables
#
# Environment knobs (all optional):
#   VENV=bench/.venv        throw-away venv for the peers (created if missing)
#   OUT=bench/out           generated inputs, raw tool outputs, results.tsv, summary.md
#   PALISADE=<path>         use this palisade binary instead of building one
#   CARGO_TARGET_DIR=/tmp/bench-target   where `cargo build --release -p palisade` goes
#   FIXTURES=crates/palisade-scan/tests/fixtures/pickle   detection corpus (manifest.json)
#   REPS=3                  timed runs per tool on inputs (a) and (b); the median is reported
#   COLD=1                  also one cold-page-cache run per tool on (b) (needs a writable
#                           /proc/sys/vm/drop_caches; skipped otherwise)
#   TIMEOUT=600             seconds per tool invocation (`timeout`); 124 = timed out
#   TOOLS="palisade picklescan modelscan fickling modelaudit"
#
# Inputs (made by bench/gen_inputs.py, both benign):
#   (a) a_range_3m.pkl      pickle.dumps(list(range(3_000_000)), protocol=4), ~15 MB
#   (b) b_state_dict_1g.pt  hand-built torch.save-layout zip state dict, 64 x 16 MiB storages
#
# Measurement: `/usr/bin/time -v timeout $TIMEOUT CMD` per invocation; seconds = "Elapsed
# (wall clock)", peak RSS = "Maximum resident set size" (largest single process of the
# tree, as getrusage reports it). Every tool runs in the empty directory $OUT/cwd so no
# settings file is picked up.
#
# What counts as "flagged" (each tool's own CLI verdict, from its --help / source):
#   palisade   `palisade scan FILE --format json -q -o R.json`: exit 1 = findings at or
#              above the default --fail-on (low); 0 = clean; 2 = error / incomplete scan.
#   picklescan `picklescan -p FILE`: exit 1 = dangerous globals found (issues_count > 0);
#              0 = clean (also when it does not recognise the file); 2 = scan error.
#              Default (non --strict) mode: "suspicious" globals alone do not flag.
#   modelscan  `modelscan scan -p FILE -r json -o R.json`: exit 1 = issues found; 0 = clean;
#              3 = no supported file (it picks scanners by extension) -> "unsupported",
#              counted as not flagged; 2 = scan error; 4 = usage error.
#   fickling   `fickling --check-safety --json-output R.json FILE`: exit 1 = severity above
#              LIKELY_SAFE for some stacked pickle ("unsafe"); 0 = safe; 2 = it could not
#              parse the input as a pickle (e.g. any zip/tar container: the local-file CLI
#              only reads raw pickle streams) -> counted as an error, not as flagged.
#              Its CLI has no catch-all handler, so an uncaught Python exception also
#              exits 1: exit 1 with a traceback on stderr is counted as a crash (error).
#   modelaudit `modelaudit scan --format json --no-cache -o R.json FILE` (telemetry off via
#              PROMPTFOO_DISABLE_TELEMETRY/NO_ANALYTICS): exit 1 = WARNING/CRITICAL security
#              findings; 0 = none; 2 = operational error or inconclusive scan.
#   Any tool: 124 = timeout, >=128 = killed by a signal -> error.
#   picklescan, modelscan and modelaudit give "error" (2) precedence over "issues" (1):
#   when such a run's own report still names a dangerous finding (picklescan "Infected
#   files: N>0", a modelscan JSON issue, a modelaudit WARNING/CRITICAL issue) it is
#   counted as flagged and shown as "flagged*".  (palisade exits 1 whenever it has a
#   finding, error or not.)
#
# Output: tables on stdout (also written to $OUT/summary.md), per-invocation rows in
# $OUT/results.tsv, raw outputs under $OUT/raw/. Total run time is printed at the end.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
VENV=${VENV:-$HERE/.venv}
OUT=${OUT:-$HERE/out}
FIXTURES=${FIXTURES:-$REPO/crates/palisade-scan/tests/fixtures/pickle}
REPS=${REPS:-3}
COLD=${COLD:-1}
TIMEOUT=${TIMEOUT:-600}
TOOLS=${TOOLS:-"palisade picklescan modelscan fickling modelaudit"}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target}
export PROMPTFOO_DISABLE_TELEMETRY=1 NO_ANALYTICS=1 NO_COLOR=1
MARKER=/tmp/palisade-marker   # what the malicious fixtures would create if ever loaded

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
log "installing pinned peers into $VENV"
"$VENV/bin/pip" install -q -r "$HERE/requirements-peers.txt"

if [ -z "${PALISADE:-}" ]; then
  log "building palisade (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  (cd "$REPO" && cargo build --release -p palisade)
  PALISADE=$CARGO_TARGET_DIR/release/palisade
fi
PALISADE=$(realpath "$PALISADE")

# --- inputs ------------------------------------------------------------------------------
mkdir -p "$OUT"
A=$OUT/a_range_3m.pkl
B=$OUT/b_state_dict_1g.pt
if [ ! -s "$A" ] || [ ! -s "$B" ] || [ "$HERE/gen_inputs.py" -nt "$B" ]; then
  log "generating inputs"
  python3 "$HERE/gen_inputs.py" "$OUT"
fi

RAW=$OUT/raw
RESULTS=$OUT/results.tsv
rm -rf "$RAW" "$OUT/cwd"
mkdir -p "$RAW" "$OUT/cwd"
printf 'tool\tinput\tfile\trun\trc\tseconds\tmaxrss_kb\n' > "$RESULTS"

# --- versions and machine ----------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "ram: $(free -m | awk '/^Mem:/{print $2}') MiB"
  echo "kernel: $(uname -r)"
  echo "python: $("$VENV/bin/python" --version 2>&1)"
  echo "palisade: $("$PALISADE" --version 2>&1) ($PALISADE, git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/'))"
  for p in picklescan modelscan fickling modelaudit; do
    echo "$p: $("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$p'))")"
  done
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/env.txt"
cat "$OUT/env.txt" >&2

# --- one timed invocation ----------------------------------------------------------------
# run_tool TOOL INPUT_LABEL FILE RUN_LABEL  -> appends a row to $RESULTS
run_tool() {
  local tool=$1 input=$2 file=$3 run=$4
  local id
  id=$(printf '%s__%s__%s' "$tool" "$input" "$run" | tr '/ ' '__')
  local r=$RAW/$id
  local -a cmd
  case $tool in
    palisade)   cmd=("$PALISADE" scan "$file" --format json -q -o "$r.json") ;;
    picklescan) cmd=("$VENV/bin/picklescan" -p "$file") ;;
    modelscan)  cmd=("$VENV/bin/modelscan" scan -p "$file" -r json -o "$r.json") ;;
    fickling)   cmd=("$VENV/bin/fickling" --check-safety --json-output "$r.json" "$file") ;;
    modelaudit) cmd=("$VENV/bin/modelaudit" scan --format json --no-cache -o "$r.json" "$file") ;;
    *) echo "unknown tool $tool" >&2; return 1 ;;
  esac
  local rc=0
  (cd "$OUT/cwd" && /usr/bin/time -v -o "$r.time" timeout "$TIMEOUT" "${cmd[@]}" \
      > "$r.out" 2> "$r.err") || rc=$?
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$r.time")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$r.time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$input" "$file" "$run" "$rc" "${secs:-NA}" "${rss:-NA}" >> "$RESULTS"
  if [ -e "$MARKER" ]; then
    echo "!!! $MARKER appeared after $tool on $file - something executed a payload" >&2
    rm -f "$MARKER"
    printf '%s\t%s\t%s\t%s\tMARKER\tNA\tNA\n' "$tool" "$input" "$file" "$run" >> "$RESULTS"
  fi
}

rm -f "$MARKER"

# --- (a) and (b): time / RSS -------------------------------------------------------------
for tool in $TOOLS; do
  for rep in $(seq 1 "$REPS"); do
    log "$tool on (a), run $rep/$REPS"
    run_tool "$tool" a "$A" "warm$rep"
  done
  for rep in $(seq 1 "$REPS"); do
    log "$tool on (b), run $rep/$REPS"
    run_tool "$tool" b "$B" "warm$rep"
  done
done

if [ "$COLD" = 1 ]; then
  if ( sync && echo 3 > /proc/sys/vm/drop_caches ) 2>/dev/null; then
    for tool in $TOOLS; do
      sync; echo 3 > /proc/sys/vm/drop_caches
      log "$tool on (b), cold page cache"
      run_tool "$tool" b_cold "$B" cold
    done
  else
    log "cannot drop the page cache here; skipping cold runs"
  fi
fi

# --- detection on the fixture corpus -----------------------------------------------------
if [ -f "$FIXTURES/manifest.json" ]; then
  mapfile -t CORPUS < <(python3 - "$FIXTURES" <<'EOF'
import json, os, sys
root = sys.argv[1]
for e in json.load(open(os.path.join(root, "manifest.json"))):
    p = os.path.join(root, e["file"])
    if os.path.isfile(p):
        print(p)
EOF
  )
  log "fixture corpus: ${#CORPUS[@]} files from $FIXTURES/manifest.json"
  for tool in $TOOLS; do
    log "$tool on the corpus"
    for f in "${CORPUS[@]}"; do
      run_tool "$tool" corpus "$f" "${f#"$FIXTURES"/}"
    done
  done
else
  log "no $FIXTURES/manifest.json; skipping detection"
fi

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/env.txt"
log "summarising"
python3 "$HERE/summarize.py" --out "$OUT" --fixtures "$FIXTURES" | tee "$OUT/summary.md"
echo
echo "total script run time: $(( $(date +%s) - T0 )) s" | tee -a "$OUT/summary.md"
