#!/usr/bin/env bash
# Runs one offsim fuzz target (docs/fuzzing.md): first each regression input on its own (the inputs of past
# findings; a crash, timeout or memory bomb on one fails at once), then libFuzzer from the target's seed
# corpus for --seconds N or --runs N inputs. Prints one summary line:
#   fuzz TARGET: INPUTS inputs in SECONDS s (EXEC_PER_S exec/s), FINDINGS findings
# and exits non-zero on any finding (its input is saved under WORK/artifacts/).
#
#   fuzz/run.sh BINARY TARGET (--seconds N | --runs N) [--work DIR] [--jobs N] [--max-len BYTES]
# --max-len caps the size of generated inputs (libFuzzer's -max_len; by default the largest seed): smaller
# inputs run faster, at the cost of never growing beyond it.
set -euo pipefail

usage() { echo "usage: $0 BINARY TARGET (--seconds N | --runs N) [--work DIR] [--jobs N] [--max-len BYTES]" >&2; exit 64; }
[[ $# -ge 4 ]] || usage
binary=$(realpath "$1") target=$2
shift 2
budget=() work="" jobs=1 max_len=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) budget=(-max_total_time="$2"); shift 2 ;;
    --runs) budget=(-runs="$2"); shift 2 ;;
    --work) work=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --max-len) max_len=(-max_len="$2"); shift 2 ;;
    *) usage ;;
  esac
done
[[ ${#budget[@]} -eq 1 ]] || usage
root=$(cd "$(dirname "$0")/.." && pwd)
[[ -n $work ]] || work=$(mktemp -d)
rm -rf "$work/corpus" "$work/seeds" "$work/regressions"
mkdir -p "$work/corpus" "$work/seeds" "$work/regressions" "$work/artifacts"

# Limits that turn the bug classes of issue 20 into findings: one allocation above 512 MiB or 2 GiB in all
# (a length field trusted before it was checked), 60 s on one input (quadratic parsing of a large input).
limits=(-malloc_limit_mb=512 -rss_limit_mb=2048 -timeout=60)

# Seeds: what offsim itself reads from the checkout, per reader.
seed() { for f in "$@"; do [[ -f $f ]] && cp "$f" "$work/seeds/$(echo "${f#"$root"/}" | tr '/' '_')"; done; return 0; }
shopt -s nullglob globstar
case $target in
  snapshot_pickle) seed "$root"/fuzz/seeds/snapshot_pickle/* "$root"/traces/**/*.pickle ;;
  snapshot_json) seed "$root"/fuzz/seeds/snapshot_json/* "$root"/traces/public/**/*.json ;;
  otrace) seed "$root"/traces/**/*.otrace ;;
  scenario) seed "$root"/scenarios/**/*.json "$root"/tests/corpus/counterexamples/*.json "$root"/traces/published/qwen-image-vae-*.json ;;
  decision_log) seed "$root"/tests/corpus/decision_logs/*.jsonl ;;
  *) echo "fuzz/run.sh: unknown target \"$target\" (snapshot_pickle, snapshot_json, otrace, scenario, decision_log)" >&2; exit 64 ;;
esac
cp "$root"/fuzz/regressions/"$target"/* "$work/regressions/" 2>/dev/null || true
# Regression inputs too large to commit are generated: a scenario whose inline working memory holds 100k
# allocs and their frees (parsed in quadratic time before, 14-44 s without sanitizers).
if [[ $target == scenario ]]; then
  python3 - "$work/regressions/inline-working-memory-100k-ops.json" <<'PY'
import json, sys
ops = [["alloc", 512]] * 100000 + [["free", i] for i in range(100000)]
doc = {"format": "offsim-scenario/1", "name": "inline-working-memory-100k-ops",
       "device": {"name": "test", "total": "24GiB"},
       "models": [{"id": "vae", "manifest": "traces/models/qwen-image-vae.json"}],
       "stages": [{"name": "decode", "kind": "vae_decode", "models": ["vae"],
                   "working_memory": {"provenance": {"kind": "synthetic"}, "ops": ops}}]}
json.dump(doc, open(sys.argv[1], "w"))
PY
fi

log=$work/fuzz.log
regressions=("$work"/regressions/*)
if [[ ${#regressions[@]} -gt 0 ]]; then
  # Given files (not folders), libFuzzer runs each input once, whole (no -max_len truncation).
  if ! "$binary" "${limits[@]}" -artifact_prefix="$work/artifacts/" "${regressions[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz $target: a regression input fails (see above; inputs in $work/regressions)" >&2
    exit 1
  fi
fi

start=$EPOCHREALTIME
status=0
parallel=()
[[ $jobs -gt 1 ]] && parallel=(-jobs="$jobs" -workers="$jobs")
# With -jobs, libFuzzer writes each job's log as fuzz-N.log in the current folder.
(cd "$work" && rm -f fuzz-*.log && "$binary" "${limits[@]}" "${budget[@]}" "${parallel[@]}" "${max_len[@]}" -print_final_stats=1 \
   -artifact_prefix="$work/artifacts/" "$work/corpus" "$work/seeds") >"$log" 2>&1 || status=$?
elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}')
if [[ $jobs -gt 1 ]]; then cat "$work"/fuzz-*.log >>"$log" 2>/dev/null || true; fi
# stat::number_of_executed_units (the seeds included), summed over jobs.
inputs=$({ grep -h '^stat::number_of_executed_units' "$log" || true; } | awk '{s += $2} END {print s + 0}')
findings=$(find "$work/artifacts" -type f | wc -l)
awk -v t="$target" -v n="$inputs" -v s="$elapsed" -v f="$findings" \
  'BEGIN {printf "fuzz %s: %d inputs in %.0f s (%.0f exec/s), %d findings\n", t, n, s, n / s, f}' | tee -a "$work/summary"
if [[ $status -ne 0 || $findings -ne 0 ]]; then
  tail -n 60 "$log" >&2
  echo "fuzz $target: finding(s) saved in $work/artifacts (exit $status)" >&2
  exit 1
fi
