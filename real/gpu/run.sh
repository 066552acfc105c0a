#!/usr/bin/env bash
# real/gpu/run.sh — the real GPU data for offsim in one run, with no build step (PyTorch's Python API).
#
#   real/gpu/run.sh [OUT_DIR] [--dry-run] [--skip P1,P2] [--only P1,P2] [--total SECONDS]
#
# OUT_DIR defaults to $OUT (the device machine's return folder). Parts, in run order (value first):
#   meta       GPU, driver, PyTorch/CUDA/cuDNN versions, device properties, memory outside the allocator
#   vae0       Qwen-Image VAE 1248x832 and 1024^2 cold peaks + traces (the points B1 and InvokeAI's CUDA
#              constant depend on)
#   allocdiff  allocator differential: seeded alloc/free sequences under 6 allocator configs, snapshots
#   scenarios  B11 LightX2V FLUX.2-klein-9B (31.35 GiB card) and B1 InvokeAI Qwen decode (44.98 GiB card),
#              smaller cards emulated by a ballast allocation outside PyTorch
#   vae        the rest of the VAE table (SD/SDXL, FLUX.1, FLUX.2, Qwen-Image; 5 sizes, 3 dtypes,
#              attention math|efficient|auto, cuDNN default|benchmark|deterministic, channels_last)
#   finalize   checks the output folder against the device's return limits (8 files, 16 MiB each)
# Each part has a time budget (seconds; override with OFFSIM_BUDGET_<PART>, e.g. OFFSIM_BUDGET_VAE=120),
# the whole run a deadline (--total, default 285 s), and a part that fails or runs out of time never
# removes what earlier parts wrote: every result file is written atomically as soon as it exists.
# --dry-run runs every part on the CPU (no CUDA call): the logic check used by real/gpu/tests.
# Output layout and how to commit a run: real/gpu/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR=""
DRY_RUN="${OFFSIM_DRY_RUN:-0}"
SKIP="${OFFSIM_SKIP:-}"
ONLY="${OFFSIM_ONLY:-}"
TOTAL="${OFFSIM_TOTAL_S:-285}"
ARGS_SEEN="$*"

while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --skip) SKIP="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --total) TOTAL="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) if [[ -z "$OUT_DIR" ]]; then OUT_DIR="$1"; else echo "run.sh: one output folder only" >&2; exit 2; fi ;;
  esac
  shift
done
OUT_DIR="${OUT_DIR:-${OUT:-}}"
if [[ -z "$OUT_DIR" ]]; then
  echo "run.sh: give an output folder (argument or \$OUT)" >&2
  exit 2
fi
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"

