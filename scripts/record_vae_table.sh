#!/usr/bin/env bash
# Records the table of CPU-recorded VAE traces into traces/cpu/ with `offsim record`: every
# (VAE x op x size x dtype x kernel variant) point, one .otrace (CUDA-like rewrite) + .otrace.scopes.json
# each, and traces/cpu/index.tsv with one line per point (peak allocated bytes, where the peak is, forward
# seconds). Points already present are skipped, so an interrupted run resumes.
#
# This is slow: on 2 CPU cores a 512x512 decode takes tens of seconds to minutes on 2 cores, 1024x1024
# several times that, Qwen-Image more (shared/ENVIRONMENT.md). Never run it from tests or CI; filter with
# --max-pixels / --only and run the big points at low priority on a machine you are not sharing.
#
# Usage: scripts/record_vae_table.sh [--offsim PATH] [--out DIR] [--threads N] [--max-pixels N]
#                                    [--only REGEX] [--nice N] [--dry-run]
#   --max-pixels N  skip points with width*height > N (e.g. 262144 for the 512x512 points only)
#   --only REGEX    only points whose name (model_op_WxH_dtype_attention_conv) matches REGEX (grep -E)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
offsim="${here}/build/release/cli/offsim"
out="${here}/traces/cpu"
threads=2
max_pixels=0
only=""
niceness=19
dry_run=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --offsim) offsim="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --max-pixels) max_pixels="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --nice) niceness="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "record_vae_table.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if [[ ${dry_run} -eq 0 && ! -x "${offsim}" ]]; then
  echo "record_vae_table.sh: '${offsim}' is not an executable offsim built with libtorch (pass --offsim)" >&2
  exit 2
fi

models=(sd15-vae sdxl-vae flux1-vae qwen-image-vae)
ops=(decode encode)
sizes=(512x512 768x768 1024x1024 1248x832)
dtypes=(bf16 fp32)
# Kernel variants: what CUDA runs by default (mem-efficient SDPA, implicit-GEMM convolutions) and the
# ROCm-without-fused-kernels path (math SDPA, im2col/vol2col GEMM convolutions).
variants=("efficient implicit" "math column-buffer")

index="${out}/index.tsv"
if [[ ${dry_run} -eq 0 && ! -f "${index}" ]]; then
  mkdir -p "${out}"
  printf 'name\tmodel\top\tsize\tdtype\tattention\tconv_workspace\tpeak_allocated_bytes\tpeak_scope\tforward_seconds\ttrace\n' >"${index}"
fi

for model in "${models[@]}"; do
  for op in "${ops[@]}"; do
    for size in "${sizes[@]}"; do
      w="${size%x*}"; h="${size#*x}"
      if [[ ${max_pixels} -gt 0 && $((w * h)) -gt ${max_pixels} ]]; then continue; fi
      for dtype in "${dtypes[@]}"; do
        for variant in "${variants[@]}"; do
          read -r attention conv <<<"${variant}"
          name="${model}_${op}_${size}_${dtype}_${attention}_${conv}"
          if [[ -n "${only}" ]] && ! grep -Eq -- "${only}" <<<"${name}"; then continue; fi
          trace="${out}/${name}.otrace"
          if [[ -f "${trace}" && -f "${trace}.scopes.json" ]]; then
            echo "skip ${name} (exists)"
            continue
          fi
          cmd=(nice -n "${niceness}" "${offsim}" record --model "${model}" --op "${op}" --size "${size}"
               --dtype "${dtype}" --attention "${attention}" --conv-workspace "${conv}" --threads "${threads}"
               -o "${trace}" --quiet)
          echo "record ${name}: ${cmd[*]}"
          if [[ ${dry_run} -eq 1 ]]; then continue; fi
          start=$(date +%s)
          "${cmd[@]}"
          echo "  done in $(( $(date +%s) - start )) s"
          python3 - "${trace}.scopes.json" "${name}" "${model}" "${op}" "${size}" "${dtype}" "${attention}" "${conv}" \
            "$(realpath --relative-to="${here}" "${trace}")" >>"${index}" <<'PY'
import json, sys
sidecar, *fields, trace = sys.argv[1:]
s = json.load(open(sidecar))["summary"]
print("\t".join(fields + [str(s["peak_allocated_bytes"]), s["peak_scope"], f'{s["forward_seconds"]:.1f}', trace]))
PY
        done
      done
    done
  done
done