PY="${PYTHON:-python3}"
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Scratch space must not be inside OUT_DIR: only a handful of files may come back from there.
WORK="${OFFSIM_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/offsim-gpu.XXXXXX")}"
case "$WORK/" in "$OUT_DIR"/*) echo "run.sh: OFFSIM_WORK must be outside the output folder" >&2; exit 2 ;; esac
mkdir -p "$WORK"

START=$(date +%s)
DEADLINE=$((START + TOTAL))
FINAL_RESERVE=5
export OFFSIM_DEADLINE="$((DEADLINE - FINAL_RESERVE))"
export OFFSIM_RUN_ARGS="$ARGS_SEEN"
if [[ -z "${OFFSIM_GIT_SHA:-}" ]]; then
  OFFSIM_GIT_SHA="$(git -C "$HERE" rev-parse HEAD 2>/dev/null || echo unknown)"
fi
export OFFSIM_GIT_SHA

# Everything printed also lands in OUT_DIR/run.log.
exec > >(tee -a "$OUT_DIR/run.log") 2>&1
TEE_PID=$!

budget_of() {  # default budgets (s): sum 285 with the finalize reserve
  local p="$1" var
  var="OFFSIM_BUDGET_$(echo "$p" | tr '[:lower:]' '[:upper:]')"
  if [[ -n "${!var:-}" ]]; then echo "${!var}"; return; fi
  case "$p" in
    meta) echo 15 ;; vae0) echo 70 ;; allocdiff) echo 40 ;; scenarios) echo 60 ;; vae) echo 95 ;; *) echo 30 ;;
  esac
}
export OFFSIM_BUDGETS="meta=$(budget_of meta) vae0=$(budget_of vae0) allocdiff=$(budget_of allocdiff) scenarios=$(budget_of scenarios) vae=$(budget_of vae) total=$TOTAL"

in_list() { [[ ",$2," == *",$1,"* ]]; }

DRY=()
[[ "$DRY_RUN" == 1 ]] && DRY=(--dry-run)
VAE_LIMIT=()
[[ -n "${OFFSIM_VAE_LIMIT:-}" ]] && VAE_LIMIT=(--limit "$OFFSIM_VAE_LIMIT")

echo "offsim GPU run: out=$OUT_DIR work=$WORK dry_run=$DRY_RUN total=${TOTAL}s budgets: $OFFSIM_BUDGETS"
"$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)' \
  || { echo "run.sh: $PY cannot import torch" >&2; exit 3; }

record_skip() {  # part reason
  "$PY" -c 'import sys; from offsim_gpu import common; common.update_metadata(sys.argv[1], "parts." + sys.argv[2], {"status": "skipped", "reason": sys.argv[3]})' \
    "$OUT_DIR" "$1" "$2" || true
}

FAILED=()
run_part() {  # name, then the python arguments
  local name="$1"; shift
  if [[ -n "$ONLY" ]] && ! in_list "$name" "$ONLY"; then echo "== $name: not selected"; record_skip "$name" "not in --only"; return 0; fi
  if in_list "$name" "$SKIP"; then echo "== $name: skipped"; record_skip "$name" "--skip"; return 0; fi
  local budget left now
  budget="$(budget_of "$name")"
  now=$(date +%s)
  left=$((DEADLINE - FINAL_RESERVE - now))
  if ((left < 5)); then echo "== $name: no time left"; record_skip "$name" "deadline"; return 0; fi
  ((budget > left)) && budget=$left
  echo "== $name (budget ${budget}s, $((DEADLINE - now))s to the deadline)"
  local rc=0
  # The part limits itself to its budget; the hard timeout only catches a hang (it kills the whole
  # process group, forked children included).
  timeout -k 5 $((budget + 20)) "$PY" -m offsim_gpu "$@" --out "$OUT_DIR" --work "$WORK" --budget "$budget" "${DRY[@]}" || rc=$?
  if ((rc != 0)); then
    echo "== $name: exit status $rc (earlier results are kept; going on)"
    FAILED+=("$name")
  fi
  return 0
}

run_part meta meta
run_part vae0 vae --tiers 0 --part-name vae0 "${VAE_LIMIT[@]}"
run_part allocdiff allocdiff
run_part scenarios scenarios
run_part vae vae --tiers 1,2,3 --part-name vae "${VAE_LIMIT[@]}"

echo "== finalize"
"$PY" -m offsim_gpu finalize --out "$OUT_DIR" --work "$WORK" || FAILED+=(finalize)
END=$(date +%s)
"$PY" -c 'import sys; from offsim_gpu import common; common.update_metadata(sys.argv[1], "wall_s_total", int(sys.argv[2]))' \
  "$OUT_DIR" "$((END - START))" || true
echo "offsim GPU run finished in $((END - START))s; failed parts: ${FAILED[*]:-none}"
ls -l "$OUT_DIR"
if [[ -z "${OFFSIM_KEEP_WORK:-}" && -z "${OFFSIM_WORK:-}" ]]; then rm -rf "$WORK"; fi
RC=0
((${#FAILED[@]} == 0)) || RC=1
# Let tee write the last lines into run.log before the script returns.
exec 1>&- 2>&-
wait "$TEE_PID" 2>/dev/null || true
exit "$RC"
